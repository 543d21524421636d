// SPDX-License-Identifier: Apache-2.0
// The names, help texts and labels of every metric of a provider node.
#include "node_metrics.hpp"

#include "cowpi/storage/mirror_store.hpp"
#include "cowpi/storage/router_store.hpp"
#include "cowpi/storage/thread_guard.hpp"

namespace cowpi::actors {

namespace {

constexpr std::array<std::string_view, link_kinds> kind_names{"hello",  "prepare", "commit", "ack",
                                                              "status", "topup",   "audit"};

// A registry nobody renders, for actors spawned without a node (unit tests).
metrics::registry& or_discard(metrics::registry* r) {
  static metrics::registry discard;
  return r != nullptr ? *r : discard;
}

per_kind make_kinds(metrics::registry& r, std::string_view requests, std::string_view requests_help,
                    std::string_view seconds, std::string_view seconds_help,
                    const metrics::labels& base) {
  per_kind k;
  for (size_t i = 0; i < link_kinds; ++i) {
    metrics::labels l = base;
    l.emplace_back("kind", std::string(kind_names[i]));
    k.requests[i] = &r.counter(requests, requests_help, l);
    k.seconds[i] = &r.histogram(seconds, seconds_help, metrics::latency_bounds(), l);
  }
  return k;
}

}  // namespace

std::string_view kind_of(const protocol::link_request& r) noexcept {
  return kind_names[r.index()];
}

std::shared_ptr<const conversation_metrics> conversation_metrics::make(metrics::registry* reg) {
  auto& r = or_discard(reg);
  auto m = std::make_shared<conversation_metrics>();
  const char* intake = "SUBMITs taken in (queued for ordering) or refused at intake";
  m->intake_accepted = &r.counter("cowpi_router_intake_total", intake, {{"result", "accepted"}});
  m->intake_refused = &r.counter("cowpi_router_intake_total", intake, {{"result", "refused"}});
  m->ordered = &r.counter("cowpi_router_entries_ordered_total",
                          "Entries given an index and appended to a conversation log (synced)");
  m->committed = &r.counter("cowpi_router_entries_committed_total",
                            "Entries answered by every mirror and made deliverable");
  m->stopped = &r.counter("cowpi_router_conversations_stopped_total",
                          "Conversations stopped by a mirror's CONFLICT or REJECT at COMMIT "
                          "(operator alarms)");
  m->commit_seconds = &r.histogram(
      "cowpi_router_commit_seconds",
      "From an entry's synced append to every mirror's answer persisted (this process's entries)",
      metrics::latency_bounds());
  m->live = &r.gauge("cowpi_router_conversations_live", "Conversation actors running");
  return m;
}

std::shared_ptr<const link_metrics> link_metrics::make(metrics::registry* reg,
                                                       const std::string& mirror,
                                                       const std::string& node) {
  auto& r = or_discard(reg);
  auto m = std::make_shared<link_metrics>();
  metrics::labels l{{"mirror", mirror}};
  if (!node.empty())
    l.emplace_back("node", node);
  m->kinds = make_kinds(r, "cowpi_router_mirror_requests_total",
                        "Requests sent to a mirror, by kind (commit: COMMITs per mirror)",
                        "cowpi_router_mirror_request_seconds",
                        "Round trip of a mirror request answered, by kind", l);
  m->failures = &r.counter("cowpi_router_mirror_failures_total",
                           "Mirror requests without a decodable answer (timeouts, link down)", l);
  m->connects = &r.counter("cowpi_router_mirror_connects_total",
                           "Mirror links established (HELLO answered)", l);
  m->up = &r.gauge("cowpi_router_mirror_link_up", "1 while the link to the mirror is up", l);
  return m;
}

std::shared_ptr<const client_metrics> client_metrics::make(metrics::registry* reg) {
  auto& r = or_discard(reg);
  auto m = std::make_shared<client_metrics>();
  m->open = &r.gauge("cowpi_router_connections_open", "Client connections open");
  m->accepted =
      &r.counter("cowpi_router_connections_accepted_total", "Client connections accepted");
  m->refused = &r.counter("cowpi_router_connections_refused_total",
                          "Client connections refused with BUSY (limits.max_connections)");
  const char* responses = "Answers to client requests: OK, or the rejection sent";
  m->responses[0] = &r.counter("cowpi_router_responses_total", responses, {{"result", "OK"}});
  for (size_t k = 1; k < m->responses.size(); ++k) {
    const auto name = protocol::to_string(static_cast<protocol::rejection_kind>(k));
    m->responses[k] = &r.counter("cowpi_router_responses_total", responses,
                                 {{"result", name.empty() ? "other" : std::string(name)}});
  }
  m->queues =
      &r.gauge("cowpi_router_queues_attached", "Queue actors streaming to a connected user");
  m->unacked = &r.gauge("cowpi_router_envelopes_unacked",
                        "Envelopes sent to connected users and not yet acknowledged (the sum "
                        "of the delivery windows)");
  m->delivered =
      &r.counter("cowpi_router_envelopes_delivered_total", "Envelopes sent to connected users");
  m->disk_reads = &r.counter(
      "cowpi_router_envelope_disk_reads_total",
      "Envelope reads that needed the disk, done on the store's reader thread (not in memory)");
  m->acks = &r.counter("cowpi_router_acks_total", "Delivery acknowledgements that moved a cursor");
  m->delivery_lag = &r.histogram(
      "cowpi_router_delivery_lag_seconds",
      "From an entry becoming deliverable to its envelope sent to a member connected then",
      metrics::latency_bounds());
  return m;
}

metrics::counter* client_metrics::response(const protocol::response_body& b) const noexcept {
  if (const auto* rj = std::get_if<protocol::rejection>(&b)) {
    const auto k = static_cast<size_t>(rj->kind);
    return k > 0 && k < responses.size() ? responses[k] : responses.back();
  }
  return responses[0];
}

std::shared_ptr<const mirror_metrics> mirror_metrics::make(metrics::registry* reg) {
  auto& r = or_discard(reg);
  auto m = std::make_shared<mirror_metrics>();
  m->kinds = make_kinds(r, "cowpi_mirror_requests_total", "Link requests handled, by kind",
                        "cowpi_mirror_request_seconds",
                        "Time to handle a link request (COMMIT includes its synced write)", {});
  m->rejects = &r.counter("cowpi_mirror_rejects_total", "Link requests answered with a REJECT");
  m->commits = &r.counter("cowpi_mirror_commits_total", "Entries committed (synced)");
  m->conversations = &r.gauge("cowpi_mirror_conversations", "Conversations this mirror holds");
  m->links = &r.gauge("cowpi_mirror_router_links", "Router connections that completed HELLO");
  m->answers_held = &r.gauge("cowpi_mirror_answers_held",
                             "Answers kept until the router acknowledges them (ACK)");
  return m;
}

void add_blocking_collector(metrics::registry& r) {
  r.add_collector([](metrics::sink& out) {
    const auto counts = storage::blocking_calls_on_nonblocking_threads();
    for (size_t i = 0; i < counts.size(); ++i)
      out.counter("cowpi_store_blocking_calls_total",
                  "Store calls that may wait for the disk made on a scheduler or I/O thread "
                  "(0 in a healthy node)",
                  {{"op", std::string(storage::to_string(static_cast<storage::blocking_op>(i)))}},
                  static_cast<double>(counts[i]));
  });
}

namespace {

template <class Store>
void store_collector(metrics::registry& r, std::string store_name, const Store* s) {
  r.add_collector([store_name = std::move(store_name), s](metrics::sink& out) {
    const auto w = s->stats();
    const metrics::labels l{{"store", store_name}};
    out.counter("cowpi_store_syncs_total", "Synced RocksDB writes (group commits)", l,
                static_cast<double>(w.syncs));
    out.counter("cowpi_store_batches_total",
                "Write batches applied (lazy ones without a sync included)", l,
                static_cast<double>(w.batches));
    out.counter("cowpi_store_write_bytes_total", "Key and value bytes written", l,
                static_cast<double>(w.bytes));
    out.histogram("cowpi_store_sync_seconds",
                  "Wall time of each synced write, fsync included (fsync latency)", l,
                  storage::sync_latency_bounds, w.sync_buckets, w.sync_seconds);
    out.histogram("cowpi_store_group_commit_batches",
                  "Batches merged into one synced write (group-commit size)", l,
                  storage::group_size_bounds, w.group_buckets, static_cast<double>(w.batches));
    out.gauge("cowpi_store_failed", "1 once a synced write failed (the node must restart)", l,
              s->failed() ? 1 : 0);
  });
}

}  // namespace

void add_store_collector(metrics::registry& r, std::string store_name,
                         const storage::router_store& s) {
  store_collector(r, std::move(store_name), &s);
}

void add_store_collector(metrics::registry& r, std::string store_name,
                         const storage::mirror_store& s) {
  store_collector(r, std::move(store_name), &s);
}

}  // namespace cowpi::actors

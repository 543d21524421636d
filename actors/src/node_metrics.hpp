// SPDX-License-Identifier: Apache-2.0
// The metrics each actor updates, looked up once in the node's registry and handed to the
// actors in their deps. Built from a null registry they update a registry nobody renders
// (unit tests spawn actors without a node). docs/admin.md, "Metrics", lists every name.
#pragma once

#include "cowpi/actors/metrics.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/storage/store.hpp"

#include <array>
#include <memory>
#include <string>
#include <string_view>

namespace cowpi::storage {
class router_store;
class mirror_store;
}  // namespace cowpi::storage

namespace cowpi::actors {

/// "hello", "prepare", "commit", "ack", "status", "topup" or "audit".
std::string_view kind_of(const protocol::link_request& r) noexcept;
/// The number of link request kinds (the alternatives of protocol::link_request).
inline constexpr size_t link_kinds = std::variant_size_v<protocol::link_request>;

/// Per link request kind: a counter and a latency histogram.
struct per_kind {
  std::array<metrics::counter*, link_kinds> requests{};
  std::array<metrics::histogram*, link_kinds> seconds{};
};

/// One actor's share of a gauge summed over actors (e.g. its delivery window): `set` moves the
/// gauge by the change, the destructor takes the share back out. Not copyable.
class gauge_share {
public:
  gauge_share() = default;
  gauge_share(const gauge_share&) = delete;
  gauge_share& operator=(const gauge_share&) = delete;
  ~gauge_share() { set(0); }
  void bind(metrics::gauge* g) noexcept {
    set(0);
    g_ = g;
  }
  void set(int64_t v) noexcept {
    if (g_ != nullptr)
      g_->add(v - n_);
    n_ = v;
  }

private:
  metrics::gauge* g_ = nullptr;
  int64_t n_ = 0;
};

/// The router's conversation actors.
struct conversation_metrics {
  metrics::counter* intake_accepted = nullptr;
  metrics::counter* intake_refused = nullptr;
  metrics::counter* ordered = nullptr;
  metrics::counter* committed = nullptr;
  metrics::counter* stopped = nullptr;
  /// From the synced append of an entry to the persisted answers of every mirror.
  metrics::histogram* commit_seconds = nullptr;
  metrics::gauge* live = nullptr;
  static std::shared_ptr<const conversation_metrics> make(metrics::registry* r);
};

/// One mirror link of the router.
struct link_metrics {
  per_kind kinds;
  metrics::counter* failures = nullptr;
  metrics::counter* connects = nullptr;
  metrics::gauge* up = nullptr;
  /// `node`: the mirror node's id for a link to one node of a mirror cluster (a `node`
  /// label), empty for a mirror of one node.
  static std::shared_ptr<const link_metrics> make(metrics::registry* r, const std::string& mirror,
                                                  const std::string& node = {});
};

/// The router's client side: connections, sessions and queues.
struct client_metrics {
  metrics::gauge* open = nullptr;
  metrics::counter* accepted = nullptr;
  metrics::counter* refused = nullptr;
  /// Answers to client requests: [0] OK and other successes, then one per rejection kind.
  std::array<metrics::counter*, 16> responses{};
  metrics::gauge* queues = nullptr;
  metrics::gauge* unacked = nullptr;
  metrics::counter* delivered = nullptr;
  metrics::counter* disk_reads = nullptr;
  metrics::counter* acks = nullptr;
  /// From an entry becoming deliverable (its answers persisted) to its envelope going to a
  /// connected member's session.
  metrics::histogram* delivery_lag = nullptr;
  metrics::counter* response(const protocol::response_body& b) const noexcept;
  static std::shared_ptr<const client_metrics> make(metrics::registry* r);
};

/// The mirror endpoint.
struct mirror_metrics {
  per_kind kinds;
  metrics::counter* rejects = nullptr;
  metrics::counter* commits = nullptr;
  metrics::gauge* conversations = nullptr;
  metrics::gauge* links = nullptr;
  metrics::gauge* answers_held = nullptr;
  static std::shared_ptr<const mirror_metrics> make(metrics::registry* r);
};

/// Reports the store calls that may block made on threads that must not
/// (`cowpi_store_blocking_calls_total{op}`, storage/thread_guard.hpp): 0 in a healthy node.
void add_blocking_collector(metrics::registry& r);

/// Reports a store's group-commit counters (`store` = "router" or "mirror") at each render.
void add_store_collector(metrics::registry& r, std::string store_name,
                         const storage::router_store& s);
void add_store_collector(metrics::registry& r, std::string store_name,
                         const storage::mirror_store& s);

}  // namespace cowpi::actors

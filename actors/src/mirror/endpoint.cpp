// SPDX-License-Identifier: Apache-2.0
// The mirror endpoint: HELLO, PREPARE, COMMIT (synced before answering), ACK, STATUS, TOPUP,
// AUDIT (docs/design.md §3.4, §4).
#include "endpoint.hpp"

#include "cowpi/actors/fault.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>

namespace cowpi::actors {

namespace {

/// An answer waiting for its write (or for earlier answers) before it may leave.
struct pending_reply {
  caf::typed_response_promise<link_frame> rp;
  link_frame frame;
  /// 0: ready now (it only waits for the answers before it).
  uint64_t token = 0;
  bool ready = false;
  /// A COMMIT whose answer follows its synced write (metrics, fault point).
  bool commit = false;
  /// An AUDIT answered once the writes queued before it are applied (it reads the store).
  std::optional<protocol::audit_query> audit;
  /// The conversation's next index when the AUDIT arrived.
  uint64_t audit_next = 0;
  /// A COMMIT of an index already committed: answered from its D_i (read off the endpoint's
  /// thread, once the writes queued before it are applied) and the answer still held.
  struct retried {
    protocol::conv_id conv{};
    uint64_t index = 0;
    hash32 d{};
    std::optional<protocol::answer> stored;
  };
  std::optional<retried> retry;
};

struct endpoint_state {
  std::unique_ptr<protocol::mirror> m;
  storage::mirror_store* store = nullptr;
  config::peer router;
  /// The cluster's node ids, and this node's position in them.
  std::vector<std::string> nodes;
  size_t self_node = 0;
  /// Requests refused because another node of the cluster owns their conversation.
  uint64_t wrong_node = 0;
  crypto::system_rng rng;
  /// Senders (router connections) that completed HELLO.
  std::set<caf::actor_addr> greeted;
  /// Their nodes, with how many greeted senders each has. Any actor of a greeted node may
  /// send requests: the router's link forwards its conversations' PREPAREs and COMMITs as
  /// they are, so their answers go straight back to the conversation actor. The node is
  /// the router's, authenticated by mutual TLS and by the HELLO of one of its actors.
  std::map<caf::node_id, size_t> greeted_nodes;
  uint64_t commits = 0;
  uint64_t acks = 0;
  /// Answers the mirror state holds (kept until the router's ACK covers them).
  int64_t answers_held = 0;
  std::shared_ptr<const mirror_metrics> metrics;
  /// Answers in request order. An answer leaves only once it is ready and every answer before
  /// it has left, so none goes out before every write queued ahead of it is synced.
  std::deque<pending_reply> replies;
  /// The last token handed to a store callback (tokens complete in increasing order).
  uint64_t last_token = 0;
  static inline const char* name = "mirror-endpoint";
};

using endpoint_actor = caf::stateful_actor<endpoint_state>;

link_frame encode(const protocol::link_response& r) {
  return link_frame{protocol::wire::encode(r)};
}

protocol::link_response reject(std::string why) {
  return protocol::link_reject{std::move(why)};
}

// A failed synced write leaves the in-memory state ahead of the disk: the only safe course
// is to stop, so that a restart reloads from the store. Nothing was answered.
[[noreturn]] void die_on_storage_error(const std::string& what) {
  spdlog::critical(
      "mirror: storage write failed ({}); exiting so that a restart reloads the "
      "last durable state",
      what);
  std::_Exit(70);
}

// What handling one request produced: the answer, and the token of the write it waits for.
struct handled {
  protocol::link_response answer;
  uint64_t token = 0;
  bool commit = false;
};

// A store callback (on the store's writer thread) that reports back to the endpoint.
storage::store::done_fn report_to(endpoint_actor* self, uint64_t token) {
  auto me = caf::actor_cast<caf::actor>(self);
  return [me, token](expected<void> r) {
    caf::anon_send(me, appended_atom_v, token, r.has_value() ? std::string() : r.error().message());
  };
}

// Whether this node owns `conv` (always, for a mirror of one node).
bool owns(const endpoint_state& st, const protocol::conv_id& conv) {
  return st.nodes.size() <= 1 || protocol::conv_owner(st.nodes, conv) == st.self_node;
}

// The conversation a request is about, if any.
const protocol::conv_id* conv_of(const protocol::link_request& req) {
  return std::visit(
      [](const auto& x) -> const protocol::conv_id* {
        using T = std::decay_t<decltype(x)>;
        constexpr bool ack = std::is_same_v<T, protocol::link_ack>;
        constexpr bool status = std::is_same_v<T, protocol::status_query>;
        constexpr bool audit = std::is_same_v<T, protocol::audit_query>;
        if constexpr (std::is_same_v<T, protocol::prepare_msg>)
          return &x.c.conv;
        else if constexpr (std::is_same_v<T, protocol::commit_msg>)
          return &x.payload.c.conv;
        else if constexpr (ack || status || audit)
          return &x.conv;
        else
          return nullptr;
      },
      req);
}

// Runs one request against the mirror state. A COMMIT or ACK that changes it queues its write
// and returns the write's token: its answer waits for that write's sync.
handled handle(endpoint_actor* self, const protocol::link_request& req) {
  auto& st = self->state;
  const auto now = unix_seconds();
  // Every node of a mirror cluster holds the conversations it owns and nothing of the others:
  // a request about another node's conversation (a router with a different node list) is
  // refused before it touches any state.
  if (const auto* conv = conv_of(req); conv != nullptr && !owns(st, *conv)) {
    if (st.wrong_node++ == 0)
      spdlog::warn(
          "mirror: a request about a conversation another node of this cluster owns "
          "(does the router list the same nodes?)");
    return handled{reject("wrong_node")};
  }
  return std::visit(
      [&](const auto& x) -> handled {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, protocol::link_hello>) {
          if (x.id != st.router.name || x.lpk != st.router.public_key)
            return handled{reject("unknown_peer")};
          if (x.version != protocol::transport_version)
            return handled{reject("unsupported_version")};
          auto src = caf::actor_cast<caf::actor_addr>(self->current_sender());
          if (st.greeted.insert(src).second) {
            self->monitor(src);
            ++st.greeted_nodes[src.node()];
          }
          st.metrics->links->set(static_cast<int64_t>(st.greeted.size()));
          return handled{protocol::link_hello{st.m->self().id(), st.m->self().lpk(),
                                              protocol::transport_version}};
        } else if constexpr (std::is_same_v<T, protocol::prepare_msg>) {
          return handled{st.m->prepare(x, now)};
        } else if constexpr (std::is_same_v<T, protocol::commit_msg>) {
          auto out = st.m->commit(x, *st.store, now, st.rng);
          if (!out.persist)
            return handled{std::move(out.response)};
          fault_point(fault::mirror_commit_before_sync);
          ++st.answers_held;
          st.metrics->answers_held->set(st.answers_held);
          const uint64_t token = ++st.last_token;
          st.store->persist_commit_async(*st.m, x.payload.c.conv, out.index, out.d,
                                         out.keys_changed, report_to(self, token));
          return handled{std::move(out.response), token, true};
        } else if constexpr (std::is_same_v<T, protocol::link_ack>) {
          ++st.acks;
          const protocol::mirror_conv* mc = st.m->find(x.conv);
          const size_t held_before = mc == nullptr ? 0 : mc->answers.size();
          if (!st.m->ack(x))
            return handled{protocol::acked{}};
          mc = st.m->find(x.conv);
          st.answers_held -= static_cast<int64_t>(held_before)
                             - static_cast<int64_t>(mc == nullptr ? 0 : mc->answers.size());
          st.metrics->answers_held->set(st.answers_held);
          const uint64_t token = ++st.last_token;
          st.store->persist_ack_async(*st.m, x.conv, report_to(self, token));
          return handled{protocol::acked{}, token};
        } else if constexpr (std::is_same_v<T, protocol::status_query>) {
          return handled{st.m->status(x.conv)};
        } else if constexpr (std::is_same_v<T, protocol::topup>) {
          fault_point(fault::mirror_topup_before_answer);
          const size_t n = std::min<size_t>(x.count, protocol::max_prekey_batch);
          // Keys at their maximum age go first (handed out, never used; the router replaces
          // the pool daily, so none of them is still in it), then the new ones are made.
          st.m->expire_keys(now);
          auto pk = st.m->make_prekeys(n, now, st.rng);
          // The new keys go out only once they are synced, in request order like a COMMIT.
          const uint64_t token = ++st.last_token;
          st.store->persist_keys_async(*st.m, report_to(self, token));
          return handled{std::move(pk), token};
        } else {
          static_assert(std::is_same_v<T, protocol::audit_query>);
          return handled{st.m->audit(x, *st.store)};
        }
      },
      req);
}

// Sends every answer at the head of the queue that is ready.
void flush(endpoint_actor* self) {
  auto& q = self->state.replies;
  while (!q.empty() && q.front().ready) {
    q.front().rp.deliver(std::move(q.front().frame));
    q.pop_front();
  }
}

// An AUDIT reads up to `max_audit` D values: on the store's reader thread, never here. Its
// answer comes back as `(audited_atom, token, frame)` and leaves in request order.
void read_audit(endpoint_actor* self, const pending_reply& r) {
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t token = r.token;
  self->state.store->audit_async(*r.audit, r.audit_next, self->state.m->max_audit(),
                                 [me, token](protocol::audit_answer a) {
                                   caf::anon_send(me, audited_atom_v, token, encode(a));
                                 });
}

// A retried COMMIT reads D_i: on the store's reader thread too, answered like an AUDIT.
void read_retry(endpoint_actor* self, const pending_reply& r) {
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t token = r.token;
  const auto& x = *r.retry;
  self->state.store->answer_retry_async(x.conv, x.index, x.d, x.stored,
                                        [me, token](protocol::link_response a) {
                                          caf::anon_send(me, audited_atom_v, token, encode(a));
                                        });
}

// The write (or barrier) of `token` is applied and synced: its answer is ready.
void on_written(endpoint_actor* self, uint64_t token, const std::string& failure) {
  auto& st = self->state;
  if (!failure.empty())
    die_on_storage_error(failure);
  auto it = std::find_if(st.replies.begin(), st.replies.end(),
                         [token](const pending_reply& r) { return r.token == token; });
  if (it == st.replies.end())
    return;
  if (it->commit) {
    fault_point(fault::mirror_commit_after_sync);
    ++st.commits;
    st.metrics->commits->inc();
    st.metrics->conversations->set(static_cast<int64_t>(st.m->convs().size()));
  }
  if (it->audit) {
    read_audit(self, *it);
    return;
  }
  if (it->retry) {
    read_retry(self, *it);
    return;
  }
  it->ready = true;
  flush(self);
}

/// An AUDIT, or a COMMIT of an index already committed: `r` reads the store off this thread,
/// once the writes queued before it are applied.
caf::result<link_frame> queue_read(endpoint_actor* self, pending_reply r) {
  auto& st = self->state;
  r.rp = self->make_response_promise<link_frame>();
  r.token = ++st.last_token;
  const bool behind_writes = !st.replies.empty();
  st.replies.push_back(std::move(r));
  const auto& q = st.replies.back();
  auto rp = q.rp;
  if (behind_writes)
    st.store->barrier_async(report_to(self, q.token));
  else if (q.audit)
    read_audit(self, q);
  else
    read_retry(self, q);
  return rp;
}

/// One request over the link, answered in request order.
caf::result<link_frame> on_link(endpoint_actor* self, const link_frame& f) {
  auto req = protocol::wire::decode_link_request(f.bytes);
  if (!req) {
    self->state.metrics->rejects->inc();
    return encode(reject("malformed: " + req.error().message()));
  }
  const bool hello = std::holds_alternative<protocol::link_hello>(*req);
  auto src = caf::actor_cast<caf::actor_addr>(self->current_sender());
  if (!hello && (!src || !self->state.greeted_nodes.contains(src.node()))) {
    self->state.metrics->rejects->inc();
    return encode(reject("no_hello"));
  }
  auto& st = self->state;
  const auto& mm = *st.metrics;
  const size_t kind = req->index();
  mm.kinds.requests[kind]->inc();
  // An AUDIT reads the store, off this thread; behind writes still queued, it first
  // waits until they are applied. One about a conversation not held is answered here.
  if (const auto* a = std::get_if<protocol::audit_query>(&*req);
      a && owns(st, a->conv) && st.m->find(a->conv) != nullptr) {
    pending_reply r;
    r.audit = *a;
    r.audit_next = st.m->find(a->conv)->st.next;
    return queue_read(self, std::move(r));
  }
  // A COMMIT of an index already committed compares D with the stored D_i, which may be
  // only on disk (or still queued behind writes): the same path as an AUDIT.
  if (const auto* c = std::get_if<protocol::commit_msg>(&*req); c && owns(st, c->payload.c.conv)) {
    const protocol::mirror_conv* mc = st.m->find(c->payload.c.conv);
    if (mc != nullptr && c->index < mc->st.next) {
      pending_reply r;
      pending_reply::retried x;
      x.conv = c->payload.c.conv;
      x.index = c->index;
      x.d = c->d;
      if (auto a = mc->answers.find(c->index); a != mc->answers.end())
        x.stored = a->second;
      r.retry = std::move(x);
      return queue_read(self, std::move(r));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto h = handle(self, *req);
  mm.kinds.seconds[kind]->observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (std::holds_alternative<protocol::link_reject>(h.answer))
    mm.rejects->inc();
  if (h.token == 0 && st.replies.empty())
    return encode(h.answer);  // nothing to wait for
  // Group commit: the write is queued and the next request is taken at once; the answer
  // leaves after the write's sync and after every earlier answer.
  pending_reply r;
  r.rp = self->make_response_promise<link_frame>();
  r.frame = encode(h.answer);
  r.token = h.token;
  r.ready = h.token == 0;
  r.commit = h.commit;
  st.replies.push_back(std::move(r));
  auto rp = st.replies.back().rp;
  flush(self);
  return rp;
}

/// The mirror's section of the admin status.
std::string stats_json(endpoint_actor* self) {
  const auto& m = *self->state.m;
  return nlohmann::json{
      {"role", "mirror"},
      {"id", m.self().id()},
      {"node",
       self->state.nodes.empty() ? m.self().id() : self->state.nodes[self->state.self_node]},
      {"nodes", self->state.nodes.size()},
      {"wrong_node", self->state.wrong_node},
      {"conversations", m.convs().size()},
      {"prekeys", m.keys().prekeys().size()},
      {"commits", self->state.commits},
      {"acks", self->state.acks},
      {"answers_held", self->state.answers_held},
      {"router_links", self->state.greeted.size()}}
      .dump();
}

caf::behavior endpoint(endpoint_actor* self, mirror_endpoint_deps deps) {
  self->state.m = std::move(deps.mirror);
  self->state.store = deps.store;
  self->state.router = std::move(deps.router);
  self->state.nodes = std::move(deps.nodes);
  if (auto it = std::find(self->state.nodes.begin(), self->state.nodes.end(), deps.self_node);
      it != self->state.nodes.end())
    self->state.self_node = static_cast<size_t>(it - self->state.nodes.begin());
  self->state.metrics = std::move(deps.metrics);
  self->state.metrics->conversations->set(static_cast<int64_t>(self->state.m->convs().size()));
  for (const auto& [conv, mc] : self->state.m->convs())
    self->state.answers_held += static_cast<int64_t>(mc.answers.size());
  self->state.metrics->answers_held->set(self->state.answers_held);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.greeted.erase(dm.source) > 0) {
      auto it = st.greeted_nodes.find(dm.source.node());
      if (it != st.greeted_nodes.end() && --it->second == 0)
        st.greeted_nodes.erase(it);
    }
    st.metrics->links->set(static_cast<int64_t>(st.greeted.size()));
  });
  // A message of a type this node does not know arrives empty: say so loudly.
  self->set_default_handler(
      [=](caf::scheduled_actor*, caf::message_view& mv) -> caf::result<caf::message> {
        spdlog::warn("mirror: unexpected message {}", caf::to_string(mv.copy_content_to_message()));
        return caf::sec::unexpected_message;
      });
  return {
      [=](link_atom, const link_frame& f) { return on_link(self, f); },
      [=](appended_atom, uint64_t token, const std::string& failure) {
        on_written(self, token, failure);
      },
      [=](audited_atom, uint64_t token, link_frame& frame) {
        auto& q = self->state.replies;
        auto it = std::find_if(q.begin(), q.end(),
                               [token](const pending_reply& r) { return r.token == token; });
        if (it == q.end())
          return;
        it->frame = std::move(frame);
        it->ready = true;
        flush(self);
      },
      [=](stats_atom) { return stats_json(self); },
  };
}

}  // namespace

caf::actor spawn_mirror_endpoint(caf::actor_system& sys, mirror_endpoint_deps deps) {
  // Scheduled, not detached: a detached actor's thread is joined only once its last strong
  // reference is gone, and CAF 0.17's middleman may still hold one when the router's link
  // closes during our own shutdown, which hung SIGTERM. Its COMMIT and ACK writes do not
  // block it (group commit, answers in order after their syncs); TOPUP still waits for its own.
  return sys.spawn(endpoint, std::move(deps));
}

}  // namespace cowpi::actors

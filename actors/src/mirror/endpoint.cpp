// SPDX-License-Identifier: Apache-2.0
// The mirror endpoint: HELLO and TOPUP itself, every request about a conversation through that
// conversation's actor (docs/design.md §3.4, §4; docs/architecture.md, "The mirror process").
#include "endpoint.hpp"

#include "cowpi/actors/fault.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include "answers.hpp"
#include "conversation.hpp"
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

/// A conversation this node holds or is asked about.
struct conv_entry {
  std::shared_ptr<mirror_slot> slot = std::make_shared<mirror_slot>();
  /// Its conversation actor; null while none runs (the endpoint then owns `slot`).
  caf::actor actor;
  /// Requests forwarded to `actor` (it may stop only once it has handled them all).
  uint64_t forwarded = 0;
};

struct endpoint_state {
  std::shared_ptr<mirror_shared> sh;
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
  /// they are, so their answers go back to the conversation actor. The node is the router's,
  /// authenticated by mutual TLS and by the HELLO of one of its actors.
  std::map<caf::node_id, size_t> greeted_nodes;
  std::map<protocol::conv_id, conv_entry> convs;
  /// Conversation actors running.
  size_t live = 0;
  /// TOPUP answers waiting for their key batch's sync, by token.
  std::map<uint64_t, std::pair<caf::typed_response_promise<link_frame>, link_frame>> topups;
  uint64_t last_token = 0;
  static inline const char* name = "mirror-endpoint";
};

using endpoint_actor = caf::stateful_actor<endpoint_state>;

using mirror_node::encode;
using mirror_node::reject;

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

protocol::link_response on_hello(endpoint_actor* self, const protocol::link_hello& x) {
  auto& st = self->state;
  if (x.id != st.router.name || x.lpk != st.router.public_key)
    return reject("unknown_peer");
  if (x.version != protocol::transport_version)
    return reject("unsupported_version");
  auto src = caf::actor_cast<caf::actor_addr>(self->current_sender());
  if (st.greeted.insert(src).second) {
    self->monitor(src);
    ++st.greeted_nodes[src.node()];
  }
  st.sh->metrics->links->set(static_cast<int64_t>(st.greeted.size()));
  const auto& me = st.sh->m->self();
  return protocol::link_hello{me.id(), me.lpk(), protocol::transport_version};
}

// TOPUP: new pre-keys, answered once they are synced.
caf::result<link_frame> on_topup(endpoint_actor* self, const protocol::topup& x) {
  auto& st = self->state;
  auto& sh = *st.sh;
  const auto now = sh.clock();
  fault_point(fault::mirror_topup_before_answer);
  const size_t n = std::min<size_t>(x.count, protocol::max_prekey_batch);
  const uint64_t token = ++st.last_token;
  auto rp = self->make_response_promise<link_frame>();
  auto me = caf::actor_cast<caf::actor>(self);
  protocol::mirror_prekeys pk;
  {
    std::lock_guard<std::mutex> g(sh.keys_mu);
    // Keys at their maximum age go first (handed out, never used; the router replaces the
    // pool daily, so none of them is still in it), then the new ones are made.
    sh.m->expire_keys(now);
    pk = sh.m->make_prekeys(n, now, st.rng);
    st.topups.emplace(token, std::make_pair(rp, encode(pk)));
    sh.store->persist_keys_async(sh.keys->store, [me, token](expected<void> r) {
      caf::anon_send(me, appended_atom_v, token,
                     r.has_value() ? std::string() : r.error().message());
    });
  }
  return rp;
}

// What a conversation nobody holds answers without an actor (nothing to read or write).
std::optional<protocol::link_response> answer_unheld(const protocol::link_request& req) {
  if (std::holds_alternative<protocol::status_query>(req))
    return protocol::mirror::status(nullptr);
  if (const auto* a = std::get_if<protocol::audit_query>(&req)) {
    protocol::audit_answer none;
    none.from = a->from;
    return none;
  }
  if (std::holds_alternative<protocol::link_ack>(req))
    return protocol::acked{};
  return std::nullopt;
}

// Hands a request about `conv` to its conversation actor (spawned if none runs), which answers
// the sender.
caf::result<link_frame> forward(endpoint_actor* self, const protocol::conv_id& conv,
                                protocol::link_request req) {
  auto& st = self->state;
  auto it = st.convs.find(conv);
  if (it == st.convs.end() || !it->second.actor) {
    // No actor runs: the record is the endpoint's to read.
    const bool held = it != st.convs.end() && it->second.slot->mc.has_value();
    if (!held)
      if (auto a = answer_unheld(req))
        return encode(*a);
    if (it == st.convs.end())
      it = st.convs.emplace(conv, conv_entry{}).first;
    it->second.actor =
        spawn_mirror_conversation(self->system(), st.sh, conv, it->second.slot,
                                  caf::actor_cast<caf::actor>(self), st.sh->rng_for(conv));
    it->second.forwarded = 0;
    ++st.live;
  }
  ++it->second.forwarded;
  // Delegated: the conversation actor answers the sender itself (a dead one makes CAF answer it
  // with an error, as for a lost link: it asks again).
  auto rp = self->make_response_promise<link_frame>();
  rp.delegate(it->second.actor, link_atom_v, std::move(req));
  return rp;
}

// A conversation actor idle for a while offers to stop: it may once it has handled every
// request forwarded to it (none is on its way).
void on_idle(endpoint_actor* self, const protocol::conv_id& conv, uint64_t handled) {
  auto& st = self->state;
  auto it = st.convs.find(conv);
  if (it == st.convs.end() || !it->second.actor
      || it->second.actor.address() != self->current_sender() || it->second.forwarded != handled)
    return;
  self->send(it->second.actor, shutdown_atom_v);
  it->second.actor = nullptr;
  --st.live;
  if (!it->second.slot->mc)
    st.convs.erase(it);  // asked about, never created
}

/// One request over the link.
caf::result<link_frame> on_link(endpoint_actor* self, const link_frame& f) {
  auto& st = self->state;
  const auto& mm = *st.sh->metrics;
  auto req = protocol::wire::decode_link_request(f.bytes);
  if (!req) {
    mm.rejects->inc();
    return encode(reject("malformed: " + req.error().message()));
  }
  const bool hello = std::holds_alternative<protocol::link_hello>(*req);
  auto src = caf::actor_cast<caf::actor_addr>(self->current_sender());
  if (!hello && (!src || !st.greeted_nodes.contains(src.node()))) {
    mm.rejects->inc();
    return encode(reject("no_hello"));
  }
  mm.kinds.requests[req->index()]->inc();
  if (const auto* conv = conv_of(*req)) {
    // Every node of a mirror cluster holds the conversations it owns and nothing of the others:
    // a request about another node's conversation (a router with a different node list) is
    // refused before it touches any state.
    if (!owns(st, *conv)) {
      if (st.wrong_node++ == 0)
        spdlog::warn(
            "mirror: a request about a conversation another node of this cluster owns "
            "(does the router list the same nodes?)");
      mm.rejects->inc();
      return encode(reject("wrong_node"));
    }
    const protocol::conv_id id = *conv;
    return forward(self, id, std::move(*req));
  }
  if (const auto* t = std::get_if<protocol::topup>(&*req))
    return on_topup(self, *t);
  auto answer = on_hello(self, std::get<protocol::link_hello>(*req));
  if (std::holds_alternative<protocol::link_reject>(answer))
    mm.rejects->inc();
  return encode(answer);
}

/// The mirror's section of the admin status.
std::string stats_json(endpoint_actor* self) {
  const auto& st = self->state;
  auto& sh = *st.sh;
  size_t prekeys = 0;
  {
    std::lock_guard<std::mutex> g(sh.keys_mu);
    prekeys = sh.keys->store.prekeys().size();
  }
  return nlohmann::json{{"role", "mirror"},
                        {"id", sh.m->self().id()},
                        {"node", st.nodes.empty() ? sh.m->self().id() : st.nodes[st.self_node]},
                        {"nodes", st.nodes.size()},
                        {"wrong_node", st.wrong_node},
                        {"conversations", sh.conversations.load(std::memory_order_relaxed)},
                        {"conversation_actors", st.live},
                        {"prekeys", prekeys},
                        {"commits", sh.commits.load(std::memory_order_relaxed)},
                        {"acks", sh.acks.load(std::memory_order_relaxed)},
                        {"answers_held", sh.answers_held.load(std::memory_order_relaxed)},
                        {"router_links", st.greeted.size()}}
      .dump();
}

caf::behavior endpoint(endpoint_actor* self, mirror_endpoint_deps deps) {
  auto& st = self->state;
  st.sh = std::make_shared<mirror_shared>();
  auto& sh = *st.sh;
  sh.m = std::move(deps.mirror);
  sh.keys = &sh.m->shared_keys();
  sh.store = deps.store;
  sh.metrics = std::move(deps.metrics);
  sh.idle = deps.idle;
  sh.clock = deps.clock ? std::move(deps.clock) : mirror_clock(unix_seconds);
  sh.rng_for =
      deps.rng_for ? std::move(deps.rng_for) : mirror_rng_factory([](const protocol::conv_id&) {
        return std::unique_ptr<crypto::rng>(std::make_unique<crypto::system_rng>());
      });
  st.router = std::move(deps.router);
  st.nodes = std::move(deps.nodes);
  if (auto it = std::find(st.nodes.begin(), st.nodes.end(), deps.self_node); it != st.nodes.end())
    st.self_node = static_cast<size_t>(it - st.nodes.begin());
  // The loaded records move to their entries: from now on a conversation's record is touched
  // by its conversation actor only (or by this actor while none runs).
  int64_t held = 0;
  for (auto& [conv, mc] : sh.m->mutable_convs()) {
    held += static_cast<int64_t>(mc.answers.size());
    conv_entry e;
    e.slot->mc = std::move(mc);
    st.convs.emplace(conv, std::move(e));
  }
  sh.m->mutable_convs().clear();
  sh.conversations = static_cast<int64_t>(st.convs.size());
  sh.answers_held = held;
  sh.metrics->conversations->set(static_cast<int64_t>(st.convs.size()));
  sh.metrics->answers_held->set(held);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& s = self->state;
    if (s.greeted.erase(dm.source) > 0) {
      auto it = s.greeted_nodes.find(dm.source.node());
      if (it != s.greeted_nodes.end() && --it->second == 0)
        s.greeted_nodes.erase(it);
    }
    s.sh->metrics->links->set(static_cast<int64_t>(s.greeted.size()));
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
        if (!failure.empty())
          mirror_node::die_on_storage_error(failure);
        auto& t = self->state.topups;
        if (auto it = t.find(token); it != t.end()) {
          it->second.first.deliver(std::move(it->second.second));
          t.erase(it);
        }
      },
      [=](idle_atom, const protocol::conv_id& conv, uint64_t handled) {
        on_idle(self, conv, handled);
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

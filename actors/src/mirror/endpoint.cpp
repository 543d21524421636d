// SPDX-License-Identifier: Apache-2.0
// The mirror endpoint: HELLO, PREPARE, COMMIT (synced before answering), ACK, STATUS, TOPUP,
// AUDIT (docs/design.md §3.4, §4).
#include "endpoint.hpp"

#include "cowpi/actors/fault.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>

namespace cowpi::actors {

namespace {

struct endpoint_state {
  std::unique_ptr<protocol::mirror> m;
  storage::mirror_store* store = nullptr;
  config::peer router;
  crypto::system_rng rng;
  /// Senders (router connections) that completed HELLO.
  std::set<caf::actor_addr> greeted;
  uint64_t commits = 0;
  std::shared_ptr<const mirror_metrics> metrics;
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
[[noreturn]] void die_on_storage_error(const error& e) {
  spdlog::critical(
      "mirror: storage write failed ({}); exiting so that a restart reloads the "
      "last durable state",
      e.message());
  std::_Exit(70);
}

protocol::link_response handle(endpoint_actor* self, const protocol::link_request& req) {
  auto& st = self->state;
  const auto now = unix_seconds();
  return std::visit(
      [&](const auto& x) -> protocol::link_response {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, protocol::link_hello>) {
          if (x.id != st.router.name || x.lpk != st.router.public_key)
            return reject("unknown_peer");
          if (x.version != protocol::transport_version)
            return reject("unsupported_version");
          auto src = caf::actor_cast<caf::actor_addr>(self->current_sender());
          if (st.greeted.insert(src).second)
            self->monitor(src);
          st.metrics->links->set(static_cast<int64_t>(st.greeted.size()));
          return protocol::link_hello{st.m->self().id(), st.m->self().lpk(),
                                      protocol::transport_version};
        } else if constexpr (std::is_same_v<T, protocol::prepare_msg>) {
          return st.m->prepare(x, now);
        } else if constexpr (std::is_same_v<T, protocol::commit_msg>) {
          auto out = st.m->commit(x, *st.store, now, st.rng);
          if (out.persist) {
            fault_point(fault::mirror_commit_before_sync);
            auto ok = st.store->persist_commit(*st.m, x.payload.c.conv, out.index, out.d);
            if (!ok)
              die_on_storage_error(ok.error());
            fault_point(fault::mirror_commit_after_sync);
            ++st.commits;
            st.metrics->commits->inc();
            st.metrics->conversations->set(static_cast<int64_t>(st.m->convs().size()));
          }
          return out.response;
        } else if constexpr (std::is_same_v<T, protocol::link_ack>) {
          if (st.m->ack(x)) {
            auto ok = st.store->persist_ack(*st.m, x.conv);
            if (!ok)
              die_on_storage_error(ok.error());
          }
          return protocol::acked{};
        } else if constexpr (std::is_same_v<T, protocol::status_query>) {
          return st.m->status(x.conv);
        } else if constexpr (std::is_same_v<T, protocol::topup>) {
          fault_point(fault::mirror_topup_before_answer);
          const size_t n = std::min<size_t>(x.count, protocol::max_prekey_batch);
          auto pk = st.m->make_prekeys(n, now, st.rng);
          auto ok = st.store->persist_keys(*st.m);
          if (!ok)
            die_on_storage_error(ok.error());
          return pk;
        } else {
          static_assert(std::is_same_v<T, protocol::audit_query>);
          return st.m->audit(x, *st.store);
        }
      },
      req);
}

caf::behavior endpoint(endpoint_actor* self, mirror_endpoint_deps deps) {
  self->state.m = std::move(deps.mirror);
  self->state.store = deps.store;
  self->state.router = std::move(deps.router);
  self->state.metrics = std::move(deps.metrics);
  self->state.metrics->conversations->set(static_cast<int64_t>(self->state.m->convs().size()));
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    st.greeted.erase(dm.source);
    st.metrics->links->set(static_cast<int64_t>(st.greeted.size()));
  });
  // A message of a type this node does not know arrives empty: say so loudly.
  self->set_default_handler(
      [=](caf::scheduled_actor*, caf::message_view& mv) -> caf::result<caf::message> {
        spdlog::warn("mirror: unexpected message {}", caf::to_string(mv.copy_content_to_message()));
        return caf::sec::unexpected_message;
      });
  return {
      [=](link_atom, const link_frame& f) -> link_frame {
        auto req = protocol::wire::decode_link_request(f.bytes);
        if (!req) {
          self->state.metrics->rejects->inc();
          return encode(reject("malformed: " + req.error().message()));
        }
        const bool hello = std::holds_alternative<protocol::link_hello>(*req);
        auto src = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (!hello && !self->state.greeted.contains(src)) {
          self->state.metrics->rejects->inc();
          return encode(reject("no_hello"));
        }
        const auto& mm = *self->state.metrics;
        const size_t kind = req->index();
        mm.kinds.requests[kind]->inc();
        const auto t0 = std::chrono::steady_clock::now();
        auto answer = handle(self, *req);
        mm.kinds.seconds[kind]->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (std::holds_alternative<protocol::link_reject>(answer))
          mm.rejects->inc();
        return encode(answer);
      },
      [=](stats_atom) -> std::string {
        const auto& m = *self->state.m;
        return nlohmann::json{{"role", "mirror"},
                              {"id", m.self().id()},
                              {"conversations", m.convs().size()},
                              {"prekeys", m.keys().prekeys().size()},
                              {"commits", self->state.commits},
                              {"router_links", self->state.greeted.size()}}
            .dump();
      },
  };
}

}  // namespace

caf::actor spawn_mirror_endpoint(caf::actor_system& sys, mirror_endpoint_deps deps) {
  // Scheduled, not detached: a detached actor's thread is joined only once its last strong
  // reference is gone, and CAF 0.17's middleman may still hold one when the router's link
  // closes during our own shutdown, which hung SIGTERM. Its synced writes block one scheduler
  // worker of a process that runs little else.
  return sys.spawn(endpoint, std::move(deps));
}

}  // namespace cowpi::actors

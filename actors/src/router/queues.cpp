// SPDX-License-Identifier: Apache-2.0
// Delivery (docs/design.md §4): the queue registry, which keeps one queue actor (queue.cpp) per
// connected user, pokes them when their conversations grow and collects their stats.
#include "cowpi/actors/fault.hpp"

#include "../type_ids.hpp"
#include "queue.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <memory>
#include <unordered_map>

namespace cowpi::actors {

namespace {

using queue_deps_ptr = std::shared_ptr<const queue_deps>;

// Most users listed in the admin JSON.
constexpr size_t stats_max_users = 1000;
// How long the registry waits for each queue's stats.
constexpr auto stats_timeout = std::chrono::seconds(1);

// ---------------------------------------------------------------------------------------------
// The registry.

struct registry_entry {
  caf::actor queue;
  caf::actor session;
};

struct registry_state {
  queue_deps_ptr d;
  std::unordered_map<std::string, registry_entry> users;
  uint64_t attaches = 0;
  uint64_t pokes = 0;
  gauge_share attached;
  static inline const char* name = "cowpi.queues";
};

using registry_actor = caf::stateful_actor<registry_state>;

/// Collects the queues' stats for one admin request.
struct stats_collector {
  nlohmann::json users = nlohmann::json::array();
  size_t pending = 0;
  size_t total = 0;
  uint64_t attaches = 0;
  uint64_t pokes = 0;
  caf::typed_response_promise<std::string> rp;

  void done() {
    if (--pending == 0) {
      deliver();
    }
  }
  void deliver() {
    nlohmann::json j{{"connected_users", total},
                     {"listed", users.size()},
                     {"attaches", attaches},
                     {"pokes", pokes},
                     {"users", std::move(users)}};
    rp.deliver(j.dump());
  }
};

caf::typed_response_promise<std::string> registry_stats(registry_actor* self) {
  auto& st = self->state;
  auto c = std::make_shared<stats_collector>();
  c->rp = self->make_response_promise<std::string>();
  c->total = st.users.size();
  c->attaches = st.attaches;
  c->pokes = st.pokes;
  for (const auto& [user, e] : st.users) {
    if (c->pending >= stats_max_users) {
      break;
    }
    ++c->pending;
    self->request(e.queue, stats_timeout, stats_atom_v)
        .then(
            [c](const std::string& s) {
              auto j = nlohmann::json::parse(s, nullptr, false);
              if (!j.is_discarded()) {
                c->users.push_back(std::move(j));
              }
              c->done();
            },
            [c](caf::error&) { c->done(); });
  }
  if (c->pending == 0) {
    c->deliver();
  }
  return c->rp;
}

caf::behavior queue_registry(registry_actor* self, queue_deps_ptr d) {
  self->state.d = std::move(d);
  self->state.attached.bind(self->state.d->metrics->queues);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    std::erase_if(st.users, [&](const auto& kv) { return kv.second.queue.address() == dm.source; });
    st.attached.set(static_cast<int64_t>(st.users.size()));
  });
  self->set_exit_handler([self](caf::exit_msg& em) {
    for (auto& [user, e] : self->state.users) {
      self->send_exit(e.queue, em.reason);
    }
    self->quit(em.reason);
  });
  return {
      [self](attach_atom, const std::string& user, const caf::actor& session) {
        auto& st = self->state;
        ++st.attaches;
        auto it = st.users.find(user);
        if (it != st.users.end()) {
          // The newest session of a user wins; the same session again restarts the stream.
          it->second.session = session;
          self->send(it->second.queue, attach_atom_v, session);
          return;
        }
        auto q = spawn_queue(self, user, session, st.d);
        self->monitor(q);
        st.users.emplace(user, registry_entry{q, session});
        st.attached.set(static_cast<int64_t>(st.users.size()));
      },
      [self](detach_atom, const std::string& user, const caf::actor& session) {
        auto& st = self->state;
        auto it = st.users.find(user);
        if (it == st.users.end() || it->second.session != session) {
          return;  // an older session of the user: the queue serves a newer one
        }
        self->send(it->second.queue, detach_atom_v);
        self->demonitor(it->second.queue);
        st.users.erase(it);
        st.attached.set(static_cast<int64_t>(st.users.size()));
      },
      [self](cack_atom, const std::string& user, const protocol::conv_id& conv, uint64_t index) {
        auto& st = self->state;
        auto it = st.users.find(user);
        if (it != st.users.end()) {
          self->send(it->second.queue, cack_atom_v, conv, index);
        } else {
          // The session detached meanwhile: the ack is still the user's, record it.
          write_ack_detached(st.d->store, user, conv, index);
        }
      },
      [self](poke_atom, const protocol::conv_id& conv, uint64_t index,
             const std::vector<std::string>& members) {
        auto& st = self->state;
        ++st.pokes;
        for (const auto& m : members) {
          if (auto it = st.users.find(m); it != st.users.end()) {
            self->send(it->second.queue, poke_atom_v, conv, index);
          }
        }
      },
      [self](drain_atom, const std::string& user, const caf::actor& session, uint64_t request_id) {
        auto& st = self->state;
        auto it = st.users.find(user);
        if (it != st.users.end() && it->second.session == session) {
          self->send(it->second.queue, drain_atom_v, session, request_id);
        } else {
          // No queue streams to this session (it detached, or a newer one replaced it).
          self->send(session, drain_atom_v, request_id);
        }
      },
      [self](stats_atom) { return registry_stats(self); },
  };
}

}  // namespace

caf::actor spawn_queue_registry(caf::actor_system& sys, queue_deps d) {
  COWPI_ASSERT(d.store != nullptr);
  return sys.spawn(queue_registry, std::make_shared<const queue_deps>(std::move(d)));
}

size_t estimated_size(const protocol::envelope& e) {
  // Cap'n Proto framing, pointers and fixed fields; blocks are 185 bytes of data plus a
  // pointer; ids and keys as stored.
  constexpr size_t fixed = 256;
  constexpr size_t block = 185 + 8;
  auto list_size = [](const protocol::member_list& l) {
    size_t n = 0;
    for (const auto& m : l) {
      n += m.id.size() + 32 + 24;
    }
    return n;
  };
  size_t n = fixed + e.c.author.size() + 8 * e.c.voids.size() + list_size(e.c.ms)
             + list_size(e.c.members) + list_size(e.c.adds);
  for (const auto& r : e.c.removes) {
    n += r.size() + 8;
  }
  n += e.body ? e.body->size() : 0;
  n += block * (e.mirror_blocks.size() + (e.block_u ? 1 : 0));
  return n;
}

}  // namespace cowpi::actors

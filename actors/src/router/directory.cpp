// SPDX-License-Identifier: Apache-2.0
// The router's directory actor: LOGIN/REGISTER lookups, registration commits, pre-key uploads
// and fetches under per-requester budgets, account status (contracts.md, docs/design.md §2).
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include "../type_ids.hpp"
#include "client_actors.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

namespace cowpi::actors {

namespace {

// Budgets are kept per requester in memory; past this many, the expired ones are dropped.
constexpr size_t budget_sweep_threshold = 4096;

struct directory_state {
  directory_deps d;
  std::map<std::string, protocol::fetch_budget> budgets;
  uint64_t registered = 0;
  uint64_t uploads = 0;
  uint64_t retired = 0;  // pool keys dropped because their owner retired them
  uint64_t fetches = 0;
  uint64_t one_time_out = 0;
  uint64_t last_resort_out = 0;
  uint64_t storage_errors = 0;
  static inline const char* name = "cowpi.directory";
};

using directory_actor = caf::stateful_actor<directory_state>;

protocol::rejection reject(protocol::rejection_kind k, std::string detail = {}) {
  return protocol::rejection{k, 0, std::move(detail)};
}

caf::error storage_failure(directory_actor* self, const error& e) {
  ++self->state.storage_errors;
  spdlog::warn("directory: storage error: {}", e.message());
  return caf::make_error(caf::sec::runtime_error, "directory storage error");
}

/// Returns the rejection for an upload the directory refuses, if any.
std::optional<protocol::rejection> check_upload(const protocol::upload_prekeys& up) {
  if (up.one_time.size() > protocol::max_prekey_batch) {
    return reject(protocol::rejection_kind::limit, "prekeys");
  }
  auto bad = [](const protocol::published_key& k) {
    return k.id == 0 || !protocol::usable_public_key(k.pub);
  };
  if (std::any_of(up.one_time.begin(), up.one_time.end(), bad)
      || (up.last_resort && bad(*up.last_resort))) {
    // A low-order key would make every block to its owner fail; id 0 means "none" (§2).
    return reject(protocol::rejection_kind::invalid, "pre-key with id 0 or of low order");
  }
  return std::nullopt;
}

void sweep_budgets(directory_state& st, uint64_t now) {
  if (st.budgets.size() < budget_sweep_threshold) {
    return;
  }
  std::erase_if(st.budgets, [&](const auto& kv) {
    return now < kv.second.window_start || now - kv.second.window_start >= st.d.policy.window;
  });
}

/// The contract's lookup: LOGIN needs `id` registered with exactly `lpk`; REGISTER needs an id
/// that is neither a user's nor a provider's (configured, or recorded in the store).
caf::result<lookup_result> lookup(directory_actor* self, const std::string& id,
                                  const protocol::public_key& lpk, protocol::hello_mode mode) {
  auto& st = self->state;
  auto user = st.d.store->find_user(id);
  if (!user) {
    return storage_failure(self, user.error());
  }
  if (mode == protocol::hello_mode::login) {
    return *user && (*user)->lpk == lpk ? lookup_result::ok : lookup_result::unknown_user;
  }
  if (*user || st.d.providers.count(id) != 0) {
    return lookup_result::id_taken;
  }
  auto owner = st.d.store->directory_status(id);
  if (owner) {
    return lookup_result::id_taken;
  }
  if (owner.error().code != errc::not_found) {
    return storage_failure(self, owner.error());
  }
  return lookup_result::ok;
}

/// REGISTER: binds `id` to `lpk`; false when the id is taken (or names a provider).
caf::result<bool> register_user(directory_actor* self, const std::string& id,
                                const protocol::public_key& lpk) {
  auto& st = self->state;
  if (st.d.providers.count(id) != 0) {
    return false;
  }
  auto r = st.d.store->register_user(id, lpk, unix_seconds());
  if (r) {
    ++st.registered;
    return true;
  }
  if (r.error().code == errc::already_exists) {
    return false;
  }
  return storage_failure(self, r.error());
}

/// UPLOAD_PREKEYS of `owner`.
protocol::response_body upload(directory_actor* self, const std::string& owner,
                               const protocol::upload_prekeys& up) {
  auto& st = self->state;
  if (auto refused = check_upload(up)) {
    return *refused;
  }
  auto r = st.d.store->upload_prekeys(owner, up);
  if (!r) {
    if (r.error().code == errc::not_found) {
      return reject(protocol::rejection_kind::unknown_user);
    }
    if (r.error().code == errc::too_large) {
      return reject(protocol::rejection_kind::limit, "prekey pool");
    }
    (void)storage_failure(self, r.error());
    return reject(protocol::rejection_kind::unavailable);
  }
  ++st.uploads;
  return protocol::ok_result{};
}

/// RETIRE_PREKEYS of `owner`: drops its pooled one-time keys below `below`.
protocol::response_body retire(directory_actor* self, const std::string& owner, uint64_t below) {
  auto& st = self->state;
  auto r = st.d.store->retire_prekeys(owner, below);
  if (!r) {
    if (r.error().code == errc::not_found) {
      return reject(protocol::rejection_kind::unknown_user);
    }
    (void)storage_failure(self, r.error());
    return reject(protocol::rejection_kind::unavailable);
  }
  st.retired += *r;
  return protocol::ok_result{};
}

/// FETCH_PREKEYS for `requester`, under its fetch budget.
protocol::response_body fetch(directory_actor* self, const std::string& requester,
                              const protocol::fetch_prekeys& f) {
  auto& st = self->state;
  const auto& owners = f.owners;
  if (owners.size() > protocol::max_fetch_owners) {
    return reject(protocol::rejection_kind::limit, "owners");
  }
  // A mirror cluster keeps a pool per node: the key for a conversation comes from the
  // pool of the node owning it, the only node that can open what it protects.
  std::vector<std::string> pools = owners;
  for (auto& p : pools) {
    auto it = st.d.mirror_nodes.find(p);
    if (it == st.d.mirror_nodes.end())
      continue;
    if (it->second.size() == 1) {
      p = it->second.front();  // the mirror's name, or its one listed node
      continue;
    }
    if (!f.conv)
      return reject(protocol::rejection_kind::invalid,
                    "mirror " + p + " runs as a cluster: the fetch must name the "
                                    "conversation");
    p = it->second[protocol::conv_owner(it->second, *f.conv)];
  }
  // A mirror's keys arrive over its link after the providers start: until then a fetch
  // naming it is retryable (the client backs off), never a missing key.
  for (const auto& o : pools) {
    if (!st.d.providers.contains(o))
      continue;
    auto lr = st.d.store->last_resort(o);
    if (!lr) {
      (void)storage_failure(self, lr.error());
      return reject(protocol::rejection_kind::unavailable);
    }
    if (!*lr)
      return reject(protocol::rejection_kind::unavailable, "mirror keys not yet uploaded");
  }
  const uint64_t now = unix_seconds();
  sweep_budgets(st, now);
  auto& budget = st.budgets[requester];
  const auto policy = st.d.policy;
  auto bundles = st.d.store->fetch_prekeys(pools, [&] { return policy.take(budget, now); });
  if (!bundles) {
    (void)storage_failure(self, bundles.error());
    return reject(protocol::rejection_kind::unavailable);
  }
  ++st.fetches;
  for (auto& b : *bundles) {
    ++(b.key.kind == protocol::key_kind::prekey ? st.one_time_out : st.last_resort_out);
    // A node's key is the mirror's key: the client knows the mirror, not its nodes.
    if (auto it = st.d.pool_owner.find(b.owner); it != st.d.pool_owner.end())
      b.owner = it->second;
  }
  return protocol::prekeys_result{std::move(bundles).value()};
}

/// LOOKUP_USERS: the long-term keys of `ids`, and the ids nobody registered.
protocol::response_body users(directory_actor* self, std::vector<std::string> ids) {
  auto& st = self->state;
  if (ids.size() > protocol::max_members) {
    return reject(protocol::rejection_kind::limit, "ids");
  }
  // Answer lists are sorted and free of duplicates, like every id list (docs/design.md).
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  protocol::users_result out;
  for (auto& id : ids) {
    auto u = st.d.store->find_user(id);
    if (!u) {
      (void)storage_failure(self, u.error());
      return reject(protocol::rejection_kind::unavailable);
    }
    if (*u) {
      out.users.push_back(protocol::member{id, (*u)->lpk});
    } else {
      out.unknown.push_back(std::move(id));
    }
  }
  return out;
}

/// ACCOUNT_STATUS of `owner`: what its pool holds.
protocol::response_body status(directory_actor* self, const std::string& owner) {
  auto s = self->state.d.store->directory_status(owner);
  if (!s) {
    if (s.error().code == errc::not_found) {
      return reject(protocol::rejection_kind::unknown_user);
    }
    (void)storage_failure(self, s.error());
    return reject(protocol::rejection_kind::unavailable);
  }
  return *s;
}

/// The directory's section of the admin status.
std::string stats_json(directory_actor* self) {
  const auto& st = self->state;
  nlohmann::json j{{"registered_since_start", st.registered},
                   {"uploads", st.uploads},
                   {"fetches", st.fetches},
                   {"one_time_handed_out", st.one_time_out},
                   {"last_resort_handed_out", st.last_resort_out},
                   {"one_time_retired", st.retired},
                   {"budgets_tracked", st.budgets.size()},
                   {"fetch_budget", st.d.policy.budget},
                   {"fetch_window_s", st.d.policy.window},
                   {"storage_errors", st.storage_errors}};
  return j.dump();
}

caf::behavior directory(directory_actor* self, directory_deps d) {
  self->state.d = std::move(d);
  // Detached: this thread is the actor's own, and its store calls may block here.
  storage::mark_nonblocking_thread(false);
  return {
      [self](lookup_atom, const std::string& id, const protocol::public_key& lpk,
             protocol::hello_mode mode) { return lookup(self, id, lpk, mode); },
      [self](register_atom, const std::string& id, const protocol::public_key& lpk) {
        return register_user(self, id, lpk);
      },
      [self](upload_atom, const std::string& owner, const protocol::upload_prekeys& up) {
        return upload(self, owner, up);
      },
      [self](retire_atom, const std::string& owner, uint64_t below) {
        return retire(self, owner, below);
      },
      [self](fetch_atom, const std::string& requester, const protocol::fetch_prekeys& f) {
        return fetch(self, requester, f);
      },
      [self](users_atom, std::vector<std::string> ids) { return users(self, std::move(ids)); },
      [self](status_atom, const std::string& owner) { return status(self, owner); },
      [self](lastres_atom,
             const std::string& owner) -> caf::result<std::optional<protocol::published_key>> {
        auto k = self->state.d.store->last_resort(owner);
        if (!k) {
          return storage_failure(self, k.error());
        }
        return *k;
      },
      [self](stats_atom) { return stats_json(self); },
  };
}

}  // namespace

caf::actor spawn_directory(caf::actor_system& sys, directory_deps d) {
  return sys.spawn<caf::detached>(directory, std::move(d));
}

}  // namespace cowpi::actors

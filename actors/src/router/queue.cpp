// SPDX-License-Identifier: Apache-2.0
// Delivery (docs/design.md §4): one queue actor per connected user, streaming envelopes from the
// user's cursors under a bounded window and writing its cursors through the store's group
// commit. The registry that spawns them is in queues.cpp.
#include "queue.hpp"

#include "cowpi/actors/fault.hpp"
#include "cowpi/crypto/bytes.hpp"

#include "../type_ids.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>

namespace cowpi::actors {

/// Writes `user`'s ack of (conv, index) with nobody waiting for it (the session detached).
void write_ack_detached(storage::router_store* store, const std::string& user,
                        const protocol::conv_id& conv, uint64_t index) {
  store->ack_async(user, conv, index, [](expected<void> r) {
    if (!r && r.error().code != errc::not_found) {
      spdlog::warn("queues: cursor write failed: {}", r.error().message());
    }
  });
}

namespace {

using queue_deps_ptr = std::shared_ptr<const queue_deps>;

// Envelopes read from storage per conversation per pass, so that one conversation with a long
// backlog does not take the whole window before the others get a turn.
constexpr size_t stream_batch = 32;
// How long the queue waits before reading the cursors again after a storage error.
constexpr auto reload_delay = std::chrono::seconds(1);
// Most conversations listed per user in the admin JSON.
constexpr size_t stats_max_convs = 256;

// ---------------------------------------------------------------------------------------------
// One queue actor per connected user.

struct conv_cursor {
  /// The cursor as loaded from storage, advanced by this actor's acks.
  uint64_t cursor = 0;
  /// The next index to stream.
  uint64_t sent = 0;
  /// Set once the user was removed: the last index it holds a slot in.
  std::optional<uint64_t> last;
  /// Storage may hold entries not yet streamed.
  bool dirty = true;
  /// The next index was collected: HISTORY_EXPIRED was sent, nothing more is streamed.
  bool expired = false;
};

struct unacked {
  protocol::conv_id conv{};
  uint64_t index = 0;
  size_t bytes = 0;
};

struct queue_state {
  queue_deps_ptr d;
  caf::actor registry;
  std::string user;
  caf::actor session;
  std::map<protocol::conv_id, conv_cursor> convs;
  /// Delivered, not yet acknowledged, in delivery order (the window).
  std::deque<unacked> window;
  size_t window_bytes = 0;
  /// Highest acknowledged index + 1 per conversation, over this actor's life (acks whose
  /// cursor write is still queued count: a restart never goes back behind them).
  std::map<protocol::conv_id, uint64_t> acked_next;
  /// Acks waiting for their conversation's previous cursor write.
  std::map<protocol::conv_id, uint64_t> ack_pending;
  std::set<protocol::conv_id> ack_writing;
  uint64_t delivered = 0;
  uint64_t acks = 0;
  /// Per conversation, the oldest poke not yet followed by an envelope: (index, when).
  std::map<protocol::conv_id, std::pair<uint64_t, std::chrono::steady_clock::time_point>> poked;
  /// This queue's window in the node's unacked-envelopes gauge.
  gauge_share unacked_share;
  /// DRAIN requests waiting for the stream to catch up: (session, request id).
  std::vector<std::pair<caf::actor, uint64_t>> drains;
  /// An envelope read is running on the store's reader thread (rows not in memory): streaming
  /// waits for its answer, `envread_atom`.
  bool reading = false;
  /// Bumped by `load`: a read started before it answers for cursors that no longer exist.
  uint64_t generation = 0;
  /// The cursors are being read on the store's reader thread (`load`): nothing streams, and
  /// no DRAIN is answered, until they arrive (`curload_atom`).
  bool loading = false;
  /// Conversations poked while loading: joined after the read may have run.
  std::set<protocol::conv_id> poked_while_loading;
  /// Conversations joined whose cursor is being read on the store's reader thread
  /// (`joinload_atom`).
  std::set<protocol::conv_id> joining;
  /// Reads on the store's reader thread besides `load` and envelope reads (a joined
  /// conversation's cursor, a log start): no DRAIN is answered until they are back.
  size_t side_reads = 0;
  static inline const char* name = "cowpi.queue";
};

using queue_actor = caf::stateful_actor<queue_state>;

bool has_room(const queue_state& st) {
  return st.window.size() < st.d->window_envelopes
         && (st.window.empty() || st.window_bytes < st.d->window_bytes);
}

/// Checks whether `cc`'s next index was collected; if so, tells the client (once) with
/// rejection{history_expired} under request id 0 (docs/protocol.md, "Transport session").
void check_expired_at(queue_actor* self, const protocol::conv_id& conv, conv_cursor& cc,
                      uint64_t start) {
  auto& st = self->state;
  if (cc.sent >= start || cc.expired) {
    return;
  }
  cc.expired = true;
  cc.dirty = false;
  protocol::rejection why{protocol::rejection_kind::history_expired, start,
                          to_hex(byte_view(conv.data(), conv.size()))};
  self->send(st.session, reject_atom_v, late_rejection{0, conv, 0, std::move(why)});
}

void check_expired(queue_actor* self, const protocol::conv_id& conv, conv_cursor& cc) {
  auto& st = self->state;
  if (cc.expired)
    return;
  auto start = st.d->store->log_start_in_memory(conv);
  if (!start) {
    spdlog::warn("queues: cannot read a log start: {}", start.error().message());
    return;
  }
  if (*start) {
    check_expired_at(self, conv, cc, **start);
    return;
  }
  // Only on disk: read on the store's reader thread (`logstart_atom`); no DRAIN is answered
  // meanwhile, in case it says HISTORY_EXPIRED.
  ++st.side_reads;
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t generation = st.generation;
  st.d->store->log_start_async(conv, [me, generation, conv](expected<uint64_t> r) {
    caf::anon_send(me, logstart_atom_v, generation, conv, r ? *r : uint64_t{0},
                   r ? std::string() : r.error().message());
  });
}

/// True when nothing deliverable is left to stream: every conversation was read to its end
/// (or expired, or the user was removed from it and everything before was streamed).
bool caught_up(const queue_state& st) {
  return !st.loading && st.side_reads == 0
         && std::all_of(st.convs.begin(), st.convs.end(), [](const auto& kv) {
              const conv_cursor& cc = kv.second;
              return !cc.dirty || cc.expired || (cc.last && cc.sent > *cc.last);
            });
}

/// Answers the waiting DRAINs once caught up. Sent after every envelope streamed so far, to the
/// same session, so the client sees the answer after them.
void answer_drains(queue_actor* self) {
  auto& st = self->state;
  if (st.drains.empty() || !caught_up(st)) {
    return;
  }
  for (auto& [session, id] : std::exchange(st.drains, {})) {
    self->send(session, drain_atom_v, id);
  }
}

/// Adds the envelopes read for `conv` from `cc.sent` (at most `n` asked for) to the window and
/// to `batch`. Returns true if it took any.
bool take(queue_actor* self, const protocol::conv_id& conv, conv_cursor& cc,
          expected<std::vector<protocol::envelope>> envs, size_t n,
          std::vector<protocol::envelope>& batch) {
  auto& st = self->state;
  if (!envs) {
    // Retried on the next poke or ack.
    spdlog::warn("queues: cannot read envelopes: {}", envs.error().message());
    cc.dirty = false;
    return false;
  }
  if (envs->empty()) {
    cc.dirty = false;
    st.poked.erase(conv);
    check_expired(self, conv, cc);
    return false;
  }
  bool full = false;
  bool took = false;
  for (auto& env : *envs) {
    const size_t size = estimated_size(env);
    if (!st.window.empty() && st.window_bytes + size > st.d->window_bytes) {
      full = true;
      break;
    }
    st.window.push_back(unacked{conv, env.index, size});
    st.window_bytes += size;
    cc.sent = env.index + 1;
    ++st.delivered;
    st.d->metrics->delivered->inc();
    if (auto p = st.poked.find(conv); p != st.poked.end() && env.index >= p->second.first) {
      st.d->metrics->delivery_lag->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - p->second.second)
              .count());
      st.poked.erase(p);
    }
    if (!st.d->deliver) {
      batch.push_back(std::move(env));
    } else {
      for (auto& out : st.d->deliver(st.user, std::move(env)))
        batch.push_back(std::move(out));
    }
    took = true;
  }
  if (!full && envs->size() < n) {
    cc.dirty = false;  // caught up with what is deliverable
  }
  return took;
}

/// Starts reading `conv`'s envelopes from `from` on the store's reader thread: rows on disk
/// are never read on a scheduler thread.
void read_off_thread(queue_actor* self, const protocol::conv_id& conv, uint64_t from, size_t n) {
  auto& st = self->state;
  st.reading = true;
  st.d->metrics->disk_reads->inc();
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t generation = st.generation;
  st.d->store->envelopes_from_async(
      conv, st.user, from, n,
      [me, generation, conv, from, n](expected<std::vector<protocol::envelope>> r) {
        std::vector<protocol::envelope> envs;
        std::string failure;
        if (r) {
          envs = std::move(*r);
        } else {
          failure = r.error().message();
        }
        caf::anon_send(me, envread_atom_v, generation, conv, from, static_cast<uint64_t>(n),
                       std::move(envs), std::move(failure));
      });
}

/// Sends what a pass streamed, as one message: the session seals the run and writes it to the
/// socket at once (one wake-up of the I/O thread, one TCP send).
void send_batch(queue_actor* self, std::vector<protocol::envelope>& batch) {
  auto& st = self->state;
  if (!batch.empty()) {
    self->send(st.session, deliver_atom_v, std::move(batch));
  }
  st.unacked_share.set(static_cast<int64_t>(st.window.size()));
  answer_drains(self);
}

/// Streams envelopes from storage to the session while the window has room.
void stream(queue_actor* self) {
  auto& st = self->state;
  if (st.reading) {
    return;  // its answer streams on
  }
  std::vector<protocol::envelope> batch;
  bool progress = true;
  while (progress && has_room(st) && !st.reading) {
    progress = false;
    for (auto& [conv, cc] : st.convs) {
      if (!has_room(st)) {
        break;
      }
      if (!cc.dirty || cc.expired) {
        continue;
      }
      if (cc.last && cc.sent > *cc.last) {
        cc.dirty = false;  // removed: everything it held a slot in was streamed
        continue;
      }
      const size_t n = std::min(st.d->window_envelopes - st.window.size(), stream_batch);
      auto hot = st.d->store->envelopes_in_memory(conv, st.user, cc.sent, n);
      if (hot && !hot->has_value()) {
        read_off_thread(self, conv, cc.sent, n);
        break;
      }
      expected<std::vector<protocol::envelope>> envs =
          hot ? expected<std::vector<protocol::envelope>>(std::move(**hot))
              : unexpected<error>{std::move(hot).error()};
      progress = take(self, conv, cc, std::move(envs), n, batch) || progress;
    }
  }
  send_batch(self, batch);
}

/// A read started by `read_off_thread` answered: its envelopes go out (if the cursors it read
/// for still stand), then streaming goes on.
void on_read(queue_actor* self, uint64_t generation, const protocol::conv_id& conv, uint64_t from,
             size_t n, std::vector<protocol::envelope>& envs, const std::string& failure) {
  auto& st = self->state;
  st.reading = false;
  auto it = st.convs.find(conv);
  if (generation == st.generation && it != st.convs.end() && it->second.sent == from
      && !it->second.expired) {
    std::vector<protocol::envelope> batch;
    expected<std::vector<protocol::envelope>> r =
        failure.empty() ? expected<std::vector<protocol::envelope>>(std::move(envs))
                        : unexpected<error>{error{errc::storage, failure}};
    take(self, conv, it->second, std::move(r), n, batch);
    send_batch(self, batch);
  }
  stream(self);
}

/// (Re)starts streaming from the stored cursors: every unacknowledged envelope comes again.
/// The cursors are read on the store's reader thread; streaming starts at their answer.
void load(queue_actor* self) {
  auto& st = self->state;
  ++st.generation;
  st.convs.clear();
  st.window.clear();
  st.window_bytes = 0;
  st.unacked_share.set(0);
  st.loading = true;
  st.poked_while_loading.clear();
  st.joining.clear();
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t generation = st.generation;
  st.d->store->cursors_async(
      st.user, [me, generation](expected<storage::router_store::user_cursors> r) {
        storage::router_store::user_cursors got;
        std::string failure;
        if (r) {
          got = std::move(*r);
        } else {
          failure = r.error().message();
        }
        caf::anon_send(me, curload_atom_v, generation, std::move(got), std::move(failure));
      });
}

void add_joined(queue_actor* self, const protocol::conv_id& conv);

/// The cursors `load` asked for arrived: streaming starts from them.
void on_loaded(queue_actor* self, uint64_t generation, storage::router_store::user_cursors& got,
               const std::string& failure) {
  auto& st = self->state;
  if (generation != st.generation) {
    return;  // a later load is running
  }
  if (!failure.empty()) {
    spdlog::warn("queues: cannot read cursors: {}", failure);
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), reload_delay, retry_atom_v);
    return;
  }
  st.loading = false;
  for (size_t k = 0; k < got.cursors.size() && k < got.log_starts.size(); ++k) {
    const auto& [conv, c] = got.cursors[k];
    conv_cursor cc;
    cc.cursor = std::max(c.next, st.acked_next[conv]);
    cc.sent = cc.cursor;
    cc.last = c.last;
    auto& slot = st.convs[conv] = cc;
    check_expired_at(self, conv, slot, got.log_starts[k]);
  }
  // A conversation joined while the cursors were read may not be among them.
  for (const auto& conv : std::exchange(st.poked_while_loading, {})) {
    if (!st.convs.contains(conv)) {
      add_joined(self, conv);
    }
  }
  stream(self);
}

void pump_acks(queue_actor* self) {
  auto& st = self->state;
  for (auto it = st.ack_pending.begin(); it != st.ack_pending.end();) {
    if (st.ack_writing.count(it->first) != 0) {
      ++it;
      continue;
    }
    const protocol::conv_id conv = it->first;
    const uint64_t index = it->second;
    it = st.ack_pending.erase(it);
    st.ack_writing.insert(conv);
    // Queued on the store's group commit; the queue goes on and hears of it as `acked`.
    auto me = caf::actor_cast<caf::actor>(self);
    st.d->store->ack_async(st.user, conv, index, [me, conv](expected<void> r) {
      const bool written = r.has_value();
      std::string failure;
      if (!r && r.error().code != errc::not_found) {
        failure = r.error().message();
      }
      caf::anon_send(me, acked_atom_v, conv, written, std::move(failure));
    });
  }
}

void on_acked(queue_actor* self, const protocol::conv_id& conv, bool written,
              const std::string& failure) {
  if (written) {
    fault_point(fault::router_ack_after_sync);
  } else if (!failure.empty()) {
    // The cursor lags: the envelopes come again after a reconnect.
    spdlog::warn("queues: cursor write failed: {}", failure);
  }
  self->state.ack_writing.erase(conv);
  pump_acks(self);
}

void on_ack(queue_actor* self, const protocol::conv_id& conv, uint64_t index) {
  auto& st = self->state;
  auto it = st.convs.find(conv);
  if (it == st.convs.end() || index >= it->second.sent) {
    return;  // not streamed on this attachment: it comes (again) and is acked then
  }
  std::erase_if(st.window, [&](const unacked& u) {
    if (u.conv == conv && u.index <= index) {
      st.window_bytes -= u.bytes;
      return true;
    }
    return false;
  });
  auto& next = st.acked_next[conv];
  if (index + 1 > next && index + 1 > it->second.cursor) {
    next = index + 1;
    it->second.cursor = index + 1;
    ++st.acks;
    st.ack_pending[conv] = index;
    st.d->metrics->acks->inc();
    pump_acks(self);
  }
  stream(self);
}

// A conversation the user just joined: persist_answers created its cursor before the poke. It
// is read on the store's reader thread; `on_joined` adds it.
void add_joined(queue_actor* self, const protocol::conv_id& conv) {
  auto& st = self->state;
  if (!st.joining.insert(conv).second)
    return;  // already being read: the cursor read covers this poke too
  ++st.side_reads;
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t generation = st.generation;
  st.d->store->cursor_async(
      st.user, conv, [me, generation, conv](expected<storage::router_store::user_cursors> r) {
        storage::router_store::user_cursors got;
        std::string failure;
        if (r)
          got = std::move(*r);
        else
          failure = r.error().message();
        caf::anon_send(me, joinload_atom_v, generation, conv, std::move(got), std::move(failure));
      });
}

void on_joined(queue_actor* self, uint64_t generation, const protocol::conv_id& conv,
               const storage::router_store::user_cursors& got, const std::string& failure) {
  auto& st = self->state;
  --st.side_reads;
  if (generation == st.generation)
    st.joining.erase(conv);  // (`load` forgot the older reads)
  if (generation != st.generation || st.convs.contains(conv)) {
    answer_drains(self);  // a later load read this conversation's cursor too
    return;
  }
  if (!failure.empty())
    spdlog::warn("queues: cannot read a cursor: {}", failure);
  if (!failure.empty() || got.cursors.empty() || got.log_starts.empty()) {
    answer_drains(self);
    return;
  }
  const storage::cursor_record& c = got.cursors.front().second;
  conv_cursor cc;
  cc.cursor = std::max(c.next, st.acked_next[conv]);
  cc.sent = cc.cursor;
  cc.last = c.last;
  auto it = st.convs.emplace(conv, cc).first;
  check_expired_at(self, conv, it->second, got.log_starts.front());
  stream(self);
}

void on_log_start(queue_actor* self, uint64_t generation, const protocol::conv_id& conv,
                  uint64_t start, const std::string& failure) {
  auto& st = self->state;
  --st.side_reads;
  auto it = st.convs.find(conv);
  if (!failure.empty())
    spdlog::warn("queues: cannot read a log start: {}", failure);
  else if (generation == st.generation && it != st.convs.end())
    check_expired_at(self, conv, it->second, start);
  answer_drains(self);
}

void on_poke(queue_actor* self, const protocol::conv_id& conv, uint64_t index) {
  auto& st = self->state;
  st.poked.try_emplace(conv, index, std::chrono::steady_clock::now());
  if (st.loading) {
    st.poked_while_loading.insert(conv);  // the loaded cursors stream it, or `on_loaded` adds it
    return;
  }
  auto it = st.convs.find(conv);
  if (it == st.convs.end()) {
    add_joined(self, conv);
  } else if (index >= it->second.sent && !it->second.expired) {
    it->second.dirty = true;
  }
  stream(self);
}

void flush_acks_and_quit(queue_actor* self) {
  auto& st = self->state;
  // Acks not yet handed to the store still go; nobody waits for their answers.
  for (const auto& [conv, index] : st.ack_pending) {
    write_ack_detached(st.d->store, st.user, conv, index);
  }
  st.ack_pending.clear();
  self->quit();
}

std::string queue_stats(const queue_state& st) {
  nlohmann::json convs = nlohmann::json::array();
  for (const auto& [conv, cc] : st.convs) {
    if (convs.size() >= stats_max_convs) {
      break;
    }
    nlohmann::json c{{"conv", to_hex(byte_view(conv.data(), conv.size()))},
                     {"cursor", cc.cursor},
                     {"sent", cc.sent},
                     {"expired", cc.expired}};
    if (cc.last) {
      c["removed_at"] = *cc.last;
    }
    convs.push_back(std::move(c));
  }
  nlohmann::json j{{"user", st.user},
                   {"window", st.window.size()},
                   {"window_bytes", st.window_bytes},
                   {"delivered", st.delivered},
                   {"acks", st.acks},
                   {"acks_writing", st.ack_writing.size() + st.ack_pending.size()},
                   {"conversations", std::move(convs)}};
  return j.dump();
}

caf::behavior queue(queue_actor* self, caf::actor registry, std::string user, caf::actor session,
                    queue_deps_ptr d) {
  auto& st = self->state;
  st.d = std::move(d);
  st.registry = std::move(registry);
  st.user = std::move(user);
  st.session = std::move(session);
  st.unacked_share.bind(st.d->metrics->unacked);
  self->monitor(st.session);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if (dm.source == s.session) {
      // The registry decides (a newer session may have attached meanwhile).
      self->send(s.registry, detach_atom_v, s.user, s.session);
    }
  });
  load(self);
  return {
      [self](attach_atom, const caf::actor& next) {
        auto& s = self->state;
        if (next != s.session) {
          self->demonitor(s.session);
          s.session = next;
          self->monitor(s.session);
        }
        load(self);
      },
      [self](detach_atom) { flush_acks_and_quit(self); },
      [self](cack_atom, const protocol::conv_id& conv, uint64_t index) {
        on_ack(self, conv, index);
      },
      [self](acked_atom, const protocol::conv_id& conv, bool written, const std::string& failure) {
        on_acked(self, conv, written, failure);
      },
      [self](poke_atom, const protocol::conv_id& conv, uint64_t index) {
        on_poke(self, conv, index);
      },
      [self](retry_atom) { load(self); },
      [self](curload_atom, uint64_t generation, storage::router_store::user_cursors& got,
             const std::string& failure) { on_loaded(self, generation, got, failure); },
      [self](joinload_atom, uint64_t generation, const protocol::conv_id& conv,
             const storage::router_store::user_cursors& got,
             const std::string& failure) { on_joined(self, generation, conv, got, failure); },
      [self](logstart_atom, uint64_t generation, const protocol::conv_id& conv, uint64_t start,
             const std::string& failure) { on_log_start(self, generation, conv, start, failure); },
      [self](envread_atom, uint64_t generation, const protocol::conv_id& conv, uint64_t from,
             uint64_t n, std::vector<protocol::envelope>& envs, const std::string& failure) {
        on_read(self, generation, conv, from, static_cast<size_t>(n), envs, failure);
      },
      [self](drain_atom, const caf::actor& requester, uint64_t request_id) {
        self->state.drains.emplace_back(requester, request_id);
        answer_drains(self);
      },
      [self](stats_atom) { return queue_stats(self->state); },
  };
}

}  // namespace

caf::actor spawn_queue(caf::event_based_actor* registry, std::string user, caf::actor session,
                       std::shared_ptr<const queue_deps> d) {
  return registry->spawn(queue, caf::actor_cast<caf::actor>(registry), std::move(user),
                         std::move(session), std::move(d));
}

}  // namespace cowpi::actors

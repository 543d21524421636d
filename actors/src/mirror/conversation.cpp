// SPDX-License-Identifier: Apache-2.0
// A mirror node's conversation actor: PREPARE, COMMIT (synced before answering), ACK, STATUS and
// AUDIT of one conversation (docs/design.md §3.4, §4; docs/architecture.md, "The mirror process").
#include "conversation.hpp"

#include "cowpi/actors/fault.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "answers.hpp"
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>

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
  /// A COMMIT of an index already committed: answered from its D_i (read off this actor's
  /// thread, once the writes queued before it are applied) and the answer still held.
  struct retried {
    uint64_t index = 0;
    hash32 d{};
    std::optional<protocol::answer> stored;
  };
  std::optional<retried> retry;
};

struct conv_state {
  std::shared_ptr<mirror_shared> sh;
  protocol::conv_id conv{};
  std::shared_ptr<mirror_slot> slot;
  caf::actor endpoint;
  std::shared_ptr<crypto::rng> rng;
  /// Requests handled (the endpoint compares it with the requests it forwarded before it lets
  /// this actor stop).
  uint64_t handled = 0;
  std::chrono::steady_clock::time_point last_activity;
  /// Answers in request order. An answer leaves only once it is ready and every answer before
  /// it has left, so none goes out before every write queued ahead of it is synced.
  std::deque<pending_reply> replies;
  /// The last token handed to a store callback (tokens complete in increasing order).
  uint64_t last_token = 0;
  static inline const char* name = "mirror-conversation";
};

using conv_actor = caf::stateful_actor<conv_state>;

using mirror_node::die_on_storage_error;
using mirror_node::encode;
using mirror_node::reject;

// What handling one request produced: the answer, and the token of the write it waits for.
struct handled {
  protocol::link_response answer;
  uint64_t token = 0;
  bool commit = false;
};

// A store callback (on the store's writer thread) that reports back to the actor.
storage::store::done_fn report_to(conv_actor* self, uint64_t token) {
  auto me = caf::actor_cast<caf::actor>(self);
  return [me, token](expected<void> r) {
    caf::anon_send(me, appended_atom_v, token, r.has_value() ? std::string() : r.error().message());
  };
}

protocol::mirror_conv* record(conv_state& st) {
  return st.slot->mc ? &*st.slot->mc : nullptr;
}

// The answer to a request that reads the mirror's keys leaves only once every write queued
// before it is synced (a key another conversation's COMMIT used or released is on disk).
uint64_t barrier(conv_actor* self) {
  const uint64_t token = ++self->state.last_token;
  self->state.sh->store->barrier_async(report_to(self, token));
  return token;
}

handled on_prepare(conv_actor* self, const protocol::prepare_msg& p, uint64_t now) {
  auto& st = self->state;
  if (!protocol::reads_keys(p, record(st)))
    return handled{st.sh->m->prepare(record(st), *st.sh->keys, p, now)};
  std::lock_guard<std::mutex> g(st.sh->keys_mu);
  auto answer = st.sh->m->prepare(record(st), *st.sh->keys, p, now);
  return handled{std::move(answer), barrier(self)};
}

handled on_commit(conv_actor* self, const protocol::commit_msg& cm, uint64_t now) {
  auto& st = self->state;
  auto& sh = *st.sh;
  std::unique_lock<std::mutex> g(sh.keys_mu, std::defer_lock);
  if (protocol::reads_keys(cm.payload, record(st)))
    g.lock();
  std::optional<protocol::mirror_conv> created;
  auto out = sh.m->commit(record(st), created, *sh.keys, cm, *sh.store, now, *st.rng);
  if (created) {
    st.slot->mc = std::move(*created);
    sh.conversations.fetch_add(1, std::memory_order_relaxed);
    sh.metrics->conversations->add(1);
  }
  if (!out.persist)
    return handled{std::move(out.response)};
  fault_point(fault::mirror_commit_before_sync);
  sh.answers_held.fetch_add(1, std::memory_order_relaxed);
  sh.metrics->answers_held->add(1);
  const uint64_t token = ++st.last_token;
  // Queued while the key lock is held: a later key change's batch goes after this one.
  sh.store->persist_commit_async(*st.slot->mc, out.index, out.d,
                                 out.keys_changed ? &sh.keys->store : nullptr,
                                 report_to(self, token));
  return handled{std::move(out.response), token, true};
}

handled on_ack(conv_actor* self, const protocol::link_ack& a) {
  auto& st = self->state;
  auto& sh = *st.sh;
  sh.acks.fetch_add(1, std::memory_order_relaxed);
  protocol::mirror_conv* mc = record(st);
  if (mc == nullptr)
    return handled{protocol::acked{}};
  const auto held_before = static_cast<int64_t>(mc->answers.size());
  if (!protocol::mirror::ack(*mc, a))
    return handled{protocol::acked{}};
  const int64_t dropped = held_before - static_cast<int64_t>(mc->answers.size());
  sh.answers_held.fetch_sub(dropped, std::memory_order_relaxed);
  sh.metrics->answers_held->add(-dropped);
  const uint64_t token = ++st.last_token;
  sh.store->persist_ack_async(*mc, report_to(self, token));
  return handled{protocol::acked{}, token};
}

// Runs one request against the conversation's record. A COMMIT or ACK that changes it queues
// its write and returns the write's token: its answer waits for that write's sync.
handled handle(conv_actor* self, const protocol::link_request& req) {
  const auto now = self->state.sh->clock();
  return std::visit(
      [&](const auto& x) -> handled {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, protocol::prepare_msg>)
          return on_prepare(self, x, now);
        else if constexpr (std::is_same_v<T, protocol::commit_msg>)
          return on_commit(self, x, now);
        else if constexpr (std::is_same_v<T, protocol::link_ack>)
          return on_ack(self, x);
        else if constexpr (std::is_same_v<T, protocol::status_query>)
          return handled{protocol::mirror::status(record(self->state))};
        else  // the endpoint forwards nothing else (AUDIT goes through `queue_read`)
          return handled{reject("unexpected_request")};
      },
      req);
}

// Sends every answer at the head of the queue that is ready.
void flush(conv_actor* self) {
  auto& q = self->state.replies;
  while (!q.empty() && q.front().ready) {
    q.front().rp.deliver(std::move(q.front().frame));
    q.pop_front();
  }
}

// An AUDIT reads up to `max_audit` D values: on the store's reader thread, never here. Its
// answer comes back as `(audited_atom, token, frame)` and leaves in request order.
void read_audit(conv_actor* self, const pending_reply& r) {
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t token = r.token;
  self->state.sh->store->audit_async(*r.audit, r.audit_next, self->state.sh->m->max_audit(),
                                     [me, token](protocol::audit_answer a) {
                                       caf::anon_send(me, audited_atom_v, token, encode(a));
                                     });
}

// A retried COMMIT reads D_i: on the store's reader thread too, answered like an AUDIT.
void read_retry(conv_actor* self, const pending_reply& r) {
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t token = r.token;
  const auto& x = *r.retry;
  self->state.sh->store->answer_retry_async(self->state.conv, x.index, x.d, x.stored,
                                            [me, token](protocol::link_response a) {
                                              caf::anon_send(me, audited_atom_v, token, encode(a));
                                            });
}

// The write (or barrier) of `token` is applied and synced: its answer is ready.
void on_written(conv_actor* self, uint64_t token, const std::string& failure) {
  auto& st = self->state;
  if (!failure.empty())
    die_on_storage_error(failure);
  auto it = std::find_if(st.replies.begin(), st.replies.end(),
                         [token](const pending_reply& r) { return r.token == token; });
  if (it == st.replies.end())
    return;
  if (it->commit) {
    fault_point(fault::mirror_commit_after_sync);
    st.sh->commits.fetch_add(1, std::memory_order_relaxed);
    st.sh->metrics->commits->inc();
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
caf::result<link_frame> queue_read(conv_actor* self, pending_reply r) {
  auto& st = self->state;
  r.rp = self->make_response_promise<link_frame>();
  r.token = ++st.last_token;
  const bool behind_writes = !st.replies.empty();
  st.replies.push_back(std::move(r));
  const auto& q = st.replies.back();
  auto rp = q.rp;
  if (behind_writes)
    st.sh->store->barrier_async(report_to(self, q.token));
  else if (q.audit)
    read_audit(self, q);
  else
    read_retry(self, q);
  return rp;
}

/// One request of this conversation, answered in request order.
caf::result<link_frame> on_request(conv_actor* self, const protocol::link_request& req) {
  auto& st = self->state;
  ++st.handled;
  st.last_activity = std::chrono::steady_clock::now();
  const auto& mm = *st.sh->metrics;
  const protocol::mirror_conv* mc = record(st);
  // An AUDIT reads the store, off this thread; behind writes still queued, it first waits until
  // they are applied.
  if (const auto* a = std::get_if<protocol::audit_query>(&req)) {
    if (mc == nullptr) {
      protocol::audit_answer none;
      none.from = a->from;
      return encode(none);
    }
    pending_reply r;
    r.audit = *a;
    r.audit_next = mc->st.next;
    return queue_read(self, std::move(r));
  }
  // A COMMIT of an index already committed compares D with the stored D_i, which may be only on
  // disk (or still queued behind writes): the same path as an AUDIT.
  if (const auto* c = std::get_if<protocol::commit_msg>(&req); c && mc && c->index < mc->st.next) {
    pending_reply r;
    pending_reply::retried x;
    x.index = c->index;
    x.d = c->d;
    if (auto found = mc->answers.find(c->index); found != mc->answers.end())
      x.stored = found->second;
    r.retry = std::move(x);
    return queue_read(self, std::move(r));
  }
  const size_t kind = req.index();
  const auto t0 = std::chrono::steady_clock::now();
  auto h = handle(self, req);
  mm.kinds.seconds[kind]->observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (std::holds_alternative<protocol::link_reject>(h.answer))
    mm.rejects->inc();
  if (h.token == 0 && st.replies.empty())
    return encode(h.answer);  // nothing to wait for
  // Group commit: the write is queued and the next request is taken at once; the answer leaves
  // after the write's sync and after every earlier answer.
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

caf::behavior conversation(conv_actor* self, std::shared_ptr<mirror_shared> shared,
                           protocol::conv_id conv, std::shared_ptr<mirror_slot> slot,
                           caf::actor endpoint, std::shared_ptr<crypto::rng> rng) {
  auto& st = self->state;
  st.sh = std::move(shared);
  st.conv = conv;
  st.slot = std::move(slot);
  st.endpoint = std::move(endpoint);
  st.rng = std::move(rng);
  st.last_activity = std::chrono::steady_clock::now();
  // The endpoint owns the node's conversations: when it stops, so does this actor.
  self->monitor(st.endpoint);
  self->set_down_handler([=](caf::down_msg& dm) {
    if (dm.source == self->state.endpoint.address())
      self->quit(dm.reason);
  });
  self->delayed_anon_send(self, st.sh->idle, idle_atom_v);
  return {
      // Requests come from the endpoint only, delegated (the sender is the router's actor): it
      // checked the sender's HELLO and that this node owns the conversation. A decoded request
      // is a local-only type, which no other node can send.
      [=](link_atom, const protocol::link_request& req) -> caf::result<link_frame> {
        return on_request(self, req);
      },
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
      [=](idle_atom) {
        auto& s = self->state;
        if (s.replies.empty() && std::chrono::steady_clock::now() - s.last_activity >= s.sh->idle)
          self->send(s.endpoint, idle_atom_v, s.conv, s.handled);
        self->delayed_anon_send(self, s.sh->idle, idle_atom_v);
      },
      [=](shutdown_atom) { self->quit(); },
  };
}

}  // namespace

caf::actor spawn_mirror_conversation(caf::actor_system& sys, std::shared_ptr<mirror_shared> shared,
                                     protocol::conv_id conv, std::shared_ptr<mirror_slot> slot,
                                     caf::actor endpoint, std::unique_ptr<crypto::rng> rng) {
  return sys.spawn(conversation, std::move(shared), conv, std::move(slot), std::move(endpoint),
                   std::shared_ptr<crypto::rng>(std::move(rng)));
}

}  // namespace cowpi::actors

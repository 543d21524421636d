// SPDX-License-Identifier: Apache-2.0
// The client actor: the user's operations (lookup, create, send, update, sync, reads), sync and
// housekeeping.
#include "cowpi/actors/fault.hpp"
#include "cowpi/protocol/encoding.hpp"

#include "../type_ids.hpp"
#include "client_actor.hpp"
#include "client_actor_helpers.hpp"
#include "connection.hpp"

#include <algorithm>
#include <utility>

namespace cowpi::actors::client_impl {

namespace {

// How often a connected client checks its pre-key pool and key ages.
constexpr std::chrono::hours topup_period{1};

template <class T>
void sort_unique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

void sort_members(protocol::member_list& l) {
  std::sort(l.begin(), l.end(),
            [](const protocol::member& a, const protocol::member& b) { return a.id < b.id; });
}

// The answer to a LOOKUP_USERS of `asked` distinct ids, as members sorted by id; fails unless
// every id is registered.
expected<protocol::member_list> registered_members(expected<protocol::response_body> r,
                                                   size_t asked) {
  if (!r)
    return unexpected<error>{std::move(r).error()};
  auto* u = std::get_if<protocol::users_result>(&*r);
  if (u == nullptr)
    return unexpected_answer(*r, "lookup");
  if (!u->unknown.empty() || u->users.size() != asked)
    return fail(errc::not_found,
                std::to_string(asked - u->users.size()) + " of the ids are not registered");
  protocol::member_list members = std::move(u->users);
  sort_members(members);
  return members;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Operations.

std::optional<error> client_actor::unusable() const {
  if (phase_ == phase::closed)
    return error{errc::closed, "the client runtime is closed"};
  if (phase_ == phase::failed)
    return error{errc::bad_state, "the client runtime has failed: " + failure_};
  return std::nullopt;
}

bool client_actor::check_online(const std::function<void(error)>& fail_with) {
  if (online())
    return true;
  fail_with(error{errc::unavailable, "not connected to the " + router_what()});
  return false;
}

void client_actor::op_lookup(std::vector<std::string> ids, done_fn<user_lookup> done) {
  if (!check_usable(done)
      || !check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  sort_unique(ids);
  request(protocol::lookup_users{std::move(ids)}, [done](expected<protocol::response_body> r) {
    if (!r)
      return done(unexpected<error>{std::move(r).error()});
    auto* u = std::get_if<protocol::users_result>(&*r);
    if (u == nullptr)
      return done(unexpected_answer(*r, "lookup"));
    sort_members(u->users);
    done(user_lookup{std::move(u->users), std::move(u->unknown)});
  });
}

void client_actor::op_create(std::vector<std::string> others, protocol::block_mode mode,
                             done_fn<protocol::conv_id> done) {
  if (!check_usable(done)
      || !check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  sort_unique(others);
  if (others.empty())
    return done(fail(errc::invalid_argument, "a conversation needs another member"));
  if (std::binary_search(others.begin(), others.end(), client().self().id()))
    return done(fail(errc::invalid_argument, "the other members may not include ourselves"));
  request(protocol::lookup_users{others}, [this, others, mode,
                                           done](expected<protocol::response_body> r) {
    auto found = registered_members(std::move(r), others.size());
    if (!found)
      return done(unexpected<error>{std::move(found).error()});
    protocol::member_list members = std::move(*found);
    std::vector<std::string> owners = others;
    for (const auto& m : client().pinned_ms())
      owners.push_back(m.id);
    sort_unique(owners);
    // The id is drawn before the fetch: a mirror cluster hands out the keys of the
    // node that will own the conversation.
    const protocol::conv_id chosen = client().new_conv_id(*core_.rng);
    fetch_keys(std::move(owners), chosen,
               [this, members, mode, chosen, done](expected<protocol::response_body> r2) {
                 if (!r2)
                   return done(unexpected<error>{std::move(r2).error()});
                 const auto* pk = std::get_if<protocol::prekeys_result>(&*r2);
                 if (pk == nullptr)
                   return done(unexpected_answer(*r2, "pre-key fetch"));
                 auto out = client().create(members, pk->bundles, now(), *core_.rng, mode, chosen);
                 if (!out)
                   return done(unexpected<error>{std::move(out).error()});
                 const protocol::conv_id conv = out->conv;
                 if (auto p = persist_conv(conv); !p)
                   return done(unexpected<error>{std::move(p).error()});
                 submit(std::move(*out), [this, done, conv](expected<sent_message> s) {
                   if (!s)
                     return done(unexpected<error>{std::move(s).error()});
                   // The conversation is usable once its SETUP comes back ordered.
                   const auto* cc = client().find(conv);
                   if (cc != nullptr && cc->status == protocol::conv_status::active)
                     return done(conv);
                   setup_waiters_[conv] = done;
                   self_->delayed_send(self_, opts_.request_timeout, deadline_atom_v, conv);
                 });
               });
  });
}

void client_actor::op_send(const protocol::conv_id& conv, bytes text, done_fn<sent_message> done) {
  if (!check_usable(done))
    return;
  if (client().find(conv) == nullptr)
    return done(fail(errc::not_found, "no such conversation"));
  auto build = [this, conv, text = std::move(text)]() {
    return client().send_message(conv, text, now(), *core_.rng);
  };
  keyed(conv, build, [this, conv, done](expected<protocol::outgoing> out) {
    if (!out)
      return done(unexpected<error>{std::move(out).error()});
    if (auto p = persist_conv(conv); !p)
      return done(unexpected<error>{std::move(p).error()});
    // Killed here, the message is in the persisted outbox and goes out at the next connect.
    fault_point(fault::client_send_after_persist);
    submit(std::move(*out), done);
  });
}

void client_actor::op_update(const protocol::conv_id& conv, std::vector<std::string> adds,
                             std::vector<std::string> removes, done_fn<sent_message> done) {
  if (!check_usable(done))
    return;
  if (client().find(conv) == nullptr)
    return done(fail(errc::not_found, "no such conversation"));
  sort_unique(adds);
  sort_unique(removes);
  if (adds.empty() && removes.empty())
    return done(fail(errc::invalid_argument, "nothing to add or remove"));
  auto build = [this, conv, removes, done](protocol::member_list add_members) {
    auto make = [this, conv, removes, add_members]() {
      return client().update(conv, add_members, removes, now(), *core_.rng);
    };
    keyed(conv, make, [this, conv, done](expected<protocol::outgoing> out) {
      if (!out)
        return done(unexpected<error>{std::move(out).error()});
      if (auto p = persist_conv(conv); !p)
        return done(unexpected<error>{std::move(p).error()});
      submit(std::move(*out), done);
    });
  };
  if (adds.empty())
    return build({});
  if (!check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  request(protocol::lookup_users{adds},
          [this, conv, adds, done, build](expected<protocol::response_body> r) {
            auto found = registered_members(std::move(r), adds.size());
            if (!found)
              return done(unexpected<error>{std::move(found).error()});
            protocol::member_list members = std::move(*found);
            fetch_keys(adds, conv,
                       [this, conv, members, done, build](expected<protocol::response_body> r2) {
                         if (!r2)
                           return done(unexpected<error>{std::move(r2).error()});
                         const auto* pk = std::get_if<protocol::prekeys_result>(&*r2);
                         if (pk == nullptr)
                           return done(unexpected_answer(*r2, "pre-key fetch"));
                         if (client().find(conv) == nullptr)
                           return done(fail(errc::not_found, "no such conversation"));
                         if (auto a = client().add_bundles(conv, pk->bundles); !a)
                           return done(unexpected<error>{std::move(a).error()});
                         if (auto p = persist_conv(conv); !p)
                           return done(unexpected<error>{std::move(p).error()});
                         build(members);
                       });
          });
}

void client_actor::op_sync(std::chrono::milliseconds timeout, done_fn<client_sync_report> done) {
  if (!check_usable(done)
      || !check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  const uint64_t id = next_sync_id_++;
  sync_waiters_.push_back(sync_waiter{id, accepted_count_, std::move(done)});
  self_->delayed_send(self_, timeout, caf::wait_for_atom_v, id);
  send_due_receipts();
  check_idle();
}

void client_actor::op_conversations(done_fn<std::vector<conversation_info>> done) {
  if (phase_ == phase::closed)
    return done(fail(errc::closed, "the client runtime is closed"));
  std::vector<conversation_info> out;
  for (const auto& [conv, cc] : client().convs()) {
    conversation_info i;
    i.conv = conv;
    switch (cc.status) {
      case protocol::conv_status::pending_setup:
        i.status = conversation_status::pending_setup;
        break;
      case protocol::conv_status::active:
        i.status = conversation_status::active;
        break;
      case protocol::conv_status::halted:
        i.status = conversation_status::halted;
        break;
    }
    i.members = cc.st.members;
    i.mode = cc.st.mode();
    if (!i.members.empty())
      i.safety_number = protocol::safety_number(i.members);
    i.next = cc.st.next;
    i.halt_index = cc.halt_index;
    i.outbox = cc.outbox.size();
    out.push_back(std::move(i));
  }
  for (const auto& [conv, t] : client().tombstones()) {
    if (client().find(conv) != nullptr)
      continue;  // re-added: the live record counts
    conversation_info i;
    i.conv = conv;
    i.status = conversation_status::removed;
    out.push_back(std::move(i));
  }
  done(std::move(out));
}

void client_actor::op_store_stats(done_fn<client_store_stats> done) {
  if (phase_ == phase::closed)
    return done(fail(errc::closed, "the client runtime is closed"));
  if (!core_.store)
    return done(fail(errc::bad_state, "the client runtime has failed: " + failure_));
  const auto st = core_.store->stats();
  done(client_store_stats{st.syncs, st.batches});
}

void client_actor::op_transcript(const protocol::conv_id& conv,
                                 done_fn<std::vector<transcript_line>> done) {
  if (phase_ == phase::closed)
    return done(fail(errc::closed, "the client runtime is closed"));
  if (!core_.store)
    return done(fail(errc::bad_state, "the client runtime has failed: " + failure_));
  auto tr = core_.store->transcript(conv);
  if (!tr)
    return done(unexpected<error>{std::move(tr).error()});
  auto del = delivery_states(*tr);
  std::vector<transcript_line> out;
  out.reserve(tr->size());
  for (size_t k = 0; k < tr->size(); ++k)
    out.push_back(transcript_line{std::move((*tr)[k]), std::move(del[k])});
  done(std::move(out));
}

void client_actor::shutdown() {
  if (phase_ == phase::closed)
    return;
  want_online_ = false;
  ++reconnect_gen_;
  const error closed{errc::closed, "the client runtime is closed"};
  phase_ = phase::closed;
  drop_connection(closed);
  auto waiters = std::exchange(connect_waiters_, {});
  for (auto& w : waiters)
    w(unexpected<error>{closed});
  set_phase(phase::closed);
  // The sink ends after delivering every event sent before this.
  if (events_)
    self_->send(events_, caf::close_atom_v);
  core_.store.reset();
  self_->quit();
}

// ---------------------------------------------------------------------------------------------
// Sync and housekeeping.

void client_actor::touch() {
  last_activity_ = steady::now();
  ++activity_;
  drained_ = false;
  if (!quiet_timer_ && (!sync_waiters_.empty() || topup_pending_)) {
    quiet_timer_ = true;
    self_->delayed_send(self_, opts_.quiet_period, quiet_atom_v);
  }
}

bool client_actor::is_quiet() const {
  return steady::now() - last_activity_ >= opts_.quiet_period;
}

void client_actor::on_quiet() {
  quiet_timer_ = false;
  if (!is_quiet()) {
    // Something arrived since the timer started: wait for the rest of the quiet period.
    quiet_timer_ = true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        last_activity_ + opts_.quiet_period - steady::now());
    self_->delayed_send(self_, std::max(left, std::chrono::milliseconds{1}), quiet_atom_v);
    return;
  }
  if (topup_pending_ && online()) {
    topup_pending_ = false;
    top_up();
  }
  check_idle();
}

size_t client_actor::outbox_size() const {
  size_t n = 0;
  for (const auto& [conv, cc] : core_.client->convs())
    if (cc.status != protocol::conv_status::halted)
      n += cc.outbox.size();
  return n;
}

void client_actor::check_idle() {
  if (sync_waiters_.empty() || !online())
    return;
  if (!received_.empty() || !requests_.empty() || !receipt_inflight_.empty() || outbox_size() > 0)
    return;
  if (drain_unsupported_) {
    if (!is_quiet()) {
      if (!quiet_timer_) {
        quiet_timer_ = true;
        self_->delayed_send(self_, opts_.quiet_period, quiet_atom_v);
      }
      return;
    }
  } else if (!drained_) {
    // Ask the router whether anything is still on its way to us: its answer comes after
    // every envelope it had for us.
    start_drain();
    return;
  }
  if (topup_pending_) {
    // The backlog is drained: the pre-key top-up (which may rotate the LAST_RESORT key, §2)
    // goes now, and the sync completes once it is answered.
    topup_pending_ = false;
    top_up();
    if (!requests_.empty())
      return;
  }
  auto waiters = std::exchange(sync_waiters_, {});
  for (auto& w : waiters)
    w.done(client_sync_report{accepted_count_ - w.accepted_at_start, 0, true});
}

void client_actor::start_drain() {
  if (drain_inflight_)
    return;
  drain_inflight_ = true;
  const uint64_t at = activity_;
  request(protocol::drain{}, [this, at](expected<protocol::response_body> r) {
    drain_inflight_ = false;
    if (!r)
      return;  // the connection went or the answer timed out: the next check asks again
    if (!std::holds_alternative<protocol::ok_result>(*r))
      drain_unsupported_ = true;
    else if (activity_ == at)
      drained_ = true;
    // check_idle runs after every batch of router frames.
  });
}

void client_actor::on_sync_timeout(uint64_t id) {
  auto it = std::find_if(sync_waiters_.begin(), sync_waiters_.end(),
                         [id](const sync_waiter& w) { return w.id == id; });
  if (it == sync_waiters_.end())
    return;
  auto w = std::move(*it);
  sync_waiters_.erase(it);
  w.done(client_sync_report{accepted_count_ - w.accepted_at_start, outbox_size(), false});
}

void client_actor::on_housekeeping() {
  if (phase_ == phase::closed)
    return;
  self_->delayed_send(self_, opts_.housekeeping_interval, housekeep_atom_v);
  if (!online())
    return;
  send_due_receipts();
  if (steady::now() - last_topup_ >= topup_period && is_quiet())
    top_up();
  check_idle();
}

}  // namespace cowpi::actors::client_impl

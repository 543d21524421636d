// SPDX-License-Identifier: Apache-2.0
// The client actor: requests to the router, acceptance of deliveries (docs/design.md §3.5),
// receipts (§3.7), the outbox (§3.8) and pre-keys, always persisting before sending (§4).
#include "cowpi/actors/fault.hpp"
#include "cowpi/protocol/encoding.hpp"

#include "../type_ids.hpp"
#include "client_actor.hpp"
#include "client_actor_helpers.hpp"
#include "connection.hpp"

#include <algorithm>
#include <map>
#include <utility>

namespace cowpi::actors::client_impl {

namespace {

// Most received envelopes written in one batch (see `client_actor::received_`).
constexpr size_t max_received_batch = 32;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Requests.

void client_actor::write(const bytes& frame) {
  if (broker_)
    self_->send(broker_, write_atom_v, frame);
}

void client_actor::request(protocol::client_request body, response_fn k) {
  if (!session_ || !session_->is_ready())
    return k(fail(errc::unavailable, "not connected to the " + router_what()));
  const uint64_t rid = next_rid_++;
  auto frame = session_->seal(protocol::client_frame{rid, std::move(body)});
  if (!frame)
    return k(unexpected<error>{std::move(frame).error()});
  write(*frame);
  requests_.emplace(rid, std::move(k));
  self_->delayed_send(self_, opts_.request_timeout, caf::timeout_atom_v, rid);
}

void client_actor::fetch_keys(std::vector<std::string> owners,
                              std::optional<protocol::conv_id> conv, response_fn k,
                              unsigned attempt,
                              std::optional<std::chrono::steady_clock::time_point> until) {
  if (!until)
    until = std::chrono::steady_clock::now() + opts_.request_timeout;
  request(protocol::fetch_prekeys{owners, conv},
          [this, owners, conv, k, attempt, until](expected<protocol::response_body> r) mutable {
            // UNAVAILABLE: the directory cannot answer for every owner yet (a mirror's keys
            // not yet uploaded right after the providers start). Retry, backing off, for as
            // long as one request may take, before the caller sees it.
            const auto* rej = r ? std::get_if<protocol::rejection>(&*r) : nullptr;
            if (rej != nullptr && rej->kind == protocol::rejection_kind::unavailable
                && std::chrono::steady_clock::now() < *until && online()) {
              const uint64_t id = next_fetch_retry_++;
              fetch_retries_.emplace(
                  id, fetch_retry{std::move(owners), conv, std::move(k), attempt + 1, *until});
              self_->delayed_send(self_, backoff(attempt), retry_atom_v, id);
              return;
            }
            k(std::move(r));
          });
}

void client_actor::send_ack(const protocol::ack_msg& a) {
  // Unanswered on purpose: a lost ack only makes the router resend, and a duplicate
  // delivery is acknowledged again (§3.5 step 1).
  if (!session_ || !session_->is_ready())
    return;
  auto frame = session_->seal(protocol::client_frame{next_rid_++, a});
  if (frame)
    write(*frame);
}

void client_actor::on_router_frame(protocol::router_frame& f) {
  // The quiet period measures the router's own traffic (deliveries, answers about our
  // messages): the answer to a request of ours (a pre-key top-up, a key fetch) is awaited
  // through `requests_` and does not start it again.
  if (auto* r = std::get_if<protocol::response>(&f)) {
    if (r->request_id == 0 || !requests_.contains(r->request_id))
      touch();
    return on_response(*r);
  }
  touch();
  if (auto* e = std::get_if<protocol::envelope>(&f))
    return on_envelope(*e);
  // An error_frame arrives as a session `router_error`, never here.
}

void client_actor::on_response(protocol::response& r) {
  if (r.request_id == 0) {
    if (const auto* rej = std::get_if<protocol::rejection>(&r.body);
        rej != nullptr && rej->kind == protocol::rejection_kind::history_expired)
      emit(history_expired_event{rej->detail});
    return;
  }
  if (auto it = requests_.find(r.request_id); it != requests_.end()) {
    auto k = std::move(it->second);
    requests_.erase(it);
    k(std::move(r.body));
    return;
  }
  auto it = submits_.find(r.request_id);
  if (it == submits_.end())
    return;  // an ack's answer, or an answer after a timeout
  if (std::holds_alternative<protocol::ok_result>(r.body)) {
    // "Queued", not ordered: keep the entry until the echo or a late rejection (§3.8).
    if (auto d = std::exchange(it->second.done, {}))
      d(sent_message{it->second.conv, it->second.aseq, true});
    return;
  }
  const auto* rej = std::get_if<protocol::rejection>(&r.body);
  if (rej == nullptr)
    return;
  submitted s = std::move(it->second);
  submits_.erase(it);
  if (s.done) {
    if (protocol::plan_rejection(*rej).keeps_message) {
      s.done(sent_message{s.conv, s.aseq, false});  // kept: see on_rejection
    } else {
      s.done(fail(errc::rejected, "the router refused the message: " + rejection_text(*rej)));
    }
  }
  on_rejection(s.conv, s.aseq, *rej);
}

void client_actor::on_request_timeout(uint64_t rid) {
  const std::string why = "no answer from the " + router_what() + " within "
                          + std::to_string(opts_.request_timeout.count()) + " ms";
  if (auto it = requests_.find(rid); it != requests_.end()) {
    auto k = std::move(it->second);
    requests_.erase(it);
    k(fail(errc::timeout, why));
    return;
  }
  if (auto it = submits_.find(rid); it != submits_.end()) {
    if (auto d = std::exchange(it->second.done, {}))
      d(fail(errc::timeout, why + "; the message stays in the outbox"));
  }
}

void client_actor::fail_requests(const error& why) {
  auto reqs = std::exchange(requests_, {});
  for (auto& [rid, k] : reqs)
    k(unexpected<error>{why});
  auto retries = std::exchange(fetch_retries_, {});
  for (auto& [id, f] : retries)
    f.k(unexpected<error>{why});
}

// ---------------------------------------------------------------------------------------------
// Conversations.

void client_actor::on_envelope(const protocol::envelope& e) {
  if (!online())
    return;
  auto res = client().receive(e, now(), *core_.rng, core_.store.get());
  received_.push_back(received{e.conv, std::move(res)});
  // The envelopes already in the mailbox are handled before this message: they join the
  // batch. It stays inside the client's in-memory D window (`d_window`): an entry accepted
  // here is not in the store's D history until the batch is written, and a duplicate of it
  // is checked against that window.
  if (!received_posted_) {
    received_posted_ = true;
    self_->send(self_, received_atom_v);
  }
  if (received_.size() >= std::min(max_received_batch, client().options().d_window / 2))
    finish_received();
}

void client_actor::finish_received() {
  if (received_.empty())
    return;
  // §3.5 step 5: persist, then acknowledge.
  if (received_persisted_ < received_.size() && !persist({}))
    return;  // the runtime has failed
  auto batch = std::exchange(received_, {});
  received_persisted_ = 0;
  // One ACK per conversation for the batch, of its greatest index: the router's cursor takes an
  // ACK as covering every index below it, and a conversation's entries are accepted in order.
  std::map<protocol::conv_id, uint64_t> acks;
  for (auto& [conv, res] : batch) {
    // Killed here, the entry is accepted but not acknowledged: the router resends it and the
    // restarted client acknowledges the duplicate without accepting it twice.
    if (!res.accepted.empty())
      fault_point(fault::client_accept_before_ack);
    for (const auto& a : res.accepted)
      emit_accepted(a);
    for (auto& al : res.alarms)
      emit(alarm_event{std::move(al)});
    for (const auto& a : res.acks) {
      auto [it, fresh] = acks.try_emplace(a.conv, a.index);
      if (!fresh)
        it->second = std::max(it->second, a.index);
    }
    if (res.recreated) {
      emit(recreated_event{res.recreated->first, res.recreated->second});
      // Someone else's SETUP took our id: the waiting create gets the new id once its SETUP
      // is ordered.
      if (auto w = setup_waiters_.extract(res.recreated->first))
        setup_waiters_.emplace(res.recreated->second, std::move(w.mapped()));
    }
    submit_all(std::move(res.resubmit));
    flush_rebuilds(conv);
    if (!res.accepted.empty())
      send_due_receipts(conv);
    if (phase_ == phase::failed || phase_ == phase::closed)
      return;
  }
  for (const auto& [conv, index] : acks)
    send_ack(protocol::ack_msg{conv, index});
}

void client_actor::emit_accepted(const protocol::accepted_entry& a) {
  ++accepted_count_;
  if (a.own) {
    // Sent: its echo came back (§3.8).
    settle_submits(a.conv, a.aseq, true);
    resend_failures_.erase({a.conv, a.aseq});
    if (a.type == protocol::msg_type::setup)
      finish_setup(a.conv, a.conv);
  }
  emit(entry_event{a});
  if (!a.own && a.parent) {
    delivery_event d;
    d.conv = a.conv;
    d.member = a.author;
    d.received_upto = *a.parent;
    if (a.type == protocol::msg_type::receipt) {
      if (a.floor_before + 1 <= static_cast<int64_t>(*a.parent))
        d.read = index_range{static_cast<uint64_t>(a.floor_before + 1), *a.parent};
      d.could_not_read = a.voids;
    }
    emit(std::move(d));
  }
}

void client_actor::with_keys(const protocol::conv_id& conv, done_fn<void> k) {
  auto missing = client().missing_keys(conv);
  if (missing.empty())
    return k({});
  if (!online())
    return k(fail(errc::unavailable,
                  "not connected to the " + router_what() + ": first-contact keys are needed"));
  fetch_keys(missing, conv, [this, conv, k, missing](expected<protocol::response_body> r) {
    if (!r)
      return k(unexpected<error>{std::move(r).error()});
    const auto* pk = std::get_if<protocol::prekeys_result>(&*r);
    if (pk == nullptr)
      return k(unexpected_answer(*r, "pre-key fetch"));
    if (client().find(conv) == nullptr)
      return k(fail(errc::not_found, "no such conversation"));
    if (auto a = client().add_bundles(conv, pk->bundles, missing); !a)
      return k(unexpected<error>{std::move(a).error()});
    if (auto p = persist_conv(conv); !p)
      return k(unexpected<error>{std::move(p).error()});
    k({});
  });
}

void client_actor::keyed(const protocol::conv_id& conv, build_fn build,
                         done_fn<protocol::outgoing> k, bool retried) {
  with_keys(conv, [this, conv, build, k, retried](expected<void> ready) {
    if (!ready)
      return k(unexpected<error>{std::move(ready).error()});
    auto out = build();
    if (!out && out.error().code == errc::unknown_key && !retried) {
      // A key failed when used (docs/design.md §2): the client forgot it; fetch and build again.
      return keyed(conv, build, k, true);
    }
    k(std::move(out));
  });
}

void client_actor::settle_submits(const protocol::conv_id& conv, uint64_t aseq, bool queued) {
  for (auto it = submits_.begin(); it != submits_.end();) {
    if (it->second.conv == conv && it->second.aseq == aseq) {
      if (auto d = std::exchange(it->second.done, {}))
        d(sent_message{conv, aseq, queued});
      it = submits_.erase(it);
    } else {
      ++it;
    }
  }
}

void client_actor::submit(protocol::outgoing o, done_fn<sent_message> done) {
  if (!online() || !session_) {
    // Persisted in the outbox: it goes out at the next login.
    if (done)
      done(sent_message{o.conv, o.aseq, false});
    return;
  }
  // A new version of an aseq supersedes the older ones: a late rejection of an older version
  // must not act on the current one.
  settle_submits(o.conv, o.aseq, false);
  const uint64_t rid = next_rid_++;
  auto frame = session_->seal(protocol::client_frame{rid, std::move(o.submit)});
  if (!frame) {
    if (done)
      done(unexpected<error>{std::move(frame).error()});
    return;
  }
  write(*frame);
  const bool waits = static_cast<bool>(done);
  submits_.emplace(rid, submitted{o.conv, o.aseq, std::move(done)});
  if (waits)
    self_->delayed_send(self_, opts_.request_timeout, caf::timeout_atom_v, rid);
}

void client_actor::submit_all(std::vector<protocol::outgoing> out) {
  for (auto& o : out)
    submit(std::move(o));
}

void client_actor::resend_outbox() {
  backing_off_.clear();
  std::vector<protocol::outgoing> out;
  for (const auto& [conv, cc] : client().convs()) {
    auto p = client().pending(conv);
    out.insert(out.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
  }
  submit_all(std::move(out));
}

void client_actor::on_rejection(const protocol::conv_id& conv, uint64_t aseq,
                                const protocol::rejection& refused) {
  // A LIMIT that is flow control (too many entries in the intake, an UPDATE or SETUP too
  // soon) is handled as UNAVAILABLE: kept and resent after a backoff, no sooner than the
  // router's wait (the later aseqs then come back ASEQ_GAP and go out again in order).
  const protocol::rejection_plan plan = protocol::plan_rejection(refused);
  const protocol::rejection& rej = plan.handled;
  const auto wait = std::chrono::seconds(plan.wait_s);
  // What to tell the user if the message is abandoned.
  protocol::msg_type type = protocol::msg_type::message;
  bytes text;
  if (const auto* cc = client().find(conv)) {
    for (const auto& e : cc->outbox) {
      if (e.aseq != aseq)
        continue;
      type = e.type;
      text = e.plaintext;
    }
  }
  auto run = [this, conv, aseq, rej, type, text, wait](expected<void>) {
    auto res = client().on_rejection(conv, aseq, rej, now(), *core_.rng);
    if (!no_changes(res.changes) && !persist(res.changes))
      return;
    if (res.dropped) {
      emit(dropped_event{conv, aseq, type, text, *res.dropped});
      if (type == protocol::msg_type::setup) {
        finish_setup(conv, fail(errc::rejected,
                                "the router refused the SETUP: " + rejection_text(*res.dropped)));
      }
    }
    if (rej.kind == protocol::rejection_kind::unavailable) {
      // Retryable: resubmit the current version after a backoff (§3.8).
      auto delay =
          std::max<std::chrono::milliseconds>(backoff(resend_failures_[{conv, aseq}]++), wait);
      backing_off_.insert({conv, aseq});
      self_->delayed_send(self_, delay, resend_atom_v, conv, aseq);
      return;
    }
    // Queued behind a message that waits for its backoff: resending the head now would
    // defeat the backoff (and meet the same refusal); this one goes out with it.
    if (rej.kind == protocol::rejection_kind::aseq_gap && rej.value < aseq
        && backing_off_.contains({conv, rej.value}))
      return;
    submit_all(std::move(res.resubmit));
  };
  // STALE and permanent rejections rebuild messages, which needs every peer's key.
  if (plan.needs_keys) {
    with_keys(conv, run);
  } else {
    run({});
  }
}

void client_actor::on_resend(const protocol::conv_id& conv, uint64_t aseq) {
  if (backing_off_.erase({conv, aseq}) == 0)
    return;  // sent again since (a login resends the whole outbox)
  if (!online())
    return;  // the whole outbox goes out at the next login
  // This one and those queued behind it, which held back for it (the router takes a copy of
  // a message it already queues as a no-op).
  for (auto& o : client().pending(conv)) {
    if (o.aseq >= aseq)
      submit(std::move(o));
  }
}

void client_actor::flush_rebuilds(const protocol::conv_id& conv) {
  const auto* cc = client().find(conv);
  if (cc == nullptr)
    return;
  const bool waiting = std::any_of(cc->outbox.begin(), cc->outbox.end(),
                                   [](const protocol::outbox_entry& e) { return e.stale_after; });
  if (!waiting)
    return;
  with_keys(conv, [this, conv](expected<void>) {
    auto out = client().flush_rebuilds(conv, now(), *core_.rng);
    if (!persist_conv(conv))
      return;
    submit_all(std::move(out));
  });
}

void client_actor::send_due_receipts(std::optional<protocol::conv_id> only) {
  if (!online())
    return;
  const uint64_t t = now();
  std::vector<protocol::conv_id> due;
  for (const auto& [conv, cc] : client().convs()) {
    if (only && conv != *only)
      continue;
    if (!receipt_inflight_.contains(conv) && client().receipt_due(conv, t))
      due.push_back(conv);
  }
  for (const auto& conv : due) {
    receipt_inflight_.insert(conv);
    auto build = [this, conv]() -> expected<protocol::outgoing> {
      const uint64_t t2 = now();
      if (!online() || !client().receipt_due(conv, t2))
        return fail(errc::bad_state, "no receipt due");
      return client().send_receipt(conv, t2, *core_.rng);
    };
    keyed(conv, build, [this, conv](expected<protocol::outgoing> out) {
      receipt_inflight_.erase(conv);
      if (!out)
        return;
      if (!persist_conv(conv))
        return;
      submit(std::move(*out));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-keys.

protocol::upload_prekeys client_actor::registration_upload() {
  auto plan = client().plan_prekey_upload(nullptr, now(), *core_.rng);
  if (plan.keys_changed) {
    protocol::client_changes ch;
    ch.keys = true;
    (void)persist(ch);  // a failed write fails the runtime: nothing is sent after it
  }
  return std::move(plan.up);
}

void client_actor::top_up() {
  last_topup_ = steady::now();
  if (client().expire_keys(now())) {
    protocol::client_changes ch;
    ch.keys = true;
    if (!persist(ch))
      return;
  }
  // Keys retired here (by age) may still sit in the router's pool, counted as available and
  // handed out to first contacts that could never be opened. Sent before the status request,
  // which the router answers after it.
  const uint64_t below = client().prekey_retire_floor();
  if (below > retired_below_) {
    request(protocol::retire_prekeys{below}, [this, below](expected<protocol::response_body> r) {
      if (r && std::holds_alternative<protocol::ok_result>(*r))
        retired_below_ = std::max(retired_below_, below);
    });
  }
  request(protocol::account_status{}, [this](expected<protocol::response_body> r) {
    if (!r || !online())
      return;
    const auto* st = std::get_if<protocol::status_result>(&*r);
    if (st == nullptr)
      return;
    auto plan = client().plan_prekey_upload(st, now(), *core_.rng);
    if (plan.keys_changed) {
      protocol::client_changes ch;
      ch.keys = true;
      if (!persist(ch))
        return;
    }
    if (plan.empty())
      return;
    request(std::move(plan.up), [](expected<protocol::response_body>) {
      // A refused or lost upload is retried at the next top-up: the router's count says.
    });
  });
}

}  // namespace cowpi::actors::client_impl

// SPDX-License-Identifier: Apache-2.0
// Deep comparisons of client and mirror state, secrets included (constant-time), for the
// storage tests that check a reloaded party equals the live one.
#pragma once

#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/mirror.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cowpi::testing {

inline bool same_key(const protocol::owned_key& a, const protocol::owned_key& b) {
  return a.esk.ct_equals(b.esk) && a.pub == b.pub && a.created == b.created;
}

// Chain mode (docs/protocol.md §4.8): both ends of the channel's chains, keys compared in
// constant time.
inline bool same_chain_state(const protocol::channel& a, const protocol::channel& b) {
  const auto& x = a.out;
  const auto& y = b.out;
  if (x.last_epoch != y.last_epoch || x.referenced_kind != y.referenced_kind
      || x.referenced_id != y.referenced_id || x.started_at != y.started_at
      || x.step_aseq != y.step_aseq || x.void_reported != y.void_reported
      || x.acked_next != y.acked_next || x.chain.has_value() != y.chain.has_value()
      || a.received_since_announce != b.received_since_announce || a.broken_epoch != b.broken_epoch
      || a.in.has_value() != b.in.has_value() || x.pending.size() != y.pending.size())
    return false;
  for (size_t k = 0; k < x.pending.size(); ++k) {
    const auto& p = x.pending[k];
    const auto& q = y.pending[k];
    if (p.aseq != q.aseq || p.d != q.d || p.chain.epoch() != q.chain.epoch()
        || p.chain.next() != q.chain.next() || !p.chain.key().ct_equals(q.chain.key())
        || p.referenced_kind != q.referenced_kind || p.referenced_id != q.referenced_id
        || p.started_at != q.started_at)
      return false;
  }
  if (x.chain
      && (x.chain->epoch() != y.chain->epoch() || x.chain->next() != y.chain->next()
          || x.chain->usable() != y.chain->usable() || !x.chain->key().ct_equals(y.chain->key())))
    return false;
  if (a.in) {
    if (a.in->epoch != b.in->epoch || a.in->next != b.in->next || !a.in->ck.ct_equals(b.in->ck)
        || a.in->skipped.size() != b.in->skipped.size())
      return false;
    for (auto p = a.in->skipped.begin(), q = b.in->skipped.begin(); p != a.in->skipped.end();
         ++p, ++q)
      if (p->first != q->first || !p->second.ct_equals(q->second))
        return false;
  }
  return true;
}

inline bool same_channel(const protocol::channel& a, const protocol::channel& b) {
  if (a.mine.size() != b.mine.size())
    return false;
  for (auto x = a.mine.begin(), y = b.mine.begin(); x != a.mine.end(); ++x, ++y)
    if (x->first != y->first || !same_key(x->second, y->second))
      return false;
  if (!same_chain_state(a, b))
    return false;
  return a.announced == b.announced && a.announced_referenced == b.announced_referenced
         && a.peer_latest == b.peer_latest && a.first_contact == b.first_contact
         && a.peer_used_prekey == b.peer_used_prekey
         && a.peer_used_last_resort == b.peer_used_last_resort;
}

inline bool same_channels(const std::map<std::string, protocol::channel>& a,
                          const std::map<std::string, protocol::channel>& b) {
  if (a.size() != b.size())
    return false;
  for (auto x = a.begin(), y = b.begin(); x != a.end(); ++x, ++y)
    if (x->first != y->first || !same_channel(x->second, y->second))
      return false;
  return true;
}

inline ::testing::AssertionResult same_keys(const protocol::key_store& a,
                                            const protocol::key_store& b) {
  if (a.next_prekey_id() != b.next_prekey_id() || a.next_last_resort_id() != b.next_last_resort_id()
      || a.current_last_resort_id() != b.current_last_resort_id())
    return ::testing::AssertionFailure() << "key counters differ";
  if (a.published() != b.published())
    return ::testing::AssertionFailure() << "published differ";
  if (a.used_prekeys() != b.used_prekeys())
    return ::testing::AssertionFailure() << "used pre-keys differ";
  if (a.prekeys().size() != b.prekeys().size())
    return ::testing::AssertionFailure() << "prekey count differs";
  for (auto x = a.prekeys().begin(), y = b.prekeys().begin(); x != a.prekeys().end(); ++x, ++y)
    if (x->first != y->first || !same_key(x->second.key, y->second.key)
        || x->second.bound != y->second.bound)
      return ::testing::AssertionFailure() << "prekey " << x->first << " differs";
  if (a.last_resort().size() != b.last_resort().size())
    return ::testing::AssertionFailure() << "LAST_RESORT count differs";
  for (auto x = a.last_resort().begin(), y = b.last_resort().begin(); x != a.last_resort().end();
       ++x, ++y)
    if (x->first != y->first || !same_key(x->second.key, y->second.key)
        || x->second.retired_at != y->second.retired_at || x->second.pending != y->second.pending)
      return ::testing::AssertionFailure() << "LAST_RESORT " << x->first << " differs";
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult same_client_conv(const protocol::client_conv& a,
                                                   const protocol::client_conv& b) {
  auto f = [](const char* what) { return ::testing::AssertionFailure() << what << " differs"; };
  if (!(a.st == b.st))
    return f("conversation state");
  if (a.status != b.status || a.halt_index != b.halt_index)
    return f("status");
  if (!same_channels(a.channels, b.channels))
    return f("channels");
  if (a.ratchet_next != b.ratchet_next)
    return f("ratchet counters");
  if (a.outbox != b.outbox)
    return f("outbox");
  if (a.orphans != b.orphans)
    return f("orphans");
  if (a.next_outbox_id != b.next_outbox_id)
    return f("outbox id counter");
  if (a.voids_pending != b.voids_pending)
    return f("voids pending");
  if (a.last_foreign != b.last_foreign || a.own_parent != b.own_parent
      || a.last_receipt_time != b.last_receipt_time)
    return f("receipt bookkeeping");
  if (a.alarmed != b.alarmed)
    return f("alarmed");
  if (a.d_recent != b.d_recent)
    return f("d_recent");
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult same_client(const protocol::client& a,
                                              const protocol::client& b) {
  if (a.self().id() != b.self().id() || a.self().lpk() != b.self().lpk())
    return ::testing::AssertionFailure() << "identity differs";
  if (!a.self().export_secret().ct_equals(b.self().export_secret()))
    return ::testing::AssertionFailure() << "identity secret differs";
  if (a.pinned_ms() != b.pinned_ms())
    return ::testing::AssertionFailure() << "pinned MS differs";
  if (auto k = same_keys(a.keys(), b.keys()); !k)
    return k;
  if (a.tombstones() != b.tombstones())
    return ::testing::AssertionFailure() << "tombstones differ";
  if (a.convs().size() != b.convs().size())
    return ::testing::AssertionFailure() << "conversation count differs";
  for (auto x = a.convs().begin(), y = b.convs().begin(); x != a.convs().end(); ++x, ++y) {
    if (x->first != y->first)
      return ::testing::AssertionFailure() << "conversation ids differ";
    if (auto r = same_client_conv(x->second, y->second); !r)
      return r;
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult same_mirror_conv(const protocol::mirror_conv& p,
                                                   const protocol::mirror_conv& q) {
  if (!(p.st == q.st))
    return ::testing::AssertionFailure() << "conversation state differs";
  if (!same_channels(p.channels, q.channels))
    return ::testing::AssertionFailure() << "channels differ";
  if (p.ratchet_next != q.ratchet_next)
    return ::testing::AssertionFailure() << "counters differ";
  if (p.member_lr != q.member_lr)
    return ::testing::AssertionFailure() << "member LR keys differ";
  if (p.answers != q.answers)
    return ::testing::AssertionFailure() << "answers differ";
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult same_mirror(const protocol::mirror& a,
                                              const protocol::mirror& b) {
  if (a.self().id() != b.self().id() || a.self().lpk() != b.self().lpk())
    return ::testing::AssertionFailure() << "identity differs";
  if (auto k = same_keys(a.keys(), b.keys()); !k)
    return k;
  if (a.convs().size() != b.convs().size())
    return ::testing::AssertionFailure() << "conversation count differs";
  for (auto x = a.convs().begin(), y = b.convs().begin(); x != a.convs().end(); ++x, ++y) {
    if (x->first != y->first)
      return ::testing::AssertionFailure() << "conversation ids differ";
    if (auto r = same_mirror_conv(x->second, y->second); !r)
      return r;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// Shared tools of the protocol adversarial suite: a network tap over the sim world, transcript
// and alarm checks, and helpers that capture, forge and replay conversation messages.
#pragma once

#include "cowpi/protocol/encoding.hpp"
#include "cowpi/sim/world.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace cowpi::sim::adv {

/// The plaintext of an accepted entry, as text.
inline std::string text_of(const accepted_entry& e) {
  return std::string(e.plaintext.begin(), e.plaintext.end());
}

/// Watches everything the world delivers: records router rejections and envelopes, and lets a
/// test tamper with (or drop) messages in flight through `tamper`. Installs itself as the
/// world's interceptor; it must outlive every `run()` of that world.
class network_tap {
public:
  explicit network_tap(world& w) : w_(w) {
    w_.set_interceptor([this](in_flight& m) { return on_message(m); });
  }
  network_tap(const network_tap&) = delete;
  network_tap& operator=(const network_tap&) = delete;
  network_tap(network_tap&&) = delete;
  network_tap& operator=(network_tap&&) = delete;
  ~network_tap() { w_.set_interceptor(nullptr); }

  /// Returns false to drop the message; may modify it in place. Empty: deliver as is.
  std::function<bool(in_flight&)> tamper;

  /// Every rejection the router sent to `user`, in order.
  std::vector<rejection> rejections_for(const std::string& user) const {
    std::vector<rejection> out;
    for (const auto& r : rejections_)
      if (r.user == user)
        out.push_back(r.rej);
    return out;
  }
  std::vector<to_client_rejection> rejections() const { return rejections_; }
  /// How many envelopes for `index` of `conv` reached `user` (after tampering).
  size_t envelopes_for(const std::string& user, const conv_id& conv, uint64_t index) const {
    auto it = delivered_.find({user, conv, index});
    return it == delivered_.end() ? 0 : it->second;
  }

private:
  bool on_message(in_flight& m) {
    const bool keep = !tamper || tamper(m);
    if (!keep)
      return false;
    if (const auto* r = std::get_if<to_client_rejection>(&m))
      rejections_.push_back(*r);
    if (const auto* e = std::get_if<to_client_envelope>(&m)) {
      ++delivered_[{e->user, e->env.conv, e->env.index}];
    }
    return true;
  }

  world& w_;
  std::vector<to_client_rejection> rejections_;
  std::map<std::tuple<std::string, conv_id, uint64_t>, size_t> delivered_;
};

/// Adds `users` and has the first create a conversation with the others; runs it to the end.
inline conv_id start_group(world& w, const std::vector<std::string>& users) {
  for (const auto& u : users)
    w.add_user(u);
  std::vector<std::string> others(users.begin() + 1, users.end());
  auto conv = w.create(users.front(), others);
  EXPECT_TRUE(conv.has_value()) << conv.error().message();
  w.run();
  return *conv;
}

/// The alarms `user` raised, optionally only those of `kind`.
inline std::vector<alarm> alarms_of(world& w, const std::string& user,
                                    std::optional<alarm_kind> kind = std::nullopt) {
  std::vector<alarm> out;
  for (const auto& a : w.node(user).alarms)
    if (!kind || a.kind == *kind)
      out.push_back(a);
  return out;
}

/// Succeeds iff none of `users` raised an alarm.
inline ::testing::AssertionResult no_alarms(world& w, const std::vector<std::string>& users) {
  for (const auto& u : users) {
    for (const auto& a : w.node(u).alarms) {
      return ::testing::AssertionFailure()
             << u << " raised " << to_string(a.kind) << " at #" << a.index << " against " << a.party
             << ": " << a.evidence;
    }
  }
  return ::testing::AssertionSuccess();
}

/// Succeeds iff every transcript of `users` for `conv` holds increasing indices (consecutive
/// unless `contiguous` is false: a removed and re-added member misses its absence) and every
/// two of them hold the same entry (D, T, author, aseq) at every index both accepted.
inline ::testing::AssertionResult same_history(world& w, const conv_id& conv,
                                               const std::vector<std::string>& users,
                                               bool contiguous = true) {
  std::map<uint64_t, std::pair<std::string, const accepted_entry*>> first;
  for (const auto& u : users) {
    const auto& t = w.transcript(u, conv);
    for (size_t k = 1; k < t.size(); ++k) {
      if (t[k].index <= t[k - 1].index || (contiguous && t[k].index != t[k - 1].index + 1))
        return ::testing::AssertionFailure()
               << u << " accepted #" << t[k].index << " after #" << t[k - 1].index;
    }
    for (const auto& e : t) {
      auto [it, fresh] = first.emplace(e.index, std::make_pair(u, &e));
      if (fresh)
        continue;
      const accepted_entry& o = *it->second.second;
      if (o.d != e.d || o.t != e.t || o.author != e.author || o.aseq != e.aseq)
        return ::testing::AssertionFailure()
               << u << " and " << it->second.first << " hold different entries at #" << e.index;
    }
  }
  return ::testing::AssertionSuccess();
}

/// Returns the entry `user` accepted at `index`, or nullptr.
inline const accepted_entry* entry_at(world& w, const std::string& user, const conv_id& conv,
                                      uint64_t index) {
  for (const auto& e : w.transcript(user, conv))
    if (e.index == index)
      return &e;
  return nullptr;
}

/// The index `user` will accept next in `conv` (0 when it holds no state).
inline uint64_t next_of(world& w, const std::string& user, const conv_id& conv) {
  const client_conv* cc = w.user(user).find(conv);
  return cc == nullptr ? 0 : cc->st.next;
}

/// The next index the router will order in `conv`.
inline uint64_t router_next(world& w, const conv_id& conv) {
  const conv_state* st = w.router(conv).state();
  return st == nullptr ? 0 : st->next;
}

/// Removes the last message the world queued for the router (what the last action submitted)
/// and returns it, so that a test can hold, alter or replay it.
inline to_router take_last_submit(world& w) {
  auto& net = w.network();
  for (auto it = net.rbegin(); it != net.rend(); ++it) {
    if (auto* s = std::get_if<to_router>(&*it)) {
      to_router out = *s;
      net.erase(std::next(it).base());
      return out;
    }
  }
  ADD_FAILURE() << "nothing was submitted";
  return {};
}

/// The (R, H(block_R)) pairs of a SUBMIT.
inline std::vector<block_digest> digests_of(const submit_msg& s) {
  std::vector<block_digest> out;
  for (const auto& rb : s.blocks)
    out.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
  return out;
}

/// The PREPARE an honest router would send mirror number `k` for `s`.
inline prepare_msg prepare_of(const submit_msg& s, size_t k,
                              std::vector<last_resort_attachment> lr = {}) {
  return prepare_msg{s.c, digests_of(s), s.ambs.at(k), std::move(lr)};
}

/// D of a SUBMIT (`s.c` must be canonical).
inline hash32 digest_of(const submit_msg& s) {
  auto h = hash_common(s.c);
  EXPECT_TRUE(h.has_value());
  return entry_digest(h ? *h : hash32{}, blocks_root(digests_of(s)));
}

/// A log entry a lying router makes of `s` at `index` on top of `before` (the state after
/// index - 1), without asking any mirror.
inline log_entry forge_entry(const submit_msg& s, uint64_t index, const conv_state& before) {
  log_entry e;
  e.index = index;
  e.c = s.c;
  e.body = s.body;
  e.blocks = s.blocks;
  e.ambs = s.ambs;
  e.blocks_root = blocks_root(digests_of(s));
  e.d = digest_of(s);
  const hash32* prev = before.t_at(index - 1);
  e.t_prev = prev != nullptr ? *prev : hash32{};
  e.t = transcript_hash(s.c.conv, index, e.t_prev, e.d);
  e.slots = slots(&before, s.c);
  for (const auto& a : s.c.adds)
    e.joiners.push_back(a.id);
  return e;
}

/// A block of random bytes: what a party without the key can make.
inline block random_block(crypto::rng& r) {
  block b;
  r.fill(b.x);
  b.ref = key_ref{key_kind::ratchet, 1, {}};
  r.fill(b.nonce);
  r.fill(b.ct);
  return b;
}

/// Hooks that make an author seal garbage into its block for `victim` (equivocation).
inline client_test_hooks garbage_block_for(std::string victim) {
  client_test_hooks h;
  h.on_block = [victim = std::move(victim)](const std::string& r, slot_block& b) {
    if (r == victim)
      ciphertext_of(b)[3] ^= 1;
  };
  return h;
}

/// D_i per conversation, for mirrors a test drives by hand.
struct d_history : mirror_history {
  std::map<conv_id, std::map<uint64_t, hash32>> d;
  std::optional<hash32> d_at(const conv_id& conv, uint64_t i) const override {
    auto c = d.find(conv);
    if (c == d.end())
      return std::nullopt;
    auto x = c->second.find(i);
    if (x == c->second.end())
      return std::nullopt;
    return x->second;
  }
  /// Runs COMMIT on `m` and records D when the mirror says to persist.
  commit_outcome commit(mirror& m, const commit_msg& cm, uint64_t now, crypto::rng& r) {
    commit_outcome o = m.commit(cm, *this, now, r);
    if (o.persist)
      d[cm.payload.c.conv][o.index] = o.d;
    return o;
  }
};

/// The reason of a mirror's REJECT, or "" when `r` is not one.
inline std::string reject_reason(const link_response& r) {
  const auto* j = std::get_if<link_reject>(&r);
  return j == nullptr ? std::string() : j->reason;
}

/// A mirror's status in `conv`: its next index.
// Alice and bob (both added already) talk in a conversation of their own until bob deletes the
// PREKEY alice first used: returns that key, which a lying directory can hand out again.
inline std::optional<key_ref> used_prekey_of_bob(world& w) {
  const conv_id first = *w.create("alice", {"bob"});
  w.run();
  if (!w.send("bob", first, "hi").has_value())
    return std::nullopt;
  w.run();
  if (!w.send("alice", first, "hi back").has_value())
    return std::nullopt;
  w.run();
  const auto& used = w.user("bob").keys().used_prekeys();
  if (used.size() != 1)
    return std::nullopt;
  const uint64_t id = used.begin()->first;
  return key_ref{key_kind::prekey, id, w.user("bob").keys().published().at({key_kind::prekey, id})};
}

inline uint64_t mirror_next(world& w, size_t k, const conv_id& conv) {
  return w.mirror_at(k).m.status(conv).next;
}

}  // namespace cowpi::sim::adv

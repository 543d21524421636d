// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, pairwise channels: simultaneous and pipelined first contact, fresh nonces on
// rebuild and rollback, and a member offline past its LAST_RESORT rotation.
#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

#include <set>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

const block& block_for(const submit_msg& s, const std::string& r) {
  auto it = std::find_if(s.blocks.begin(), s.blocks.end(),
                         [&](const recipient_block& b) { return b.recipient == r; });
  EXPECT_NE(it, s.blocks.end());
  return std::get<block>(it->blk);
}

// Every nonce and one-shot ephemeral a SUBMIT carries (blocks, ambs, the body's nonce).
std::set<bytes> randomness_of(const submit_msg& s) {
  std::set<bytes> out;
  auto add = [&](const slot_block& sb) {
    const block& b = std::get<block>(sb);
    out.emplace(b.nonce.begin(), b.nonce.end());
    out.emplace(b.x.begin(), b.x.end());
  };
  for (const auto& rb : s.blocks)
    add(rb.blk);
  for (const auto& b : s.ambs)
    add(b);
  if (s.body)
    out.emplace(s.body->begin(), s.body->begin() + 24);
  return out;
}

bool disjoint(const std::set<bytes>& a, const std::set<bytes>& b) {
  return std::none_of(a.begin(), a.end(), [&](const bytes& x) { return b.contains(x); });
}

TEST(ratchet, simultaneous_first_blocks_in_both_directions_are_both_read) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  // Carol creates: alice and bob have never exchanged a block.
  const conv_id conv = *w.create("carol", {"alice", "bob"});
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "hi bob").has_value());
  const submit_msg from_alice = std::get<to_router>(w.network().back()).submit;
  ASSERT_TRUE(w.send("bob", conv, "hi alice").has_value());
  const submit_msg from_bob = std::get<to_router>(w.network().back()).submit;
  EXPECT_EQ(block_for(from_alice, "bob").ref.kind, key_kind::prekey);
  EXPECT_EQ(block_for(from_bob, "alice").ref.kind, key_kind::prekey);
  w.run();
  ASSERT_EQ(w.transcript("alice", conv).size(), 3u);
  for (const auto& u : trio)
    for (const auto& e : w.transcript(u, conv))
      EXPECT_FALSE(e.is_void) << u;
  EXPECT_EQ(text_of(*entry_at(w, "alice", conv, 2)), "hi alice");
  EXPECT_EQ(text_of(*entry_at(w, "bob", conv, 1)), "hi bob");

  // Both now hold the other's announced key and use it.
  ASSERT_TRUE(w.send("alice", conv, "again").has_value());
  const submit_msg next = std::get<to_router>(w.network().back()).submit;
  EXPECT_EQ(block_for(next, "bob").ref.kind, key_kind::ratchet);
  w.run();
  EXPECT_EQ(text_of(w.transcript("bob", conv).back()), "again");
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(ratchet, three_pipelined_first_contact_blocks_on_one_prekey_are_all_read) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  const conv_id conv = *w.create("carol", {"alice", "bob"});
  w.run();
  std::vector<submit_msg> sent;
  for (const auto* text : {"one", "two", "three"}) {
    ASSERT_TRUE(w.send("alice", conv, text).has_value());
    sent.push_back(std::get<to_router>(w.network().back()).submit);
  }
  const key_ref pre = block_for(sent[0], "bob").ref;
  ASSERT_EQ(pre.kind, key_kind::prekey);
  for (const auto& s : sent)
    EXPECT_EQ(block_for(s, "bob").ref, pre);
  w.run();
  const auto& t = w.transcript("bob", conv);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(text_of(t[1]), "one");
  EXPECT_EQ(text_of(t[2]), "two");
  EXPECT_EQ(text_of(t[3]), "three");
  EXPECT_TRUE(alarms_of(w, "bob", alarm_kind::directory).empty());
  EXPECT_TRUE(w.user("bob").keys().prekeys().contains(pre.id));

  // Once alice references bob's RATCHET key on that channel, the pre-key is gone.
  ASSERT_TRUE(w.send("bob", conv, "got them").has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "good").has_value());
  const submit_msg after = std::get<to_router>(w.network().back()).submit;
  EXPECT_EQ(block_for(after, "bob").ref.kind, key_kind::ratchet);
  w.run();
  EXPECT_EQ(text_of(w.transcript("bob", conv).back()), "good");
  EXPECT_FALSE(w.user("bob").keys().prekeys().contains(pre.id));
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(ratchet, a_message_rebuilt_after_stale_uses_fresh_nonces_and_ephemerals) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  ASSERT_TRUE(w.send("carol", conv, "rebuild me").has_value());
  const to_router original = std::get<to_router>(w.network().back());
  w.run();
  ASSERT_TRUE(w.log(conv).contains(2));
  const log_entry& rebuilt = w.log(conv).at(2).e;
  ASSERT_EQ(rebuilt.c.author, "carol");
  EXPECT_EQ(rebuilt.c.aseq, original.aseq);
  submit_msg again{rebuilt.c, rebuilt.body, rebuilt.blocks, rebuilt.ambs, std::nullopt};
  EXPECT_NE(digest_of(again), digest_of(original.submit));
  EXPECT_TRUE(disjoint(randomness_of(original.submit), randomness_of(again)));
  EXPECT_EQ(text_of(*entry_at(w, "dave", conv, 2)), "rebuild me");
  EXPECT_TRUE(no_alarms(w, {"alice", "bob", "carol", "dave"}));
}

TEST(ratchet, a_client_rolled_back_and_sending_again_uses_fresh_nonces_and_ephemerals) {
  world w;
  const conv_id conv = start_group(w, trio);
  client_node& n = w.node("alice");
  auto saved = std::make_unique<client>(n.c->clone());
  ASSERT_TRUE(w.send("alice", conv, "lost in the crash").has_value());
  const to_router lost = take_last_submit(w);

  // Alice's device comes back from the older copy: it never sent `lost`.
  n.persisted = std::move(saved);
  w.crash("alice");
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "sent after the crash").has_value());
  const to_router replacement = std::get<to_router>(w.network().back());
  EXPECT_EQ(replacement.aseq, lost.aseq);  // the same aseq, so the same channel position
  EXPECT_TRUE(disjoint(randomness_of(lost.submit), randomness_of(replacement.submit)));
  w.run();
  EXPECT_EQ(text_of(w.transcript("bob", conv).back()), "sent after the crash");
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(ratchet, a_member_offline_past_its_last_resort_rotation_still_verifies_its_pending_entries) {
  world_options o;
  // Keep pre-keys alive for the whole test so that only LAST_RESORT retention is exercised.
  o.client_opts.prekey_max_age = 365 * 24 * 3600;
  world w(o);
  const conv_id conv = start_group(w, trio);
  const uint64_t old_lr = w.user("bob").keys().current_last_resort_id();
  w.set_online("bob", false);
  ASSERT_TRUE(w.send("alice", conv, "while you were away").has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "still away?").has_value());
  w.run();
  // The mirrors' blocks for bob name his LAST_RESORT key: he never announced one to them.
  const auto& se = w.log(conv).at(1);
  const size_t slot = static_cast<size_t>(
      std::lower_bound(se.e.slots.begin(), se.e.slots.end(), "bob") - se.e.slots.begin());
  for (const auto& a : se.answers) {
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(std::get<block>((*a)[slot]).ref.kind, key_kind::last_resort);
    EXPECT_EQ(std::get<block>((*a)[slot]).ref.id, old_lr);
  }

  // Past the rotation period bob rotates, and past the grace period he expires old keys.
  const client_options& co = w.user("bob").options();
  w.advance_time(co.last_resort_period + 1);
  const upload_prekeys up = w.user("bob").make_prekeys(0, w.now(), w.rng());
  ASSERT_TRUE(up.last_resort.has_value());
  EXPECT_NE(up.last_resort->id, old_lr);
  w.advance_time(co.last_resort_grace + 1);
  (void)w.user("bob").expire_keys(w.now());
  EXPECT_TRUE(w.user("bob").keys().last_resort().contains(old_lr));

  w.set_online("bob", true);
  w.run();
  const auto& t = w.transcript("bob", conv);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(text_of(t[1]), "while you were away");
  EXPECT_EQ(text_of(t[2]), "still away?");
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

// The floor a client sends in RETIRE_PREKEYS: every PREKEY below it is used or gone, the one at
// it still waits for a first contact; once all expire it is the next id to be made.
TEST(ratchet, the_prekey_retire_floor_is_the_oldest_key_still_waiting_for_a_first_contact) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("bob", conv, "hi").has_value());
  w.run();
  client& bob = w.user("bob");
  size_t bound = 0;
  for (const auto& [id, slot] : bob.keys().prekeys())
    bound += slot.bound ? 1 : 0;
  ASSERT_GE(bound + bob.keys().used_prekeys().size(), 1u) << "alice's SETUP named one of them";
  const uint64_t floor = bob.prekey_retire_floor();
  auto at = bob.keys().prekeys().find(floor);
  ASSERT_NE(at, bob.keys().prekeys().end());
  EXPECT_FALSE(at->second.bound.has_value());
  for (auto it = bob.keys().prekeys().begin(); it != at; ++it)
    EXPECT_TRUE(it->second.bound.has_value()) << it->first;

  w.advance_time(bob.options().prekey_max_age + 1);
  ASSERT_TRUE(bob.expire_keys(w.now()));
  const uint64_t next = bob.keys().next_prekey_id();
  EXPECT_EQ(bob.prekey_retire_floor(), next);
  const upload_prekeys up = bob.make_prekeys(2, w.now(), w.rng());
  ASSERT_EQ(up.one_time.size(), 2u);
  EXPECT_EQ(up.one_time.front().id, next);
  EXPECT_EQ(bob.prekey_retire_floor(), next);
}

}  // namespace
}  // namespace cowpi::sim::adv

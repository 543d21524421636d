// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, a member lies: it equivocates (garbage block, different seed, equivocating
// SETUP/UPDATE), wedges the ordering (amb valid at one mirror only, random parent hash), and
// still cannot stop the others.
#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

client_test_hooks other_seed_for(std::string victim, world& w) {
  client_test_hooks h;
  h.on_seed = [victim, &w](const std::string& r, crypto::secret<32>& seed) {
    if (r == victim)
      seed = w.rng().secret_bytes<32>();
  };
  return h;
}

// The RECEIPT `author` most recently had ordered, as seen by `viewer`.
const accepted_entry* last_receipt_of(world& w, const std::string& viewer, const conv_id& conv,
                                      const std::string& author) {
  const accepted_entry* out = nullptr;
  for (const auto& e : w.transcript(viewer, conv))
    if (e.type == msg_type::receipt && e.author == author)
      out = &e;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Equivocation.

TEST(member_equivocates, a_garbage_block_for_one_recipient_voids_it_there_and_is_reported) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.user("alice").set_hooks_for_test(garbage_block_for("bob"));
  ASSERT_TRUE(w.send("alice", conv, "hello").has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();

  // Ordered for everyone; unreadable for bob alone.
  ASSERT_EQ(w.transcript("bob", conv).size(), 2u);
  const accepted_entry& voided = w.transcript("bob", conv)[1];
  EXPECT_TRUE(voided.is_void);
  EXPECT_TRUE(voided.plaintext.empty());
  EXPECT_EQ(text_of(w.transcript("carol", conv)[1]), "hello");
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::sender);
  EXPECT_EQ(al[0].party, "alice");
  EXPECT_EQ(al[0].index, 1u);
  EXPECT_FALSE(al[0].halted);
  EXPECT_TRUE(no_alarms(w, {"alice", "carol"}));

  // Bob's RECEIPT names #1 as unread; carol's does not.
  w.advance_time(60);
  w.receipts_due();
  w.run();
  const accepted_entry* rb = last_receipt_of(w, "alice", conv, "bob");
  const accepted_entry* rc = last_receipt_of(w, "alice", conv, "carol");
  ASSERT_NE(rb, nullptr);
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(rb->voids, std::vector<uint64_t>{1});
  EXPECT_TRUE(rc->voids.empty());
  EXPECT_TRUE(w.user("bob").find(conv)->voids_pending.empty());

  // The conversation goes on, readable for all.
  ASSERT_TRUE(w.send("alice", conv, "can you read this?").has_value());
  w.run();
  EXPECT_EQ(text_of(w.transcript("bob", conv).back()), "can you read this?");
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(member_equivocates, a_different_seed_for_one_recipient_is_caught_by_the_commitment) {
  world w;
  const conv_id conv = start_group(w, trio);
  // Bob answers once, so alice's next block to him announces a new key.
  ASSERT_TRUE(w.send("bob", conv, "hi").has_value());
  w.run();
  const auto before = w.user("bob").find(conv)->channels.at("alice").peer_latest;
  ASSERT_TRUE(before.has_value());

  w.user("alice").set_hooks_for_test(other_seed_for("bob", w));
  ASSERT_TRUE(w.send("alice", conv, "yes").has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::sender);
  EXPECT_EQ(al[0].party, "alice");
  EXPECT_FALSE(al[0].halted);
  const accepted_entry* voided = entry_at(w, "bob", conv, 2);
  ASSERT_NE(voided, nullptr);
  EXPECT_TRUE(voided->is_void);
  EXPECT_TRUE(voided->plaintext.empty());  // never a plaintext other than carol's
  EXPECT_EQ(text_of(*entry_at(w, "carol", conv, 2)), "yes");
  // VOID applies nothing from the author block: not even its announced key.
  EXPECT_EQ(w.user("bob").find(conv)->channels.at("alice").peer_latest, before);
  EXPECT_TRUE(no_alarms(w, {"alice", "carol"}));
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(member_equivocates, a_garbage_block_in_a_receipt_voids_it_for_that_recipient_only) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "acknowledge me").has_value());
  w.run();
  w.user("carol").set_hooks_for_test(garbage_block_for("bob"));
  ASSERT_TRUE(w.receipt("carol", conv).has_value());
  w.user("carol").set_hooks_for_test({});
  w.run();
  const accepted_entry* at_bob = entry_at(w, "bob", conv, 2);
  const accepted_entry* at_alice = entry_at(w, "alice", conv, 2);
  ASSERT_NE(at_bob, nullptr);
  ASSERT_NE(at_alice, nullptr);
  EXPECT_EQ(at_bob->type, msg_type::receipt);
  EXPECT_TRUE(at_bob->is_void);
  EXPECT_FALSE(at_alice->is_void);
  ASSERT_EQ(alarms_of(w, "bob", alarm_kind::sender).size(), 1u);
  // What C says still applies: carol's receipt floor moves at bob as everywhere.
  EXPECT_EQ(w.user("bob").find(conv)->st.receipt_floor.at("carol").value, 1);
  EXPECT_EQ(w.user("bob").find(conv)->st, w.user("alice").find(conv)->st);
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(member_equivocates, an_update_with_a_garbage_block_for_one_member_halts_only_that_member) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  w.user("alice").set_hooks_for_test(garbage_block_for("bob"));
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();

  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::sender);
  EXPECT_EQ(al[0].party, "alice");
  EXPECT_EQ(al[0].index, 1u);
  EXPECT_TRUE(al[0].halted);
  EXPECT_EQ(w.user("bob").find(conv)->status, conv_status::halted);
  EXPECT_EQ(w.user("bob").find(conv)->halt_index, 1u);
  EXPECT_EQ(w.transcript("bob", conv).size(), 1u);
  auto sent = w.send("bob", conv, "hello?");
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, errc::bad_state);

  // The others continue, and may remove the halted member.
  ASSERT_TRUE(w.send("carol", conv, "we go on").has_value());
  w.run();
  ASSERT_TRUE(w.update("carol", conv, {}, {"bob"}).has_value());
  w.run();
  ASSERT_TRUE(w.send("dave", conv, "without bob").has_value());
  w.run();
  const std::vector<std::string> rest{"alice", "carol", "dave"};
  for (const auto& u : rest) {
    EXPECT_EQ(text_of(w.transcript(u, conv).back()), "without bob") << u;
    EXPECT_FALSE(w.user(u).find(conv)->st.is_member("bob")) << u;
  }
  EXPECT_EQ(w.transcript("bob", conv).size(), 1u);  // still halted at #1
  EXPECT_EQ(alarms_of(w, "bob").size(), 1u);
  EXPECT_TRUE(no_alarms(w, rest));
  EXPECT_TRUE(same_history(w, conv, {"alice", "bob", "carol", "dave"}));
}

TEST(member_equivocates, an_update_carrying_a_seed_for_one_member_halts_only_that_member) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  w.user("alice").set_hooks_for_test(other_seed_for("bob", w));
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::sender);
  EXPECT_TRUE(al[0].halted);
  EXPECT_EQ(w.user("bob").find(conv)->status, conv_status::halted);
  for (const auto& u : {"alice", "carol", "dave"}) {
    EXPECT_EQ(next_of(w, u, conv), 2u) << u;
    EXPECT_TRUE(w.user(u).find(conv)->st.is_member("dave")) << u;
  }
  EXPECT_TRUE(no_alarms(w, {"alice", "carol", "dave"}));
}

TEST(member_equivocates, a_setup_with_a_garbage_block_for_one_member_is_refused_by_it_alone) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  w.user("alice").set_hooks_for_test(garbage_block_for("bob"));
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  w.user("alice").set_hooks_for_test({});
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::sender);
  EXPECT_EQ(al[0].index, 0u);
  EXPECT_EQ(w.user("bob").find(conv), nullptr);  // bob takes no part in it
  EXPECT_TRUE(w.transcript("bob", conv).empty());

  ASSERT_TRUE(w.send("carol", conv, "just us").has_value());
  w.run();
  EXPECT_EQ(text_of(w.transcript("alice", conv).back()), "just us");
  EXPECT_TRUE(w.transcript("bob", conv).empty());
  EXPECT_EQ(alarms_of(w, "bob").size(), 1u);
  EXPECT_TRUE(no_alarms(w, {"alice", "carol"}));
  EXPECT_TRUE(same_history(w, conv, {"alice", "carol"}));
}

// ---------------------------------------------------------------------------------------------
// Wedging.

TEST(member_wedges, an_amb_valid_at_one_mirror_only_is_rejected_at_prepare_and_uses_no_index) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  client_test_hooks h;
  h.on_amb = [](const std::string& mirror_id, slot_block& b) {
    if (mirror_id == "mirror-b")
      ciphertext_of(b)[0] ^= 1;
  };
  w.user("alice").set_hooks_for_test(h);
  ASSERT_TRUE(w.send("alice", conv, "wedge").has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();

  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::mirror_reject);
  EXPECT_EQ(rej[0].detail, "amb_does_not_verify");
  EXPECT_EQ(router_next(w, conv), 1u);
  EXPECT_FALSE(w.log(conv).contains(1));
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(mirror_next(w, k, conv), 1u);
  for (const auto& u : trio)
    EXPECT_EQ(w.transcript(u, conv).size(), 1u) << u;
  EXPECT_TRUE(no_alarms(w, trio));

  // #1 is still free: the next message takes it.
  ASSERT_TRUE(w.send("bob", conv, "not wedged").has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "nor am I").has_value());
  w.run();
  for (const auto& u : trio) {
    ASSERT_EQ(w.transcript(u, conv).size(), 3u) << u;
    EXPECT_EQ(w.transcript(u, conv)[1].index, 1u) << u;
  }
  EXPECT_EQ(text_of(w.transcript("carol", conv)[1]), "not wedged");
  EXPECT_EQ(text_of(w.transcript("carol", conv)[2]), "nor am I");
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(member_wedges, a_random_parent_hash_is_rejected_by_the_mirrors_and_never_reaches_a_member) {
  world w;
  const conv_id conv = start_group(w, trio);
  client_test_hooks h;
  h.on_common = [&w](common& c) { w.rng().fill(c.parent_hash); };
  w.user("alice").set_hooks_for_test(h);
  ASSERT_TRUE(w.send("alice", conv, "wedge").has_value());
  w.user("alice").set_hooks_for_test({});
  const to_router m = take_last_submit(w);

  // A router that colludes and forwards it anyway: every mirror refuses.
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(m.submit, k), w.now())),
              "invalid:parent_hash")
        << k;
  // An honest router refuses it before PREPARE.
  network_tap tap(w);
  w.network().push_back(m);
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::invalid);
  EXPECT_EQ(rej[0].detail, "parent_hash");
  EXPECT_EQ(router_next(w, conv), 1u);
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(mirror_next(w, k, conv), 1u);
  EXPECT_TRUE(no_alarms(w, trio));

  ASSERT_TRUE(w.send("carol", conv, "index one is free").has_value());
  w.run();
  for (const auto& u : trio)
    EXPECT_EQ(w.transcript(u, conv).size(), 2u) << u;
  EXPECT_TRUE(no_alarms(w, trio));
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(member_wedges, a_receipt_voiding_entries_outside_its_range_is_refused_before_ordering) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "one").has_value());
  w.run();
  ASSERT_TRUE(w.receipt("bob", conv).has_value());  // bob's floor becomes 1
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "two").has_value());
  w.run();
  // Bob claims he could not read #1 again (at or below his floor).
  client_test_hooks h;
  h.on_common = [](common& c) {
    if (c.type == msg_type::receipt)
      c.voids = {1};
  };
  w.user("bob").set_hooks_for_test(h);
  ASSERT_TRUE(w.receipt("bob", conv).has_value());
  w.user("bob").set_hooks_for_test({});
  const to_router m = take_last_submit(w);
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(m.submit, k), w.now())),
              "invalid:voids")
        << k;
  network_tap tap(w);
  w.network().push_back(m);
  w.run();
  const auto rej = tap.rejections_for("bob");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::invalid);
  EXPECT_EQ(rej[0].detail, "voids");
  EXPECT_EQ(router_next(w, conv), 4u);
  EXPECT_TRUE(no_alarms(w, trio));
  EXPECT_TRUE(same_history(w, conv, trio));
}

// ---------------------------------------------------------------------------------------------
// No member alone can stop the others.

TEST(no_single_member, one_that_equivocates_wedges_and_goes_silent_cannot_stop_the_others) {
  world w;
  const std::vector<std::string> group{"alice", "bob", "mallory"};
  const conv_id conv = start_group(w, group);
  client& mallory = w.user("mallory");
  network_tap tap(w);

  // Garbage blocks for everyone: ordered, VOID for all.
  client_test_hooks garbage;
  garbage.on_block = [](const std::string&, slot_block& b) { ciphertext_of(b)[0] ^= 1; };
  mallory.set_hooks_for_test(garbage);
  ASSERT_TRUE(w.send("mallory", conv, "noise").has_value());
  w.run();
  // An amb no mirror accepts, then a random parent hash: both refused before ordering.
  client_test_hooks bad_amb;
  bad_amb.on_amb = [](const std::string&, slot_block& b) { std::get<block>(b).nonce[0] ^= 1; };
  mallory.set_hooks_for_test(bad_amb);
  ASSERT_TRUE(w.send("mallory", conv, "wedge one").has_value());
  w.run();
  client_test_hooks bad_parent;
  bad_parent.on_common = [&w](common& c) { w.rng().fill(c.parent_hash); };
  mallory.set_hooks_for_test(bad_parent);
  ASSERT_TRUE(w.send("mallory", conv, "wedge two").has_value());
  w.run();
  mallory.set_hooks_for_test({});
  EXPECT_EQ(tap.rejections_for("mallory").size(), 2u);
  // Then mallory goes silent for good: she never acknowledges anything again.
  w.set_online("mallory", false);

  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(w.send("alice", conv, "a" + std::to_string(k)).has_value());
    w.run();
    ASSERT_TRUE(w.send("bob", conv, "b" + std::to_string(k)).has_value());
    w.run();
  }
  for (const auto& u : {"alice", "bob"}) {
    const auto& t = w.transcript(u, conv);
    ASSERT_EQ(t.size(), 8u) << u;
    EXPECT_TRUE(t[1].is_void) << u;
    EXPECT_EQ(t[1].author, "mallory") << u;
    for (size_t k = 2; k < t.size(); ++k)
      EXPECT_FALSE(t[k].is_void) << u;
    EXPECT_EQ(text_of(t.back()), "b2") << u;
    const auto al = alarms_of(w, u);
    ASSERT_EQ(al.size(), 1u) << u;
    EXPECT_EQ(al[0].kind, alarm_kind::sender) << u;
    EXPECT_EQ(al[0].party, "mallory") << u;
  }
  EXPECT_TRUE(same_history(w, conv, group));
}

}  // namespace
}  // namespace cowpi::sim::adv

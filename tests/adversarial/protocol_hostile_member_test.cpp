// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, a hostile member attacks the others and the providers through the values it
// controls: members' long-term keys (low-order, or not the directory's), LAST_RESORT attachments,
// floods of VOID entries and of UPDATEs, low-order announced RATCHET keys; and a lying directory
// that hands out a used pre-key. None of it may crash a party, wedge the conversation, or get an
// honest member blamed.
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/validate.hpp"

#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

// Two keys no DH may use: the all-zero point and u = 1 (order 4).
public_key zero_key() {
  return public_key{};
}
public_key order_four_key() {
  public_key k{};
  k[0] = 1;
  return k;
}

// A SUBMIT `author` makes by hand for `c`: random blocks for `recipients` (what a member puts
// in its blocks is its own business) and valid author->mirror blocks under each mirror's
// LAST_RESORT key, so that the mirrors authenticate it and look at nothing else.
submit_msg hand_made(world& w, const std::string& author, common c,
                     std::vector<std::string> recipients) {
  submit_msg s;
  std::sort(recipients.begin(), recipients.end());
  std::vector<block_digest> digests;
  for (const auto& r : recipients) {
    block b = random_block(w.rng());
    digests.push_back(block_digest{r, block_hash(b)});
    s.blocks.push_back(recipient_block{r, b});
  }
  auto h_c = hash_common(c);
  EXPECT_TRUE(h_c.has_value());
  const hash32 root = blocks_root(digests);
  for (size_t k = 0; k < w.ms().size(); ++k) {
    const member& o = w.ms()[k];
    const auto lr = w.mirror_at(k).m.keys().current_last_resort();
    EXPECT_TRUE(lr.has_value());
    channel ch;
    uint64_t counter = 0;
    const send_target t{key_ref{key_kind::last_resort, lr->id, lr->pub}, lr->pub};
    auto b = send_on_channel(w.user(author).self(), ch, counter, c.conv, o.id, o.lpk, t,
                             crypto::secret<32>{},
                             ad_amb(h_c ? *h_c : hash32{}, root, author, o.id), w.now(), w.rng());
    EXPECT_TRUE(b.has_value());
    s.ambs.push_back(b ? *b : block{});
  }
  s.c = std::move(c);
  return s;
}

// Alice's SETUP of a conversation with bob and carol in which bob's long-term key is `bob_key`.
common setup_naming(world& w, const conv_id& conv, const public_key& bob_key) {
  common c;
  c.conv = conv;
  c.type = msg_type::setup;
  c.author = "alice";
  c.aseq = 1;
  c.ms = w.ms();
  c.members = {w.user("alice").self().as_member(), member{"bob", bob_key},
               w.user("carol").self().as_member()};
  return c;
}

std::vector<last_resort_attachment> attachments_for(world& w, const member_list& members) {
  std::vector<last_resort_attachment> out;
  for (const auto& m : members) {
    const auto k = w.user(m.id).keys().current_last_resort();
    out.push_back(last_resort_attachment{m.id, k ? k->id : 0, k ? k->pub : public_key{}});
  }
  return out;
}

commit_msg commit_of(const submit_msg& s, uint64_t i, size_t k,
                     std::vector<last_resort_attachment> lr) {
  return commit_msg{i, digest_of(s), prepare_of(s, k, std::move(lr))};
}

// ---------------------------------------------------------------------------------------------
// 1. Low-order long-term keys and bad LAST_RESORT attachments never reach a DH at COMMIT.

TEST(hostile_member, validate_refuses_a_setup_or_update_naming_a_low_order_long_term_key) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  for (const public_key& bad : {zero_key(), order_four_key()}) {
    const common c = setup_naming(w, conv_id{1}, bad);
    std::vector<std::string> ids{"bob", "carol"};
    recipient_check rc;
    rc.full = &ids;
    auto r = validate(nullptr, false, c, rc, validate_at::exactly(0));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), rule::bad_key);
  }
  world w2;
  const conv_id conv = start_group(w2, trio);
  w2.add_user("dave");
  const conv_state& st = *w2.router(conv).state();
  common u;
  u.conv = conv;
  u.type = msg_type::update;
  u.author = "alice";
  u.aseq = 2;
  u.parent = 0;
  u.parent_hash = *st.t_at(0);
  u.ms = st.ms;
  u.adds = {member{"dave", order_four_key()}};
  u.members = apply_ops(st.members, u.adds, {});
  std::vector<std::string> ids{"bob", "carol", "dave"};
  recipient_check rc;
  rc.full = &ids;
  auto r = validate(&st, false, u, rc, validate_at::exactly(1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), rule::bad_key);
}

TEST(hostile_member, a_mirror_rejects_a_low_order_member_key_at_prepare_and_commit_and_lives_on) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  const conv_id conv{0x42};
  const common c = setup_naming(w, conv, order_four_key());
  const submit_msg s = hand_made(w, "alice", c, {"bob", "carol"});
  member_list named = c.members;
  std::vector<last_resort_attachment> lr = attachments_for(w, {named[0], named[2]});
  // Bob's attachment: his real LAST_RESORT key (a lying router would attach anything).
  const auto bob_lr = w.user("bob").keys().current_last_resort();
  lr.insert(lr.begin() + 1, last_resort_attachment{"bob", bob_lr->id, bob_lr->pub});

  mirror m = w.mirror_at(0).m.clone();
  d_history h;
  EXPECT_EQ(reject_reason(m.prepare(prepare_of(s, 0, lr), w.now())), "invalid:bad_key");
  // A lying router skips PREPARE: COMMIT re-verifies and refuses without changing anything
  // (it used to abort building bob's mirror block).
  const commit_outcome o = h.commit(m, commit_of(s, 0, 0, lr), w.now(), w.rng());
  EXPECT_FALSE(o.persist);
  EXPECT_EQ(reject_reason(o.response), "invalid:bad_key");
  EXPECT_EQ(m.find(conv), nullptr);

  // The same mirror orders the honest conversation that follows.
  ASSERT_TRUE(w.create("alice", {"bob", "carol"}).has_value());
  const to_router honest = take_last_submit(w);
  const commit_outcome ok =
      h.commit(m, commit_of(honest.submit, 0, 0, attachments_for(w, honest.submit.c.members)),
               w.now(), w.rng());
  EXPECT_TRUE(ok.persist);
  EXPECT_TRUE(std::holds_alternative<answer>(ok.response));
}

TEST(hostile_member, the_router_refuses_a_setup_naming_a_low_order_key_and_uses_no_index) {
  world w;
  network_tap tap(w);
  for (const auto& u : trio)
    w.add_user(u);
  const conv_id conv{0x43};
  const common c = setup_naming(w, conv, zero_key());
  w.network().push_back(to_router{"alice", 1, hand_made(w, "alice", c, {"bob", "carol"})});
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::invalid);
  EXPECT_EQ(rej[0].detail, "bad_key");
  EXPECT_EQ(router_next(w, conv), 0u);
  EXPECT_EQ(mirror_next(w, 0, conv), 0u);
  EXPECT_EQ(mirror_next(w, 1, conv), 0u);
}

// The mirror-a copy after SETUP and alice's UPDATE adding dave, laid out for index 1.
struct add_dave {
  world w;
  conv_id conv{};
  mirror m;
  d_history h;
  log_entry entry;

  add_dave() : conv(start_group(w, trio)), m(w.mirror_at(0).m.clone()) {
    h.d = w.mirror_at(0).d;
    w.add_user("dave");
    EXPECT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
    entry = forge_entry(take_last_submit(w).submit, 1, *w.router(conv).state());
    entry.last_resort = attachments_for(w, entry.c.adds);
  }
  commit_outcome commit(const log_entry& e) {
    return h.commit(m, commit_msg{1, e.d, e.prepare_for(0)}, w.now(), w.rng());
  }
};

TEST(hostile_member, every_last_resort_attachment_is_checked_not_only_the_first_per_member) {
  add_dave t;
  // Dave's real key, then an all-zero one for him: COMMIT used to store the last and abort.
  log_entry twice = t.entry;
  twice.last_resort.push_back(last_resort_attachment{"dave", 99, zero_key()});
  EXPECT_EQ(reject_reason(t.m.prepare(twice.prepare_for(0), t.w.now())), "bad_last_resort");
  commit_outcome o = t.commit(twice);
  EXPECT_FALSE(o.persist);
  EXPECT_EQ(reject_reason(o.response), "bad_last_resort");

  // Attachments for members nobody adds, or out of order, are refused too.
  log_entry extra = t.entry;
  const auto k = t.w.user("bob").keys().current_last_resort();
  extra.last_resort.push_back(last_resort_attachment{"eve", k->id, k->pub});
  EXPECT_EQ(reject_reason(t.m.prepare(extra.prepare_for(0), t.w.now())), "bad_last_resort");
  log_entry low = t.entry;
  low.last_resort[0].pub = order_four_key();
  EXPECT_EQ(reject_reason(t.m.prepare(low.prepare_for(0), t.w.now())), "bad_last_resort");
  EXPECT_EQ(t.m.status(t.conv).next, 1u);

  // The honest attachment still commits.
  o = t.commit(t.entry);
  EXPECT_TRUE(o.persist);
  EXPECT_TRUE(std::holds_alternative<answer>(o.response));
}

// ---------------------------------------------------------------------------------------------
// 2. A member named with a key that is not the directory's cannot wedge the conversation.

TEST(hostile_member, the_router_refuses_an_update_naming_a_member_with_another_key) {
  world w;
  network_tap tap(w);
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  w.add_user("mallory");
  client& alice = w.user("alice");
  ASSERT_TRUE(alice.add_bundles(conv, w.fetch("alice", {"dave"})).has_value());
  // Dave, under a key mallory holds.
  auto out =
      alice.update(conv, {member{"dave", w.user("mallory").self().lpk()}}, {}, w.now(), w.rng());
  ASSERT_TRUE(out.has_value());
  w.network().push_back(to_router{"alice", out->aseq, out->submit});
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_FALSE(rej.empty());
  EXPECT_EQ(rej.back().kind, rejection_kind::invalid);
  EXPECT_EQ(rej.back().detail, "member_key");
  EXPECT_EQ(router_next(w, conv), 1u);
}

TEST(hostile_member, a_member_named_with_a_wrong_key_never_blocks_sending_or_removing_it) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  w.add_user("mallory");
  // A lying router orders alice's UPDATE naming dave with mallory's key anyway.
  const public_key wrong = w.user("mallory").self().lpk();
  w.set_router_directory_for_test([&](const std::string& id) -> std::optional<directory_entry> {
    if (id != "dave")
      return std::nullopt;
    return directory_entry{wrong, w.user("dave").keys().current_last_resort()};
  });
  client& alice = w.user("alice");
  ASSERT_TRUE(alice.add_bundles(conv, w.fetch("alice", {"dave"})).has_value());
  auto out = alice.update(conv, {member{"dave", wrong}}, {}, w.now(), w.rng());
  ASSERT_TRUE(out.has_value());
  w.network().push_back(to_router{"alice", out->aseq, out->submit});
  w.run();
  w.set_router_directory_for_test(nullptr);
  ASSERT_EQ(next_of(w, "bob", conv), 2u);
  ASSERT_EQ(next_of(w, "carol", conv), 2u);

  // Bob cannot reach "dave" (the directory's dave has another key), yet he talks to the rest.
  ASSERT_TRUE(w.send("bob", conv, "still talking").has_value());
  w.run();
  EXPECT_EQ(w.user("bob").unreachable(conv), std::vector<std::string>{"dave"});
  EXPECT_EQ(text_of(w.transcript("carol", conv).back()), "still talking");
  EXPECT_EQ(text_of(w.transcript("alice", conv).back()), "still talking");
  // And removes it.
  ASSERT_TRUE(w.update("bob", conv, {}, {"dave"}).has_value());
  w.run();
  EXPECT_FALSE(w.user("carol").find(conv)->st.is_member("dave"));
  EXPECT_TRUE(w.user("bob").unreachable(conv).empty());
  ASSERT_TRUE(w.send("carol", conv, "back to three").has_value());
  w.run();
  EXPECT_EQ(text_of(w.transcript("bob", conv).back()), "back to three");
  EXPECT_TRUE(no_alarms(w, {"bob", "carol"}));
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(hostile_member, a_member_named_with_a_wrong_key_blames_the_router_not_a_mirror) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  w.add_user("mallory");
  const public_key wrong = w.user("mallory").self().lpk();
  w.set_router_directory_for_test([&](const std::string& id) -> std::optional<directory_entry> {
    auto entry = w.directory_of(id);
    if (id == "dave" && entry)
      entry->lpk = wrong;
    return entry;
  });
  client& alice = w.user("alice");
  ASSERT_TRUE(alice.add_bundles(conv, w.fetch("alice", {"dave"})).has_value());
  auto out = alice.update(conv, {member{"dave", wrong}}, {}, w.now(), w.rng());
  ASSERT_TRUE(out.has_value());
  w.network().push_back(to_router{"alice", out->aseq, out->submit});
  w.run();
  w.set_router_directory_for_test(nullptr);
  ASSERT_EQ(next_of(w, "bob", conv), 2u);
  // Dave refuses the UPDATE that names him under mallory's key. No mirror block for that key
  // opens for him, but it is the router's directory that lied, not a mirror: DIRECTORY against
  // the router (it used to be PROVIDER against the first mirror). Again on every redelivery.
  EXPECT_EQ(w.user("dave").find(conv), nullptr);
  for (int round = 0; round < 2; ++round) {
    const auto al = alarms_of(w, "dave");
    ASSERT_EQ(al.size(), static_cast<size_t>(round + 1));
    EXPECT_EQ(al.back().kind, alarm_kind::directory);
    EXPECT_EQ(al.back().party, "router");
    EXPECT_EQ(al.back().index, 1u);
    EXPECT_FALSE(al.back().halted);
    w.set_online("dave", false);
    w.set_online("dave", true);
    w.run();
  }
  EXPECT_EQ(w.user("dave").find(conv), nullptr);
  EXPECT_TRUE(no_alarms(w, trio));
}

// ---------------------------------------------------------------------------------------------
// 3. A flood of VOID entries never stops a victim's receipts, nor crashes it on a rebuild.

// Alice floods bob with `n` MESSAGEs he cannot read (in batches under the router's
// per-author queue limit).
void void_flood(world& w, const conv_id& conv, size_t n) {
  w.user("alice").set_hooks_for_test(garbage_block_for("bob"));
  for (size_t k = 0; k < n; ++k) {
    ASSERT_TRUE(w.send("alice", conv, "x").has_value());
    if (k % 50 == 49)
      w.run();
  }
  w.run();
  w.user("alice").set_hooks_for_test({});
}

TEST(hostile_member, a_void_flood_then_an_update_still_lets_the_victim_send_its_receipt) {
  world w;
  const conv_id conv = start_group(w, trio);
  void_flood(w, conv, max_voids + 1);
  ASSERT_EQ(w.user("bob").find(conv)->voids_pending.size(), max_voids + 1);
  w.add_user("dave");
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.run();
  const uint64_t update_at = w.user("bob").find(conv)->st.last_update;
  ASSERT_EQ(update_at, max_voids + 2);

  w.advance_time(60);
  ASSERT_TRUE(w.receipt("bob", conv).has_value());
  w.run();
  const accepted_entry& r = w.transcript("carol", conv).back();
  ASSERT_EQ(r.type, msg_type::receipt);
  EXPECT_EQ(r.author, "bob");
  EXPECT_EQ(*r.parent, update_at);  // never below the last UPDATE
  ASSERT_EQ(r.voids.size(), max_voids);
  EXPECT_EQ(r.voids.front(), 2u);  // the oldest that no longer fits is left out
  EXPECT_EQ(r.voids.back(), max_voids + 1);
  EXPECT_TRUE(w.user("bob").find(conv)->voids_pending.empty());
  ASSERT_TRUE(w.send("bob", conv, "still here").has_value());
  w.run();
  EXPECT_EQ(text_of(w.transcript("carol", conv).back()), "still here");
}

TEST(hostile_member, a_receipt_made_stale_by_an_update_after_a_void_flood_is_rebuilt_safely) {
  world w;
  const conv_id conv = start_group(w, trio);
  void_flood(w, conv, max_voids + 1);
  w.add_user("dave");
  // The UPDATE reaches the router first; bob's RECEIPT, built before he saw it, is STALE.
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.advance_time(60);
  ASSERT_TRUE(w.receipt("bob", conv).has_value());
  EXPECT_EQ(w.user("bob").find(conv)->outbox.back().versions.back().submit.c.parent, max_voids);
  w.run();  // used to dereference a null T_parent inside `receive` on the rebuild
  const accepted_entry* last = nullptr;
  for (const auto& e : w.transcript("carol", conv))
    if (e.type == msg_type::receipt && e.author == "bob")
      last = &e;
  ASSERT_NE(last, nullptr);
  EXPECT_GE(*last->parent, max_voids + 2);
  EXPECT_TRUE(w.user("bob").find(conv)->outbox.empty());
  EXPECT_TRUE(same_history(w, conv, trio));
}

// ---------------------------------------------------------------------------------------------
// 4. A lying directory handing out a used pre-key gets the blame, not the sender.

TEST(hostile_member, a_used_prekey_handed_to_a_new_sender_raises_directory_not_sender) {
  world w;
  for (const auto& u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  // Alice and bob talk: alice's first blocks to bob name one of his PREKEYs; once she
  // references his RATCHET key, bob deletes it.
  const std::optional<key_ref> used = used_prekey_of_bob(w);
  ASSERT_TRUE(used.has_value());

  // Dave sets up a conversation with bob and carol; the directory hands carol bob's used key.
  w.set_directory_interceptor([&](const std::string& requester, prekey_bundle& b) {
    if (requester == "carol" && b.owner == "bob")
      b.key = *used;
  });
  const conv_id second = *w.create("dave", {"bob", "carol"});
  w.run();
  ASSERT_TRUE(w.send("carol", second, "hello bob").has_value());
  w.run();
  w.set_directory_interceptor(nullptr);
  const accepted_entry* e = entry_at(w, "bob", second, 1);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->is_void);
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::directory);
  EXPECT_EQ(al[0].party, "router");
  EXPECT_TRUE(alarms_of(w, "bob", alarm_kind::sender).empty());
}

// ---------------------------------------------------------------------------------------------
// 5. A low-order announced RATCHET key: the peers fall back to its LAST_RESORT key.

TEST(hostile_member, a_low_order_announced_ratchet_key_makes_peers_fall_back_not_fail) {
  world w;
  const conv_id conv = start_group(w, trio);
  // Alice announces a low-order key to bob: her next block to him carries it.
  client_conv& ac = w.user("alice").mutable_convs().at(conv);
  channel& to_bob = ac.channels.at("bob");
  ASSERT_NE(to_bob.announced, 0u);
  uint64_t& counter = ac.ratchet_next.at("bob");
  const uint64_t id = counter++;
  owned_key bad = to_bob.mine.at(to_bob.announced).clone();
  bad.pub = order_four_key();
  to_bob.mine.emplace(id, std::move(bad));
  to_bob.announced = id;
  to_bob.announced_referenced = false;
  ASSERT_TRUE(w.send("alice", conv, "my key is broken").has_value());
  w.run();
  ASSERT_TRUE(w.user("bob").find(conv)->channels.at("alice").peer_latest.has_value());
  EXPECT_EQ(w.user("bob").find(conv)->channels.at("alice").peer_latest->pub, order_four_key());

  // Bob's next send does not fail: he falls back to a key the directory gives him.
  ASSERT_TRUE(w.send("bob", conv, "reaching you anyway").has_value());
  w.run();
  EXPECT_EQ(text_of(w.transcript("alice", conv).back()), "reaching you anyway");
  EXPECT_EQ(text_of(w.transcript("carol", conv).back()), "reaching you anyway");
  ASSERT_TRUE(w.receipt("bob", conv).has_value());
  w.run();
  EXPECT_TRUE(no_alarms(w, trio));
  EXPECT_TRUE(same_history(w, conv, trio));
}

// ---------------------------------------------------------------------------------------------
// 6. A halted member re-added after the halt starts afresh.

TEST(hostile_member, a_halted_member_readded_after_its_removal_rejoins) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("bob", conv, "b1").has_value());
  w.run();
  // Alice halts bob with an UPDATE whose block to him is garbage.
  w.add_user("dave");
  w.user("alice").set_hooks_for_test(garbage_block_for("bob"));
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();
  ASSERT_EQ(w.user("bob").find(conv)->status, conv_status::halted);
  // Carol removes him, then adds him again.
  ASSERT_TRUE(w.update("carol", conv, {}, {"bob"}).has_value());
  w.run();
  ASSERT_EQ(w.user("bob").find(conv)->status, conv_status::halted);
  ASSERT_TRUE(w.update("carol", conv, {"bob"}, {}).has_value());
  w.run();
  const client_conv* bc = w.user("bob").find(conv);
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(bc->status, conv_status::active);
  EXPECT_EQ(bc->st.next, router_next(w, conv));
  ASSERT_TRUE(w.send("bob", conv, "b2, back").has_value());
  w.run();
  const accepted_entry& last = w.transcript("dave", conv).back();
  EXPECT_EQ(last.author, "bob");
  EXPECT_EQ(last.aseq, 2u);
  EXPECT_EQ(text_of(last), "b2, back");
  EXPECT_TRUE(same_history(w, conv, {"alice", "carol", "dave"}));
}

TEST(hostile_member, a_rejoined_member_learns_its_aseq_from_the_router_when_it_guessed_wrong) {
  world w;
  network_tap tap(w);
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("bob", conv, "b1").has_value());
  ASSERT_TRUE(w.send("bob", conv, "b2").has_value());
  w.run();
  w.add_user("dave");
  w.user("alice").set_hooks_for_test(garbage_block_for("bob"));
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();
  ASSERT_TRUE(w.update("carol", conv, {}, {"bob"}).has_value());
  w.run();
  ASSERT_TRUE(w.update("carol", conv, {"bob"}, {}).has_value());
  w.run();
  // Bob's aseq is unknown after the halt; make his guess too low (as if entries of his had
  // been ordered while he was halted, the other way round).
  aseq_value& own = w.user("bob").mutable_convs().at(conv).st.aseq_last.at("bob");
  ASSERT_FALSE(own.known);
  own.value = 0;
  ASSERT_TRUE(w.send("bob", conv, "b3").has_value());
  w.run();
  bool gap = false;
  for (const auto& r : tap.rejections_for("bob"))
    gap = gap || r.kind == rejection_kind::aseq_gap;
  EXPECT_TRUE(gap);
  const accepted_entry& last = w.transcript("carol", conv).back();
  EXPECT_EQ(text_of(last), "b3");
  EXPECT_EQ(last.aseq, 3u);
  EXPECT_TRUE(w.user("bob").find(conv)->st.aseq_last.at("bob").known);
}

// ---------------------------------------------------------------------------------------------
// 7. A flood of UPDATEs cannot starve another member's MESSAGE.

TEST(hostile_member, an_update_flood_cannot_starve_a_message_under_the_default_interval) {
  world_options o;
  o.limits = intake_limits{};  // a real router's defaults
  world w(o);
  network_tap tap(w);
  const conv_id conv = start_group(w, trio);
  const int users = 30;
  for (int k = 0; k < users; ++k)
    w.add_user("u" + std::to_string(k));
  // Whenever bob's message is on its way to the router, alice gets an UPDATE in ahead of it,
  // so that it arrives STALE and bob must rebuild it; then the same again.
  int floods = 0;
  std::set<hash32> held_once;
  tap.tamper = [&](in_flight& m) {
    auto* s = std::get_if<to_router>(&m);
    if (s == nullptr || s->user != "bob" || floods >= users
        || !held_once.insert(digest_of(s->submit)).second)
      return true;
    const to_router held = *s;
    if (!w.update("alice", conv, {"u" + std::to_string(floods)}, {}).has_value())
      return true;
    ++floods;
    w.network().push_back(held);
    return false;
  };
  ASSERT_TRUE(w.send("bob", conv, "let me speak").has_value());
  w.run();
  tap.tamper = nullptr;
  bool sent = false;
  for (const auto& e : w.transcript("carol", conv))
    sent = sent || text_of(e) == "let me speak";
  EXPECT_TRUE(sent);
  // Alice's second UPDATE came too soon: refused, and bob's message went through right after.
  EXPECT_LE(floods, 2);
  bool limited = false;
  for (const auto& r : tap.rejections_for("alice"))
    limited = limited || (r.kind == rejection_kind::limit && r.detail == "update_rate");
  EXPECT_TRUE(limited);
}

}  // namespace
}  // namespace cowpi::sim::adv

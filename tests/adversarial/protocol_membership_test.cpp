// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, membership: racing UPDATEs, stale-membership races, abandoned and re-keying
// UPDATEs, lies told to a joiner, the joiner's unknown values, and the creator rule.
#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

size_t count_rejections(const network_tap& tap, const std::string& user, rejection_kind kind) {
  size_t n = 0;
  for (const auto& r : tap.rejections_for(user))
    n += r.kind == kind;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Races.

TEST(membership_race, racing_updates_lose_no_add) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  w.add_user("erin");
  network_tap tap(w);
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  ASSERT_TRUE(w.update("bob", conv, {"erin"}, {}).has_value());
  w.run();

  // Bob's UPDATE lost the race, was told STALE and was rebuilt on top of alice's.
  EXPECT_EQ(count_rejections(tap, "bob", rejection_kind::stale), 1u);
  const std::vector<std::string> all{"alice", "bob", "carol", "dave", "erin"};
  for (const auto& u : all) {
    const client_conv* cc = w.user(u).find(conv);
    ASSERT_NE(cc, nullptr) << u;
    EXPECT_TRUE(cc->st.is_member("dave")) << u;
    EXPECT_TRUE(cc->st.is_member("erin")) << u;
    EXPECT_EQ(cc->st.members.size(), 5u) << u;
  }
  const auto& t = w.transcript("carol", conv);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].author, "alice");
  EXPECT_EQ(t[2].author, "bob");
  EXPECT_EQ(t[2].aseq, 1u);  // rebuilt with the same aseq
  EXPECT_TRUE(same_history(w, conv, all));
  EXPECT_TRUE(no_alarms(w, all));
}

TEST(membership_race, a_message_racing_an_add_is_rebuilt_after_it_with_the_same_aseq) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  network_tap tap(w);
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  ASSERT_TRUE(w.send("carol", conv, "written before dave came").has_value());
  const uint64_t aseq = std::get<to_router>(w.network().back()).aseq;
  w.run();

  const auto rej = tap.rejections_for("carol");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::stale);
  EXPECT_EQ(rej[0].value, 1u);
  const accepted_entry* e = entry_at(w, "dave", conv, 2);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->author, "carol");
  EXPECT_EQ(e->aseq, aseq);
  EXPECT_EQ(*e->parent, 1u);
  EXPECT_EQ(text_of(*e), "written before dave came");
  EXPECT_TRUE(same_history(w, conv, {"alice", "bob", "carol", "dave"}));
  EXPECT_TRUE(no_alarms(w, {"alice", "bob", "carol", "dave"}));
}

TEST(membership_race, a_message_racing_a_removal_is_rebuilt_without_the_removed_member) {
  world w;
  const std::vector<std::string> four{"alice", "bob", "carol", "dave"};
  const conv_id conv = start_group(w, four);
  ASSERT_TRUE(w.update("alice", conv, {}, {"dave"}).has_value());
  ASSERT_TRUE(w.send("carol", conv, "not for dave").has_value());
  w.run();
  const auto& td = w.transcript("dave", conv);
  ASSERT_EQ(td.size(), 2u);
  EXPECT_EQ(td.back().type, msg_type::update);  // the UPDATE removing him, and nothing after
  EXPECT_EQ(w.user("dave").find(conv), nullptr);
  const auto& log = w.log(conv);
  ASSERT_TRUE(log.contains(2));
  const auto& blocks = log.at(2).e.blocks;
  EXPECT_TRUE(std::none_of(blocks.begin(), blocks.end(),
                           [](const recipient_block& b) { return b.recipient == "dave"; }));
  for (const auto& u : {"alice", "bob"})
    EXPECT_EQ(text_of(w.transcript(u, conv)[2]), "not for dave");
  EXPECT_TRUE(same_history(w, conv, four));
  EXPECT_TRUE(no_alarms(w, four));
}

TEST(membership_race, a_rebuilt_update_left_with_no_op_is_abandoned_and_later_messages_move_down) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  ASSERT_TRUE(w.update("bob", conv, {"dave"}, {}).has_value());
  ASSERT_TRUE(w.send("bob", conv, "after my update").has_value());
  w.run();

  const std::vector<std::string> all{"alice", "bob", "carol", "dave"};
  const auto& t = w.transcript("carol", conv);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].type, msg_type::update);
  EXPECT_EQ(t[1].author, "alice");
  // Bob's UPDATE had nothing left to do; his message took its aseq.
  EXPECT_EQ(t[2].type, msg_type::message);
  EXPECT_EQ(t[2].author, "bob");
  EXPECT_EQ(t[2].aseq, 1u);
  EXPECT_EQ(text_of(t[2]), "after my update");
  EXPECT_TRUE(w.user("bob").find(conv)->outbox.empty());
  EXPECT_TRUE(same_history(w, conv, all));
  EXPECT_TRUE(no_alarms(w, all));
}

// ---------------------------------------------------------------------------------------------
// Rules an UPDATE must follow.

TEST(membership_rules, an_update_rekeying_a_member_is_rejected_everywhere) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  // The client API refuses to add a member twice.
  auto again = w.update("alice", conv, {"carol"}, {});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, errc::invalid_argument);

  // A dishonest author slips a new key for carol into an UPDATE's resulting members.
  public_key other{};
  w.rng().fill(other);
  client_test_hooks h;
  h.on_common = [other](common& c) {
    for (auto& m : c.members)
      if (m.id == "carol")
        m.lpk = other;
  };
  w.user("alice").set_hooks_for_test(h);
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.user("alice").set_hooks_for_test({});
  const to_router m = take_last_submit(w);
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(m.submit, k), w.now())),
              "invalid:members_mismatch");
  network_tap tap(w);
  w.network().push_back(m);
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::invalid);
  EXPECT_EQ(rej[0].detail, "members_mismatch");
  EXPECT_EQ(router_next(w, conv), 1u);

  // Removing and re-adding carol with a new key in one UPDATE is refused as well.
  const conv_state& st = *w.router(conv).state();
  common c;
  c.conv = conv;
  c.type = msg_type::update;
  c.author = "alice";
  c.aseq = 2;
  c.parent = 0;
  c.parent_hash = *st.t_at(0);
  c.ms = st.ms;
  c.adds = {member{"carol", other}};
  c.removes = {"carol"};
  c.members = apply_ops(st.members, c.adds, c.removes);
  const auto ids = recipients(&st, c);
  recipient_check rc;
  rc.full = &ids;
  auto r = validate(&st, false, c, rc, validate_at::exactly(1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), rule::add_existing);
  EXPECT_TRUE(no_alarms(w, trio));
}

// ---------------------------------------------------------------------------------------------
// Joiners.

// Adds dave with `tamper` applied to dave's joining envelope; returns the UPDATE's index.
uint64_t add_dave_with(world& w, const conv_id& conv, network_tap& tap,
                       std::function<void(envelope&)> tamper) {
  bool done = false;
  tap.tamper = [&done, tamper](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (done || e == nullptr || e->user != "dave")
      return true;
    tamper(e->env);
    done = true;
    return true;
  };
  EXPECT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.run();
  EXPECT_TRUE(done);
  tap.tamper = nullptr;
  return router_next(w, conv) - 1;
}

void expect_joiner_refused_then_joins(world& w, const conv_id& conv, uint64_t u) {
  const auto al = alarms_of(w, "dave");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].index, u);
  EXPECT_EQ(w.user("dave").find(conv), nullptr);
  EXPECT_TRUE(w.transcript("dave", conv).empty());
  // The true envelope is accepted when it comes.
  w.redeliver("dave");
  w.run();
  ASSERT_EQ(w.transcript("dave", conv).size(), 1u);
  EXPECT_EQ(w.transcript("dave", conv)[0].index, u);
  EXPECT_TRUE(same_history(w, conv, {"alice", "bob", "carol", "dave"}));
}

TEST(joiner, an_envelope_with_a_different_mirror_set_is_refused_with_provider) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  network_tap tap(w);
  const uint64_t u = add_dave_with(w, conv, tap, [](envelope& e) { e.c.ms.back().lpk[0] ^= 1; });
  expect_joiner_refused_then_joins(w, conv, u);
}

TEST(joiner, an_envelope_with_a_wrong_previous_transcript_hash_is_refused_with_provider) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("bob", conv, "before dave").has_value());
  w.run();
  w.add_user("dave");
  network_tap tap(w);
  const uint64_t u = add_dave_with(w, conv, tap, [](envelope& e) { (*e.t_prev)[0] ^= 1; });
  expect_joiner_refused_then_joins(w, conv, u);
}

TEST(joiner, an_envelope_without_the_previous_transcript_hash_is_refused_with_provider) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("dave");
  network_tap tap(w);
  const uint64_t u = add_dave_with(w, conv, tap, [](envelope& e) { e.t_prev.reset(); });
  expect_joiner_refused_then_joins(w, conv, u);
}

TEST(joiner, a_first_setup_naming_a_different_mirror_set_is_refused_with_provider) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  network_tap tap(w);
  bool done = false;
  tap.tamper = [&](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (!done && e != nullptr && e->user == "bob") {
      e->env.c.ms.pop_back();
      e->env.mirror_blocks.pop_back();
      done = true;
    }
    return true;
  };
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  w.run();
  ASSERT_TRUE(done);
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(w.user("bob").find(conv), nullptr);
}

TEST(joiner, accepts_messages_and_receipts_of_members_it_never_saw_author) {
  world w;
  const conv_id conv = start_group(w, trio);
  // History dave will never see: messages, and a VOID bob has not reported yet.
  ASSERT_TRUE(w.send("carol", conv, "c1").has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "c2").has_value());
  w.run();
  w.user("alice").set_hooks_for_test(garbage_block_for("bob"));
  ASSERT_TRUE(w.send("alice", conv, "unreadable for bob").has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();
  w.add_user("dave");
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.run();
  const uint64_t u = router_next(w, conv) - 1;

  // Carol continues her aseq; bob reports a VOID from before dave joined.
  ASSERT_TRUE(w.send("carol", conv, "c3").has_value());
  w.run();
  ASSERT_TRUE(w.receipt("bob", conv).has_value());
  w.run();
  const auto& t = w.transcript("dave", conv);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].index, u);
  EXPECT_EQ(t[1].author, "carol");
  EXPECT_EQ(t[1].aseq, 3u);
  EXPECT_EQ(text_of(t[1]), "c3");
  EXPECT_EQ(t[2].type, msg_type::receipt);
  EXPECT_EQ(t[2].author, "bob");
  EXPECT_EQ(t[2].voids, std::vector<uint64_t>{3});
  EXPECT_FALSE(t[2].is_void);
  // Dave now knows what he saw: their aseqs and bob's receipt floor.
  const conv_state& st = w.user("dave").find(conv)->st;
  EXPECT_TRUE(st.aseq_last.at("carol").known);
  EXPECT_EQ(st.aseq_last.at("carol").value, 3u);
  EXPECT_TRUE(st.receipt_floor.at("bob").known);
  EXPECT_EQ(w.user("alice").find(conv)->st.receipt_floor.at("bob"), st.receipt_floor.at("bob"));
  EXPECT_TRUE(no_alarms(w, {"alice", "carol", "dave"}));
  EXPECT_TRUE(same_history(w, conv, {"alice", "bob", "carol", "dave"}));
}

TEST(joiner, accepts_a_member_readded_after_it_joined_who_continues_its_aseq) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("carol", conv, "c1").has_value());
  w.run();
  ASSERT_TRUE(w.update("alice", conv, {}, {"carol"}).has_value());
  w.run();
  w.add_user("dave");
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.run();
  ASSERT_TRUE(w.update("bob", conv, {"carol"}, {}).has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "c2, back again").has_value());
  w.run();
  const accepted_entry& last = w.transcript("dave", conv).back();
  EXPECT_EQ(last.author, "carol");
  EXPECT_EQ(last.aseq, 2u);  // her aseq continued across the removal
  EXPECT_EQ(text_of(last), "c2, back again");
  const std::vector<std::string> four{"alice", "bob", "carol", "dave"};
  EXPECT_TRUE(no_alarms(w, four));
  EXPECT_TRUE(same_history(w, conv, four, /*contiguous=*/false));
  // Carol holds no entry from her absence (#2 removed her, #4 re-added her).
  EXPECT_EQ(entry_at(w, "carol", conv, 3), nullptr);
}

// ---------------------------------------------------------------------------------------------
// The creator rule.

TEST(creator, never_accepts_someone_elses_setup_under_the_conv_id_it_chose) {
  world w;
  for (const auto& u : {"alice", "bob", "carol", "mallory"})
    w.add_user(u);
  network_tap tap(w);
  const conv_id chosen = *w.create("alice", {"bob", "carol"});
  // A colluding member takes alice's id with a SETUP of its own, ordered first.
  client_test_hooks h;
  h.on_common = [chosen](common& c) {
    if (c.type == msg_type::setup)
      c.conv = chosen;
  };
  w.user("mallory").set_hooks_for_test(h);
  ASSERT_TRUE(w.create("mallory", {"alice", "bob"}).has_value());
  w.user("mallory").set_hooks_for_test({});
  in_flight hijack = w.network().back();
  w.network().pop_back();
  w.network().push_front(hijack);
  w.run();

  const auto al = alarms_of(w, "alice");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].conv, chosen);
  EXPECT_EQ(al[0].index, 0u);
  EXPECT_EQ(w.user("alice").find(chosen), nullptr);
  EXPECT_TRUE(w.user("alice").tombstones().contains(chosen));
  EXPECT_TRUE(w.transcript("alice", chosen).empty());

  // Alice re-created her conversation under a fresh id, and everyone agrees on it.
  std::optional<conv_id> fresh;
  for (const auto& [id, cc] : w.user("alice").convs())
    if (id != chosen)
      fresh = id;
  ASSERT_TRUE(fresh.has_value());
  for (const auto& u : trio) {
    const auto& t = w.transcript(u, *fresh);
    ASSERT_EQ(t.size(), 1u) << u;
    EXPECT_EQ(t[0].type, msg_type::setup);
    EXPECT_EQ(t[0].author, "alice");
  }
  EXPECT_TRUE(same_history(w, *fresh, trio));
  EXPECT_TRUE(no_alarms(w, {"bob", "carol"}));
}

}  // namespace
}  // namespace cowpi::sim::adv

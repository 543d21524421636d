// SPDX-License-Identifier: Apache-2.0
// End-to-end conversations over the pure state machines (router, mirrors, clients).
#include "cowpi/sim/world.hpp"

#include <gtest/gtest.h>

namespace cowpi::sim {
namespace {

std::string text_of(const accepted_entry& e) {
  return std::string(e.plaintext.begin(), e.plaintext.end());
}

// Every pair of members agrees on D and T at every index both accepted.
void expect_same_transcripts(world& w, const conv_id& conv, const std::vector<std::string>& users) {
  for (size_t a = 0; a < users.size(); ++a) {
    for (size_t b = a + 1; b < users.size(); ++b) {
      std::map<uint64_t, hash32> ta;
      for (const auto& e : w.transcript(users[a], conv))
        ta[e.index] = e.t;
      size_t common = 0;
      for (const auto& e : w.transcript(users[b], conv)) {
        auto it = ta.find(e.index);
        if (it == ta.end())
          continue;
        ++common;
        EXPECT_EQ(it->second, e.t) << users[a] << " and " << users[b] << " differ at " << e.index;
      }
      EXPECT_GT(common, 0u);
    }
  }
}

// The client's rejection policy (§3.8): flow-control LIMITs are kept and resent (after the
// router's wait where it gives one), hints keep the entry, permanent refusals drop it; STALE
// and permanent refusals may rebuild, which needs keys.
TEST(rejection_plan, flow_control_limits_are_resent_hints_kept_and_verdicts_dropped) {
  using protocol::plan_rejection;
  using protocol::rejection;
  using protocol::rejection_kind;
  const auto pending = plan_rejection(rejection{rejection_kind::limit, 0, "pending"});
  EXPECT_EQ(pending.handled, (rejection{rejection_kind::unavailable, 0, "pending"}));
  EXPECT_TRUE(pending.keeps_message);
  EXPECT_EQ(pending.wait_s, 0u);
  EXPECT_FALSE(pending.needs_keys);

  const auto update = plan_rejection(rejection{rejection_kind::limit, 42, "update_rate"});
  EXPECT_EQ(update.handled.kind, rejection_kind::unavailable);
  EXPECT_EQ(update.handled.detail, "update_rate");
  EXPECT_TRUE(update.keeps_message);
  EXPECT_EQ(update.wait_s, 42u);
  EXPECT_EQ(plan_rejection(rejection{rejection_kind::limit, 0, "setup_rate"}).wait_s, 1u);
  EXPECT_EQ(plan_rejection(rejection{rejection_kind::limit, 1u << 30, "setup_rate"}).wait_s, 3600u);

  // Any other LIMIT is a verdict: the message is dropped.
  const auto pool = plan_rejection(rejection{rejection_kind::limit, 0, "prekey pool"});
  EXPECT_EQ(pool.handled.kind, rejection_kind::limit);
  EXPECT_FALSE(pool.keeps_message);
  EXPECT_TRUE(pool.needs_keys);
  EXPECT_FALSE(plan_rejection(rejection{rejection_kind::limit, 0, "Pending"}).keeps_message);

  for (auto k :
       {rejection_kind::unavailable, rejection_kind::aseq_gap, rejection_kind::already_ordered}) {
    const auto p = plan_rejection(rejection{k, 3, ""});
    EXPECT_EQ(p.handled, (rejection{k, 3, ""}));
    EXPECT_TRUE(p.keeps_message);
    EXPECT_FALSE(p.needs_keys);
  }
  const auto stale = plan_rejection(rejection{rejection_kind::stale, 7, ""});
  EXPECT_TRUE(stale.keeps_message);
  EXPECT_TRUE(stale.needs_keys);
  for (auto k : {rejection_kind::not_member, rejection_kind::invalid, rejection_kind::bad_body,
                 rejection_kind::stopped}) {
    const auto p = plan_rejection(rejection{k, 0, "x"});
    EXPECT_FALSE(p.keeps_message);
    EXPECT_TRUE(p.needs_keys);
  }
}

TEST(conversation, published_prekeys_are_handed_out_and_a_rotated_last_resort_replaces_the_old) {
  world w;
  w.add_user("bob");
  w.advance_time(8 * 24 * 3600);  // bob's LAST_RESORT key is due for rotation
  crypto::deterministic_rng r(7);
  const auto up = w.user("bob").make_prekeys(1, w.now(), r);
  ASSERT_EQ(up.one_time.size(), 1u);
  ASSERT_TRUE(up.last_resort.has_value());
  w.publish("bob", up);
  bool saw_one_time = false;
  std::optional<protocol::key_ref> last_resort;
  for (int k = 0; k < 1000 && !last_resort; ++k) {
    const auto b = w.fetch("requester-" + std::to_string(k), {"bob"});
    ASSERT_EQ(b.size(), 1u);
    if (b[0].key.kind == protocol::key_kind::last_resort)
      last_resort = b[0].key;
    else if (b[0].key.id == up.one_time[0].id)
      saw_one_time = (b[0].key.pub == up.one_time[0].pub);
  }
  EXPECT_TRUE(saw_one_time);
  ASSERT_TRUE(last_resort.has_value());
  EXPECT_EQ(last_resort->id, up.last_resort->id);
  EXPECT_EQ(last_resort->pub, up.last_resort->pub);
}

TEST(conversation, three_members_agree_on_setup_and_messages) {
  world w;
  for (auto u : {"alice", "bob", "carol"})
    w.add_user(u);
  auto conv = w.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  w.run();
  for (auto u : {"alice", "bob", "carol"}) {
    ASSERT_EQ(w.transcript(u, *conv).size(), 1u) << u;
    EXPECT_EQ(w.transcript(u, *conv)[0].type, msg_type::setup);
  }
  ASSERT_TRUE(w.send("alice", *conv, "hello").has_value());
  w.run();
  ASSERT_TRUE(w.send("bob", *conv, "hi alice").has_value());
  w.run();
  for (auto u : {"alice", "bob", "carol"}) {
    const auto& t = w.transcript(u, *conv);
    ASSERT_EQ(t.size(), 3u) << u;
    EXPECT_EQ(text_of(t[1]), "hello") << u;
    EXPECT_EQ(text_of(t[2]), "hi alice") << u;
    EXPECT_FALSE(t[1].is_void);
  }
  expect_same_transcripts(w, *conv, {"alice", "bob", "carol"});
  EXPECT_TRUE(w.alarms().empty());
}

TEST(conversation, pipelined_messages_from_several_authors_are_all_ordered) {
  world w;
  for (auto u : {"alice", "bob", "carol"})
    w.add_user(u);
  auto conv = *w.create("alice", {"bob", "carol"});
  w.run();
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(w.send("alice", conv, "a" + std::to_string(k)).has_value());
    ASSERT_TRUE(w.send("bob", conv, "b" + std::to_string(k)).has_value());
  }
  w.run();
  for (auto u : {"alice", "bob", "carol"})
    EXPECT_EQ(w.transcript(u, conv).size(), 11u) << u;
  expect_same_transcripts(w, conv, {"alice", "bob", "carol"});
  EXPECT_TRUE(w.alarms().empty());
}

TEST(conversation, receipts_offline_catch_up_add_and_remove) {
  world w;
  for (auto u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  auto conv = *w.create("alice", {"bob", "carol"});
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "one").has_value());
  w.run();
  w.advance_time(60);
  w.receipts_due();
  w.run();
  // Bob and carol acknowledged alice's message with RECEIPTs.
  size_t receipts = 0;
  for (const auto& e : w.transcript("alice", conv))
    receipts += e.type == msg_type::receipt;
  EXPECT_EQ(receipts, 2u);

  w.set_online("carol", false);
  for (int k = 0; k < 20; ++k)
    ASSERT_TRUE(w.send(k % 2 ? "alice" : "bob", conv, "m" + std::to_string(k)).has_value());
  w.run();
  w.set_online("carol", true);
  w.run();
  EXPECT_EQ(w.transcript("carol", conv).size(), w.transcript("alice", conv).size());

  ASSERT_TRUE(w.update("bob", conv, {"dave"}, {}).has_value());
  w.run();
  ASSERT_TRUE(w.send("dave", conv, "hi, I am new").has_value());
  w.run();
  ASSERT_TRUE(w.update("alice", conv, {}, {"carol"}).has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "after carol left").has_value());
  w.run();
  const auto& ta = w.transcript("alice", conv);
  EXPECT_EQ(text_of(ta.back()), "after carol left");
  // Carol received the UPDATE removing her and nothing after.
  EXPECT_EQ(w.transcript("carol", conv).back().type, msg_type::update);
  EXPECT_FALSE(w.user("carol").find(conv));
  // Dave's transcript starts at the UPDATE that added him.
  EXPECT_EQ(w.transcript("dave", conv).front().type, msg_type::update);
  EXPECT_EQ(text_of(w.transcript("dave", conv).back()), "after carol left");
  expect_same_transcripts(w, conv, {"alice", "bob", "carol", "dave"});
  EXPECT_TRUE(w.alarms().empty()) << w.alarms().begin()->second[0].evidence;
}

}  // namespace
}  // namespace cowpi::sim

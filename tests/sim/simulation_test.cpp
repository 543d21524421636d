// SPDX-License-Identifier: Apache-2.0
// The randomised simulation (seeded runs of users, mirrors and an adversary, every invariant
// checked after each step) and scripted adversary scenarios through the same driver.
#include "cowpi/protocol/limits.hpp"

#include "sim_driver.hpp"
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cowpi::sim {
namespace {

// The seeded runs are split into chunks so that CTest can run them in parallel. The
// environment can widen a local run: COWPI_SIM_SEEDS (per chunk), COWPI_SIM_FIRST_SEED.
constexpr int chunks = 8;
constexpr uint64_t default_seeds_per_chunk = 25;

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0')
    return fallback;
  return std::strtoull(v, nullptr, 10);
}

class random_runs : public ::testing::TestWithParam<int> {};

TEST_P(random_runs, keep_every_invariant_after_every_step) {
  const uint64_t per_chunk = env_or("COWPI_SIM_SEEDS", default_seeds_per_chunk);
  const uint64_t first =
      env_or("COWPI_SIM_FIRST_SEED", 1) + per_chunk * static_cast<uint64_t>(GetParam());
  sim_stats total;
  for (uint64_t seed = first; seed < first + per_chunk; ++seed) {
    sim_config cfg = config_for_seed(seed);
    cfg.trace_lines = env_or("COWPI_SIM_TRACE", cfg.trace_lines);
    prng_source src(seed);
    sim_stats s;
    auto v = run_simulation(cfg, src, &s);
    ASSERT_FALSE(v.has_value()) << "failing seed " << seed << " (" << cfg.describe() << ")\n"
                                << v->to_string();
    total.deliveries += s.deliveries;
    total.messages_sent += s.messages_sent;
    total.entries_accepted += s.entries_accepted;
    total.adversary_actions += s.adversary_actions;
    total.alarms += s.alarms;
    total.halts += s.halts;
    total.voids += s.voids;
    total.crashes += s.crashes;
    total.fs_checks += s.fs_checks;
    for (size_t k = 0; k < hostile_moves; ++k)
      total.hostile[k] += s.hostile[k];
  }
  // The runs did something: messages flowed, retired keys were probed (a chunk is large
  // enough for that; a single seed run from the environment need not be).
  if (per_chunk >= 10) {
    EXPECT_GT(total.messages_sent, per_chunk * 10);
    EXPECT_GT(total.entries_accepted, total.messages_sent);
    EXPECT_GT(total.fs_checks, 0u);
  }
  // Every hostile move happened in each chunk of the default seeds (fixed seeds: this does not
  // flake). Other seeds from the environment need not draw the rarest move (a halted member
  // re-added) in every chunk.
  if (std::getenv("COWPI_SIM_SEEDS") == nullptr && std::getenv("COWPI_SIM_FIRST_SEED") == nullptr) {
    for (size_t k = 0; k < hostile_moves; ++k)
      EXPECT_GT(total.hostile[k], 0u) << to_string(static_cast<hostile_move>(k));
  }
  std::string hostile;
  for (size_t k = 0; k < hostile_moves; ++k)
    hostile += std::string(k == 0 ? "" : ", ") + to_string(static_cast<hostile_move>(k)) + " "
               + std::to_string(total.hostile[k]);
  std::printf(
      "seeds %llu-%llu: %llu deliveries, %llu messages, %llu accepted entries, %llu "
      "adversary actions, %llu alarms, %llu halts, %llu VOIDs, %llu crashes, %llu "
      "forward-secrecy probes; hostile moves: %s\n",
      static_cast<unsigned long long>(first),
      static_cast<unsigned long long>(first + per_chunk - 1),
      static_cast<unsigned long long>(total.deliveries),
      static_cast<unsigned long long>(total.messages_sent),
      static_cast<unsigned long long>(total.entries_accepted),
      static_cast<unsigned long long>(total.adversary_actions),
      static_cast<unsigned long long>(total.alarms), static_cast<unsigned long long>(total.halts),
      static_cast<unsigned long long>(total.voids), static_cast<unsigned long long>(total.crashes),
      static_cast<unsigned long long>(total.fs_checks), hostile.c_str());
}

INSTANTIATE_TEST_SUITE_P(seeds, random_runs, ::testing::Range(0, chunks));

// -- Scripted scenarios ---------------------------------------------------------------------

sim_config scripted(size_t users, size_t mirrors, size_t lying) {
  sim_config c;
  c.seed = 4242;
  c.users = users;
  c.mirrors = mirrors;
  c.lying = lying;
  return c;
}

void expect_clean(sim_driver& d) {
  d.finish();
  ASSERT_FALSE(d.failed().has_value()) << d.failed()->to_string();
}

TEST(simulation, honest_runs_raise_no_alarm_and_deliver_everything) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    sim_config cfg = config_for_seed(seed);
    cfg.adversary = false;
    cfg.dishonest_members = false;
    prng_source src(seed);
    sim_stats s;
    auto v = run_simulation(cfg, src, &s);
    ASSERT_FALSE(v.has_value()) << v->to_string();
    EXPECT_EQ(s.alarms, 0u) << "seed " << seed;
    EXPECT_EQ(s.voids, 0u) << "seed " << seed;
  }
}

TEST(simulation, an_equivocating_update_halts_only_its_victim) {
  sim_driver d(scripted(5, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.cheat_update("alice", *conv, {"erin"}, {}, "carol"));
  d.deliver_all();
  const client_conv* cc = d.w().user("carol").find(*conv);
  ASSERT_NE(cc, nullptr);
  EXPECT_EQ(cc->status, conv_status::halted);
  ASSERT_TRUE(d.send("bob", *conv).has_value());
  ASSERT_TRUE(d.send("erin", *conv).has_value());
  d.deliver_all();
  expect_clean(d);
  EXPECT_EQ(d.stats().halts, 1u);
}

TEST(simulation, an_equivocated_message_is_void_for_its_victim_only) {
  sim_driver d(scripted(4, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.cheat_send("alice", *conv, sim_driver::cheat::seed, "bob"));
  ASSERT_TRUE(d.cheat_send("carol", *conv, sim_driver::cheat::block, "dave"));
  d.deliver_all();
  d.advance_time(60);
  d.receipts_due();
  d.deliver_all();
  expect_clean(d);
  EXPECT_EQ(d.stats().voids, 2u);
}

TEST(simulation, a_member_cannot_wedge_the_ordering_for_the_others) {
  sim_driver d(scripted(4, 3, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.cheat_send("bob", *conv, sim_driver::cheat::amb, d.w().ms()[1].id));
  ASSERT_TRUE(d.cheat_send("carol", *conv, sim_driver::cheat::parent_hash, "carol"));
  ASSERT_TRUE(d.send("dave", *conv).has_value());
  d.deliver_all();
  expect_clean(d);
}

TEST(simulation, a_fork_with_one_honest_mirror_is_refused_by_every_member) {
  sim_driver d(scripted(4, 2, 1));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.fork_snapshot(*conv));
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  ASSERT_TRUE(d.send("alice", *conv).has_value());
  // The router orders alice's message first, then carol's at the same index on a branch.
  ASSERT_TRUE(d.swap(0, 1));
  ASSERT_TRUE(d.deliver());
  ASSERT_TRUE(d.fork_push(*conv, 0, true, {"carol", "dave"}));
  d.deliver_all();
  expect_clean(d);
  EXPECT_EQ(d.stats().halts, 0u);
  EXPECT_GT(d.stats().alarms, 0u);
}

TEST(simulation, with_every_mirror_lying_a_fork_is_detected_once_traffic_flows) {
  sim_driver d(scripted(4, 2, 2));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.fork_snapshot(*conv));
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  ASSERT_TRUE(d.send("alice", *conv).has_value());
  ASSERT_TRUE(d.swap(0, 1));
  ASSERT_TRUE(d.deliver());
  ASSERT_TRUE(d.fork_push(*conv, 0, true, {"carol", "dave"}));
  d.deliver_all();
  expect_clean(d);
  // The forked members accepted the branch, then saw the router's own entries and alarmed.
  bool carol_alarmed = false;
  for (const auto& a : d.w().node("carol").alarms)
    carol_alarmed = carol_alarmed || a.conv == *conv;
  EXPECT_TRUE(carol_alarmed);
}

TEST(simulation, a_replayed_entry_is_refused_or_halts_on_a_fork_alarm) {
  for (size_t lying : {size_t{1}, size_t{2}}) {
    sim_driver d(scripted(4, 2, lying));
    auto conv = d.create("alice", {"bob", "carol", "dave"});
    ASSERT_TRUE(conv.has_value());
    d.deliver_all();
    ASSERT_TRUE(d.send("bob", *conv).has_value());
    d.deliver_all();
    ASSERT_TRUE(d.forge_replay(*conv, 1, {"alice", "carol"}));
    d.deliver_all();
    ASSERT_TRUE(d.send("dave", *conv).has_value());
    d.deliver_all();
    expect_clean(d);
  }
}

TEST(simulation, tampering_with_any_envelope_field_never_makes_an_entry_void) {
  sim_driver d(scripted(4, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  for (uint32_t field = 0; field < 17; ++field) {
    ASSERT_TRUE(d.send(field % 2 ? "alice" : "carol", *conv).has_value());
    // Let the router order it, then tamper with the first envelope it sends.
    ASSERT_TRUE(d.deliver());
    ASSERT_TRUE(d.tamper(0, field, 13 * field + 5));
    d.deliver_all();
    for (const auto& u : d.users())
      d.reconnect(u);
    d.deliver_all();
  }
  expect_clean(d);
  EXPECT_EQ(d.stats().voids, 0u);
}

TEST(simulation, dropped_duplicated_and_reordered_messages_raise_no_alarm) {
  sim_driver d(scripted(5, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave", "erin"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  for (int round = 0; round < 6; ++round) {
    ASSERT_TRUE(d.send(d.users()[static_cast<size_t>(round) % 5], *conv).has_value());
    ASSERT_TRUE(d.send(d.users()[static_cast<size_t>(round + 2) % 5], *conv).has_value());
    d.deliver();
    d.duplicate(0, 3);
    d.swap(0, 1);
    d.drop(2);
    d.deliver();
    d.delay(0);
    d.deliver_all();
  }
  expect_clean(d);
  EXPECT_EQ(d.stats().alarms, 0u);
}

TEST(simulation, crashes_and_restores_at_every_step_lose_nothing) {
  sim_driver d(scripted(4, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  for (int k = 0; k < 12; ++k) {
    const std::string& u = d.users()[static_cast<size_t>(k) % 4];
    ASSERT_TRUE(d.send(u, *conv).has_value());
    for (int s = 0; s < 5 && d.deliver(); ++s)
      d.crash(d.users()[static_cast<size_t>(k + s) % 4]);
  }
  d.deliver_all();
  expect_clean(d);
  EXPECT_EQ(d.stats().alarms, 0u);
}

TEST(simulation, forged_hints_do_not_stall_an_author_once_the_adversary_stops) {
  sim_driver d(scripted(4, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.send("bob", *conv).has_value());
  // The SUBMIT is lost and the router claims it was stale after an UPDATE that never comes.
  ASSERT_TRUE(d.drop(0));
  ASSERT_TRUE(d.forge_rejection("bob", *conv, 1, rejection{rejection_kind::stale, 7, {}}));
  d.deliver_all();
  expect_clean(d);
}

TEST(simulation, a_forged_envelope_cannot_make_a_removed_member_miss_its_re_add) {
  sim_driver d(scripted(3, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.update("alice", *conv, {}, {"alice"}));
  d.deliver_all();
  ASSERT_TRUE(d.update("bob", *conv, {"alice"}, {}));
  ASSERT_TRUE(d.deliver());  // the router orders the UPDATE and queues its envelopes
  auto& net = d.w().network();
  ASSERT_FALSE(net.empty());
  const auto* first = std::get_if<to_client_envelope>(&net.front());
  ASSERT_NE(first, nullptr);
  ASSERT_EQ(first->user, "alice");
  // Alice's copy of the UPDATE that adds her again arrives as something else.
  ASSERT_TRUE(d.tamper(0, 16, 0));
  d.deliver_all();
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  d.deliver_all();
  expect_clean(d);
  EXPECT_TRUE(d.w().user("alice").find(*conv) != nullptr);
}

// The position of `user`'s first envelope for index `i` in flight, if any.
std::optional<size_t> envelope_at(sim_driver& d, const std::string& user, uint64_t i) {
  auto& net = d.w().network();
  for (size_t k = 0; k < net.size(); ++k)
    if (const auto* e = std::get_if<to_client_envelope>(&net[k]);
        e != nullptr && e->user == user && e->env.index == i)
      return k;
  return std::nullopt;
}

TEST(simulation, a_removal_processed_from_the_buffer_leaves_the_client_sound) {
  sim_driver d(scripted(3, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.send("alice", *conv).has_value());
  ASSERT_TRUE(d.deliver());
  // Carol gets the UPDATE removing her before the message ahead of it: she buffers it, and
  // processes it (and her removal) from the buffer when the message arrives.
  auto k = envelope_at(d, "carol", 1);
  ASSERT_TRUE(k.has_value());
  auto& net = d.w().network();
  const in_flight late = net[*k];
  net.erase(net.begin() + static_cast<std::ptrdiff_t>(*k));
  ASSERT_TRUE(d.update("bob", *conv, {}, {"carol"}));
  d.deliver_all();
  net.push_back(late);
  d.deliver_all();
  expect_clean(d);
  EXPECT_EQ(d.w().user("carol").find(*conv), nullptr);
}

TEST(simulation, a_removed_member_ignores_a_replayed_update_that_once_added_it) {
  sim_driver d(scripted(4, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.update("bob", *conv, {"dave"}, {}));
  ASSERT_TRUE(d.deliver());
  auto k = envelope_at(d, "dave", 1);
  ASSERT_TRUE(k.has_value());
  const in_flight join = d.w().network()[*k];
  d.deliver_all();
  ASSERT_TRUE(d.update("carol", *conv, {}, {"dave"}));
  d.deliver_all();
  // The router replays the UPDATE that added dave, long after his removal.
  d.w().network().push_back(join);
  d.deliver_all();
  ASSERT_TRUE(d.send("alice", *conv).has_value());
  d.deliver_all();
  expect_clean(d);
  EXPECT_EQ(d.w().user("dave").find(*conv), nullptr);
}

TEST(simulation, a_failing_head_does_not_multiply_the_resends_behind_it) {
  sim_driver d(scripted(3, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  // Every PREPARE times out: the head is UNAVAILABLE, each message behind it ASEQ_GAP.
  d.set_mirror_down(1, true);
  for (int k = 0; k < 12; ++k)
    ASSERT_TRUE(d.send("alice", *conv).has_value());
  for (int k = 0; k < 2000 && d.deliver(); ++k) {
  }
  d.set_mirror_down(1, false);
  d.reconnect("alice");
  d.deliver_all();
  expect_clean(d);
}

TEST(simulation, a_message_whose_rejection_was_forged_reads_as_itself_when_ordered) {
  sim_driver d(scripted(3, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.send("alice", *conv).has_value());
  ASSERT_TRUE(d.send("alice", *conv).has_value());
  // The router orders the first message, then claims it rejected it for good: alice gives it
  // up and moves the second one into its aseq before the first one's echo arrives.
  ASSERT_TRUE(d.deliver());
  ASSERT_TRUE(d.forge_rejection("alice", *conv, 1, rejection{rejection_kind::limit, 0, "forged"}));
  auto forged = d.w().network().back();
  d.w().network().pop_back();
  d.w().network().push_front(forged);
  d.deliver_all();
  expect_clean(d);
}

TEST(simulation, removed_and_re_added_members_see_exactly_their_membership) {
  sim_driver d(scripted(5, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  d.deliver_all();
  ASSERT_TRUE(d.update("alice", *conv, {}, {"carol"}));
  d.deliver_all();
  ASSERT_TRUE(d.send("bob", *conv).has_value());
  d.deliver_all();
  // Dave is offline while carol is re-added and erin joins.
  d.set_online("dave", false);
  ASSERT_TRUE(d.send("alice", *conv).has_value());
  ASSERT_TRUE(d.update("bob", *conv, {"carol", "erin"}, {}));
  d.deliver_all();
  ASSERT_TRUE(d.send("erin", *conv).has_value());
  ASSERT_TRUE(d.update("carol", *conv, {}, {"dave"}));
  d.deliver_all();
  ASSERT_TRUE(d.update("erin", *conv, {"dave"}, {}));
  d.deliver_all();
  d.set_online("dave", true);
  d.deliver_all();
  expect_clean(d);
}

// -- Hostile members, a lying router and a lying directory -----------------------------------

TEST(simulation, a_low_order_member_key_is_refused_before_any_index) {
  sim_driver d(scripted(5, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  for (bool order4 : {false, true}) {
    ASSERT_TRUE(d.low_order_member("bob", std::nullopt, {"carol", "dave"}, "dave", order4));
    ASSERT_TRUE(d.low_order_member("carol", *conv, {}, "erin", order4));
    ASSERT_TRUE(d.low_order_member("alice", *conv, {}, "mallory", order4));
  }
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  d.deliver_all();
  EXPECT_EQ(d.w().router(*conv).state()->next, 2u);
  expect_clean(d);
  EXPECT_EQ(d.stats().hostile[static_cast<size_t>(hostile_move::low_order_setup)], 2u);
  EXPECT_EQ(d.stats().hostile[static_cast<size_t>(hostile_move::low_order_update)], 4u);
}

TEST(simulation, a_commit_with_a_bad_last_resort_attachment_is_refused_by_honest_mirrors) {
  for (size_t lying : {size_t{0}, size_t{1}}) {
    sim_driver d(scripted(5, 2, lying));
    auto conv = d.create("alice", {"bob", "carol"});
    ASSERT_TRUE(conv.has_value());
    d.deliver_all();
    for (uint32_t how = 0; how < 3; ++how) {
      ASSERT_TRUE(d.bad_attachment_commit("bob", *conv, {"dave"}, how));
      ASSERT_TRUE(d.bad_attachment_commit("carol", std::nullopt, {"erin", "alice"}, how));
    }
    // The conversation goes on: the mirrors are where they were.
    ASSERT_TRUE(d.update("bob", *conv, {"dave"}, {}));
    d.deliver_all();
    ASSERT_TRUE(d.send("dave", *conv).has_value());
    d.deliver_all();
    expect_clean(d);
  }
}

TEST(simulation, a_member_named_with_a_wrong_key_is_sent_dead_blocks_and_can_be_removed) {
  sim_driver d(scripted(5, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  // Alice adds dave under erin's key; the lying router's directory agrees.
  ASSERT_TRUE(d.wrong_key_update("alice", *conv, "dave", "erin"));
  d.deliver_all();
  ASSERT_TRUE(d.w().router(*conv).state()->is_member("dave"));
  EXPECT_EQ(d.w().user("dave").find(*conv), nullptr);
  ASSERT_TRUE(d.send("bob", *conv).has_value());
  EXPECT_EQ(d.w().user("bob").unreachable(*conv), std::vector<std::string>{"dave"});
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  d.deliver_all();
  ASSERT_TRUE(d.update("carol", *conv, {}, {"dave"}));
  d.deliver_all();
  EXPECT_FALSE(d.w().router(*conv).state()->is_member("dave"));
  // Added again under his own key, dave joins.
  ASSERT_TRUE(d.update("bob", *conv, {"dave"}, {}));
  d.deliver_all();
  ASSERT_TRUE(d.send("dave", *conv).has_value());
  d.deliver_all();
  expect_clean(d);
  EXPECT_NE(d.w().user("dave").find(*conv), nullptr);
  bool blamed_router = false;
  for (const auto& a : d.w().node("dave").alarms)
    blamed_router = blamed_router || (a.kind == alarm_kind::directory && a.party == "router");
  EXPECT_TRUE(blamed_router);
}

TEST(simulation, a_void_flood_then_an_update_and_a_receipt) {
  for (uint32_t follow : {0u, 1u, 2u}) {
    sim_driver d(scripted(5, 2, 0));
    auto conv = d.create("alice", {"bob", "carol", "dave"});
    ASSERT_TRUE(conv.has_value());
    d.deliver_all();
    ASSERT_TRUE(d.void_flood("alice", *conv, "bob", 30, follow));
    d.deliver_all();
    d.advance_time(60);
    d.receipts_due();
    d.deliver_all();
    expect_clean(d);
    EXPECT_EQ(d.stats().voids, 30u);
    if (follow != 0) {
      EXPECT_GE(d.stats().updates, 1u);
    }
  }
}

// Alice and bob talk until bob deletes the PREKEY alice first used. False if that failed.
bool bob_uses_up_a_prekey(sim_driver& d) {
  auto first = d.create("alice", {"bob"});
  if (!first)
    return false;
  d.deliver_all();
  if (!d.send("bob", *first))
    return false;
  d.deliver_all();
  if (!d.send("alice", *first))
    return false;
  d.deliver_all();
  return !d.w().user("bob").keys().used_prekeys().empty();
}

TEST(simulation, a_used_prekey_handed_to_a_new_sender_raises_directory_not_sender) {
  sim_driver d(scripted(4, 2, 0));
  ASSERT_TRUE(bob_uses_up_a_prekey(d));
  // The directory hands it to carol, who creates a conversation with bob and dave.
  ASSERT_TRUE(d.plant_used_prekey("bob"));
  auto second = d.create("carol", {"bob", "dave"});
  ASSERT_TRUE(second.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.send("carol", *second).has_value());
  d.deliver_all();
  expect_clean(d);
  EXPECT_EQ(d.stats().hostile[static_cast<size_t>(hostile_move::used_prekey)], 1u);
  bool directory = false;
  for (const auto& a : d.w().node("bob").alarms) {
    EXPECT_NE(a.kind, alarm_kind::sender);
    directory = directory || (a.kind == alarm_kind::directory && a.party == "router");
  }
  EXPECT_TRUE(directory);
}

// The same in chain mode: carol's chain blocks on the broken step's epoch cannot open at bob
// either, and they too are the directory's fault, never carol's (docs/protocol.md §4.8).
TEST(simulation, in_chain_mode_the_blocks_after_a_step_the_directory_broke_blame_the_directory) {
  sim_config cfg = scripted(4, 2, 0);
  cfg.mode = block_mode::chain;
  sim_driver d(cfg);
  ASSERT_TRUE(bob_uses_up_a_prekey(d));
  // Dave sets the conversation up; the directory lies to carol when she fetches bob's key.
  auto second = d.create("dave", {"bob", "carol"});
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(d.plant_used_prekey("bob"));
  d.deliver_all();
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(d.send("carol", *second).has_value());
    d.deliver_all();
  }
  expect_clean(d);
  size_t directory = 0;
  for (const auto& a : d.w().node("bob").alarms) {
    EXPECT_NE(a.kind, alarm_kind::sender);
    directory += a.kind == alarm_kind::directory && a.party == "router" ? 1 : 0;
  }
  EXPECT_GE(directory, 2u) << "the step and at least one chain block of its epoch";
  // What makes this case: a chain block to bob on the broken step's epoch was ordered.
  std::optional<uint32_t> broken;
  size_t on_broken = 0;
  for (const auto& [i, le] : d.w().log(*second)) {
    if (le.e.c.author != "carol")
      continue;
    for (const auto& rb : le.e.blocks) {
      if (rb.recipient != "bob")
        continue;
      if (const auto* st = std::get_if<dh_step>(&rb.blk); st != nullptr && !broken)
        broken = st->epoch;
      else if (const auto* cb = std::get_if<chain_block>(&rb.blk); cb != nullptr && broken)
        on_broken += cb->epoch == *broken ? 1 : 0;
    }
  }
  EXPECT_GE(on_broken, 1u);
}

TEST(simulation, a_low_order_announced_ratchet_key_never_makes_a_send_fail) {
  sim_driver d(scripted(4, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.send("bob", *conv).has_value());
  d.deliver_all();
  ASSERT_TRUE(d.low_order_ratchet("alice", *conv, "bob"));
  ASSERT_TRUE(d.low_order_ratchet("alice", *conv, d.w().ms()[1].id));
  d.deliver_all();
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(d.send("bob", *conv).has_value());
    ASSERT_TRUE(d.send("alice", *conv).has_value());
    d.deliver_all();
  }
  expect_clean(d);
  EXPECT_EQ(d.stats().alarms, 0u);
}

TEST(simulation, a_member_halted_by_an_update_is_removed_and_added_again) {
  sim_driver d(scripted(5, 2, 0));
  auto conv = d.create("alice", {"bob", "carol", "dave"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  // Carol's message is in flight when alice's UPDATE halts her.
  ASSERT_TRUE(d.cheat_update("alice", *conv, {"erin"}, {}, "carol"));
  d.deliver_all();
  ASSERT_EQ(d.w().user("carol").find(*conv)->status, conv_status::halted);
  ASSERT_TRUE(d.send("bob", *conv).has_value());
  ASSERT_TRUE(d.update("bob", *conv, {}, {"carol"}));
  d.deliver_all();
  ASSERT_TRUE(d.send("dave", *conv).has_value());
  ASSERT_TRUE(d.update("dave", *conv, {"carol"}, {}));
  d.deliver_all();
  ASSERT_EQ(d.w().user("carol").find(*conv)->status, conv_status::active);
  ASSERT_TRUE(d.send("carol", *conv).has_value());
  d.deliver_all();
  expect_clean(d);
}

TEST(simulation, a_down_mirror_makes_messages_wait_for_the_backoff_not_spin) {
  // The router refuses a message UNAVAILABLE while a mirror is down, and the ones queued
  // behind it ASEQ_GAP. Resending those at once would meet the same refusal without end.
  sim_driver d(scripted(3, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  d.set_mirror_down(1, true);
  for (int k = 0; k < 4; ++k)
    ASSERT_TRUE(d.send("alice", *conv).has_value());
  const uint64_t before = d.stats().deliveries;
  d.deliver_all();
  ASSERT_FALSE(d.failed().has_value()) << d.failed()->to_string();
  EXPECT_TRUE(d.w().network().empty());
  // Four SUBMITs, one UNAVAILABLE and three ASEQ_GAPs: nothing more.
  EXPECT_EQ(d.stats().deliveries - before, 8u);
  EXPECT_EQ(d.w().user("alice").find(*conv)->outbox.size(), 4u);
  // The mirror is back and the backoff over: all four are ordered.
  d.set_mirror_down(1, false);
  d.advance_time(1);
  d.deliver_all();
  EXPECT_TRUE(d.w().user("alice").find(*conv)->outbox.empty());
  expect_clean(d);
}

TEST(simulation, a_void_flood_past_max_voids_then_an_update_still_lets_the_victim_report) {
  // The one long run: more VOIDs than a RECEIPT can list, then an UPDATE, then the victim's
  // RECEIPT, which may not go below the UPDATE and reports the newest MAX_VOIDS VOIDs.
  const auto t0 = std::chrono::steady_clock::now();
  sim_driver d(scripted(4, 2, 0));
  auto conv = d.create("alice", {"bob", "carol"});
  ASSERT_TRUE(conv.has_value());
  d.deliver_all();
  size_t flooded = 0;
  while (flooded <= max_voids) {
    const size_t n = std::min<size_t>(64, max_voids + 1 - flooded);
    ASSERT_TRUE(d.void_flood("alice", *conv, "bob", n, 0));
    d.deliver_all();
    flooded += n;
  }
  ASSERT_TRUE(d.update("alice", *conv, {"dave"}, {}));
  d.deliver_all();
  const uint64_t update_at = d.w().router(*conv).state()->last_update;
  d.advance_time(60);
  ASSERT_TRUE(d.receipt("bob", *conv));
  d.deliver_all();
  const auto& t = d.w().transcript("carol", *conv);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.back().type, msg_type::receipt);
  EXPECT_EQ(t.back().author, "bob");
  EXPECT_EQ(*t.back().parent, update_at);
  EXPECT_EQ(t.back().voids.size(), max_voids);
  expect_clean(d);
  EXPECT_EQ(d.stats().voids, max_voids + 1);
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("the MAX_VOIDS flood took %.1f s\n", secs);
}

// Every input of the fuzzer's simulation corpus (tests/fuzz/corpus/simulation: its seeds and
// the crashes it found, `regress-*`) runs as the fuzz target runs it and breaks no invariant.
TEST(simulation_corpus, every_corpus_input_keeps_every_invariant) {
  const std::filesystem::path dir =
      std::filesystem::path(COWPI_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "simulation";
  size_t ran = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(f.path(), std::ios::binary);
    const std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    byte_source src({data.data(), data.size()});
    sim_config cfg = config_from(src);
    cfg.max_actions = 160;  // as tests/fuzz/simulation_fuzz.cpp
    auto v = run_simulation(cfg, src);
    EXPECT_FALSE(v.has_value()) << f.path().filename().string() << ": "
                                << (v ? v->to_string() : std::string());
    ++ran;
  }
  EXPECT_GE(ran, 10u);
}

}  // namespace
}  // namespace cowpi::sim

// SPDX-License-Identifier: Apache-2.0
// End to end over real processes: a router and two mirrors, users on the client runtime;
// conversations, catch-up, and providers killed at named fault points.
#include "client_harness.hpp"
#include "test_client.hpp"
#include "wire_samples.hpp"
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <set>
#include <string>

namespace cowpi::testing {
namespace {

using protocol::msg_type;

bool has_delivery(const actors::transcript_line& l, const std::string& member,
                  actors::delivery_state s) {
  for (const auto& m : l.delivery.members)
    if (m.member == member)
      return m.state == s;
  return false;
}

// The line of the MESSAGE `text` (receipts interleave, so indices are not fixed).
const actors::transcript_line* line_with_text(const std::vector<actors::transcript_line>& t,
                                              const std::string& text) {
  for (const auto& l : t)
    if (l.entry.type == msg_type::message
        && std::string(l.entry.plaintext.begin(), l.entry.plaintext.end()) == text)
      return &l;
  return nullptr;
}

// Runs in both block modes (docs/protocol.md §5.2).
class live_modes : public ::testing::TestWithParam<protocol::block_mode> {};

std::string mode_name(const ::testing::TestParamInfo<protocol::block_mode>& i) {
  return i.param == protocol::block_mode::chain ? "chain" : "public_key";
}

TEST_P(live_modes, three_clients_converse_with_receipts_an_add_and_a_remove) {
  live_deployment dep("conv");
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob", "carol", "dave"})
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob", "carol"}, GetParam());
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  ASSERT_TRUE(dep.user("alice").send(*conv, "Are you going to the protest?").has_value());
  ASSERT_TRUE(dep.settle());
  ASSERT_TRUE(dep.user("bob").send(*conv, "Yes, at noon.").has_value());
  ASSERT_TRUE(dep.settle());
  // Receipts: the rule allows one once R(n) has passed.
  dep.advance_clock(60);
  ASSERT_TRUE(dep.settle());
  auto ta = dep.transcript("alice", *conv);
  EXPECT_EQ(texts(ta),
            (std::vector<std::string>{"Are you going to the protest?", "Yes, at noon."}));
  const auto* question = line_with_text(ta, "Are you going to the protest?");
  ASSERT_NE(question, nullptr);
  // Bob's reply acknowledges the question (received); he has sent since, so no standalone
  // RECEIPT follows (docs/design.md §3.7). Carol only listened: her RECEIPT marks it read.
  EXPECT_TRUE(has_delivery(*question, "bob", actors::delivery_state::received));
  EXPECT_TRUE(has_delivery(*question, "carol", actors::delivery_state::read));
  const auto* answer = line_with_text(ta, "Yes, at noon.");
  ASSERT_NE(answer, nullptr);
  EXPECT_TRUE(has_delivery(*answer, "alice", actors::delivery_state::read));
  EXPECT_TRUE(has_delivery(*answer, "carol", actors::delivery_state::read));

  ASSERT_TRUE(dep.user("bob").add(*conv, {"dave"}).has_value());
  ASSERT_TRUE(dep.settle());
  ASSERT_TRUE(dep.user("dave").send(*conv, "Thanks for adding me.").has_value());
  ASSERT_TRUE(dep.settle());
  ASSERT_TRUE(dep.user("alice").remove(*conv, {"carol"}).has_value());
  ASSERT_TRUE(dep.settle());
  ASSERT_TRUE(dep.user("alice").send(*conv, "Carol is gone.").has_value());
  ASSERT_TRUE(dep.settle());

  const auto tc = dep.transcript("carol", *conv);
  ASSERT_FALSE(tc.empty());
  EXPECT_EQ(tc.back().entry.type, msg_type::update);  // the UPDATE removing her, nothing after
  for (const auto& t : texts(tc))
    EXPECT_NE(t, "Carol is gone.");
  const auto td = dep.transcript("dave", *conv);
  ASSERT_FALSE(td.empty());
  EXPECT_EQ(td.front().entry.type, msg_type::update);  // dave's history starts when he joined
  EXPECT_EQ(texts(td), (std::vector<std::string>{"Thanks for adding me.", "Carol is gone."}));
  expect_one_conversation(dep, *conv, {"alice", "bob", "carol", "dave"});
  for (auto u : {"alice", "bob", "carol", "dave"})
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
  // SETUP, UPDATEs adding and removing, receipts: no provider thread waited for its store.
  expect_no_blocking_store_calls(dep);
}

TEST(live_conversation, a_conversation_created_before_a_mirrors_keys_arrive_waits_for_them) {
  // mirror-a dies on the router's first TOPUP: its keys are not in the directory yet when
  // alice creates a conversation (as a script would right after starting the providers).
  live_deployment dep("early", {{"mirror-a", {{"COWPI_FAULT", "mirror.topup.before_answer"}}}},
                      provider_binary(), /*wait_ready=*/false);
  ASSERT_TRUE(dep.ok()) << dep.error();
  ASSERT_TRUE(dep.process("mirror-a").wait(std::chrono::seconds(20)).has_value());
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  EXPECT_FALSE(tools::router_ready(dep.layout()));
  auto created = std::async(std::launch::async, [&] { return dep.user("alice").create({"bob"}); });
  // The directory answers her fetch UNAVAILABLE and she retries; the mirror comes back.
  EXPECT_EQ(created.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout);
  ASSERT_TRUE(dep.restart("mirror-a"));
  auto conv = created.get();
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  EXPECT_TRUE(tools::router_ready(dep.layout()));
  ASSERT_TRUE(dep.user("alice").send(*conv, "made it").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("bob", *conv)), std::vector<std::string>{"made it"});
  expect_one_conversation(dep, *conv, {"alice", "bob"});
}

// A section of the router's live status (null when the socket does not answer).
nlohmann::json router_section(const live_deployment& dep, const std::string& name) {
  return status_section(dep.layout().dir / dep.layout().router / "admin.sock", name);
}

TEST(live_conversation, pre_keys_that_expired_unused_leave_the_directory) {
  // Bob's one-time pre-keys reach their maximum age (30 days) unused, while he is offline. He
  // deletes them when he comes back; the router's pool must drop them too, or alice's first
  // contact names a key bob can no longer open.
  live_deployment dep("prekey-age");
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  ASSERT_TRUE(dep.settle());
  const auto before = router_section(dep, "directory");
  ASSERT_TRUE(before.is_object());
  dep.close_user("bob");
  dep.advance_clock(31 * 24 * 3600);
  dep.reopen_user("bob");
  // Bob's reconnection retires his pool and uploads a fresh one; wait for both to land.
  ASSERT_TRUE(eventually([&] {
    const auto now = router_section(dep, "directory");
    return now.is_object() && now.value("one_time_retired", 0u) > 0
           && now.value("uploads", 0u) > before.value("uploads", 0u);
  })) << router_section(dep, "directory").dump();
  auto conv = dep.user("alice").create({"bob"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.user("alice").send(*conv, "still there?").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("bob", *conv)), std::vector<std::string>{"still there?"});
  for (auto u : {"alice", "bob"})
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
  expect_one_conversation(dep, *conv, {"alice", "bob"});
}

TEST(live_conversation, idle_conversation_actors_stop_and_their_conversation_goes_on) {
  // With [timeouts] conversation_idle at 300 ms, the router's conversation actor and each
  // mirror's stop between bursts of messages; each burst starts new ones on the stored records,
  // and nothing is lost, repeated or reordered.
  live_deployment dep(
      "idle-actors", {}, provider_binary(), /*wait_ready=*/true,
      [](tools::local_deployment& d) { d.conversation_idle = std::chrono::milliseconds(300); });
  ASSERT_TRUE(dep.ok()) << dep.error();
  const std::vector<std::string> users{"alice", "bob", "carol"};
  for (const auto& u : users)
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob", "carol"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  const auto mirror_section = [&](const std::string& m) {
    return status_section(dep.layout().dir / m / "admin.sock", "mirror");
  };
  const auto no_actor_runs = [&] {
    const auto r = router_section(dep, "conversations");
    if (!r.is_object() || r.value("live_conversations", 1u) != 0)
      return false;
    for (const auto& m : dep.layout().mirrors) {
      const auto s = mirror_section(m);
      if (!s.is_object() || s.value("conversation_actors", 1u) != 0)
        return false;
    }
    return true;
  };
  std::multiset<std::string> sent;
  for (int burst = 0; burst < 3; ++burst) {
    for (size_t k = 0; k < users.size(); ++k) {
      const std::string text = "burst " + std::to_string(burst) + " from " + users[k];
      ASSERT_TRUE(dep.user(users[k]).send(*conv, text).has_value());
      sent.insert(text);
    }
    ASSERT_TRUE(dep.settle());
    ASSERT_TRUE(eventually(no_actor_runs))
        << router_section(dep, "conversations").dump() << mirror_section("mirror-a").dump();
    for (const auto& m : dep.layout().mirrors)
      EXPECT_EQ(mirror_section(m).value("conversations", 0u), 1u) << m;
  }
  const auto reference = texts(dep.transcript("alice", *conv));
  EXPECT_EQ(std::multiset<std::string>(reference.begin(), reference.end()), sent);
  for (const auto& u : users) {
    EXPECT_EQ(texts(dep.transcript(u, *conv)), reference) << u;
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
  }
  expect_one_conversation(dep, *conv, users);
}

// The ids of the one-time keys among `n` fetched for `owner` at once (the rest: LAST_RESORT).
std::vector<uint64_t> one_time_keys_fetched(test_client& c, const std::string& owner, size_t n) {
  auto r = c.call(protocol::fetch_prekeys{std::vector<std::string>(n, owner), std::nullopt});
  const auto* got = r ? std::get_if<protocol::prekeys_result>(&*r) : nullptr;
  EXPECT_NE(got, nullptr);
  std::vector<uint64_t> ids;
  if (got == nullptr)
    return ids;
  for (const auto& b : got->bundles)
    if (b.key.kind == protocol::key_kind::prekey)
      ids.push_back(b.key.id);
  return ids;
}

TEST(live_conversation, a_mirrors_pre_key_pool_is_replaced_at_hello_and_refilled_within_a_rate) {
  // After every HELLO the router replaces each mirror's pool with 512 new one-time keys. In
  // between, when first contacts (here one user fetching hundreds of keys at once) take it
  // under half, the link tops it up to 512 again, never past it, and by at most 1024 keys an
  // hour.
  live_deployment dep("mirror-pool");
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  const auto& router = dep.run().deployment.router;
  crypto::system_rng rng;
  const auto eve_id = protocol::identity::generate("eve", rng);  // (the client keeps a reference)
  test_client eve(router.address.port, eve_id, router.name, router.public_key);
  ASSERT_TRUE(eve.login(protocol::hello_mode::register_user));
  auto link = [&] { return router_section(dep, "link:mirror-a"); };
  ASSERT_EQ(link().value("topups", 0u), 1u);
  const auto first = one_time_keys_fetched(eve, "mirror-a", 300);
  ASSERT_EQ(first.size(), 300u);

  // A new HELLO: the 212 keys left of the first batch are retired, 512 new ones replace them.
  ASSERT_EQ(::kill(dep.process("mirror-a").pid(), SIGKILL), 0);
  ASSERT_TRUE(dep.process("mirror-a").wait(std::chrono::seconds(20)).has_value());
  ASSERT_TRUE(dep.restart("mirror-a"));
  ASSERT_TRUE(eventually([&] { return link().value("topups", 0u) >= 2; })) << link().dump();
  const auto second = one_time_keys_fetched(eve, "mirror-a", 300);
  ASSERT_EQ(second.size(), 300u);
  EXPECT_GT(*std::min_element(second.begin(), second.end()),
            *std::max_element(first.begin(), first.end()) + 212);

  // 212 left: requests over the link (the SETUP's and messages' PREPAREs) let it check the
  // pool, and it is topped up to 512 (300 keys this hour).
  auto conv = dep.user("alice").create({"bob"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  int sent = 0;
  auto send_until = [&](const std::function<bool(const nlohmann::json&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done(link())) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << link().dump();
      ASSERT_TRUE(dep.user("alice").send(*conv, "m" + std::to_string(sent++)).has_value());
      ASSERT_TRUE(dep.settle());
    }
  };
  send_until([](const nlohmann::json& l) { return l.value("topups", 0u) >= 3; });
  // The pool holds 512 again (less the SETUP's key): not 211, and not 812.
  const auto stocked = one_time_keys_fetched(eve, "mirror-a", 600);
  EXPECT_GE(stocked.size(), 510u);
  EXPECT_LE(stocked.size(), 512u);
  // Empty: refilled with about 512 more (812 this hour).
  send_until([](const nlohmann::json& l) { return l.value("topups", 0u) >= 4; });
  EXPECT_GE(one_time_keys_fetched(eve, "mirror-a", 600).size(), 500u);
  // Empty again, but 512 more would make 1324 this hour: checks find it low and leave it, and
  // fetches get the LAST_RESORT key.
  const uint64_t checks = link().value("key_checks", 0u);
  send_until([&](const nlohmann::json& l) { return l.value("key_checks", 0u) >= checks + 2; });
  EXPECT_EQ(link().value("topups", 0u), 4u);
  EXPECT_TRUE(one_time_keys_fetched(eve, "mirror-a", 1).empty());
  // First contacts on the LAST_RESORT key and on a replaced pool's key both work.
  auto conv2 = dep.user("bob").create({"alice"});
  ASSERT_TRUE(conv2.has_value()) << conv2.error().message();
  ASSERT_TRUE(dep.user("bob").send(*conv2, "last resort").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("alice", *conv2)), std::vector<std::string>{"last resort"});
  EXPECT_EQ(texts(dep.transcript("bob", *conv)).size(), static_cast<size_t>(sent));
  for (auto u : {"alice", "bob"})
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
}

TEST(live_conversation, a_user_sets_up_at_most_max_setups_per_hour_conversations) {
  // Every SETUP makes the router and each mirror keep a conversation: past [limits]
  // max_setups_per_hour a user's SETUPs are refused LIMIT(setup_rate), with the seconds until
  // its hour ends; other users are not affected.
  live_deployment dep("setup-rate", {}, provider_binary(), true,
                      [](tools::local_deployment& d) { d.max_setups_per_hour = 2; });
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  const auto& router = dep.run().deployment.router;
  crypto::system_rng rng;
  const auto eve_id = protocol::identity::generate("eve", rng);  // (the client keeps a reference)
  test_client eve(router.address.port, eve_id, router.name, router.public_key);
  ASSERT_TRUE(eve.login(protocol::hello_mode::register_user));
  auto setup = [&](uint8_t n) {
    auto s = protocol::wire_samples::mk_submit(protocol::msg_type::setup);
    s.c.conv.fill(n);
    auto r = eve.call(s);
    EXPECT_TRUE(r.has_value());
    const auto* rej = r ? std::get_if<protocol::rejection>(&*r) : nullptr;
    return rej != nullptr ? std::optional<protocol::rejection>(*rej) : std::nullopt;
  };
  // Eve's first two SETUPs reach their conversations (which refuse these samples on their
  // merits); the third is refused before.
  for (uint8_t n = 1; n <= 2; ++n) {
    const auto r = setup(n);
    EXPECT_TRUE(!r || r->detail != "setup_rate") << int(n);
  }
  const auto third = setup(3);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->kind, protocol::rejection_kind::limit);
  EXPECT_EQ(third->detail, "setup_rate");
  EXPECT_GT(third->value, 0u);
  EXPECT_LE(third->value, 3600u);
  EXPECT_TRUE(eve.call(protocol::ping{}).has_value()) << "the session goes on";
  // Alice has her own count.
  auto conv = dep.user("alice").create({"bob"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.user("alice").send(*conv, "hi").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("bob", *conv)), std::vector<std::string>{"hi"});
  EXPECT_EQ(router_section(dep, "conversations").value("setups_refused", 0u), 1u);
}

TEST_P(live_modes, a_client_offline_for_1000_messages_catches_up_in_order) {
  live_deployment dep("offline");
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob", "carol"})
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob", "carol"}, GetParam());
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  dep.close_user("carol");
  for (int k = 0; k < 1000; ++k) {
    auto r = dep.user(k % 2 ? "bob" : "alice").send(*conv, "m" + std::to_string(k));
    ASSERT_TRUE(r.has_value()) << "message " << k << ": " << r.error().message();
  }
  ASSERT_TRUE(dep.settle(std::chrono::seconds(300)));
  dep.reopen_user("carol");
  ASSERT_TRUE(dep.settle(std::chrono::seconds(300)));
  auto tc = texts(dep.transcript("carol", *conv));
  ASSERT_EQ(tc.size(), 1000u);
  EXPECT_EQ(texts(dep.transcript("alice", *conv)), tc);
  expect_one_conversation(dep, *conv, {"alice", "bob", "carol"});
  expect_no_blocking_store_calls(dep);
}

TEST(live_conversation, providers_stop_cleanly_on_sigterm_while_clients_are_connected) {
  live_deployment dep("sigterm");
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  // Bob can send once he has accepted the SETUP (create returns when alice has).
  ASSERT_TRUE(dep.settle());
  auto sent = dep.user("bob").send(*conv, "still here");
  ASSERT_TRUE(sent.has_value()) << sent.error().message();
  ASSERT_TRUE(dep.settle());
  // Conversation, queue and session actors are live: SIGTERM must still end every process.
  for (const char* p : {"router", "mirror-a", "mirror-b"})
    dep.process(p).signal(SIGTERM);
  for (const char* p : {"router", "mirror-a", "mirror-b"}) {
    auto status = dep.process(p).wait(std::chrono::seconds(20));
    ASSERT_TRUE(status.has_value()) << p << " still runs 20 s after SIGTERM";
    EXPECT_EQ(*status, 0) << p;
  }
}

// Sends `n` messages from alternating members while `disrupt` runs after the first few, then
// checks every message was delivered exactly once to everyone, in one order.
void disrupted_run(live_deployment& dep, protocol::block_mode mode, int n,
                   const std::function<void()>& disrupt) {
  for (auto u : {"alice", "bob", "carol"})
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob", "carol"}, mode);
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  std::vector<std::string> sent;
  for (int k = 0; k < n; ++k) {
    const std::string text = "msg " + std::to_string(k);
    // A send may fail while a provider is down; the runtime keeps it in the outbox.
    (void)dep.user(k % 2 ? "bob" : "alice").send(*conv, text);
    sent.push_back(text);
    if (k == n / 3)
      disrupt();
  }
  ASSERT_TRUE(dep.settle(std::chrono::seconds(180)));
  for (auto u : {"alice", "bob", "carol"}) {
    auto t = texts(dep.transcript(u, *conv));
    std::multiset<std::string> got(t.begin(), t.end());
    for (const auto& s : sent)
      EXPECT_EQ(got.count(s), 1u) << u << " has \"" << s << "\" " << got.count(s) << " times";
  }
  expect_one_conversation(dep, *conv, {"alice", "bob", "carol"});
  // Resumed, resent and retried work ran off the providers' scheduler threads too.
  expect_no_blocking_store_calls(dep);
}

TEST_P(live_modes, a_mirror_killed_and_restarted_mid_stream_loses_and_repeats_nothing) {
  live_deployment dep("mirrorkill");
  ASSERT_TRUE(dep.ok()) << dep.error();
  disrupted_run(dep, GetParam(), 60, [&] {
    dep.process("mirror-a").signal(SIGKILL);
    (void)dep.process("mirror-a").wait(std::chrono::seconds(10));
    ASSERT_TRUE(dep.restart("mirror-a"));
  });
}

TEST_P(live_modes, a_mirror_killed_between_computing_and_syncing_a_commit_answers_it_once) {
  // mirror-a dies at its 8th COMMIT, after computing the answer and before the synced write.
  live_deployment dep(
      "mirrorsync",
      {{"mirror-a", {{"COWPI_FAULT", "mirror.commit.before_sync"}, {"COWPI_FAULT_SKIP", "7"}}}});
  ASSERT_TRUE(dep.ok()) << dep.error();
  disrupted_run(dep, GetParam(), 30, [&] {
    ASSERT_TRUE(
        eventually([&] { return !dep.process("mirror-a").running(); }, std::chrono::seconds(60)));
    (void)dep.process("mirror-a").wait(std::chrono::seconds(5));
    ASSERT_TRUE(dep.restart("mirror-a"));
  });
}

TEST_P(live_modes, the_router_killed_between_its_log_sync_and_commit_resumes) {
  // The router dies right after syncing its 6th log entry, before sending COMMIT.
  live_deployment dep(
      "routerlog",
      {{"router", {{"COWPI_FAULT", "router.log.after_sync"}, {"COWPI_FAULT_SKIP", "5"}}}});
  ASSERT_TRUE(dep.ok()) << dep.error();
  disrupted_run(dep, GetParam(), 30, [&] {
    ASSERT_TRUE(
        eventually([&] { return !dep.process("router").running(); }, std::chrono::seconds(60)));
    (void)dep.process("router").wait(std::chrono::seconds(5));
    ASSERT_TRUE(dep.restart("router"));
  });
}

INSTANTIATE_TEST_SUITE_P(modes, live_modes,
                         ::testing::Values(protocol::block_mode::pk, protocol::block_mode::chain),
                         mode_name);

}  // namespace
}  // namespace cowpi::testing

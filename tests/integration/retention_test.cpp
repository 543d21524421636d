// SPDX-License-Identifier: Apache-2.0
// Retention on a live router: the collector deletes what every member acknowledged and, past
// the retention cap, what an offline member never read (it is told HISTORY_EXPIRED), and the
// conversation goes on.
#include "client_harness.hpp"
#include "support.hpp"
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace cowpi::testing {
namespace {

// Runs the router's collector now (`{"do":"collect"}`); returns the entries it deleted, or -1.
int64_t collect(live_deployment& dep) {
  const auto& d = dep.layout();
  auto r = admin_request(d.dir / d.router / "admin.sock", {{"do", "collect"}});
  if (!r.value("ok", false) || r.value("errors", uint64_t{1}) != 0)
    return -1;
  return r.value("deleted", int64_t{0});
}

// Runs the collector until `n` entries in all were deleted (it may take several runs: acks
// reach the router after the clients go idle); returns how many were, or -1 on a failed run.
int64_t collect_until(live_deployment& dep, uint64_t n) {
  int64_t deleted = 0;
  bool failed = false;
  eventually([&] {
    const int64_t d = collect(dep);
    failed = failed || d < 0;
    deleted += d > 0 ? d : 0;
    return failed || deleted >= static_cast<int64_t>(n);
  });
  return failed ? -1 : deleted;
}

// The index after the last entry `id` holds in `conv`.
uint64_t next_of(live_deployment& dep, const std::string& id, const protocol::conv_id& conv) {
  const auto t = dep.transcript(id, conv);
  return t.empty() ? 0 : t.back().entry.index + 1;
}

TEST(retention, entries_every_member_acknowledged_are_collected_and_the_conversation_goes_on) {
  live_deployment dep("retention");
  ASSERT_TRUE(dep.ok()) << dep.error();
  const std::vector<std::string> users{"alice", "bob", "carol"};
  for (const auto& u : users)
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob", "carol"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  for (int k = 0; k < 10; ++k)
    ASSERT_TRUE(dep.user(users[k % 3]).send(*conv, "m" + std::to_string(k)).has_value());
  ASSERT_TRUE(dep.settle());
  // Every member acknowledged every entry (acks reach the router after the clients go idle):
  // the whole log goes, a run at a time.
  const uint64_t next = next_of(dep, "alice", *conv);
  ASSERT_GE(next, 11u);
  const int64_t deleted = collect_until(dep, next);
  EXPECT_EQ(deleted, static_cast<int64_t>(next));
  EXPECT_EQ(collect(dep), 0) << "nothing is left to collect";
  // The same run through cowpi-admin.
  const auto admin = std::filesystem::path(COWPI_BINARY_DIR) / "tools" / "admin" / "cowpi-admin";
  const std::string cmd =
      admin.string() + " --config " + dep.layout().config_path("router").string() + " collect";
  std::string out;
  int status = -1;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      out.append(buf, n);
    status = ::pclose(f);
  }
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out.rfind("retention: deleted 0 log entries over 1 conversation in ", 0), 0u) << out;

  // The conversation goes on, and a member coming back finds nothing missing.
  dep.close_user("carol");
  ASSERT_TRUE(dep.user("bob").send(*conv, "after the collection").has_value());
  ASSERT_TRUE(dep.settle());
  dep.reopen_user("carol");
  ASSERT_TRUE(dep.settle());
  for (const auto& u : users) {
    const auto t = texts(dep.transcript(u, *conv));
    ASSERT_FALSE(t.empty()) << u;
    EXPECT_EQ(t.back(), "after the collection") << u;
    EXPECT_EQ(t.size(), 11u) << u;
    EXPECT_TRUE(dep.history_expired(u).empty()) << u;
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
  }
  expect_one_conversation(dep, *conv, users);
  expect_no_blocking_store_calls(dep);
}

TEST(retention, past_the_cap_what_an_offline_member_never_read_goes_and_it_is_told) {
  live_deployment dep("retcap", {}, provider_binary(), true,
                      [](tools::local_deployment& d) { d.retention = std::chrono::seconds(1); });
  ASSERT_TRUE(dep.ok()) << dep.error();
  const std::vector<std::string> users{"alice", "bob", "carol"};
  for (const auto& u : users)
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob", "carol"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  dep.close_user("carol");
  for (int k = 0; k < 3; ++k)
    ASSERT_TRUE(dep.user("alice").send(*conv, "unread " + std::to_string(k)).has_value());
  ASSERT_TRUE(dep.settle());
  const uint64_t next = next_of(dep, "alice", *conv);
  // Once a second old, the entries go although carol never acknowledged them.
  const int64_t deleted = collect_until(dep, next);
  EXPECT_EQ(deleted, static_cast<int64_t>(next));

  // Carol comes back: the router tells her the history she missed is gone (she must be
  // re-added); alice and bob go on.
  dep.reopen_user("carol");
  ASSERT_TRUE(eventually([&] { return !dep.history_expired("carol").empty(); }));
  EXPECT_NE(dep.history_expired("carol").front().find(to_hex(*conv)), std::string::npos)
      << dep.history_expired("carol").front();
  for (const auto& t : texts(dep.transcript("carol", *conv)))
    EXPECT_EQ(t.find("unread"), std::string::npos) << t;
  ASSERT_TRUE(dep.user("bob").send(*conv, "still here").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("alice", *conv)).back(), "still here");
  for (const auto& u : {"alice", "bob"})
    EXPECT_TRUE(dep.history_expired(u).empty()) << u;
  expect_no_blocking_store_calls(dep);
}

}  // namespace
}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// A lying router in a real deployment: cowpi-provider-liar (the daemon run with the delivery
// filter of lying_router.cpp) shows bob two of alice's messages in swapped order while
// alice and carol see the true order. Bob must raise an alarm and stop, never accept the
// other order: every accepted transcript stays a prefix of the one conversation.
#include "client_harness.hpp"
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

namespace cowpi::testing {
namespace {

using protocol::msg_type;

std::filesystem::path liar_binary() {
  return std::filesystem::path(COWPI_BINARY_DIR) / "tests" / "cowpi-provider-liar";
}

TEST(lying_router, a_reordering_fork_between_two_clients_raises_an_alarm_instead_of_diverging) {
  // Bob is shown alice's second message under the third's index and the third under the
  // second's (receipts may fall between them; they pass untouched).
  live_deployment dep("liar", {{"router", {{"COWPI_LIE_USER", "bob"}, {"COWPI_LIE_MESSAGE", "2"}}}},
                      liar_binary());
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob", "carol"})
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob", "carol"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  for (auto text : {"one", "two", "three"})
    ASSERT_TRUE(dep.user("alice").send(*conv, text).has_value());
  ASSERT_TRUE(eventually([&] { return !dep.alarms("bob").empty(); }, std::chrono::seconds(30)))
      << "bob accepted or ignored the swapped entries";
  (void)dep.settle(std::chrono::seconds(10));
  for (const auto& a : dep.alarms("bob"))
    std::printf("bob: alarm at index %llu from %s: %s\n", static_cast<unsigned long long>(a.index),
                a.party.c_str(), a.evidence.c_str());

  const std::vector<std::string> truth{"one", "two", "three"};
  EXPECT_EQ(texts(dep.transcript("alice", *conv)), truth);
  EXPECT_EQ(texts(dep.transcript("carol", *conv)), truth);
  const auto tb = texts(dep.transcript("bob", *conv));
  ASSERT_LE(tb.size(), truth.size());
  EXPECT_TRUE(std::equal(tb.begin(), tb.end(), truth.begin()))
      << "bob's transcript is not a prefix of the true one";
  EXPECT_EQ(tb, std::vector<std::string>{"one"});  // he stops at the first swapped index
  uint64_t second_index = 0;                       // where "two" truly is
  for (const auto& l : dep.transcript("alice", *conv))
    if (l.entry.type == msg_type::message
        && std::string(l.entry.plaintext.begin(), l.entry.plaintext.end()) == "two")
      second_index = l.entry.index;
  const auto a = dep.alarms("bob").front();
  EXPECT_EQ(a.conv, *conv);
  EXPECT_EQ(a.index, second_index);
  EXPECT_TRUE(a.kind == protocol::alarm_kind::provider || a.kind == protocol::alarm_kind::fork)
      << "alarm " << static_cast<int>(a.kind);
  EXPECT_TRUE(dep.alarms("alice").empty());
  EXPECT_TRUE(dep.alarms("carol").empty());
  expect_one_conversation(dep, *conv, {"alice", "bob", "carol"});
}

}  // namespace
}  // namespace cowpi::testing

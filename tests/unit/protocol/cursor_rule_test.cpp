// SPDX-License-Identifier: Apache-2.0
// The cursors a deliverable entry sets (protocol::cursor_changes): the one statement of the rule
// that the router's store, the in-process world and the test router all apply.
#include "cowpi/protocol/router.hpp"

#include <gtest/gtest.h>

namespace cowpi::protocol {
namespace {

log_entry update_at(uint64_t i, std::vector<std::string> adds, std::vector<std::string> removes) {
  log_entry e;
  e.index = i;
  e.c.type = msg_type::update;
  e.c.removes = std::move(removes);
  e.joiners = std::move(adds);
  return e;
}

using changes = std::vector<std::pair<std::string, delivery_cursor>>;

TEST(cursor_rule, a_new_member_starts_at_the_entry_that_adds_it) {
  log_entry setup;
  setup.index = 0;
  setup.c.type = msg_type::setup;
  setup.joiners = {"alice", "bob"};
  EXPECT_EQ(cursor_members(setup), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(cursor_changes(setup, {std::nullopt, std::nullopt}, 0),
            (changes{{"alice", {0, std::nullopt}}, {"bob", {0, std::nullopt}}}));
  const auto e = update_at(7, {"carol"}, {});
  EXPECT_EQ(cursor_changes(e, {std::nullopt}, 0), (changes{{"carol", {7, std::nullopt}}}));
}

TEST(cursor_rule, a_re_added_member_catching_up_keeps_its_cursor_unless_retention_passed_it) {
  const auto e = update_at(9, {"carol"}, {});
  // Still owed entries 4..: it keeps 4 (and drops the slot bound of its removal).
  EXPECT_EQ(cursor_changes(e, {delivery_cursor{4, 6}}, 0), (changes{{"carol", {4, std::nullopt}}}));
  EXPECT_EQ(cursor_changes(e, {delivery_cursor{4, 6}}, 4), (changes{{"carol", {4, std::nullopt}}}));
  // Retention deleted entry 4: it starts at the entry that adds it.
  EXPECT_EQ(cursor_changes(e, {delivery_cursor{4, 6}}, 5), (changes{{"carol", {9, std::nullopt}}}));
  // Caught up (a cursor at or past the entry): it starts there too.
  EXPECT_EQ(cursor_changes(e, {delivery_cursor{9, 6}}, 0), (changes{{"carol", {9, std::nullopt}}}));
  EXPECT_EQ(cursor_changes(e, {delivery_cursor{12, 6}}, 0),
            (changes{{"carol", {9, std::nullopt}}}));
}

TEST(cursor_rule, a_removed_member_keeps_its_cursor_and_holds_slots_up_to_the_update) {
  const auto e = update_at(5, {"dave"}, {"bob", "erin"});
  EXPECT_EQ(cursor_members(e), (std::vector<std::string>{"dave", "bob", "erin"}));
  // erin has no cursor (never delivered to): nothing is written for her.
  EXPECT_EQ(cursor_changes(e, {std::nullopt, delivery_cursor{3, std::nullopt}, std::nullopt}, 0),
            (changes{{"dave", {5, std::nullopt}}, {"bob", {3, 5}}}));
  // Removes count only in an UPDATE.
  auto msg = e;
  msg.c.type = msg_type::message;
  msg.joiners.clear();
  EXPECT_TRUE(cursor_members(msg).empty());
}

}  // namespace
}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// Delivery state per message and member (docs/design.md §3.7) computed from hand-built transcripts.
#include "cowpi/actors/delivery.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cowpi::actors {
namespace {

using protocol::accepted_entry;
using protocol::msg_type;

protocol::member m(const std::string& id) {
  return protocol::member{id, {}};
}

accepted_entry setup(std::vector<std::string> ids, const std::string& author) {
  accepted_entry e;
  e.index = 0;
  e.type = msg_type::setup;
  e.author = author;
  for (const auto& id : ids)
    e.members.push_back(m(id));
  return e;
}

accepted_entry message(uint64_t i, const std::string& author, uint64_t parent) {
  accepted_entry e;
  e.index = i;
  e.type = msg_type::message;
  e.author = author;
  e.parent = parent;
  return e;
}

accepted_entry receipt(uint64_t i, const std::string& author, int64_t floor, uint64_t parent,
                       std::vector<uint64_t> voids = {}) {
  accepted_entry e;
  e.index = i;
  e.type = msg_type::receipt;
  e.author = author;
  e.parent = parent;
  e.floor_before = floor;
  e.voids = std::move(voids);
  return e;
}

accepted_entry update(uint64_t i, const std::string& author, uint64_t parent,
                      std::vector<std::string> members) {
  accepted_entry e;
  e.index = i;
  e.type = msg_type::update;
  e.author = author;
  e.parent = parent;
  for (const auto& id : members)
    e.members.push_back(m(id));
  return e;
}

delivery_state state_of(const entry_delivery& d, const std::string& member) {
  for (const auto& x : d.members)
    if (x.member == member)
      return x.state;
  ADD_FAILURE() << member << " is not in the audience of #" << d.index;
  return delivery_state::pending;
}

TEST(delivery, a_message_nobody_acknowledged_is_pending_for_every_other_member) {
  auto out = delivery_states({setup({"alice", "bob", "carol"}, "alice"), message(1, "alice", 0)});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].members.empty());
  ASSERT_EQ(out[1].members.size(), 2u);
  EXPECT_EQ(out[1].members[0], (member_delivery{"bob", delivery_state::pending}));
  EXPECT_EQ(out[1].members[1], (member_delivery{"carol", delivery_state::pending}));
}

TEST(delivery, any_later_entry_whose_parent_covers_a_message_marks_it_received) {
  auto out = delivery_states({setup({"alice", "bob", "carol"}, "alice"), message(1, "alice", 0),
                              message(2, "bob", 1), message(3, "carol", 0)});
  EXPECT_EQ(state_of(out[1], "bob"), delivery_state::received);
  // Carol wrote #3 before seeing #1: her parent 0 does not cover it.
  EXPECT_EQ(state_of(out[1], "carol"), delivery_state::pending);
  // #2 is Bob's: Alice has not acknowledged it.
  EXPECT_EQ(state_of(out[2], "alice"), delivery_state::pending);
}

TEST(delivery, a_receipt_covering_a_message_marks_it_read) {
  auto out = delivery_states({setup({"alice", "bob"}, "alice"), message(1, "alice", 0),
                              message(2, "alice", 1), receipt(3, "bob", -1, 2)});
  EXPECT_EQ(state_of(out[1], "bob"), delivery_state::read);
  EXPECT_EQ(state_of(out[2], "bob"), delivery_state::read);
}

TEST(delivery, a_receipt_listing_a_message_as_void_marks_it_could_not_read) {
  auto out = delivery_states({setup({"alice", "bob", "carol"}, "alice"), message(1, "bob", 0),
                              message(2, "bob", 1), receipt(3, "carol", -1, 2, {2})});
  EXPECT_EQ(state_of(out[1], "carol"), delivery_state::read);
  EXPECT_EQ(state_of(out[2], "carol"), delivery_state::could_not_read);
  EXPECT_EQ(to_string(delivery_state::could_not_read), "could not read");
}

TEST(delivery, a_later_receipt_covers_only_its_own_range) {
  // Bob's first RECEIPT covers (-1, 1]; his second covers (1, 3] and lists #3.
  auto out = delivery_states({setup({"alice", "bob"}, "alice"), message(1, "alice", 0),
                              receipt(2, "bob", -1, 1), message(3, "alice", 2),
                              message(4, "alice", 3), receipt(5, "bob", 1, 3, {3})});
  EXPECT_EQ(state_of(out[1], "bob"), delivery_state::read);
  EXPECT_EQ(state_of(out[3], "bob"), delivery_state::could_not_read);
  // #4 is after Bob's last parent: not even received.
  EXPECT_EQ(state_of(out[4], "bob"), delivery_state::pending);
}

TEST(delivery, the_audience_is_the_member_list_in_force_at_the_message) {
  auto out = delivery_states({setup({"alice", "bob"}, "alice"), message(1, "alice", 0),
                              update(2, "alice", 1, {"alice", "bob", "dave"}),
                              message(3, "alice", 2), message(4, "dave", 3)});
  ASSERT_EQ(out[1].members.size(), 1u);
  EXPECT_EQ(out[1].members[0].member, "bob");
  ASSERT_EQ(out[3].members.size(), 2u);
  EXPECT_EQ(out[3].members[1].member, "dave");
  // Dave's #4 has parent 3: he received #3.
  EXPECT_EQ(state_of(out[3], "dave"), delivery_state::received);
  // Non-MESSAGE entries have no audience.
  EXPECT_TRUE(out[2].members.empty());
}

TEST(delivery, a_message_written_before_seeing_earlier_entries_names_them) {
  auto out = delivery_states({setup({"alice", "bob"}, "alice"), message(1, "alice", 0),
                              message(2, "alice", 1), message(3, "bob", 0)});
  EXPECT_FALSE(out[0].written_before_seeing);
  EXPECT_FALSE(out[1].written_before_seeing);
  ASSERT_TRUE(out[3].written_before_seeing);
  EXPECT_EQ(*out[3].written_before_seeing, (index_range{1, 2}));
}

TEST(delivery, an_empty_transcript_gives_no_rows) {
  EXPECT_TRUE(delivery_states({}).empty());
}

}  // namespace
}  // namespace cowpi::actors

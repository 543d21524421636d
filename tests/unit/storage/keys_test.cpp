// SPDX-License-Identifier: Apache-2.0
// Key layouts: big-endian integers sort numerically, prefixes of different conversations and
// users are disjoint, and every key parses back.
#include "cowpi/storage/keys.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace cowpi::storage {
namespace {

protocol::conv_id conv_of_byte(uint8_t b) {
  protocol::conv_id c{};
  c.fill(b);
  return c;
}

TEST(storage_keys, indexed_keys_sort_by_index_across_byte_boundaries) {
  const auto c = conv_of_byte(7);
  const std::vector<uint64_t> idx = {
      0, 1, 255, 256, 257, 65535, 65536, 65537, 0xffffffff, 0x100000000, 0x100000001, UINT64_MAX};
  std::vector<std::string> ks;
  for (uint64_t i : idx)
    ks.push_back(keys::indexed(c, i));
  EXPECT_TRUE(std::is_sorted(ks.begin(), ks.end()));
  for (size_t k = 0; k < idx.size(); ++k)
    EXPECT_EQ(keys::be64_at(ks[k], 16), idx[k]);
}

TEST(storage_keys, block_keys_sort_by_index_then_slot_then_mirror) {
  const auto c = conv_of_byte(1);
  EXPECT_LT(keys::author_block(c, 255, 70000), keys::author_block(c, 256, 0));
  EXPECT_LT(keys::author_block(c, 256, 255), keys::author_block(c, 256, 256));
  EXPECT_LT(keys::mirror_block(c, 9, 0, 0xffffffff), keys::mirror_block(c, 9, 1, 0));
  EXPECT_LT(keys::mirror_block(c, 9, 7, 0xffffffff), keys::mirror_block(c, 10, 0, 0));
}

TEST(storage_keys, conversation_prefixes_are_disjoint) {
  const auto a = conv_of_byte(0x10);
  auto b = a;
  b[15] = 0x11;
  const std::string end_a = keys::prefix_end(keys::conv_prefix(a));
  for (uint64_t i : {uint64_t{0}, uint64_t{1} << 40, UINT64_MAX}) {
    EXPECT_LT(keys::indexed(a, i), end_a);
    EXPECT_GE(keys::indexed(b, i), end_a);
  }
  EXPECT_LT(keys::conv_peer(a, std::string(64, '\xff')), end_a);
}

TEST(storage_keys, a_user_id_that_prefixes_another_gets_a_disjoint_range) {
  const auto c = conv_of_byte(3);
  const std::string bob = keys::cursor_prefix("bob");
  const std::string bobby = keys::cursor("bobby", c);
  EXPECT_FALSE(bobby.starts_with(bob));
  EXPECT_TRUE(keys::cursor("bob", c).starts_with(bob));
  EXPECT_FALSE(keys::prekey("bobby", 1).starts_with(keys::prekey_prefix("bob")));
}

TEST(storage_keys, cursor_and_prekey_keys_parse_back) {
  const auto c = conv_of_byte(9);
  auto k = keys::parse_cursor(keys::cursor("carol", c));
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->first, "carol");
  EXPECT_EQ(k->second, c);
  auto p = keys::parse_prekey(keys::prekey("mirror-a", 0x1122334455));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->first, "mirror-a");
  EXPECT_EQ(p->second, 0x1122334455u);
  EXPECT_FALSE(keys::parse_cursor("\x05"
                                  "abc")
                   .has_value());
}

TEST(storage_keys, prefix_end_is_the_least_key_above_the_prefix) {
  EXPECT_EQ(keys::prefix_end("ab"), "ac");
  EXPECT_EQ(keys::prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(keys::prefix_end(std::string("\xff\xff", 2)), "");
}

TEST(storage_keys, every_role_holds_meta_first_and_names_are_unique) {
  for (role r : {role::router, role::mirror, role::client}) {
    auto cols = columns_of(r);
    ASSERT_FALSE(cols.empty());
    EXPECT_EQ(cols[0], column::meta);
    std::vector<std::string_view> names;
    for (column c : cols) {
      names.push_back(column_name(c));
      EXPECT_EQ(column_by_name(column_name(c)), c);
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  }
  EXPECT_FALSE(column_by_name("no-such-column").has_value());
}

}  // namespace
}  // namespace cowpi::storage

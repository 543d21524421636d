// SPDX-License-Identifier: Apache-2.0
// Rendezvous hashing over a cluster's node list.
#include "cowpi/protocol/shard.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>

namespace cowpi::protocol {
namespace {

conv_id conv_of(uint32_t n) {
  conv_id c{};
  for (size_t i = 0; i < 4; ++i)
    c[i] = static_cast<uint8_t>(n >> (8 * i));
  return c;
}

// Computed independently (Python hashlib): sha256(b"cowpi/v1/shard" + bytes([len(node)]) +
// node + key)[:8], big-endian.
TEST(shard, weight_matches_the_independent_computation) {
  conv_id key{};
  for (size_t i = 0; i < key.size(); ++i)
    key[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(shard_weight("node-1", key), 0x6ebd495581ec8fceULL);
  EXPECT_EQ(shard_weight("node-2", key), 0x6e84249cc4055f5bULL);
  EXPECT_EQ(shard_weight("node-3", key), 0x48adb72e2fe44b1aULL);
  EXPECT_EQ(conv_owner({"node-1", "node-2", "node-3"}, key), 0u);
}

// Computed independently (Python hashlib), as above with the id's bytes as the key.
TEST(shard, user_homes_match_the_independent_computation) {
  const std::vector<std::string> nodes{"router-1", "router-2", "router-3"};
  const std::string key = "alice";
  EXPECT_EQ(
      shard_weight("router-1", byte_view(reinterpret_cast<const uint8_t*>(key.data()), key.size())),
      0xc9f59c81b45f4409ULL);
  const std::map<std::string, std::string> want{{"alice", "router-2"}, {"bob", "router-3"},
                                                {"carol", "router-3"}, {"dave", "router-3"},
                                                {"erin", "router-2"},  {"frank", "router-1"}};
  for (const auto& [user, home] : want)
    EXPECT_EQ(nodes[user_owner(nodes, user)], home) << user;
}

// Computed independently (Python hmac/hashlib): HMAC(HKDF(L("cluster"), lsk, L("node hello")),
// L("node") || u8(#node) || node).
TEST(shard, cluster_hello_tag_matches_the_independent_computation) {
  bytes lsk(32);
  for (size_t i = 0; i < 32; ++i)
    lsk[i] = static_cast<uint8_t>(i + 1);
  lsk[0] &= 248;
  lsk[31] = static_cast<uint8_t>((lsk[31] & 127) | 64);
  auto me = identity::from_secret("router", crypto::secret<32>::from(lsk));
  auto hex = [](const crypto::secret<32>& s) {
    std::string out;
    for (auto b : s.expose()) {
      char buf[3];
      std::snprintf(buf, sizeof buf, "%02x", b);
      out += buf;
    }
    return out;
  };
  EXPECT_EQ(hex(cluster_hello_tag(me, "router-1")),
            "bc071c03102eed71924a84de4d188193056278000aea5995774a4d2994c04963");
  EXPECT_EQ(hex(cluster_hello_tag(me, "router-2")),
            "dbfe3bd86d6c860e0be1df6feefe7dbea11639accfac0ce8ad70f47d01c40814");
  // Another identity (another provider) cannot make it.
  lsk[5] ^= 1;
  auto other = identity::from_secret("router", crypto::secret<32>::from(lsk));
  EXPECT_NE(hex(cluster_hello_tag(other, "router-1")), hex(cluster_hello_tag(me, "router-1")));
}

TEST(shard, owners_match_the_independent_computation) {
  const std::vector<std::string> nodes{"node-1", "node-2", "node-3"};
  const char* want[] = {"node-2", "node-1", "node-3", "node-1"};
  for (uint8_t k = 0; k < 4; ++k) {
    conv_id c;
    c.fill(k);
    EXPECT_EQ(nodes[conv_owner(nodes, c)], want[k]) << int(k);
  }
}

TEST(shard, the_owner_does_not_depend_on_the_order_of_the_list) {
  std::vector<std::string> nodes{"a", "b", "c", "d"};
  std::vector<std::string> reversed(nodes.rbegin(), nodes.rend());
  for (uint32_t n = 0; n < 500; ++n) {
    const conv_id c = conv_of(n);
    EXPECT_EQ(nodes[conv_owner(nodes, c)], reversed[conv_owner(reversed, c)]);
  }
}

TEST(shard, a_single_node_owns_everything) {
  for (uint32_t n = 0; n < 50; ++n)
    EXPECT_EQ(conv_owner({"only"}, conv_of(n)), 0u);
}

TEST(shard, adding_a_node_moves_only_what_the_new_node_wins) {
  const std::vector<std::string> two{"m-1", "m-2"};
  const std::vector<std::string> three{"m-1", "m-2", "m-3"};
  size_t moved = 0;
  for (uint32_t n = 0; n < 3000; ++n) {
    const conv_id c = conv_of(n);
    const std::string before = two[conv_owner(two, c)];
    const std::string after = three[conv_owner(three, c)];
    if (before != after) {
      EXPECT_EQ(after, "m-3");
      ++moved;
    }
  }
  // About a third moves; every moved key went to the new node.
  EXPECT_GT(moved, 800u);
  EXPECT_LT(moved, 1200u);
}

TEST(shard, keys_spread_over_the_nodes) {
  const std::vector<std::string> nodes{"r-1", "r-2", "r-3"};
  std::map<size_t, size_t> count;
  for (uint32_t n = 0; n < 3000; ++n)
    ++count[conv_owner(nodes, conv_of(n))];
  ASSERT_EQ(count.size(), 3u);
  for (const auto& [node, c] : count) {
    EXPECT_GT(c, 850u) << nodes[node];
    EXPECT_LT(c, 1150u) << nodes[node];
  }
}

}  // namespace
}  // namespace cowpi::protocol

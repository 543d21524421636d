// SPDX-License-Identifier: Apache-2.0
// Admin read paths over a secondary instance while the primary writes, and over read-only
// opens of every role's store.
#include "cowpi/storage/admin.hpp"

#include "durable_world.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>

namespace cowpi::storage {
namespace {

using testing::durable_world;
using testing::temp_dir;

open_options secondary(const temp_dir& d, const std::string& name) {
  open_options o;
  o.mode = open_mode::secondary;
  o.secondary_dir = d.path() / ("secondary-" + name);
  return o;
}

TEST(storage_admin, a_secondary_reads_the_router_while_it_runs_and_catches_up) {
  temp_dir d("admin");
  durable_world w(d.path(), {});
  for (const char* u : {"alice", "bob", "carol"})
    w.add_user(u);
  const auto conv = w.create("alice", {"bob", "carol"}).value();
  w.run();
  ASSERT_TRUE(w.send("bob", conv, "one").has_value());
  w.run();

  auto a = admin_reader::open(d.path() / "router", secondary(d, "router"));
  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_EQ((*a)->kind(), role::router);
  auto convs = (*a)->conversations();
  ASSERT_TRUE(convs.has_value());
  ASSERT_EQ(convs->size(), 1u);
  EXPECT_EQ(convs->front().conv, conv);
  EXPECT_EQ(convs->front().next, 2u);
  EXPECT_EQ(convs->front().members, 3u);
  EXPECT_EQ(convs->front().mirrors, 2u);
  EXPECT_EQ(convs->front().pending, 0u);
  auto log = (*a)->log_range(conv, 0, UINT64_MAX);
  ASSERT_TRUE(log.has_value());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ(log->at(0).type, protocol::msg_type::setup);
  EXPECT_EQ(log->at(1).author, "bob");
  EXPECT_EQ(log->at(1).slots, 3u);
  EXPECT_TRUE(log->at(1).complete);
  auto users = (*a)->users();
  ASSERT_TRUE(users.has_value());
  ASSERT_EQ(users->size(), 3u);
  EXPECT_EQ(users->at(0).id, "alice");
  auto pools = (*a)->prekey_pools();
  ASSERT_TRUE(pools.has_value());
  EXPECT_EQ(pools->size(), 5u);  // three users and two mirrors
  for (const auto& p : *pools)
    EXPECT_NE(p.last_resort_id, 0u) << p.owner;
  auto depths = (*a)->queue_depths();
  ASSERT_TRUE(depths.has_value());
  ASSERT_EQ(depths->size(), 3u);
  for (const auto& q : *depths)
    EXPECT_EQ(q.depth, 0u) << q.user;

  // The primary keeps writing; a refresh shows it.
  ASSERT_TRUE(w.send("carol", conv, "two").has_value());
  ASSERT_TRUE(w.send("carol", conv, "three").has_value());
  w.run(4);
  ASSERT_TRUE((*a)->refresh().has_value());
  auto later = (*a)->log_range(conv, 2, UINT64_MAX);
  ASSERT_TRUE(later.has_value());
  EXPECT_FALSE(later->empty());
  w.run();
  ASSERT_TRUE((*a)->refresh().has_value());
  EXPECT_EQ((*a)->log_range(conv, 0, UINT64_MAX)->size(), 4u);
  EXPECT_EQ((*a)->log_range(conv, 1, 2)->size(), 2u);
  EXPECT_EQ((*a)->d_range(conv, 0, 3)->size(), 4u);
}

TEST(storage_admin, queue_depth_counts_what_a_user_has_not_acknowledged) {
  temp_dir d("admin");
  protocol::conv_id conv{};
  {
    durable_world w(d.path(), {});
    for (const char* u : {"alice", "bob"})
      w.add_user(u);
    conv = w.create("alice", {"bob"}).value();
    w.run();
    for (int k = 0; k < 3; ++k)
      ASSERT_TRUE(w.send("alice", conv, "m").has_value());
    w.run();
    // Rewind bob's cursor as if his acks were lost: depth counts from the cursor.
    write_batch b;
    b.put(column::cursors, keys::cursor("bob", conv), encode_cursor(cursor_record{1, {}}));
    ASSERT_TRUE(w.router_db().raw().apply(std::move(b)).has_value());
  }
  open_options ro;
  ro.mode = open_mode::read_only;
  auto a = admin_reader::open(d.path() / "router", ro);
  ASSERT_TRUE(a.has_value());
  auto depths = (*a)->queue_depths();
  ASSERT_TRUE(depths.has_value());
  for (const auto& q : *depths)
    EXPECT_EQ(q.depth, q.user == "bob" ? 3u : 0u) << q.user;
}

TEST(storage_admin, mirror_and_client_stores_list_their_conversations_and_d_history) {
  temp_dir d("admin");
  protocol::conv_id conv{};
  std::vector<std::pair<uint64_t, hash32>> router_d;
  {
    durable_world w(d.path(), {});
    for (const char* u : {"alice", "bob"})
      w.add_user(u);
    conv = w.create("alice", {"bob"}).value();
    w.run();
    ASSERT_TRUE(w.send("bob", conv, "hi").has_value());
    w.run();
  }
  open_options ro;
  ro.mode = open_mode::read_only;
  auto r = admin_reader::open(d.path() / "router", ro);
  ASSERT_TRUE(r.has_value());
  router_d = *(*r)->d_range(conv, 0, UINT64_MAX);
  ASSERT_EQ(router_d.size(), 2u);
  for (const char* name : {"mirror-a", "mirror-b", "client-alice", "client-bob"}) {
    auto a = admin_reader::open(d.path() / name, secondary(d, name));
    ASSERT_TRUE(a.has_value()) << name << ": " << a.error().message();
    auto convs = (*a)->conversations();
    ASSERT_TRUE(convs.has_value());
    ASSERT_EQ(convs->size(), 1u) << name;
    EXPECT_EQ(convs->front().next, 2u) << name;
    EXPECT_EQ((*a)->d_range(conv, 0, UINT64_MAX).value(), router_d) << name;
    auto wrong = (*a)->users();
    ASSERT_FALSE(wrong.has_value());
    EXPECT_EQ(wrong.error().code, errc::bad_state);
  }
}

}  // namespace
}  // namespace cowpi::storage

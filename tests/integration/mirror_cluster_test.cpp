// SPDX-License-Identifier: Apache-2.0
// Mirror clusters over real processes: a router and two mirrors of two nodes each, every
// conversation owned by one node of each mirror (rendezvous hashing over the node ids).
#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/shard.hpp"

#include "client_harness.hpp"
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fstream>

namespace cowpi::testing {
namespace {

const std::vector<std::string> a_nodes{"mirror-a-1", "mirror-a-2"};
const std::vector<std::string> b_nodes{"mirror-b-1", "mirror-b-2"};

void two_nodes(tools::local_deployment& d) {
  d.mirror_nodes = 2;
}

// The conversations each node of a mirror holds, from its admin endpoint.
int64_t node_conversations(live_deployment& dep, const std::string& node) {
  auto s = admin_request(dep.layout().dir / node / "admin.sock", {{"get", "status"}});
  const auto& m = s["sections"]["mirror"];
  return m.is_object() ? m.value("conversations", int64_t{-1}) : -1;
}

// Creates conversations of alice with `others` until one is owned by `node` of mirror-a.
std::optional<protocol::conv_id> create_owned_by(live_deployment& dep, size_t node,
                                                 const std::vector<std::string>& others,
                                                 std::vector<protocol::conv_id>& made) {
  for (int tries = 0; tries < 24; ++tries) {
    auto conv = dep.user("alice").create(others);
    EXPECT_TRUE(conv.has_value()) << conv.error().message();
    if (!conv)
      return std::nullopt;
    made.push_back(*conv);
    if (protocol::conv_owner(a_nodes, *conv) == node)
      return *conv;
  }
  ADD_FAILURE() << "no conversation owned by node " << node << " in 24 tries";
  return std::nullopt;
}

TEST(mirror_cluster, conversations_owned_by_every_node_are_delivered_once_in_order_to_all) {
  live_deployment dep("mcluster", {}, provider_binary(), true, two_nodes);
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob", "carol"})
    dep.add_user(u);
  std::vector<protocol::conv_id> convs;
  ASSERT_TRUE(create_owned_by(dep, 0, {"bob", "carol"}, convs));
  ASSERT_TRUE(create_owned_by(dep, 1, {"bob", "carol"}, convs));
  // Both modes: the chain mode's mirror blocks run through the same owner node.
  auto chain = dep.user("bob").create({"alice", "carol"}, protocol::block_mode::chain);
  ASSERT_TRUE(chain.has_value()) << chain.error().message();
  convs.push_back(*chain);
  ASSERT_TRUE(dep.settle());
  for (int k = 0; k < 10; ++k)
    for (size_t c = 0; c < convs.size(); ++c) {
      const char* who = k % 3 == 0 ? "alice" : (k % 3 == 1 ? "bob" : "carol");
      auto r = dep.user(who).send(convs[c], "c" + std::to_string(c) + " m" + std::to_string(k));
      ASSERT_TRUE(r.has_value()) << r.error().message();
    }
  ASSERT_TRUE(dep.settle());
  for (size_t c = 0; c < convs.size(); ++c) {
    const auto ta = texts(dep.transcript("alice", convs[c]));
    ASSERT_EQ(ta.size(), 10u) << c;
    // Every message once; each author's in the order sent (authors race each other to an
    // index, so only the per-author order is fixed).
    for (int author = 0; author < 3; ++author) {
      std::vector<std::string> want;
      std::vector<std::string> got;
      for (int k = author; k < 10; k += 3)
        want.push_back("c" + std::to_string(c) + " m" + std::to_string(k));
      for (const auto& t : ta)
        if (std::find(want.begin(), want.end(), t) != want.end())
          got.push_back(t);
      EXPECT_EQ(got, want) << c << " author " << author;
    }
    EXPECT_EQ(texts(dep.transcript("bob", convs[c])), ta);
    EXPECT_EQ(texts(dep.transcript("carol", convs[c])), ta);
    expect_one_conversation(dep, convs[c], {"alice", "bob", "carol"});
  }
  for (auto u : {"alice", "bob", "carol"})
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
  // Each node holds exactly the conversations it owns.
  for (const auto* nodes : {&a_nodes, &b_nodes}) {
    std::vector<int64_t> want(nodes->size(), 0);
    for (const auto& conv : convs)
      ++want[protocol::conv_owner(*nodes, conv)];
    for (size_t j = 0; j < nodes->size(); ++j)
      EXPECT_EQ(node_conversations(dep, (*nodes)[j]), want[j]) << (*nodes)[j];
  }
}

TEST(mirror_cluster, a_killed_node_pauses_only_its_conversations_and_loses_nothing) {
  live_deployment dep("mcluster-kill", {}, provider_binary(), true, two_nodes);
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  std::vector<protocol::conv_id> made;
  auto on_1 = create_owned_by(dep, 0, {"bob"}, made);
  auto on_2 = create_owned_by(dep, 1, {"bob"}, made);
  ASSERT_TRUE(on_1 && on_2);
  ASSERT_TRUE(dep.settle());

  auto& victim = dep.process("mirror-a-2");
  victim.signal(SIGKILL);
  ASSERT_TRUE(victim.wait(std::chrono::seconds(10)).has_value());
  // The conversation mirror-a-2 owns waits; the one on mirror-a-1 keeps flowing.
  ASSERT_TRUE(dep.user("alice").send(*on_2, "held").has_value());
  ASSERT_TRUE(dep.user("alice").send(*on_1, "flows").has_value());
  EXPECT_TRUE(eventually(
      [&] { return texts(dep.transcript("bob", *on_1)) == std::vector<std::string>{"flows"}; }));
  EXPECT_TRUE(texts(dep.transcript("bob", *on_2)).empty());
  ASSERT_TRUE(dep.user("alice").send(*on_1, "still flows").has_value());
  EXPECT_TRUE(eventually([&] {
    return texts(dep.transcript("bob", *on_1)) == std::vector<std::string>{"flows", "still flows"};
  }));
  EXPECT_TRUE(texts(dep.transcript("bob", *on_2)).empty());

  // Back on the same data: the held message is ordered and delivered once.
  ASSERT_TRUE(dep.restart("mirror-a-2"));
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("bob", *on_2)), std::vector<std::string>{"held"});
  EXPECT_EQ(texts(dep.transcript("bob", *on_1)),
            (std::vector<std::string>{"flows", "still flows"}));
  for (const auto& conv : made)
    expect_one_conversation(dep, conv, {"alice", "bob"});
  for (auto u : {"alice", "bob"})
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
}

TEST(mirror_cluster, a_node_refuses_a_conversation_it_does_not_own_and_keeps_serving) {
  live_deployment dep("mcluster-wrong", {}, provider_binary(), true, two_nodes);
  ASSERT_TRUE(dep.ok()) << dep.error();
  // The router is restarted with a node list for mirror-a that leaves mirror-a-2 out: it then
  // sends every conversation to mirror-a-1, which owns only some of them.
  const auto& d = dep.layout();
  auto& router = dep.process(d.router);
  router.signal(SIGTERM);
  ASSERT_TRUE(router.wait(std::chrono::seconds(10)).has_value());
  auto rc = config::load_provider_config(d.config_path(d.router));
  ASSERT_TRUE(rc.has_value()) << rc.error().message();
  ASSERT_EQ(rc->mirrors[0].name, "mirror-a");
  ASSERT_EQ(rc->mirrors[0].nodes.size(), 2u);
  rc->mirrors[0].nodes.resize(1);
  {
    std::ofstream o(d.config_path(d.router), std::ios::trunc);
    o << config::to_toml(*rc);
  }
  ASSERT_TRUE(dep.restart(d.router));
  // Linked to every node it lists (mirror-a-2 is not among them).
  ASSERT_TRUE(eventually([&] {
    auto s = admin_request(d.dir / d.router / "admin.sock", {{"get", "status"}});
    for (const char* node : {"mirror-a-1", "mirror-b-1", "mirror-b-2"}) {
      const auto& sec = s["sections"][std::string("link:") + node];
      if (!sec.is_object() || !sec.value("up", false) || !sec.value("keys", false))
        return false;
    }
    return !s["sections"].contains("link:mirror-a-2");
  }));
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  // A SETUP of a conversation mirror-a-2 owns is refused by mirror-a-1 before it touches any
  // state, and alice is told why; the ones mirror-a-1 owns are set up.
  std::optional<protocol::conv_id> on_1;
  size_t refused = 0;
  int64_t set_up = 0;
  for (int tries = 0; tries < 24 && (!on_1 || refused == 0); ++tries) {
    auto conv = dep.user("alice").create({"bob"});
    if (conv) {
      EXPECT_EQ(protocol::conv_owner(a_nodes, *conv), 0u);
      on_1 = *conv;
      ++set_up;
    } else {
      EXPECT_NE(conv.error().message().find("MIRROR_REJECT wrong_node"), std::string::npos)
          << conv.error().message();
      ++refused;
    }
  }
  ASSERT_TRUE(on_1.has_value());
  ASSERT_GT(refused, 0u);
  auto s = admin_request(d.dir / "mirror-a-1" / "admin.sock", {{"get", "status"}});
  EXPECT_EQ(s["sections"]["mirror"].value("wrong_node", uint64_t{0}), refused);
  // Its own conversations go on.
  ASSERT_TRUE(dep.user("alice").send(*on_1, "fine").has_value());
  EXPECT_TRUE(eventually(
      [&] { return texts(dep.transcript("bob", *on_1)) == std::vector<std::string>{"fine"}; }));
  // mirror-a-1 holds only what it owns; mirror-a-2 was never asked.
  EXPECT_EQ(node_conversations(dep, "mirror-a-2"), 0);
  EXPECT_EQ(node_conversations(dep, "mirror-a-1"), set_up);
  expect_one_conversation(dep, *on_1, {"alice", "bob"});
}

TEST(mirror_cluster, a_node_holding_data_refuses_to_start_with_another_node_list) {
  live_deployment dep("mcluster-map", {}, provider_binary(), true, two_nodes);
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  std::vector<protocol::conv_id> made;
  ASSERT_TRUE(create_owned_by(dep, 0, {"bob"}, made));
  ASSERT_TRUE(dep.settle());
  const auto& d = dep.layout();
  auto& node = dep.process("mirror-a-1");
  node.signal(SIGTERM);
  ASSERT_TRUE(node.wait(std::chrono::seconds(10)).has_value());
  // A third node added to its list: its conversations would belong elsewhere.
  const auto path = d.config_path("mirror-a-1");
  auto c = config::load_provider_config(path);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  const auto original = *c;
  c->cluster.nodes.push_back("mirror-a-3");
  auto write = [&](const config::provider_config& cfg) {
    std::ofstream o(path, std::ios::trunc);
    o << config::to_toml(cfg);
  };
  write(*c);
  auto refused = tools::restart_provider(d, "mirror-a-1", provider_binary());
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("cluster node list differs"), std::string::npos)
      << refused.error().message();
  // Its own list again: it starts, and its conversation goes on.
  write(original);
  ASSERT_TRUE(dep.restart("mirror-a-1"));
  ASSERT_TRUE(eventually([&] { return tools::router_ready(d); }));
  ASSERT_TRUE(dep.user("alice").send(made.back(), "after").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("bob", made.back())), std::vector<std::string>{"after"});
}

}  // namespace
}  // namespace cowpi::testing

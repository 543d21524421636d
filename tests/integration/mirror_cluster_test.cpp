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
#include <map>

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

// Stops `provider` (SIGTERM) and waits for it.
void stop(live_deployment& dep, const std::string& provider) {
  auto& p = dep.process(provider);
  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait(std::chrono::seconds(10)).has_value()) << provider;
}

void write_config(const std::filesystem::path& path, const config::provider_config& c) {
  std::ofstream o(path, std::ios::trunc);
  o << config::to_toml(c);
}

TEST(mirror_cluster, resharding_two_nodes_to_three_moves_conversations_that_go_on_after) {
  const std::vector<std::string> two{"mirror-a-1", "mirror-a-2"};
  const std::vector<std::string> three{"mirror-a-1", "mirror-a-2", "mirror-a-3"};
  live_deployment dep("mcluster-reshard", {}, provider_binary(), true,
                      [](tools::local_deployment& d) { d.mirror_nodes = 3; });
  ASSERT_TRUE(dep.ok()) << dep.error();
  const auto& d = dep.layout();

  // mirror-a runs as two nodes first: its configs and the router's list leave mirror-a-3 out.
  // mirror-a-3 keeps the keys it made at its first start (the router's directory holds them);
  // a node that never started is the unit test's case (tests/unit/storage/reshard_test.cpp).
  for (const auto& p : {d.router, three[0], three[1], three[2]})
    stop(dep, p);
  std::map<std::string, config::provider_config> full;
  for (const auto& p : {d.router, three[0], three[1], three[2]}) {
    auto c = config::load_provider_config(d.config_path(p));
    ASSERT_TRUE(c.has_value()) << c.error().message();
    full.emplace(p, *c);
  }
  for (const auto& n : two) {
    auto c = full.at(n);
    c.cluster.nodes = two;
    write_config(d.config_path(n), c);
  }
  {
    auto c = full.at(d.router);
    ASSERT_EQ(c.mirrors[0].name, "mirror-a");
    ASSERT_EQ(c.mirrors[0].nodes.size(), 3u);
    c.mirrors[0].nodes.resize(2);
    write_config(d.config_path(d.router), c);
  }
  for (const auto& p : {two[0], two[1], d.router})
    ASSERT_TRUE(dep.restart(p)) << p;
  ASSERT_TRUE(eventually([&] {
    auto st = admin_request(d.dir / d.router / "admin.sock", {{"get", "status"}});
    for (const char* node :
         {"mirror-a-1", "mirror-a-2", "mirror-b-1", "mirror-b-2", "mirror-b-3"}) {
      const auto& sec = st["sections"][std::string("link:") + node];
      if (!sec.is_object() || !sec.value("up", false) || !sec.value("keys", false))
        return false;
    }
    return true;
  }));

  // Conversations on both nodes, until each node holds one that mirror-a-3 will own.
  for (auto u : {"alice", "bob", "carol"})
    dep.add_user(u);
  std::vector<protocol::conv_id> convs;
  std::vector<bool> gives(2, false);
  for (int k = 0; k < 80 && !(gives[0] && gives[1]); ++k) {
    auto conv = dep.user("alice").create(
        {"bob", "carol"}, k % 3 == 2 ? protocol::block_mode::chain : protocol::block_mode::pk);
    ASSERT_TRUE(conv.has_value()) << conv.error().message();
    convs.push_back(*conv);
    if (protocol::conv_owner(three, *conv) == 2)
      gives[protocol::conv_owner(two, *conv)] = true;
  }
  ASSERT_TRUE(gives[0] && gives[1]) << "no conversation moving from each node in 80";
  for (size_t c = 0; c < convs.size(); ++c)
    for (const char* who : {"alice", "bob"})
      ASSERT_TRUE(dep.user(who).send(convs[c], std::string("before ") + who).has_value());
  ASSERT_TRUE(dep.settle());
  size_t moving = 0;
  for (const auto& conv : convs)
    moving += protocol::conv_owner(three, conv) == 2;

  // Offline: mirror-a's nodes and the router stop, every config lists the three nodes again.
  for (const auto& p : {d.router, three[0], three[1], three[2]})
    write_config(d.config_path(p), full.at(p));
  const auto others = "--router " + d.config_path(d.router).string() + " "
                      + d.config_path(three[1]).string() + " " + d.config_path(three[2]).string();
  // A node or the router still running is refused, and nothing moves.
  stop(dep, two[1]);
  auto busy = admin(d.config_path(three[0]), "reshard " + others);
  EXPECT_EQ(busy.exit, 1) << busy.out << busy.err;
  EXPECT_NE(busy.err.find("every node's daemon must be stopped"), std::string::npos) << busy.err;
  stop(dep, two[0]);
  busy = admin(d.config_path(three[0]), "reshard " + others);
  EXPECT_EQ(busy.exit, 1) << busy.out << busy.err;
  EXPECT_NE(busy.err.find("the router must be stopped"), std::string::npos) << busy.err;
  stop(dep, d.router);
  // A node of the persisted list whose store is not where its config says is refused (the
  // command would otherwise take it for a new, empty node).
  const auto a2_db = full.at(three[1]).data_dir / "mirror.db";
  std::filesystem::rename(a2_db, a2_db.string() + ".elsewhere");
  busy = admin(d.config_path(three[0]), "reshard " + others);
  EXPECT_EQ(busy.exit, 1) << busy.out << busy.err;
  EXPECT_NE(busy.err.find("node mirror-a-2 is in the persisted node list but has no store"),
            std::string::npos)
      << busy.err;
  EXPECT_FALSE(std::filesystem::exists(a2_db));
  std::filesystem::rename(a2_db.string() + ".elsewhere", a2_db);
  auto plan = admin(d.config_path(three[0]), "--json reshard --dry-run " + others);
  ASSERT_EQ(plan.exit, 0) << plan.out << plan.err;
  EXPECT_EQ(plan.j()["moves"].size(), moving);
  EXPECT_EQ(plan.j()["old_nodes"], nlohmann::json(two));
  auto done = admin(d.config_path(three[0]), "--json reshard " + others);
  ASSERT_EQ(done.exit, 0) << done.out << done.err;
  const auto report = done.j();
  ASSERT_EQ(report["moves"].size(), moving) << done.out;
  for (const auto& mv : report["moves"])
    EXPECT_EQ(mv.value("to", std::string()), "mirror-a-3") << mv.dump();
  EXPECT_EQ(report["new_nodes"], nlohmann::json(three));

  for (const auto& p : {three[0], three[1], three[2], d.router})
    ASSERT_TRUE(dep.restart(p)) << p;
  ASSERT_TRUE(tools::wait_router_ready(d, std::chrono::seconds(20)));
  // The users reconnect to the restarted router (a create before that fails UNAVAILABLE).
  ASSERT_TRUE(dep.settle());
  // Every conversation goes on where it now lives, and a new one can be set up on mirror-a-3.
  std::vector<protocol::conv_id> after_made;
  auto fresh = [&]() -> std::optional<protocol::conv_id> {
    for (int tries = 0; tries < 40; ++tries) {
      auto conv = dep.user("carol").create({"alice", "bob"});
      EXPECT_TRUE(conv.has_value()) << conv.error().message();
      if (!conv)
        return std::nullopt;
      after_made.push_back(*conv);
      if (protocol::conv_owner(three, *conv) == 2)
        return *conv;
    }
    return std::nullopt;
  }();
  ASSERT_TRUE(fresh.has_value());
  for (const auto& conv : convs)
    ASSERT_TRUE(dep.user("carol").send(conv, "after carol").has_value());
  ASSERT_TRUE(dep.user("bob").send(*fresh, "fresh").has_value());
  ASSERT_TRUE(dep.settle());
  const std::vector<std::string> want{"before alice", "before bob", "after carol"};
  for (const auto& conv : convs) {
    auto t = texts(dep.transcript("alice", conv));
    std::sort(t.begin(), t.end() - 1);  // the two "before" messages race each other
    EXPECT_EQ(t, want);
    EXPECT_EQ(texts(dep.transcript("bob", conv)), texts(dep.transcript("alice", conv)));
    EXPECT_EQ(texts(dep.transcript("carol", conv)), texts(dep.transcript("alice", conv)));
    expect_one_conversation(dep, conv, {"alice", "bob", "carol"});
  }
  EXPECT_EQ(texts(dep.transcript("alice", *fresh)), std::vector<std::string>{"fresh"});
  for (auto u : {"alice", "bob", "carol"})
    EXPECT_TRUE(dep.alarms(u).empty()) << u;
  // Each node holds exactly what it owns under the new list, and the audit (every D_i of every
  // conversation, asked of its owner node) is clean.
  std::vector<int64_t> want_held(3, 0);
  for (const auto* list : {&convs, &after_made})
    for (const auto& conv : *list)
      ++want_held[protocol::conv_owner(three, conv)];
  for (size_t j = 0; j < 3; ++j)
    EXPECT_EQ(node_conversations(dep, three[j]), want_held[j]) << three[j];
  auto audit = admin(d.config_path(d.router), "audit");
  EXPECT_EQ(audit.exit, 0) << audit.out << audit.err;
  EXPECT_NE(audit.out.find("audit clean"), std::string::npos) << audit.out;
}

}  // namespace
}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// Router clusters over real processes: a router of three nodes and two mirrors of two nodes
// each. Users are homed on every node (rendezvous hashing of their ids), conversations owned
// by every node; sessions, SUBMITs, acks and deliveries cross nodes.
#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/protocol/wire.hpp"

#include "client_harness.hpp"
#include "support.hpp"
#include "type_ids.hpp"
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>

namespace cowpi::testing {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> routers{"router-1", "router-2", "router-3"};
// Homed on router-1, router-2 and router-3 (shard_test pins these).
const std::vector<std::string> people{"frank", "alice", "bob"};

void cluster_layout(tools::local_deployment& d) {
  d.router_nodes = 3;
  d.mirror_nodes = 2;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// How many times each mirror link of `node` connected (its admin sections `link:*`).
std::map<std::string, int64_t> link_connects(live_deployment& dep, const std::string& node) {
  auto s = admin_request(dep.layout().dir / node / "admin.sock", {{"get", "status"}});
  std::map<std::string, int64_t> out;
  if (!s.contains("sections"))
    return out;
  for (const auto& [name, body] : s["sections"].items())
    if (name.rfind("link:", 0) == 0)
      out[name] = body.value("connects", int64_t{-1});
  return out;
}

nlohmann::json cluster_section(live_deployment& dep, const std::string& node) {
  auto s = admin_request(dep.layout().dir / node / "admin.sock", {{"get", "status"}});
  return s.contains("sections") ? s["sections"]["cluster"] : nlohmann::json();
}

// Creates conversations (by rotating creators) of every person until one is owned by `node`.
std::optional<protocol::conv_id> create_owned_by(
    live_deployment& dep, size_t node, std::vector<protocol::conv_id>& made,
    protocol::block_mode mode = protocol::block_mode::pk) {
  for (size_t tries = 0; tries < 24; ++tries) {
    const auto& creator = people[tries % people.size()];
    std::vector<std::string> others;
    for (const auto& p : people)
      if (p != creator)
        others.push_back(p);
    auto conv = dep.user(creator).create(others, mode);
    EXPECT_TRUE(conv.has_value()) << creator << ": " << conv.error().message();
    if (!conv)
      return std::nullopt;
    made.push_back(*conv);
    if (protocol::conv_owner(routers, *conv) == node)
      return *conv;
  }
  ADD_FAILURE() << "no conversation owned by " << routers[node] << " in 24 tries";
  return std::nullopt;
}

// One conversation of every person owned by each router node, in node order (empty on failure).
std::vector<protocol::conv_id> one_per_node(live_deployment& dep) {
  std::vector<protocol::conv_id> made;
  std::vector<protocol::conv_id> convs;
  for (size_t node = 0; node < routers.size(); ++node) {
    auto c = create_owned_by(dep, node, made);
    if (!c)
      return {};
    convs.push_back(*c);
  }
  return convs;
}

// Each author's messages once, in the order sent, and every person's transcript the same.
void expect_all_delivered(live_deployment& dep, const protocol::conv_id& conv,
                          const std::map<std::string, std::vector<std::string>>& sent) {
  const auto ta = texts(dep.transcript(people.front(), conv));
  size_t total = 0;
  for (const auto& [author, want] : sent) {
    total += want.size();
    std::vector<std::string> got;
    for (const auto& t : ta)
      if (std::find(want.begin(), want.end(), t) != want.end())
        got.push_back(t);
    EXPECT_EQ(got, want) << author;
  }
  EXPECT_EQ(ta.size(), total);
  for (const auto& p : people)
    EXPECT_EQ(texts(dep.transcript(p, conv)), ta) << p;
  expect_one_conversation(dep, conv, people);
}

TEST(router_cluster, people_homed_on_every_node_get_every_message_of_conversations_on_every_node) {
  ASSERT_EQ(protocol::user_owner(routers, "frank"), 0u);
  ASSERT_EQ(protocol::user_owner(routers, "alice"), 1u);
  ASSERT_EQ(protocol::user_owner(routers, "bob"), 2u);
  live_deployment dep("rcluster", {}, provider_binary(), true, cluster_layout);
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (const auto& p : people)
    dep.add_user(p);
  auto convs = one_per_node(dep);
  ASSERT_EQ(convs.size(), routers.size());
  // The chain mode too: its names-free SUBMIT is forwarded like any other.
  auto chain = dep.user("alice").create({"bob", "frank"}, protocol::block_mode::chain);
  ASSERT_TRUE(chain.has_value()) << chain.error().message();
  convs.push_back(*chain);
  ASSERT_TRUE(dep.settle());
  std::vector<std::map<std::string, std::vector<std::string>>> sent(convs.size());
  for (int k = 0; k < 9; ++k)
    for (size_t c = 0; c < convs.size(); ++c) {
      const auto& who = people[static_cast<size_t>(k) % people.size()];
      const std::string text = "c" + std::to_string(c) + " m" + std::to_string(k);
      auto r = dep.user(who).send(convs[c], text);
      ASSERT_TRUE(r.has_value()) << r.error().message();
      sent[c][who].push_back(text);
    }
  ASSERT_TRUE(dep.settle());
  for (size_t c = 0; c < convs.size(); ++c)
    expect_all_delivered(dep, convs[c], sent[c]);
  for (const auto& p : people)
    EXPECT_TRUE(dep.alarms(p).empty()) << p;
  // Every node served the others (sessions of people homed elsewhere, their SUBMITs).
  for (const auto& node : routers) {
    auto cl = cluster_section(dep, node);
    ASSERT_TRUE(cl.is_object()) << node;
    EXPECT_EQ(cl.value("peers_up", 0), 2) << node;
    EXPECT_GT(cl.value("requests_served", 0), 0) << node;
    EXPECT_EQ(cl.value("refused", -1), 0) << node;
  }
  expect_no_blocking_store_calls(dep);
}

TEST(router_cluster, a_person_connected_to_another_node_than_its_home_gets_every_message) {
  live_deployment dep("rcluster-away", {}, provider_binary(), true, cluster_layout);
  ASSERT_TRUE(dep.ok()) << dep.error();
  dep.add_user("frank");
  dep.add_user("bob");
  // alice (homed on router-2) knows only router-3.
  dep.add_user("alice", [](actors::client_runtime_options& o) {
    auto& nodes = o.deployment.router.nodes;
    std::erase_if(nodes, [](const auto& n) { return n.id != "router-3"; });
    ASSERT_EQ(nodes.size(), 1u);
    o.deployment.router.address = nodes.front().address;
  });
  auto convs = one_per_node(dep);
  ASSERT_EQ(convs.size(), routers.size());
  ASSERT_TRUE(dep.settle());
  std::vector<std::map<std::string, std::vector<std::string>>> sent(convs.size());
  for (int k = 0; k < 6; ++k)
    for (size_t c = 0; c < convs.size(); ++c) {
      const auto& who = people[static_cast<size_t>(k) % people.size()];
      const std::string text = "away c" + std::to_string(c) + " m" + std::to_string(k);
      ASSERT_TRUE(dep.user(who).send(convs[c], text).has_value());
      sent[c][who].push_back(text);
    }
  ASSERT_TRUE(dep.settle());
  for (size_t c = 0; c < convs.size(); ++c)
    expect_all_delivered(dep, convs[c], sent[c]);
  EXPECT_TRUE(dep.alarms("alice").empty());
  // alice's session lives on router-3, her directory entry on router-2.
  EXPECT_GT(cluster_section(dep, "router-3").value("local_sessions", 0), 0);
}

// Kills each node in turn in the middle of ordering (fault point router.log.after_sync: the
// entry is logged, no mirror has its COMMIT yet), checks that the conversations of the other
// nodes keep flowing between the people homed there, then restarts it: nothing is lost or
// delivered twice.
TEST(router_cluster, each_node_killed_in_turn_pauses_only_its_shards_and_loses_nothing) {
  live_deployment dep("rcluster-kill", {}, provider_binary(), true, cluster_layout);
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (const auto& p : people)
    dep.add_user(p);
  auto convs = one_per_node(dep);
  ASSERT_EQ(convs.size(), routers.size());
  ASSERT_TRUE(dep.settle());
  std::vector<std::map<std::string, std::vector<std::string>>> sent(convs.size());
  for (size_t v = 0; v < routers.size(); ++v) {
    const auto& victim = routers[v];
    ASSERT_TRUE(dep.restart_after_stop(victim, {{"COWPI_FAULT", "router.log.after_sync"}}));
    ASSERT_TRUE(eventually([&] { return tools::router_ready(dep.layout()); }));
    std::map<std::string, std::map<std::string, int64_t>> connects;
    for (const auto& other : routers)
      if (other != victim)
        connects[other] = link_connects(dep, other);
    // A survivor (homed elsewhere) writes in the victim's conversation: the victim dies
    // having logged it.
    const auto& writer = people[(v + 1) % people.size()];
    const std::string held = "held by " + victim;
    ASSERT_TRUE(dep.user(writer).send(convs[v], held).has_value());
    sent[v][writer].push_back(held);
    ASSERT_TRUE(dep.process(victim).wait(30s).has_value()) << victim << " did not hit the fault";
    // The other nodes' conversations flow between the people not homed on the victim.
    const auto& reader = people[(v + 2) % people.size()];
    for (size_t c = 0; c < convs.size(); ++c) {
      if (c == v)
        continue;
      const std::string text = "while " + victim + " is down, c" + std::to_string(c);
      ASSERT_TRUE(dep.user(writer).send(convs[c], text).has_value());
      sent[c][writer].push_back(text);
      EXPECT_TRUE(eventually([&] {
        auto t = texts(dep.transcript(reader, convs[c]));
        return std::find(t.begin(), t.end(), text) != t.end();
      })) << text;
    }
    // The other nodes' mirror links stayed up all along (no reconnect).
    for (const auto& [other, before] : connects) {
      EXPECT_EQ(link_connects(dep, other), before) << other << " while " << victim << " is down";
      EXPECT_EQ(before.size(), 4u) << other;
    }
    // Down, its people cannot log in, and the other nodes say so.
    EXPECT_TRUE(eventually([&] {
      auto cl = cluster_section(dep, routers[(v + 1) % routers.size()]);
      return cl.is_object() && cl["peers"][victim].is_object()
             && !cl["peers"][victim].value("up", true);
    }));
    ASSERT_TRUE(dep.restart(victim));
    ASSERT_TRUE(dep.settle());
  }
  for (size_t c = 0; c < convs.size(); ++c)
    expect_all_delivered(dep, convs[c], sent[c]);
  for (const auto& p : people)
    EXPECT_TRUE(dep.alarms(p).empty()) << p;
}

TEST(router_cluster, a_node_holding_data_refuses_another_node_list_and_says_both) {
  live_deployment dep("rcluster-map", {}, provider_binary(), true, cluster_layout);
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (const auto& p : people)
    dep.add_user(p);
  ASSERT_TRUE(dep.settle());
  auto& node = dep.process("router-1");
  node.signal(SIGTERM);
  ASSERT_TRUE(node.wait(30s).has_value());
  const auto path = dep.layout().config_path("router-1");
  const std::string original = read_file(path);
  auto cfg = config::load_provider_config(path);
  ASSERT_TRUE(cfg.has_value()) << cfg.error().message();
  cfg->cluster.nodes.pop_back();
  cfg->cluster.addresses.pop_back();
  {
    std::ofstream out(path, std::ios::trunc);
    out << config::to_toml(*cfg);
  }
  auto refused = tools::provider_process::start(provider_binary(), path,
                                                dep.layout().log_path("router-1"), {}, 15s);
  ASSERT_FALSE(refused.has_value());
  const std::string log = read_file(dep.layout().log_path("router-1"));
  EXPECT_NE(log.find("router-1, router-2, router-3"), std::string::npos) << log;
  EXPECT_NE(log.find("router-1, router-2"), std::string::npos);
  {
    std::ofstream out(path, std::ios::trunc);
    out << original;
  }
  ASSERT_TRUE(dep.restart("router-1"));
  ASSERT_TRUE(dep.settle());
}

// A free loopback port (bound and released: the node binds it next).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0
      && ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    ::close(fd);
  return port;
}

// A router of two nodes grows to three offline: stop the nodes, list the third in every
// node's config, `cowpi-admin reshard`, start the three. Every conversation and every queue
// (undelivered messages, cursors) is there afterwards, and the conversation goes on.
TEST(router_cluster, two_nodes_resharded_to_three_keep_every_conversation_and_queue) {
  live_deployment dep("rcluster-grow", {}, provider_binary(), true, [](tools::local_deployment& d) {
    d.router_nodes = 2;
    d.mirror_nodes = 1;
  });
  ASSERT_TRUE(dep.ok()) << dep.error();
  const std::vector<std::string> two{"router-1", "router-2"};
  for (const auto& p : people)
    dep.add_user(p);
  std::vector<protocol::conv_id> convs;
  for (size_t k = 0; k < 6; ++k) {
    const auto& creator = people[k % people.size()];
    std::vector<std::string> others;
    for (const auto& p : people)
      if (p != creator)
        others.push_back(p);
    auto c = dep.user(creator).create(others);
    ASSERT_TRUE(c.has_value()) << c.error().message();
    convs.push_back(*c);
  }
  ASSERT_TRUE(dep.settle());
  std::vector<std::map<std::string, std::vector<std::string>>> sent(convs.size());
  auto send_round = [&](const std::string& tag) {
    for (size_t c = 0; c < convs.size(); ++c)
      for (const auto& who : people) {
        const std::string text = tag + " c" + std::to_string(c) + " " + who;
        ASSERT_TRUE(dep.user(who).send(convs[c], text).has_value());
        sent[c][who].push_back(text);
      }
  };
  send_round("before");
  ASSERT_TRUE(dep.settle());
  // bob goes offline with messages waiting for him: they must reach him after the move.
  dep.close_user("bob");
  for (size_t c = 0; c < convs.size(); ++c) {
    const std::string text = "for bob c" + std::to_string(c);
    ASSERT_TRUE(dep.user("frank").send(convs[c], text).has_value());
    sent[c]["frank"].push_back(text);
  }
  ASSERT_TRUE(eventually([&] {
    for (const auto& conv : convs)
      if (texts(dep.transcript("alice", conv)).size() != 4)
        return false;
    return true;
  }));

  for (const auto& n : two) {
    dep.process(n).signal(SIGTERM);
    ASSERT_TRUE(dep.process(n).wait(30s).has_value()) << n;
  }
  // The third node: router-1's config with its own folder, addresses and node id; the
  // router's identity key (every node has the one identity).
  const auto& layout = dep.layout();
  auto base = config::load_provider_config(layout.config_path("router-1"));
  ASSERT_TRUE(base.has_value()) << base.error().message();
  const auto dir3 = layout.dir / "router-3";
  std::filesystem::create_directories(dir3);
  std::filesystem::copy_file(base->identity_key_file, dir3 / "identity.key");
  config::router_node_addresses a3;
  a3.clients = config::endpoint{"127.0.0.1", free_port()};
  a3.internal = config::endpoint{"127.0.0.1", free_port()};
  ASSERT_NE(a3.clients.port, 0);
  ASSERT_NE(a3.internal.port, 0);
  auto write = [](const std::filesystem::path& path, const config::provider_config& c) {
    std::ofstream out(path, std::ios::trunc);
    out << config::to_toml(c);
    return out.good();
  };
  for (const auto& n : two) {
    auto c = config::load_provider_config(layout.config_path(n));
    ASSERT_TRUE(c.has_value());
    c->cluster.nodes.push_back("router-3");
    c->cluster.addresses.push_back(a3);
    ASSERT_TRUE(write(layout.config_path(n), *c));
  }
  auto c3 = *base;
  c3.data_dir = dir3;
  c3.identity_key_file = dir3 / "identity.key";
  c3.admin_socket = dir3 / "admin.sock";
  c3.clients = a3.clients;
  c3.cluster.nodes.push_back("router-3");
  c3.cluster.addresses.push_back(a3);
  c3.cluster.self = "router-3";
  ASSERT_TRUE(write(layout.config_path("router-3"), c3));

  // A node that is not stopped is refused (RocksDB's lock): here all are, so it runs.
  auto plan = admin(layout.config_path("router-1"),
                    "--json reshard --dry-run " + layout.config_path("router-2").string() + " "
                        + layout.config_path("router-3").string());
  ASSERT_EQ(plan.exit, 0) << plan.err;
  auto done = admin(layout.config_path("router-1"),
                    "--json reshard " + layout.config_path("router-2").string() + " "
                        + layout.config_path("router-3").string());
  ASSERT_EQ(done.exit, 0) << done.err;
  const auto report = done.j();
  ASSERT_TRUE(report.is_object()) << done.out;
  EXPECT_EQ(report["moves"], plan.j()["moves"]);
  // Something moved to the new node (bob is homed there under three nodes).
  EXPECT_EQ(protocol::user_owner(routers, "bob"), 2u);
  bool bob_moved = false;
  for (const auto& u : report["users"])
    bob_moved = bob_moved || (u["user"] == "bob" && u["to"] == "router-3");
  EXPECT_TRUE(bob_moved) << done.out;

  auto third = tools::provider_process::start(provider_binary(), layout.config_path("router-3"),
                                              layout.log_path("router-3"));
  ASSERT_TRUE(third.has_value()) << third.error().message();
  for (const auto& n : two)
    ASSERT_TRUE(dep.restart(n));
  ASSERT_TRUE(eventually([&] {
    for (const auto& n : routers) {
      auto cl = admin_request(layout.dir / n / "admin.sock", {{"get", "status"}});
      if (!cl.contains("sections") || cl["sections"]["cluster"].value("peers_up", 0) != 2)
        return false;
    }
    return true;
  }));
  // bob (his deployment file still lists two nodes: the others forward) gets what waited.
  dep.reopen_user("bob");
  ASSERT_TRUE(dep.settle());
  send_round("after");
  ASSERT_TRUE(dep.settle());
  for (size_t c = 0; c < convs.size(); ++c)
    expect_all_delivered(dep, convs[c], sent[c]);
  for (const auto& p : people)
    EXPECT_TRUE(dep.alarms(p).empty()) << p;
  third->signal(SIGTERM);
  EXPECT_TRUE(third->wait(30s).has_value());
}

// Garbage on a node's internal port, and a CAF node holding the router's TLS files (what any
// holder of a certificate the nodes trust holds) that cannot prove the router's identity: both
// are refused, the refusal is logged and counted, and the cluster goes on.
TEST(router_cluster, garbage_and_an_impostor_node_on_the_internal_port_harm_no_one) {
  live_deployment dep("rcluster-bad", {}, provider_binary(), true, cluster_layout);
  ASSERT_TRUE(dep.ok()) << dep.error();
  for (const auto& p : people)
    dep.add_user(p);
  auto cfg = config::load_provider_config(dep.layout().config_path("router-2"));
  ASSERT_TRUE(cfg.has_value());
  const auto at = cfg->cluster.addresses[1].internal;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(at.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    std::string junk(4096, '\x5a');
    EXPECT_GT(::write(fd, junk.data(), junk.size()), 0);
    ::close(fd);
  }
  {
    caf::actor_system_config c;
    c.load<caf::io::middleman>();
    c.load<caf::openssl::manager>();
    c.add_message_types<caf::id_block::cowpi>();
    c.set("middleman.app-identifiers", std::vector<std::string>{"cowpi/1"});
    c.openssl_certificate = cfg->tls.certificate.string();
    c.openssl_key = cfg->tls.key.string();
    c.openssl_cafile = cfg->tls.ca.string();
    caf::actor_system sys(c);
    auto remote = caf::openssl::remote_actor<caf::actor>(sys, at.host, at.port);
    ASSERT_TRUE(bool(remote)) << sys.render(remote.error());
    caf::scoped_actor self(sys);
    auto ask = [&](actors::node_msg m) {
      bool answered = false;
      self->request(*remote, 10s, actors::node_atom_v, std::move(m))
          .receive([&](const actors::node_msg&) { answered = true; }, [](const caf::error&) {});
      return answered;
    };
    actors::node_msg hello;
    hello.kind = actors::node_kind::hello;
    hello.id = "router-1";
    hello.bytes.assign(32, 0);
    hello.actor = caf::actor_cast<caf::actor>(self);
    EXPECT_FALSE(ask(hello)) << "a HELLO without the router's proof was accepted";
    hello.id = "router-9";
    EXPECT_FALSE(ask(hello));
    actors::node_msg lookup;
    lookup.kind = actors::node_kind::lookup;
    lookup.id = "alice";
    lookup.bytes.assign(32, 1);
    EXPECT_FALSE(ask(lookup)) << "a request from a node that never greeted was answered";
    *remote = nullptr;
  }
  auto cl = cluster_section(dep, "router-2");
  EXPECT_GE(cl.value("refused", 0), 3);
  EXPECT_EQ(cl.value("peers_up", 0), 2);
  const std::string log = read_file(dep.layout().log_path("router-2"));
  EXPECT_NE(log.find("not in the node list"), std::string::npos);
  EXPECT_NE(log.find("without a valid proof"), std::string::npos);
  // The cluster goes on.
  std::vector<protocol::conv_id> made;
  auto conv = create_owned_by(dep, 1, made);
  ASSERT_TRUE(conv);
  ASSERT_TRUE(dep.user("bob").send(*conv, "still here").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("frank", *conv)), std::vector<std::string>{"still here"});
}

}  // namespace
}  // namespace cowpi::testing

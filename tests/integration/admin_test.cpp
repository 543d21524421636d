// SPDX-License-Identifier: Apache-2.0
// cowpi-admin driven as an operator would, against a real deployment with a known
// conversation: stored data, live state, and the audit, honest and after one mirror's stored
// D_i was overwritten on disk.
#include "cowpi/config/provider_config.hpp"
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/storage/keys.hpp"
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/store.hpp"

#include "client_harness.hpp"
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <future>
#include <sstream>

namespace cowpi::testing {
namespace {

using nlohmann::json;

const json* find_by(const json& arr, const std::string& key, const std::string& value) {
  for (const auto& x : arr)
    if (x.value(key, std::string()) == value)
      return &x;
  return nullptr;
}

bool links_up(const std::filesystem::path& router_config) {
  auto r = admin(router_config, "--json links");
  if (r.exit != 0)
    return false;
  auto j = r.j();
  if (j.is_discarded() || j["links"].size() != 2)
    return false;
  for (const auto& l : j["links"])
    if (!l.value("up", false))
      return false;
  return true;
}

// Overwrites D_index in the mirror store at `db` (the mirror must be stopped).
void corrupt_d(const std::filesystem::path& db, const protocol::conv_id& conv, uint64_t index,
               const hash32& bad) {
  auto s = storage::open_store(db, storage::role::mirror);
  ASSERT_TRUE(s.has_value()) << s.error().message();
  storage::write_batch b;
  b.put(storage::column::dhist, storage::keys::indexed(conv, index), storage::encode_hash(bad));
  ASSERT_TRUE((*s)->apply(std::move(b)).has_value());
}

TEST(admin_tool, reports_stored_and_live_state_and_the_audit_finds_a_corrupted_mirror) {
  live_deployment dep("admin");
  ASSERT_TRUE(dep.ok()) << dep.error();
  const auto& L = dep.layout();
  const auto router_cfg = L.config_path("router");
  for (auto u : {"alice", "bob", "carol"})
    dep.add_user(u);
  if (HasFailure()) {
    for (const auto& p : {std::string("router"), std::string("mirror-a")}) {
      std::ifstream f(L.log_path(p));
      std::stringstream ss;
      ss << f.rdbuf();
      ADD_FAILURE() << p << " log:\n" << ss.str();
    }
    ADD_FAILURE() << admin(router_cfg, "--json status").out;
    return;
  }
  auto conv = dep.user("alice").create({"bob", "carol"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  // Carol goes offline; five messages wait for her.
  dep.close_user("carol");
  for (int k = 0; k < 5; ++k)
    ASSERT_TRUE(dep.user(k % 2 ? "bob" : "alice").send(*conv, "m" + std::to_string(k)).has_value());
  ASSERT_TRUE(dep.settle());
  const auto ta = dep.transcript("alice", *conv);
  ASSERT_FALSE(ta.empty());
  const auto& last = ta.back().entry;
  std::map<uint64_t, protocol::accepted_entry> by_index;
  for (const auto& l : ta)
    by_index[l.entry.index] = l.entry;
  ASSERT_TRUE(by_index.contains(1) && by_index.contains(2));
  const uint64_t length = last.index + 1;
  const std::string conv_hex = to_hex(*conv);

  // conversations: the router's log length, last index and digests match alice's transcript.
  auto r = admin(router_cfg, "--json conversations");
  ASSERT_EQ(r.exit, 0) << r.err;
  auto j = r.j();
  ASSERT_FALSE(j.is_discarded()) << r.out;
  const json* c = find_by(j["conversations"], "conv", conv_hex);
  ASSERT_NE(c, nullptr) << r.out;
  EXPECT_EQ((*c)["length"], length);
  EXPECT_EQ((*c)["last_index"], last.index);
  EXPECT_EQ((*c)["last_d"], to_hex(last.d));
  EXPECT_EQ((*c)["last_t"], to_hex(last.t));
  EXPECT_EQ((*c)["members"], 3);
  // The table form names the conversation too.
  r = admin(router_cfg, "conversations");
  EXPECT_EQ(r.exit, 0) << r.err;
  EXPECT_NE(r.out.find(conv_hex), std::string::npos) << r.out;

  // conversation: the log range, with authors and digests.
  r = admin(router_cfg, "--json conversation " + conv_hex + " --from 1 --to 2");
  ASSERT_EQ(r.exit, 0) << r.err;
  j = r.j();
  ASSERT_EQ(j["entries"].size(), 2u) << r.out;
  EXPECT_EQ(j["entries"][0]["index"], 1);
  EXPECT_EQ(j["entries"][0]["d"], to_hex(by_index[1].d));
  EXPECT_EQ(j["entries"][0]["author"], by_index[1].author);

  // users: the three registered users with their pools.
  r = admin(router_cfg, "--json users");
  ASSERT_EQ(r.exit, 0) << r.err;
  j = r.j();
  for (auto u : {"alice", "bob", "carol"})
    EXPECT_NE(find_by(j["users"], "user", u), nullptr) << u;
  EXPECT_EQ(j["users"].size(), 3u);
  r = admin(router_cfg, "--json prekeys");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_NE(find_by(r.j()["pools"], "owner", "mirror-a"), nullptr) << r.out;

  // queues: carol's backlog is everything after the SETUP she acknowledged; she is offline.
  r = admin(router_cfg, "--json queues");
  ASSERT_EQ(r.exit, 0) << r.err;
  j = r.j();
  const json* q = nullptr;
  for (const auto& x : j["queues"])
    if (x["user"] == "carol" && x["conv"] == conv_hex)
      q = &x;
  ASSERT_NE(q, nullptr) << r.out;
  EXPECT_EQ((*q)["depth"], length - (*q)["cursor"].get<uint64_t>());
  EXPECT_GE((*q)["depth"].get<uint64_t>(), 5u);
  EXPECT_EQ((*q)["online"], false);
  for (const auto& x : j["queues"])
    if (x["user"] == "alice") {
      EXPECT_EQ(x["depth"], 0) << x.dump();
    }

  // status and links: both mirror links are up.
  r = admin(router_cfg, "--json status");
  ASSERT_EQ(r.exit, 0) << r.err;
  j = r.j();
  for (const auto& m : L.mirrors)
    EXPECT_TRUE(j["sections"]["link:" + m].value("up", false)) << m;
  EXPECT_TRUE(links_up(router_cfg));
  r = admin(router_cfg, "links");
  EXPECT_EQ(r.exit, 0) << r.err;
  EXPECT_NE(r.out.find("mirror-b"), std::string::npos) << r.out;

  // audit, honest: every index checked at both mirrors, nothing wrong.
  r = admin(router_cfg, "--json audit " + conv_hex);
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  j = r.j();
  EXPECT_EQ(j["mismatches"], 0);
  EXPECT_EQ(j["clean"], true);
  ASSERT_EQ(j["mirrors"].size(), 2u);
  for (const auto& m : j["mirrors"]) {
    EXPECT_EQ(m["checked"], length) << m.dump();
    EXPECT_TRUE(m["mismatches"].empty()) << m.dump();
    EXPECT_TRUE(m["missing"].empty()) << m.dump();
    EXPECT_TRUE(m["error"].is_null()) << m.dump();
  }
  r = admin(router_cfg, "audit " + std::string(32, '0'));
  EXPECT_EQ(r.exit, 1);
  EXPECT_NE(r.err.find("unknown conversation"), std::string::npos) << r.err;
  r = admin(router_cfg, "conversation nothex");
  EXPECT_EQ(r.exit, 1);
  EXPECT_NE(r.err.find("32 hex digits"), std::string::npos) << r.err;
  r = admin(router_cfg, "audit");  // every conversation, human-readable
  EXPECT_EQ(r.exit, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("audit clean"), std::string::npos) << r.out;

  // Stop mirror-b. Its stored data stays readable; its live state and the audit say it is down.
  const auto mirror_cfg = L.config_path("mirror-b");
  dep.process("mirror-b").signal(SIGTERM);
  ASSERT_TRUE(dep.process("mirror-b").wait(std::chrono::seconds(15)).has_value());
  r = admin(mirror_cfg, "--json conversations");
  ASSERT_EQ(r.exit, 0) << r.err;
  j = r.j();
  c = find_by(j["conversations"], "conv", conv_hex);
  ASSERT_NE(c, nullptr) << r.out;
  EXPECT_EQ((*c)["length"], length);
  EXPECT_EQ((*c)["last_d"], to_hex(last.d));
  r = admin(mirror_cfg, "status");
  EXPECT_EQ(r.exit, 1);
  EXPECT_NE(r.err.find("daemon running"), std::string::npos) << r.err;
  r = admin(router_cfg, "--json audit " + conv_hex);
  EXPECT_EQ(r.exit, 4) << r.out << r.err;  // incomplete: one mirror unreachable, no hang
  j = r.j();
  const json* mb = find_by(j["mirrors"], "mirror", "mirror-b");
  ASSERT_NE(mb, nullptr) << r.out;
  EXPECT_FALSE((*mb)["error"].is_null()) << r.out;

  // Overwrite mirror-b's D at index 2, restart it, and audit again.
  auto mcfg = config::load_provider_config(mirror_cfg);
  ASSERT_TRUE(mcfg.has_value()) << mcfg.error().message();
  hash32 bad{};
  bad.fill(0xab);
  corrupt_d(mcfg->data_dir / "mirror.db", *conv, 2, bad);
  ASSERT_TRUE(dep.restart("mirror-b"));
  ASSERT_TRUE(eventually([&] { return links_up(router_cfg); }, std::chrono::seconds(30)));
  r = admin(router_cfg, "--json audit " + conv_hex);
  EXPECT_EQ(r.exit, 3) << r.out << r.err;
  j = r.j();
  EXPECT_EQ(j["mismatches"], 1);
  mb = find_by(j["mirrors"], "mirror", "mirror-b");
  const json* ma = find_by(j["mirrors"], "mirror", "mirror-a");
  ASSERT_NE(mb, nullptr);
  ASSERT_NE(ma, nullptr);
  EXPECT_TRUE((*ma)["mismatches"].empty()) << r.out;
  ASSERT_EQ((*mb)["mismatches"].size(), 1u) << r.out;
  EXPECT_EQ((*mb)["mismatches"][0]["index"], 2);
  EXPECT_EQ((*mb)["mismatches"][0]["mirror"], to_hex(bad));
  EXPECT_EQ((*mb)["mismatches"][0]["router"], to_hex(by_index[2].d));
  r = admin(router_cfg, "audit " + conv_hex);
  EXPECT_EQ(r.exit, 3);
  EXPECT_NE(r.out.find("MISMATCH at 2"), std::string::npos) << r.out;
}

TEST(admin_tool, cluster_lists_every_mirror_node_and_the_audit_finds_a_corrupted_row_on_any) {
  live_deployment dep("admin-cluster", {}, provider_binary(), true,
                      [](tools::local_deployment& d) { d.mirror_nodes = 2; });
  ASSERT_TRUE(dep.ok()) << dep.error();
  const auto& L = dep.layout();
  const auto router_cfg = L.config_path("router");
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  const std::vector<std::string> a_nodes{"mirror-a-1", "mirror-a-2"};
  // Conversations until mirror-a's two nodes each own one.
  std::vector<protocol::conv_id> convs;
  std::map<size_t, protocol::conv_id> owned_by;
  for (int k = 0; k < 24 && owned_by.size() < 2; ++k) {
    auto conv = dep.user("alice").create({"bob"});
    ASSERT_TRUE(conv.has_value()) << conv.error().message();
    convs.push_back(*conv);
    owned_by.emplace(protocol::conv_owner(a_nodes, *conv), *conv);
  }
  ASSERT_EQ(owned_by.size(), 2u);
  for (const auto& conv : convs)
    for (int k = 0; k < 3; ++k)
      ASSERT_TRUE(dep.user("bob").send(conv, "m" + std::to_string(k)).has_value());
  ASSERT_TRUE(dep.settle());

  // The router's view: four nodes, each up with keys, each owning what the hash gives it.
  auto r = admin(router_cfg, "--json cluster");
  ASSERT_EQ(r.exit, 0) << r.err;
  auto j = r.j();
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["conversations"], convs.size());
  ASSERT_EQ(j["mirror_nodes"].size(), 4u) << r.out;
  for (const auto& row : j["mirror_nodes"]) {
    const std::string mirror = row["mirror"];
    const std::vector<std::string> ids{mirror + "-1", mirror + "-2"};
    size_t want = 0;
    for (const auto& conv : convs)
      want += ids[protocol::conv_owner(ids, conv)] == row["node"].get<std::string>() ? 1 : 0;
    EXPECT_EQ(row["conversations"], want) << row.dump();
    EXPECT_EQ(row["up"], true) << row.dump();
    EXPECT_EQ(row["keys"], true) << row.dump();
    EXPECT_GT(row["pool"].get<uint64_t>(), 0u) << row.dump();
  }
  r = admin(router_cfg, "cluster");
  EXPECT_EQ(r.exit, 0) << r.err;
  EXPECT_NE(r.out.find("mirror-b-2"), std::string::npos) << r.out;
  // A node's own view: what it holds, and that it refused nothing.
  for (size_t n = 0; n < 2; ++n) {
    r = admin(L.config_path(a_nodes[n]), "--json cluster");
    ASSERT_EQ(r.exit, 0) << r.err;
    j = r.j();
    size_t want = 0;
    for (const auto& conv : convs)
      want += protocol::conv_owner(a_nodes, conv) == n ? 1 : 0;
    EXPECT_EQ(j["node"], a_nodes[n]) << r.out;
    EXPECT_EQ(j["nodes"], (json{"mirror-a-1", "mirror-a-2"})) << r.out;
    EXPECT_EQ(j["conversations"], want) << r.out;
    EXPECT_EQ(j["wrong_node"], 0) << r.out;
  }
  // The audit asks each conversation's owner node: clean.
  r = admin(router_cfg, "audit");
  EXPECT_EQ(r.exit, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("audit clean"), std::string::npos) << r.out;

  // Stop mirror-a-2: the router shows it down, the other nodes up.
  auto& victim = dep.process("mirror-a-2");
  victim.signal(SIGTERM);
  ASSERT_TRUE(victim.wait(std::chrono::seconds(15)).has_value());
  EXPECT_TRUE(eventually([&] {
    auto x = admin(router_cfg, "--json cluster").j();
    if (x.is_discarded())
      return false;
    for (const auto& row : x["mirror_nodes"])
      if (row["up"] != (row["node"] != "mirror-a-2"))
        return false;
    return true;
  }));
  // Overwrite D_1 of its conversation on disk, restart it: the audit finds the row.
  const auto& conv = owned_by.at(1);
  auto mcfg = config::load_provider_config(L.config_path("mirror-a-2"));
  ASSERT_TRUE(mcfg.has_value()) << mcfg.error().message();
  hash32 bad{};
  bad.fill(0xcd);
  corrupt_d(mcfg->data_dir / "mirror.db", conv, 1, bad);
  ASSERT_TRUE(dep.restart("mirror-a-2"));
  ASSERT_TRUE(eventually([&] { return tools::router_ready(L); }, std::chrono::seconds(30)));
  r = admin(router_cfg, "--json audit " + to_hex(conv));
  EXPECT_EQ(r.exit, 3) << r.out << r.err;
  j = r.j();
  const json* ma = find_by(j["mirrors"], "mirror", "mirror-a");
  ASSERT_NE(ma, nullptr) << r.out;
  ASSERT_EQ((*ma)["mismatches"].size(), 1u) << r.out;
  EXPECT_EQ((*ma)["mismatches"][0]["index"], 1);
  EXPECT_EQ((*ma)["mismatches"][0]["mirror"], to_hex(bad));
  // The other node's conversation is untouched.
  r = admin(router_cfg, "audit " + to_hex(owned_by.at(0)));
  EXPECT_EQ(r.exit, 0) << r.out << r.err;
}

TEST(admin_tool, audits_behind_a_stream_of_commits_are_clean) {
  // The mirrors' AUDITs arrive behind COMMIT writes still queued: each waits for them, reads
  // on the store's reader thread, and answers in order with everything they wrote.
  live_deployment dep("admin-busy");
  ASSERT_TRUE(dep.ok()) << dep.error();
  const auto router_cfg = dep.layout().config_path("router");
  for (auto u : {"alice", "bob"})
    dep.add_user(u);
  auto conv = dep.user("alice").create({"bob"}, protocol::block_mode::chain);
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  std::atomic<bool> sending{true};
  auto sender = std::async(std::launch::async, [&] {
    size_t sent = 0;
    for (int k = 0; k < 400; ++k)
      sent += dep.user(k % 2 ? "bob" : "alice").send(*conv, "m" + std::to_string(k)) ? 1 : 0;
    sending = false;
    return sent;
  });
  int audits = 0;
  while (sending.load() || audits < 3) {
    auto r = admin(router_cfg, "--json audit " + to_hex(*conv));
    ASSERT_EQ(r.exit, 0) << r.out << r.err;
    ++audits;
  }
  EXPECT_EQ(sender.get(), 400u);
  ASSERT_TRUE(dep.settle());
  auto r = admin(router_cfg, "--json audit " + to_hex(*conv));
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  for (const auto& m : r.j()["mirrors"])
    EXPECT_GE(m["checked"].get<uint64_t>(), 400u) << m.dump();
}

TEST(admin_tool, explains_a_missing_config_and_a_bad_command) {
  auto r = admin("/nonexistent/provider.toml", "conversations");
  EXPECT_EQ(r.exit, 1);
  EXPECT_NE(r.err.find("no such config file"), std::string::npos) << r.err;
  r = admin("/nonexistent/provider.toml", "frobnicate");
  EXPECT_EQ(r.exit, 2) << r.err;
  r = admin("/nonexistent/provider.toml", "--help");
  EXPECT_EQ(r.exit, 0);
  EXPECT_NE(r.out.find("audit"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace cowpi::testing

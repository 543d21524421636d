// SPDX-License-Identifier: Apache-2.0
// Offline resharding of a mirror cluster: one node's conversations spread over three, each to
// its owner under the new node list, and loaded there exactly as it was; a stopped run finishes
// when run again; every refusal changes nothing.
#include "cowpi/storage/reshard.hpp"

#include "cowpi/protocol/shard.hpp"
#include "cowpi/storage/router_store.hpp"
#include "cowpi/storage/shard_map.hpp"

#include "durable_world.hpp"
#include "state_compare.hpp"
#include "synthetic_log.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <variant>

namespace cowpi::storage {
namespace {

using testing::durable_world;
using testing::temp_dir;

const std::vector<std::string> new_nodes{"n1", "n2", "n3"};

// A deployment whose first mirror (node "n1" of a one-node cluster) holds conversations owned,
// under `new_nodes`, by each of the three nodes; and two new, empty nodes.
class reshard : public ::testing::Test {
protected:
  void SetUp() override {
    durable_world w(d_.path(), {});
    for (const char* u : {"alice", "bob", "carol"})
      w.add_user(u);
    std::vector<size_t> owned(3, 0);
    for (int k = 0; k < 40 && (owned[0] < 2 || owned[1] < 2 || owned[2] < 2); ++k) {
      auto conv = w.create(k % 2 ? "alice" : "bob", {k % 2 ? "bob" : "alice", "carol"},
                           k % 3 ? protocol::block_mode::chain : protocol::block_mode::pk);
      ASSERT_TRUE(conv.has_value()) << conv.error().message();
      w.run();
      for (int m = 0; m < 3; ++m)
        ASSERT_TRUE(w.send(m % 2 ? "carol" : "alice", *conv, "m" + std::to_string(m)).has_value());
      w.run();
      ++owned[protocol::conv_owner(new_nodes, *conv)];
    }
    ASSERT_GE(std::min({owned[0], owned[1], owned[2]}), 2u);
    ASSERT_TRUE(w.alarms().empty());
    live_.emplace(w.mirror(0).clone());
    for (const auto& [conv, mc] : live_->convs())
      for (uint64_t i = 0; i < mc.st.next; ++i)
        dhist_[conv].push_back(w.mirror_db(0).d_at(conv, i).value());
  }

  // The three nodes' stores: n1 is the world's first mirror, n2 and n3 are created.
  void open_nodes() {
    stores_.clear();
    stores_.push_back(open_at(d_.path() / "mirror-a", d_.path() / "mirror-a.key"));
    for (const char* id : {"n2", "n3"})
      stores_.push_back(open_at(d_.path() / id, d_.path() / (std::string(id) + ".key")));
  }
  std::unique_ptr<mirror_store> open_at(const std::filesystem::path& p,
                                        const std::filesystem::path& key) {
    auto s = mirror_store::open(p, key_file{key}, rng_);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
    return s ? std::move(*s) : nullptr;
  }
  std::vector<reshard_node> nodes() {
    std::vector<reshard_node> out;
    for (size_t k = 0; k < stores_.size(); ++k)
      out.push_back(reshard_node{new_nodes[k], stores_[k].get()});
    return out;
  }
  std::vector<std::vector<protocol::conv_id>> held() {
    std::vector<std::vector<protocol::conv_id>> out;
    for (auto& s : stores_)
      out.push_back(s->held_conversations().value());
    return out;
  }
  // After a complete run: every node holds exactly what it owns, each conversation loads there
  // as it was on the old node with its whole D history, and every node has the new list.
  void expect_resharded() {
    for (size_t k = 0; k < stores_.size(); ++k) {
      auto m = stores_[k]->load(durable_world::mirror_identity(d_.path(), 0));
      ASSERT_TRUE(m.has_value()) << m.error().message();
      size_t want = 0;
      for (const auto& [conv, mc] : live_->convs()) {
        const protocol::mirror_conv* got = m->find(conv);
        if (protocol::conv_owner(new_nodes, conv) != k) {
          EXPECT_EQ(got, nullptr) << new_nodes[k];
          EXPECT_FALSE(stores_[k]->d_at(conv, 0).has_value()) << new_nodes[k];
          continue;
        }
        ++want;
        ASSERT_NE(got, nullptr) << new_nodes[k];
        EXPECT_TRUE(testing::same_mirror_conv(*got, mc)) << new_nodes[k];
        for (uint64_t i = 0; i < mc.st.next; ++i)
          EXPECT_EQ(stores_[k]->d_at(conv, i), dhist_[conv][i]) << new_nodes[k] << " " << i;
      }
      EXPECT_EQ(m->convs().size(), want) << new_nodes[k];
      // Key stores stay where they were made.
      if (k == 0)
        EXPECT_TRUE(testing::same_keys(m->keys(), live_->keys()));
      else
        EXPECT_TRUE(m->keys().prekeys().empty()) << new_nodes[k];
      EXPECT_EQ(read_shard_map(stores_[k]->raw()).value(), new_nodes);
    }
  }

  temp_dir d_{"reshard"};
  crypto::system_rng rng_;
  std::optional<protocol::mirror> live_;
  std::map<protocol::conv_id, std::vector<hash32>> dhist_;
  std::vector<std::unique_ptr<mirror_store>> stores_;
};

TEST_F(reshard, every_conversation_moves_to_its_owner_and_loads_there_as_it_was) {
  open_nodes();
  ASSERT_TRUE(write_shard_map(stores_[0]->raw(), {"n1"}).has_value());
  auto rep = reshard_mirror(nodes(), nullptr, false);
  ASSERT_TRUE(rep.has_value()) << rep.error().message();
  EXPECT_EQ(rep->old_nodes, std::vector<std::string>{"n1"});
  EXPECT_EQ(rep->new_nodes, new_nodes);
  std::vector<uint64_t> want(3, 0);
  size_t moving = 0;
  for (const auto& [conv, mc] : live_->convs()) {
    const size_t owner = protocol::conv_owner(new_nodes, conv);
    ++want[owner];
    moving += owner != 0;
  }
  EXPECT_EQ(rep->held, want);
  ASSERT_EQ(rep->moves.size(), moving);
  for (const auto& mv : rep->moves) {
    EXPECT_EQ(mv.from, "n1");
    EXPECT_EQ(mv.to, new_nodes[protocol::conv_owner(new_nodes, mv.conv)]);
    EXPECT_EQ(mv.next, live_->find(mv.conv)->st.next);
    EXPECT_FALSE(mv.resumed);
  }
  EXPECT_GT(rep->rows_copied, moving);
  // The new nodes took the cluster's identity binding.
  for (auto& s : stores_)
    EXPECT_EQ(s->bound_identity().value(), stores_[0]->bound_identity().value());
  expect_resharded();

  // Done: a second run moves nothing.
  open_nodes();
  auto again = reshard_mirror(nodes(), nullptr, false);
  ASSERT_TRUE(again.has_value()) << again.error().message();
  EXPECT_TRUE(again->moves.empty());
  EXPECT_TRUE(again->old_nodes.empty());
  EXPECT_EQ(again->held, want);
}

TEST_F(reshard, a_dry_run_plans_the_same_moves_and_writes_nothing) {
  open_nodes();
  ASSERT_TRUE(write_shard_map(stores_[0]->raw(), {"n1"}).has_value());
  const auto before = held();
  auto plan = reshard_mirror(nodes(), nullptr, true);
  ASSERT_TRUE(plan.has_value()) << plan.error().message();
  EXPECT_TRUE(plan->dry_run);
  EXPECT_FALSE(plan->moves.empty());
  EXPECT_EQ(plan->rows_copied, 0u);
  EXPECT_EQ(held(), before);
  EXPECT_FALSE(stores_[1]->bound_identity().value().has_value());
  EXPECT_EQ(read_shard_map(stores_[0]->raw()).value(), std::vector<std::string>{"n1"});
  EXPECT_FALSE(read_shard_map(stores_[1]->raw()).value().has_value());
  auto done = reshard_mirror(nodes(), nullptr, false);
  ASSERT_TRUE(done.has_value()) << done.error().message();
  ASSERT_EQ(done->moves.size(), plan->moves.size());
  for (size_t k = 0; k < plan->moves.size(); ++k)
    EXPECT_EQ(done->moves[k].conv, plan->moves[k].conv);
  expect_resharded();
}

TEST_F(reshard, a_run_stopped_between_a_copy_and_its_drop_finishes_when_run_again) {
  open_nodes();
  // What a run that died after one synced copy left: the conversation on both nodes.
  std::optional<protocol::conv_id> copied;
  for (const auto& [conv, mc] : live_->convs())
    if (protocol::conv_owner(new_nodes, conv) == 2) {
      copied = conv;
      break;
    }
  ASSERT_TRUE(copied.has_value());
  ASSERT_TRUE(stores_[2]->copy_conversation(*stores_[0], *copied).has_value());
  auto rep = reshard_mirror(nodes(), nullptr, false);
  ASSERT_TRUE(rep.has_value()) << rep.error().message();
  for (const auto& mv : rep->moves)
    EXPECT_EQ(mv.resumed, mv.conv == *copied);
  expect_resharded();
}

// Each refusal names its reason and leaves every store as it was.
class reshard_refusal : public reshard {
protected:
  void expect_refused(const std::string& why) {
    const auto before = held();
    std::vector<std::optional<std::vector<std::string>>> maps;
    for (auto& s : stores_)
      maps.push_back(read_shard_map(s->raw()).value());
    auto rep = reshard_mirror(nodes(), nullptr, false);
    ASSERT_FALSE(rep.has_value());
    EXPECT_EQ(rep.error().code, errc::config);
    EXPECT_NE(rep.error().message().find(why), std::string::npos) << rep.error().message();
    EXPECT_EQ(held(), before);
    for (size_t k = 0; k < stores_.size(); ++k)
      EXPECT_EQ(read_shard_map(stores_[k]->raw()).value(), maps[k]);
  }
};

TEST_F(reshard_refusal, a_node_of_the_old_list_missing_from_the_new_one) {
  open_nodes();
  ASSERT_TRUE(write_shard_map(stores_[0]->raw(), {"n1", "n4"}).has_value());
  expect_refused("node n4 of the persisted list (n1, n4) is not in the new one");
}

TEST_F(reshard_refusal, nodes_that_persisted_different_lists) {
  open_nodes();
  ASSERT_TRUE(write_shard_map(stores_[0]->raw(), {"n1"}).has_value());
  ASSERT_TRUE(write_shard_map(stores_[1]->raw(), {"n2"}).has_value());
  expect_refused("the nodes persisted different node lists");
}

TEST_F(reshard_refusal, a_node_of_another_mirror_identity) {
  open_nodes();
  identity_binding other{"mirror-x", {}};
  other.lpk[0] = 9;
  ASSERT_TRUE(stores_[2]->bind_identity(other).has_value());
  expect_refused("node n3 belongs to another mirror identity (mirror-x)");
}

TEST_F(reshard_refusal, a_conversation_held_twice_at_different_lengths) {
  open_nodes();
  std::optional<protocol::conv_id> conv;
  for (const auto& [c, mc] : live_->convs())
    if (protocol::conv_owner(new_nodes, c) == 1)
      conv = c;
  ASSERT_TRUE(conv.has_value());
  ASSERT_TRUE(stores_[1]->copy_conversation(*stores_[0], *conv).has_value());
  // The copy on n2 claims one entry more than n1's.
  const auto key = keys::conv_row_key(*conv, conv_row::header);
  auto h = decode_mirror_header(stores_[1]->raw().get(column::conv, key).value().value()).value();
  ++h.next;
  write_batch b;
  b.put(column::conv, key, encode_mirror_header(h));
  ASSERT_TRUE(stores_[1]->raw().apply(std::move(b)).has_value());
  expect_refused("is held by n1 (length");
}

TEST_F(reshard_refusal, a_node_listed_twice) {
  open_nodes();
  auto n = nodes();
  n[2].id = "n2";
  auto rep = reshard_mirror(n, nullptr, false);
  ASSERT_FALSE(rep.has_value());
  EXPECT_NE(rep.error().message().find("node n2 is listed twice"), std::string::npos);
}

// Thrown from the world's event hook: the process "dies" right after the router synced an entry,
// before any mirror saw its COMMIT.
struct crashed_after_log {
  protocol::conv_id conv;
};

// A world in `dir` whose router logged a SETUP no mirror committed. Returns that conversation,
// owned under `new_nodes` by a node other than n1 (the first mirror's node).
std::optional<protocol::conv_id> setup_logged_not_committed(const std::filesystem::path& dir) {
  durable_world w(dir, {});
  for (const char* u : {"alice", "bob"})
    w.add_user(u);
  w.on_event = [](const std::string& what) {
    // "logged <conv hex> <index>"
    if (what.rfind("logged ", 0) != 0 || what.substr(what.size() - 2) != " 0")
      return;
    auto raw = from_hex(what.substr(7, 32));
    protocol::conv_id conv{};
    if (!raw || raw->size() != conv.size())
      return;
    std::copy(raw->begin(), raw->end(), conv.begin());
    if (protocol::conv_owner(new_nodes, conv) != 0)
      throw crashed_after_log{conv};
  };
  try {
    for (int k = 0; k < 40; ++k) {
      auto conv = w.create("alice", {"bob"});
      EXPECT_TRUE(conv.has_value());
      if (!conv)
        return std::nullopt;
      w.run();
    }
  } catch (const crashed_after_log& c) {
    return c.conv;
  }
  return std::nullopt;
}

// A stopped world's stores for a reshard of its first mirror (n1, its persisted list {n1}) to
// `new_nodes`, with its router to check the plan against.
struct stopped_world {
  explicit stopped_world(const std::filesystem::path& dir) {
    router = router_store::open(dir / "router").value();
    stores.push_back(
        mirror_store::open(dir / "mirror-a", key_file{dir / "mirror-a.key"}, rng).value());
    for (const char* id : {"n2", "n3"})
      stores.push_back(
          mirror_store::open(dir / id, key_file{dir / (std::string(id) + ".key")}, rng).value());
    EXPECT_TRUE(write_shard_map(stores[0]->raw(), {"n1"}).has_value());
    for (size_t k = 0; k < 3; ++k)
      nodes.push_back(reshard_node{new_nodes[k], stores[k].get()});
    for (size_t k = 0; k < 2; ++k)
      ms.push_back(durable_world::mirror_identity(dir, k).as_member());
    rt = reshard_router{router.get(), ms, "mirror-a"};
  }
  // The owner of `conv` under `new_nodes`, loaded.
  protocol::mirror owner_of(const std::filesystem::path& dir, const protocol::conv_id& conv) {
    return stores[protocol::conv_owner(new_nodes, conv)]
        ->load(durable_world::mirror_identity(dir, 0))
        .value();
  }
  // The router's in-flight entry (conv, i), as it would COMMIT it again.
  protocol::log_entry in_flight(const protocol::conv_id& conv, uint64_t i) {
    auto rc = router->load_conv(conv, ms, {}).value();
    EXPECT_TRUE(rc.has_value());
    EXPECT_EQ(rc->in_flight().count(i), 1u);
    return rc->in_flight().at(i);
  }

  crypto::system_rng rng;
  std::unique_ptr<router_store> router;
  std::vector<std::unique_ptr<mirror_store>> stores;
  std::vector<reshard_node> nodes;
  protocol::member_list ms;
  reshard_router rt;
};

TEST(reshard_router, a_setup_the_old_node_never_committed_stops_the_move) {
  temp_dir d("reshard-router");
  const auto conv = setup_logged_not_committed(d.path());
  ASSERT_TRUE(conv.has_value());
  stopped_world w(d.path());
  ASSERT_TRUE(w.stores[0]->held_conversations().value().empty());

  auto rep = reshard_mirror(w.nodes, &w.rt, false);
  ASSERT_FALSE(rep.has_value());
  EXPECT_EQ(rep.error().code, errc::config);
  EXPECT_NE(rep.error().message().find("the router logged entry 0, which n1 has not committed"),
            std::string::npos)
      << rep.error().message();
  EXPECT_FALSE(read_shard_map(w.stores[1]->raw()).value().has_value());

  // What the check prevents: without it the list changes, and the SETUP's owner under it cannot
  // open the block (it names a key n1 made), so the router's COMMIT would be refused and the
  // conversation stopped.
  ASSERT_TRUE(reshard_mirror(w.nodes, nullptr, false).has_value());
  auto m = w.owner_of(d.path(), *conv);
  const auto entry = w.in_flight(*conv, 0);
  auto out = m.commit(protocol::commit_msg{0, entry.d, entry.prepare_for(0)},
                      *w.stores[protocol::conv_owner(new_nodes, *conv)], 1'100'000, w.rng);
  EXPECT_FALSE(out.persist);
  EXPECT_TRUE(std::holds_alternative<protocol::link_reject>(out.response));
}

TEST(reshard_router, an_entry_in_flight_to_a_key_of_the_channel_moves_and_commits_on_the_new_node) {
  temp_dir d("reshard-router");
  std::optional<protocol::conv_id> moving;
  {
    durable_world w(d.path(), {});
    for (const char* u : {"alice", "bob"})
      w.add_user(u);
    // alice's second message, once her channel with the mirror is answered: its block to the
    // mirror names the RATCHET key the mirror announced to her.
    w.on_event = [&](const std::string& what) {
      if (moving && what == "logged " + to_hex(byte_view(moving->data(), moving->size())) + " 2")
        throw crashed_after_log{*moving};
    };
    try {
      for (int k = 0; k < 40; ++k) {
        auto conv = w.create("alice", {"bob"});
        ASSERT_TRUE(conv.has_value());
        w.run();
        ASSERT_TRUE(w.send("bob", *conv, "hi").has_value());
        w.run();
        if (protocol::conv_owner(new_nodes, *conv) == 0)
          continue;
        moving = *conv;
        ASSERT_TRUE(w.send("alice", *conv, "again").has_value());
        w.run();
        FAIL() << "the entry was never logged";
      }
    } catch (const crashed_after_log&) {
    }
  }
  ASSERT_TRUE(moving.has_value());
  stopped_world w(d.path());
  auto rep = reshard_mirror(w.nodes, &w.rt, false);
  ASSERT_TRUE(rep.has_value()) << rep.error().message();
  ASSERT_TRUE(std::any_of(rep->moves.begin(), rep->moves.end(), [&](const reshard_move& mv) {
    return mv.conv == *moving && mv.next == 2;
  }));

  // The router's COMMIT of the entry in flight is answered by the new owner.
  auto m = w.owner_of(d.path(), *moving);
  const auto entry = w.in_flight(*moving, 2);
  auto out = m.commit(protocol::commit_msg{2, entry.d, entry.prepare_for(0)},
                      *w.stores[protocol::conv_owner(new_nodes, *moving)], 1'100'000, w.rng);
  EXPECT_TRUE(out.persist);
  EXPECT_TRUE(std::holds_alternative<protocol::answer>(out.response));
}

}  // namespace
}  // namespace cowpi::storage

// -- Router clusters ----------------------------------------------------------------------------

namespace cowpi::storage {
namespace {

using testing::synthetic_conv;
using testing::temp_dir;

std::unique_ptr<router_store> open_router_at(const std::filesystem::path& p) {
  auto s = router_store::open(p);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

// A router cluster of two nodes grows to three: every conversation (record, log, answers,
// cursors) and every user (registration, pool) is readable on its owner under the new list,
// and nowhere else; a second run moves nothing.
TEST(reshard_router_cluster,
     two_nodes_become_three_and_every_conversation_and_user_is_on_its_owner) {
  temp_dir d("rreshard");
  const std::vector<std::string> two{"r-1", "r-2"};
  const std::vector<std::string> three{"r-1", "r-2", "r-3"};
  std::vector<std::unique_ptr<router_store>> st;
  for (const auto& n : three)
    st.push_back(open_router_at(d.path() / n));
  for (size_t k = 0; k < 2; ++k)
    ASSERT_TRUE(st[k]->check_shard_map(two, false).has_value());
  // Conversations on their owners under two nodes: a SETUP and two messages each, bob's
  // cursor past the first message.
  std::vector<protocol::conv_id> convs;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    synthetic_conv sc(seed, {"alice", "bob", "carol"});
    auto& rs = *st[protocol::conv_owner(two, sc.conv())];
    auto log = [&](const protocol::log_entry& e) {
      ASSERT_TRUE(rs.append(sc.rc(), e, 1000).has_value());
      ASSERT_TRUE(rs.persist_answers(e, sc.answers(e)).has_value());
    };
    log(sc.setup());
    log(sc.message("alice"));
    log(sc.message("carol"));
    ASSERT_TRUE(rs.ack("bob", sc.conv(), 1).has_value());
    convs.push_back(sc.conv());
  }
  // Users on their homes, each with a pool of (its number + 1) one-time keys.
  std::vector<std::string> users;
  for (int u = 0; u < 16; ++u) {
    users.push_back("user-" + std::to_string(u));
    auto& rs = *st[protocol::user_owner(two, users.back())];
    protocol::public_key k{};
    k.fill(static_cast<uint8_t>(u + 1));
    ASSERT_TRUE(rs.register_user(users.back(), k, 1).has_value());
    protocol::upload_prekeys up;
    for (uint64_t i = 1; i <= static_cast<uint64_t>(u) + 1; ++i)
      up.one_time.push_back(protocol::published_key{i, k});
    up.last_resort = protocol::published_key{100, k};
    ASSERT_TRUE(rs.upload_prekeys(users.back(), up).has_value());
  }

  std::vector<router_reshard_node> nodes;
  for (size_t k = 0; k < 3; ++k)
    nodes.push_back(router_reshard_node{three[k], st[k].get()});
  auto dry = reshard_router_cluster(nodes, true);
  ASSERT_TRUE(dry.has_value()) << dry.error().message();
  EXPECT_EQ(dry->old_nodes, two);
  auto rep = reshard_router_cluster(nodes, false);
  ASSERT_TRUE(rep.has_value()) << rep.error().message();
  EXPECT_EQ(rep->moves.size(), dry->moves.size());
  EXPECT_EQ(rep->users.size(), dry->users.size());
  // Rendezvous hashing: a node added takes only what it wins.
  for (const auto& mv : rep->moves)
    EXPECT_EQ(mv.to, "r-3");
  EXPECT_FALSE(rep->moves.empty());
  EXPECT_FALSE(rep->users.empty());

  for (const auto& conv : convs) {
    const size_t owner = protocol::conv_owner(three, conv);
    for (size_t k = 0; k < 3; ++k) {
      auto held = st[k]->conversations();
      ASSERT_TRUE(held.has_value());
      const bool here = std::find(held->begin(), held->end(), conv) != held->end();
      EXPECT_EQ(here, k == owner) << three[k];
      auto c = st[k]->cursor("bob", conv);
      ASSERT_TRUE(c.has_value());
      EXPECT_EQ(c->has_value(), k == owner) << three[k];
      if (k != owner)
        continue;
      EXPECT_EQ((*c)->next, 2u);
      for (uint64_t i = 0; i < 3; ++i) {
        auto e = st[k]->read_entry(conv, i);
        ASSERT_TRUE(e.has_value() && e->has_value()) << i;
        EXPECT_TRUE((*e)->complete);
      }
      auto env = st[k]->envelope_for(conv, 2, "bob");
      EXPECT_TRUE(env.has_value() && env->has_value());
    }
  }
  for (size_t u = 0; u < users.size(); ++u) {
    const size_t home = protocol::user_owner(three, users[u]);
    for (size_t k = 0; k < 3; ++k) {
      auto found = st[k]->find_user(users[u]);
      ASSERT_TRUE(found.has_value());
      EXPECT_EQ(found->has_value(), k == home) << users[u] << " on " << three[k];
      auto s = st[k]->directory_status(users[u]);
      EXPECT_EQ(s.has_value(), k == home);
      if (s) {
        EXPECT_EQ(s->one_time_remaining, u + 1);
      }
    }
  }
  for (const auto& s : st) {
    auto map = read_shard_map(s->raw());
    ASSERT_TRUE(map.has_value() && map->has_value());
    EXPECT_EQ(**map, three);
  }
  auto again = reshard_router_cluster(nodes, false);
  ASSERT_TRUE(again.has_value()) << again.error().message();
  EXPECT_TRUE(again->moves.empty());
  EXPECT_TRUE(again->users.empty());
  // Removing a node is refused.
  std::vector<router_reshard_node> fewer(nodes.begin(), nodes.begin() + 2);
  auto refused = reshard_router_cluster(fewer, true);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("removing a node is not supported"), std::string::npos);
}

}  // namespace
}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// The client store: a client reloaded from disk equals the live one, its transcript and D history
// are complete, a restart resumes without losing or repeating a message, removal leaves a
// tombstone, only changed rows are written, and nothing secret reaches the disk in the clear.
#include "cowpi/storage/client_store.hpp"

#include "durable_world.hpp"
#include "scan_files.hpp"
#include "state_compare.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>

#include <map>

namespace cowpi::storage {
namespace {

using testing::durable_options;
using testing::durable_world;
using testing::temp_dir;

std::unique_ptr<client_store> reopen(const temp_dir& d, const std::string& user, crypto::rng& r) {
  auto s = client_store::open(d.path() / ("client-" + user),
                              key_file{d.path() / ("client-" + user + ".key")}, r);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

std::vector<std::string> texts(const std::vector<protocol::accepted_entry>& tr) {
  std::vector<std::string> out;
  for (const auto& a : tr)
    if (a.type == protocol::msg_type::message)
      out.emplace_back(a.plaintext.begin(), a.plaintext.end());
  return out;
}

protocol::conv_id scenario(durable_world& w, protocol::block_mode mode = protocol::block_mode::pk) {
  for (const char* u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  auto conv = w.create("alice", {"bob", "carol"}, mode).value();
  w.run();
  for (int k = 0; k < 4; ++k) {
    EXPECT_TRUE(w.send(k % 2 ? "bob" : "carol", conv, "before " + std::to_string(k)).has_value());
    w.run();
  }
  EXPECT_TRUE(w.update("alice", conv, {"dave"}, {"carol"}).has_value());
  w.run();
  // Pipelined: two messages of one author in flight at once.
  EXPECT_TRUE(w.send("dave", conv, "after 0").has_value());
  EXPECT_TRUE(w.send("dave", conv, "after 1").has_value());
  w.run();
  w.advance_time(60);
  w.receipts_due();
  w.run();
  EXPECT_TRUE(w.alarms().empty());
  EXPECT_TRUE(w.check_consistency().empty());
  return conv;
}

// Both block modes (docs/protocol.md §5.2): chain mode adds the chains of every channel.
class client_store_modes : public ::testing::TestWithParam<protocol::block_mode> {};

INSTANTIATE_TEST_SUITE_P(modes, client_store_modes,
                         ::testing::Values(protocol::block_mode::pk, protocol::block_mode::chain),
                         [](const auto& p) {
                           return p.param == protocol::block_mode::chain
                                      ? std::string("chain")
                                      : std::string("public_key");
                         });

TEST_P(client_store_modes, a_client_reloaded_from_disk_equals_the_live_one) {
  temp_dir d("client");
  std::map<std::string, protocol::client> live;
  {
    durable_world w(d.path(), {});
    scenario(w, GetParam());
    for (const auto& u : w.users())
      live.emplace(u, w.client(u).clone());
  }
  // In chain mode there is chain state to reload: send chains, receive chains, skipped keys
  // (pipelined and out-of-order delivery leaves some).
  size_t chains = 0;
  for (const auto& [u, c] : live)
    for (const auto& [conv, cc] : c.convs())
      for (const auto& [peer, ch] : cc.channels)
        chains += (ch.out.chain ? 1u : 0u) + (ch.in ? 1u : 0u);
  EXPECT_EQ(chains > 0, GetParam() == protocol::block_mode::chain);
  // The scenario uses up pre-keys: their record (a DIRECTORY check) must survive too.
  size_t used = 0;
  for (const auto& [u, c] : live)
    used += c.keys().used_prekeys().size();
  EXPECT_GT(used, 0u);
  crypto::system_rng r;
  for (const auto& [u, c] : live) {
    auto s = reopen(d, u, r);
    ASSERT_NE(s, nullptr);
    auto loaded = s->load();
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
    EXPECT_TRUE(testing::same_client(*loaded, c)) << u;
  }
}

TEST(client_store, the_transcript_on_disk_is_every_accepted_entry_with_its_d) {
  temp_dir d("client");
  durable_world w(d.path(), {});
  const auto conv = scenario(w);
  for (const auto& u : w.users()) {
    auto tr = w.client_db(u).transcript(conv);
    ASSERT_TRUE(tr.has_value());
    EXPECT_EQ(*tr, w.accepted(u, conv)) << u;
    for (const auto& a : *tr)
      EXPECT_EQ(w.client_db(u).d_at(conv, a.index), a.d);
  }
  auto bob = texts(*w.client_db("bob").transcript(conv));
  EXPECT_EQ(bob, (std::vector<std::string>{"before 0", "before 1", "before 2", "before 3",
                                           "after 0", "after 1"}));
  EXPECT_EQ(texts(*w.client_db("dave").transcript(conv)),
            (std::vector<std::string>{"after 0", "after 1"}));
  auto part = w.client_db("bob").transcript(conv, 2, 3);
  ASSERT_TRUE(part.has_value());
  ASSERT_EQ(part->size(), 2u);
  EXPECT_EQ(part->front().index, 2u);
}

TEST_P(client_store_modes,
       a_restart_mid_conversation_resumes_without_losing_or_repeating_a_message) {
  temp_dir d("client");
  protocol::conv_id conv{};
  {
    durable_world w(d.path(), durable_options{1, 2, 1'000'000});
    for (const char* u : {"alice", "bob", "carol"})
      w.add_user(u);
    conv = w.create("alice", {"bob", "carol"}, GetParam()).value();
    w.run();
    for (int k = 0; k < 6; ++k)
      ASSERT_TRUE(w.send(k % 3 == 0   ? "alice"
                         : k % 3 == 1 ? "bob"
                                      : "carol",
                         conv, "m" + std::to_string(k))
                      .has_value());
    w.run(23);  // stop with messages in every stage of flight
    ASSERT_GT(w.in_flight(), 0u) << "the restart would have nothing to recover";
    ASSERT_FALSE(w.router_conv_for(conv)->in_flight().empty()
                 && w.client("carol").find(conv)->outbox.empty())
        << "nothing pending at the router or in an outbox";
  }
  durable_world w(d.path(), durable_options{2, 2, 2'000'000});
  for (const char* u : {"alice", "bob", "carol"})
    w.add_user(u);
  w.recover();
  w.run();
  ASSERT_TRUE(w.send("bob", conv, "m6").has_value());
  w.run();
  EXPECT_TRUE(w.alarms().empty());
  EXPECT_EQ(w.check_consistency(), std::vector<std::string>{});
  std::vector<std::string> first;
  for (const char* u : {"alice", "bob", "carol"}) {
    auto tr = texts(*w.client_db(u).transcript(conv));
    std::vector<std::string> sorted = tr;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5", "m6"})) << u;
    if (first.empty())
      first = tr;
    EXPECT_EQ(tr, first) << "members disagree on the order";
  }
}

TEST(client_store, a_removed_member_keeps_a_tombstone_and_its_transcript_but_no_secrets) {
  temp_dir d("client");
  durable_world w(d.path(), {});
  const auto conv = scenario(w);
  auto& carol = w.client_db("carol");
  EXPECT_EQ(w.client("carol").find(conv), nullptr);
  EXPECT_TRUE(w.client("carol").tombstones().contains(conv));
  for (column c : {column::conv, column::channels, column::outbox}) {
    size_t rows = 0;
    ASSERT_TRUE(carol.raw()
                    .scan_prefix(c, keys::conv_prefix(conv),
                                 [&](std::string_view, byte_view) {
                                   ++rows;
                                   return true;
                                 })
                    .has_value());
    EXPECT_EQ(rows, 0u) << column_name(c);
  }
  EXPECT_TRUE(carol.raw().get(column::tombstones, keys::tombstone(conv))->has_value());
  EXPECT_EQ(texts(*carol.transcript(conv)).size(), 4u);
}

TEST(client_store, persisting_an_unchanged_client_writes_nothing) {
  temp_dir d("client");
  durable_world w(d.path(), {});
  scenario(w);
  auto& db = w.client_db("bob");
  const auto before = db.raw().stats();
  ASSERT_TRUE(db.persist_all(w.client("bob")).has_value());
  EXPECT_EQ(db.raw().stats().syncs, before.syncs);
}

TEST(client_store, a_reloaded_client_compared_in_full_writes_nothing) {
  temp_dir d("client");
  {
    durable_world w(d.path(), {});
    scenario(w);
  }
  crypto::system_rng r;
  auto s = reopen(d, "alice", r);
  ASSERT_NE(s, nullptr);
  auto c = s->load();
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(s->persist_all(*c).has_value());
  EXPECT_EQ(s->raw().stats().syncs, 0u) << "the reload's row cache disagrees with the disk";
}

// Rows written to `user`'s store while it receives one MESSAGE in a conversation of `n` members.
uint64_t ops_per_received_message(size_t n) {
  temp_dir d("client");
  durable_world w(d.path(), {});
  std::vector<std::string> others;
  for (size_t k = 1; k < n; ++k) {
    others.push_back("user" + std::to_string(k));
    w.add_user(others.back());
  }
  w.add_user("user0");
  auto conv = w.create("user0", others).value();
  w.run();
  for (int k = 0; k < 3; ++k) {
    EXPECT_TRUE(w.send("user0", conv, "warm " + std::to_string(k)).has_value());
    w.run();
    EXPECT_TRUE(w.send("user1", conv, "warm " + std::to_string(k)).has_value());
    w.run();
  }
  const auto before = w.client_db("user2").raw().stats().ops;
  EXPECT_TRUE(w.send("user1", conv, "measured").has_value());
  w.run();
  return w.client_db("user2").raw().stats().ops - before;
}

TEST(client_store, receiving_a_message_writes_rows_independent_of_the_member_count) {
  const uint64_t small = ops_per_received_message(3);
  const uint64_t large = ops_per_received_message(12);
  RecordProperty("rows_3_members", std::to_string(small));
  RecordProperty("rows_12_members", std::to_string(large));
  EXPECT_GT(small, 0u);
  EXPECT_LE(large, small + 2) << "small group: " << small << " rows, large group: " << large;
}

TEST(client_store, no_secret_or_plaintext_reaches_the_disk_in_the_clear) {
  temp_dir d("client");
  std::vector<crypto::secret<32>> secrets;
  {
    durable_world w(d.path(), {});
    const auto conv = scenario(w);
    // Messages still in an outbox are on disk too: leave one unsent.
    ASSERT_TRUE(w.send("bob", conv, "still in the outbox").has_value());
    for (const auto& u : w.users()) {
      const auto& c = w.client(u);
      secrets.push_back(c.self().export_secret());
      for (const auto& [id, slot] : c.keys().prekeys())
        secrets.push_back(slot.key.esk.clone());
      for (const auto& [id, slot] : c.keys().last_resort())
        secrets.push_back(slot.key.esk.clone());
      for (const auto& [cid, cc] : c.convs())
        for (const auto& [peer, ch] : cc.channels)
          for (const auto& [id, key] : ch.mine)
            secrets.push_back(key.esk.clone());
    }
  }
  ASSERT_GT(secrets.size(), 50u);
  for (const char* u : {"alice", "bob", "carol", "dave"}) {
    const auto dir = d.path() / (std::string("client-") + u);
    for (const auto& s : secrets)
      EXPECT_EQ(testing::file_containing(dir, s.expose()), "") << u;
    for (std::string_view text : {"before 1", "after 0", "still in the outbox"})
      EXPECT_EQ(testing::file_containing(dir, as_bytes(text)), "") << u << ": " << text;
  }
}

TEST(client_store, a_wrong_storage_key_is_refused_at_open) {
  temp_dir d("client");
  {
    durable_world w(d.path(), {});
    w.add_user("alice");
  }
  crypto::system_rng r;
  auto wrong = client_store::open(d.path() / "client-alice", key_file{d.path() / "other.key"}, r);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, errc::decrypt_failed);
  auto s = reopen(d, "alice", r);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->load().has_value());
  auto twice = s->create(*s->load());
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().code, errc::already_exists);
}

}  // namespace
}  // namespace cowpi::storage

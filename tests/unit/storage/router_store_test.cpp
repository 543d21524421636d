// SPDX-License-Identifier: Apache-2.0
// The router store on real RocksDB: the log stored once and read back per recipient, the
// conversation record, cursors, low-water-mark retention and the directory.
#include "cowpi/storage/router_store.hpp"

#include "cowpi/protocol/chain.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include "durable_world.hpp"
#include "synthetic_log.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace cowpi::storage {
namespace {

using protocol::log_entry;
using testing::synthetic_conv;
using testing::temp_dir;

std::unique_ptr<router_store> open_router(const temp_dir& d) {
  auto s = router_store::open(d.path() / "router");
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

// Appends and answers `e` as the router does.
void log_complete(router_store& rs, synthetic_conv& sc, const log_entry& e, uint64_t now = 1000) {
  ASSERT_TRUE(rs.append(sc.rc(), e, now).has_value());
  ASSERT_TRUE(rs.persist_answers(e, sc.answers(e)).has_value());
}

TEST(router_store, has_users_once_a_user_registers_and_a_node_with_users_keeps_its_shard_map) {
  temp_dir d("router");
  auto rs = open_router(d);
  auto none = rs->has_users();
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(*none);
  const std::vector<std::string> nodes{"r-1", "r-2"};
  ASSERT_TRUE(rs->check_shard_map(nodes, false).has_value());
  protocol::public_key k{};
  k.fill(3);
  ASSERT_TRUE(rs->register_user("alice", k, 1).has_value());
  auto has = rs->has_users();
  ASSERT_TRUE(has.has_value());
  EXPECT_TRUE(*has);
  // Holding users (and no conversation), it refuses another node list.
  auto other = rs->check_shard_map({"r-1", "r-2", "r-3"}, *has);
  ASSERT_FALSE(other.has_value());
  EXPECT_NE(other.error().message().find("r-1, r-2"), std::string::npos) << other.error().message();
}

TEST(router_store, an_appended_entry_reads_back_whole_while_pending_and_with_answers_after) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(1, {"alice", "bob", "carol"});
  const log_entry e0 = sc.setup();
  ASSERT_TRUE(rs->append(sc.rc(), e0, 1000).has_value());
  auto pending = rs->read_entry(sc.conv(), 0);
  ASSERT_TRUE(pending.has_value() && pending->has_value());
  EXPECT_FALSE((*pending)->complete);
  EXPECT_EQ((*pending)->entry, e0);
  EXPECT_EQ((*pending)->ordered_at, 1000u);
  const auto answers = sc.answers(e0);
  ASSERT_TRUE(rs->persist_answers(e0, answers).has_value());
  auto done = rs->read_entry(sc.conv(), 0);
  ASSERT_TRUE(done.has_value() && done->has_value());
  EXPECT_TRUE((*done)->complete);
  EXPECT_EQ((*done)->answers, answers);
  log_entry without_commit_payload = e0;
  without_commit_payload.ambs.clear();
  without_commit_payload.last_resort.clear();
  EXPECT_EQ((*done)->entry, without_commit_payload) << "amb_o and LAST_RESORT keys are dropped";
  EXPECT_FALSE(rs->read_entry(sc.conv(), 1)->has_value());
}

TEST(router_store, each_recipient_reads_exactly_its_envelope) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(2, {"alice", "bob", "carol", "dave"});
  std::vector<std::pair<log_entry, protocol::mirror_answers>> entries;
  auto add = [&](log_entry e) {
    auto a = sc.answers(e);
    ASSERT_TRUE(rs->append(sc.rc(), e, 1).has_value());
    ASSERT_TRUE(rs->persist_answers(e, a).has_value());
    entries.emplace_back(std::move(e), std::move(a));
  };
  add(sc.setup());
  add(sc.message("bob"));
  add(sc.update("carol", {"erin"}, {"dave"}));
  add(sc.message("erin", 40 + 256 * 3));
  for (const auto& [e, a] : entries) {
    for (const std::string u : {"alice", "bob", "carol", "dave", "erin", "mallory"}) {
      auto got = rs->envelope_for(sc.conv(), e.index, u);
      ASSERT_TRUE(got.has_value()) << got.error().message();
      auto want = protocol::make_envelope(e, a, u);
      if (!want) {
        EXPECT_FALSE(got->has_value()) << u << " has no slot at " << e.index;
        continue;
      }
      ASSERT_TRUE(got->has_value()) << u << " at " << e.index;
      EXPECT_EQ(**got, *want) << u << " at " << e.index;
    }
  }
  // erin joined at 2 (with T_1 in its envelope), dave left there.
  EXPECT_TRUE((*rs->envelope_for(sc.conv(), 2, "erin"))->t_prev.has_value());
  EXPECT_FALSE((*rs->envelope_for(sc.conv(), 2, "bob"))->t_prev.has_value());
  auto for_dave = rs->envelopes_from(sc.conv(), "dave", 0, 100);
  ASSERT_TRUE(for_dave.has_value());
  EXPECT_EQ(for_dave->size(), 3u);
}

TEST(router_store, delivery_stops_at_the_first_entry_still_missing_answers) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(3, {"alice", "bob"});
  log_complete(*rs, sc, sc.setup());
  const log_entry e1 = sc.message("alice");
  ASSERT_TRUE(rs->append(sc.rc(), e1, 1).has_value());
  const log_entry e2 = sc.message("bob");
  log_complete(*rs, sc, e2);
  auto envs = rs->envelopes_from(sc.conv(), "bob", 0, 100);
  ASSERT_TRUE(envs.has_value());
  ASSERT_EQ(envs->size(), 1u);
  EXPECT_FALSE(rs->envelope_for(sc.conv(), 1, "bob")->has_value());
  ASSERT_TRUE(rs->persist_answers(e1, sc.answers(e1)).has_value());
  EXPECT_EQ(rs->envelopes_from(sc.conv(), "bob", 0, 100)->size(), 3u);
  EXPECT_EQ(rs->envelopes_from(sc.conv(), "bob", 1, 1)->size(), 1u);
}

TEST(router_store, envelopes_not_in_memory_are_named_so_and_read_on_the_reader_thread) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(4, {"alice", "bob"});
  log_complete(*rs, sc, sc.setup());
  for (int k = 0; k < 3; ++k)
    log_complete(*rs, sc, sc.message("alice"));
  const auto want = rs->envelopes_from(sc.conv(), "bob", 0, 100);
  ASSERT_TRUE(want.has_value());
  ASSERT_EQ(want->size(), 4u);

  // In the memtables: read without touching the disk.
  auto hot = rs->envelopes_in_memory(sc.conv(), "bob", 0, 100);
  ASSERT_TRUE(hot.has_value() && hot->has_value());
  EXPECT_EQ(**hot, *want);

  // Flushed and compacted into table files no read has touched yet: not in memory.
  ASSERT_TRUE(rs->raw().compact().has_value());
  auto cold = rs->envelopes_in_memory(sc.conv(), "bob", 0, 100);
  ASSERT_TRUE(cold.has_value());
  EXPECT_FALSE(cold->has_value());

  // The reader thread reads them from disk, off the caller's thread.
  std::promise<std::pair<expected<std::vector<protocol::envelope>>, std::thread::id>> p;
  auto f = p.get_future();
  rs->envelopes_from_async(sc.conv(), "bob", 0, 100,
                           [&p](expected<std::vector<protocol::envelope>> r) {
                             p.set_value({std::move(r), std::this_thread::get_id()});
                           });
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [read, on] = f.get();
  ASSERT_TRUE(read.has_value()) << read.error().message();
  EXPECT_EQ(*read, *want);
  EXPECT_NE(on, std::this_thread::get_id());

  // That read brought the blocks into the block cache: in memory again.
  auto warm = rs->envelopes_in_memory(sc.conv(), "bob", 0, 100);
  ASSERT_TRUE(warm.has_value() && warm->has_value());
  EXPECT_EQ(**warm, *want);
}

TEST(router_store, a_reloaded_conversation_has_the_same_record_and_resumes_pending_entries) {
  temp_dir d("router");
  synthetic_conv sc(4, {"alice", "bob", "carol"});
  {
    auto rs = open_router(d);
    log_complete(*rs, sc, sc.setup());
    for (int k = 0; k < 5; ++k)
      log_complete(*rs, sc, sc.message(k % 2 ? "bob" : "carol"));
    log_complete(*rs, sc, sc.update("alice", {"dave"}, {"bob"}));
    log_complete(*rs, sc, sc.message("dave"));
    ASSERT_TRUE(rs->append(sc.rc(), sc.message("carol"), 9).has_value());
    ASSERT_TRUE(rs->append(sc.rc(), sc.message("alice"), 9).has_value());
  }
  auto rs = open_router(d);
  auto rc = rs->load_conv(sc.conv(), sc.ms(), protocol::intake_limits{});
  ASSERT_TRUE(rc.has_value()) << rc.error().message();
  ASSERT_TRUE(rc->has_value());
  const auto& got = **rc;
  ASSERT_NE(got.state(), nullptr);
  EXPECT_EQ(*got.state(), *sc.rc().state());
  EXPECT_EQ(got.last_ordered(), sc.rc().last_ordered());
  EXPECT_EQ(got.last_update_time(), sc.rc().last_update_time());
  // T_j below the UPDATE at 6 is gone; 6..9 are held.
  EXPECT_EQ(got.state()->t.begin()->first, 6u);
  EXPECT_EQ(got.state()->t.size(), 4u);
  ASSERT_EQ(got.in_flight().size(), 2u);
  EXPECT_EQ(got.in_flight().begin()->first, 8u);
  EXPECT_EQ(got.in_flight().at(9).ambs.size(), 2u);
  EXPECT_FALSE(rs->load_conv(protocol::conv_id{}, sc.ms(), {})->has_value());
  EXPECT_EQ(rs->next_index(sc.conv()).value(), 10u);
}

TEST(router_store,
     a_chain_mode_conversation_keeps_its_version_and_every_slot_kind_across_a_reload) {
  temp_dir d("router");
  synthetic_conv sc(14, {"alice", "bob", "carol", "dave"}, 2, /*chain=*/true);
  std::vector<log_entry> entries;
  {
    auto rs = open_router(d);
    entries.push_back(sc.setup());
    log_complete(*rs, sc, entries.back());
    for (int k = 0; k < 4; ++k) {
      entries.push_back(sc.message(k % 2 ? "bob" : "carol"));
      log_complete(*rs, sc, entries.back());
    }
    entries.push_back(sc.message("alice"));
    ASSERT_TRUE(rs->append(sc.rc(), entries.back(), 9).has_value());
  }
  // The synthetic slots cover a DH step and all four chain block lengths.
  std::set<size_t> sizes;
  for (const auto& e : entries)
    for (const auto& rb : e.blocks)
      sizes.insert(protocol::enc_slot(rb.blk).size());
  EXPECT_EQ(sizes, (std::set<size_t>{24, 56, 64, 96, protocol::dh_step_size}));

  auto rs = open_router(d);
  auto rc = rs->load_conv(sc.conv(), sc.ms(), protocol::intake_limits{});
  ASSERT_TRUE(rc.has_value() && rc->has_value());
  ASSERT_NE((*rc)->state(), nullptr);
  EXPECT_EQ((*rc)->state()->version, protocol::protocol_version_chain);
  EXPECT_EQ(*(*rc)->state(), *sc.rc().state());
  EXPECT_EQ((*rc)->in_flight().at(5).ambs, entries.back().ambs) << "a pending entry's ambs";
  auto done = rs->read_entry(sc.conv(), 2);
  ASSERT_TRUE(done.has_value() && done->has_value());
  EXPECT_TRUE((*done)->complete);
  EXPECT_EQ((*done)->entry.blocks, entries[2].blocks);
  // Answers in chain mode take the variable-length record layout and read back exactly.
  const auto answers = sc.answers(entries.back());
  ASSERT_TRUE(rs->persist_answers(entries.back(), answers).has_value());
  auto last = rs->read_entry(sc.conv(), 5);
  ASSERT_TRUE(last.has_value() && last->has_value());
  EXPECT_EQ((*last)->answers, answers);
}

TEST(router_store, a_stopped_conversation_stays_stopped_after_a_reload) {
  temp_dir d("router");
  synthetic_conv sc(5, {"alice", "bob"});
  {
    auto rs = open_router(d);
    log_complete(*rs, sc, sc.setup());
    sc.rc().stop("CONFLICT at index 0");
    ASSERT_TRUE(rs->persist_stop(sc.rc()).has_value());
  }
  auto rs = open_router(d);
  auto rc = rs->load_conv(sc.conv(), sc.ms(), {});
  ASSERT_TRUE(rc.has_value() && rc->has_value());
  EXPECT_TRUE((*rc)->stopped());
  EXPECT_EQ((*rc)->stop_reason(), "CONFLICT at index 0");
}

TEST(router_store, cursors_start_at_the_joining_entry_and_only_move_forward) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(6, {"alice", "bob"});
  log_complete(*rs, sc, sc.setup());
  for (int k = 0; k < 3; ++k)
    log_complete(*rs, sc, sc.message("alice"));
  log_complete(*rs, sc, sc.update("alice", {"carol"}, {}));
  EXPECT_EQ(rs->cursor("bob", sc.conv())->value().next, 0u);
  EXPECT_EQ(rs->cursor("carol", sc.conv())->value().next, 4u);
  EXPECT_FALSE(rs->cursor("dave", sc.conv())->has_value());
  ASSERT_TRUE(rs->ack("bob", sc.conv(), 2).has_value());
  EXPECT_EQ(rs->cursor("bob", sc.conv())->value().next, 3u);
  ASSERT_TRUE(rs->ack("bob", sc.conv(), 1).has_value());  // stale: no change
  EXPECT_EQ(rs->cursor("bob", sc.conv())->value().next, 3u);
  auto nope = rs->ack("dave", sc.conv(), 0);
  ASSERT_FALSE(nope.has_value());
  EXPECT_EQ(nope.error().code, errc::not_found);
  // Removal records the last index the member holds a slot in.
  log_complete(*rs, sc, sc.update("alice", {}, {"bob"}));
  auto bob = rs->cursor("bob", sc.conv())->value();
  EXPECT_EQ(bob.next, 3u);
  EXPECT_EQ(bob.last, 5u);
  // The user's conversation set is its cursors.
  auto set = rs->cursors_of("carol");
  ASSERT_TRUE(set.has_value());
  ASSERT_EQ(set->size(), 1u);
  EXPECT_EQ(set->front().first, sc.conv());
}

TEST(router_store, a_users_cursors_and_log_starts_are_read_on_the_reader_thread) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv one(7, {"alice", "bob"});
  synthetic_conv two(8, {"alice", "carol"});
  for (auto* sc : {&one, &two}) {
    log_complete(*rs, *sc, sc->setup());
    for (int k = 0; k < 4; ++k)
      log_complete(*rs, *sc, sc->message("alice"));
  }
  ASSERT_TRUE(rs->ack("alice", one.conv(), 3).has_value());
  ASSERT_TRUE(rs->ack("bob", one.conv(), 4).has_value());
  ASSERT_TRUE(rs->collect(one.conv(), 2000, 30 * 24 * 3600).has_value());
  auto read = [&](const std::string& user) {
    std::promise<std::pair<expected<storage::router_store::user_cursors>, std::thread::id>> p;
    rs->cursors_async(user, [&](expected<storage::router_store::user_cursors> r) {
      p.set_value({std::move(r), std::this_thread::get_id()});
    });
    auto got = p.get_future().get();
    EXPECT_NE(got.second, std::this_thread::get_id());
    return std::move(got.first);
  };
  auto alice = read("alice");
  ASSERT_TRUE(alice.has_value()) << alice.error().message();
  auto want = rs->cursors_of("alice");
  ASSERT_TRUE(want.has_value());
  ASSERT_EQ(alice->cursors.size(), 2u);
  ASSERT_EQ(alice->log_starts.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(alice->cursors[k].first, (*want)[k].first);
    EXPECT_EQ(alice->cursors[k].second.next, (*want)[k].second.next);
    EXPECT_EQ(alice->log_starts[k], *rs->log_start(alice->cursors[k].first));
  }
  // The collected conversation starts later; the other one at 0.
  for (size_t k = 0; k < 2; ++k)
    EXPECT_EQ(alice->log_starts[k], alice->cursors[k].first == one.conv() ? 4u : 0u);
  auto nobody = read("nobody");
  ASSERT_TRUE(nobody.has_value());
  EXPECT_TRUE(nobody->cursors.empty());
}

// Marks the calling thread as one that must not block for the scope (an actor thread).
struct nonblocking_scope {
  nonblocking_scope() { mark_nonblocking_thread(true); }
  ~nonblocking_scope() { mark_nonblocking_thread(false); }
  nonblocking_scope(const nonblocking_scope&) = delete;
  nonblocking_scope& operator=(const nonblocking_scope&) = delete;
};

uint64_t blocking_calls() {
  uint64_t n = 0;
  for (auto c : blocking_calls_on_nonblocking_threads())
    n += c;
  return n;
}

TEST(router_store,
     an_actor_thread_never_reads_the_disk_rows_only_there_are_read_on_the_reader_thread) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(11, {"alice", "bob"});
  log_complete(*rs, sc, sc.setup());
  for (int k = 0; k < 3; ++k)
    log_complete(*rs, sc, sc.message("alice"));
  // Entries 0 and 1 acknowledged by both and collected: the log starts at 2.
  for (const std::string u : {"alice", "bob"})
    ASSERT_TRUE(rs->ack(u, sc.conv(), 1).has_value());
  ASSERT_TRUE(rs->collect(sc.conv(), 2000, 30 * 24 * 3600).has_value());
  const log_entry add_carol = sc.update("alice", {"carol"}, {});
  ASSERT_TRUE(rs->append(sc.rc(), add_carol, 1000).has_value());
  const log_entry after = sc.message("alice");
  ASSERT_TRUE(rs->append(sc.rc(), after, 1000).has_value());
  // Everything flushed into table files no read has touched: nothing is in memory.
  ASSERT_TRUE(rs->raw().compact().has_value());

  const uint64_t before = blocking_calls();
  nonblocking_scope scope;
  const auto caller = std::this_thread::get_id();
  ASSERT_EQ(blocking_calls(), before);  // the counter itself is not a store call

  // The log start: not in memory, so read on the reader thread.
  auto start = rs->log_start_in_memory(sc.conv());
  ASSERT_TRUE(start.has_value());
  EXPECT_FALSE(start->has_value());
  std::promise<std::pair<expected<uint64_t>, std::thread::id>> ps;
  rs->log_start_async(sc.conv(), [&](expected<uint64_t> r) {
    ps.set_value({std::move(r), std::this_thread::get_id()});
  });
  auto [got_start, start_on] = ps.get_future().get();
  ASSERT_TRUE(got_start.has_value());
  EXPECT_EQ(*got_start, 2u);
  EXPECT_NE(start_on, caller);

  // A client's ack whose cursor row is only on disk: written all the same.
  std::promise<expected<void>> pa;
  rs->ack_async("bob", sc.conv(), 2, [&](expected<void> r) { pa.set_value(std::move(r)); });
  ASSERT_TRUE(pa.get_future().get().has_value());

  // The answers of the UPDATE adding carol read her cursor and the log start, both on disk:
  // the batch is built on the reader thread, and the next entry's answers (no reads) still
  // follow it.
  std::vector<uint64_t> answered;
  std::mutex mu;
  std::promise<void> both;
  auto record = [&](uint64_t i) {
    return [&, i](expected<void> r) {
      EXPECT_TRUE(r.has_value()) << r.error().message();
      std::lock_guard<std::mutex> g(mu);
      answered.push_back(i);
      if (answered.size() == 2)
        both.set_value();
    };
  };
  rs->persist_answers_async(add_carol, sc.answers(add_carol), record(add_carol.index));
  rs->persist_answers_async(after, sc.answers(after), record(after.index));
  ASSERT_EQ(both.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(answered, (std::vector<uint64_t>{add_carol.index, after.index}));

  // Records, cursors and directory entries, read for the actors on the reader thread.
  std::promise<storage::router_store::loaded_conv> pl;
  rs->load_conv_async(sc.conv(), sc.ms(), {},
                      [&](storage::router_store::loaded_conv l) { pl.set_value(std::move(l)); });
  auto loaded = pl.get_future().get();
  ASSERT_TRUE(loaded && loaded->has_value() && (*loaded)->has_value());
  EXPECT_EQ((**loaded)->state()->next, after.index + 1);
  std::promise<expected<storage::router_store::user_cursors>> pc;
  rs->cursor_async("carol", sc.conv(), [&](expected<storage::router_store::user_cursors> r) {
    pc.set_value(std::move(r));
  });
  auto carol = pc.get_future().get();
  ASSERT_TRUE(carol.has_value());
  ASSERT_EQ(carol->cursors.size(), 1u);
  EXPECT_EQ(carol->cursors.front().second.next, add_carol.index);
  std::promise<expected<storage::router_store::directory_entries>> pd;
  rs->directory_entries_async(
      {"nobody"},
      [&](expected<storage::router_store::directory_entries> r) { pd.set_value(std::move(r)); });
  auto dir = pd.get_future().get();
  ASSERT_TRUE(dir.has_value());
  ASSERT_EQ(dir->count("nobody"), 1u);
  EXPECT_FALSE(dir->at("nobody").has_value());

  // Not one call on this thread could have waited for the disk.
  EXPECT_EQ(blocking_calls(), before);
  EXPECT_EQ(rs->cursor("bob", sc.conv())->value().next, 3u);  // (counted: a plain read)
  EXPECT_EQ(blocking_calls(), before + 1);
}

TEST(router_store, collection_deletes_exactly_what_every_slot_acknowledged) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(7, {"alice", "bob", "carol"});
  log_complete(*rs, sc, sc.setup());
  for (int k = 0; k < 9; ++k)
    log_complete(*rs, sc, sc.message("alice"));
  ASSERT_TRUE(rs->ack("alice", sc.conv(), 9).has_value());
  ASSERT_TRUE(rs->ack("carol", sc.conv(), 9).has_value());
  ASSERT_TRUE(rs->ack("bob", sc.conv(), 4).has_value());
  const uint64_t cap = 30 * 24 * 3600;
  auto g = rs->collect(sc.conv(), 2000, cap);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  EXPECT_EQ(g->log_start, 5u);
  EXPECT_EQ(g->deleted, 5u);
  for (uint64_t i = 0; i < 10; ++i)
    EXPECT_EQ(rs->read_entry(sc.conv(), i)->has_value(), i >= 5) << i;
  EXPECT_FALSE(rs->envelope_for(sc.conv(), 4, "bob")->has_value());
  EXPECT_TRUE(rs->envelope_for(sc.conv(), 5, "bob")->has_value());
  EXPECT_FALSE(rs->history_expired("bob", sc.conv()).value());
  // Nothing more until bob moves on; collecting again is a no-op.
  EXPECT_EQ(rs->collect(sc.conv(), 2000, cap)->deleted, 0u);
  // The conversation record is never collected.
  auto rc = rs->load_conv(sc.conv(), sc.ms(), {});
  ASSERT_TRUE(rc.has_value() && rc->has_value());
  EXPECT_EQ(*(*rc)->state(), *sc.rc().state());
}

TEST(router_store, the_retention_cap_deletes_unacknowledged_entries_but_never_pending_ones) {
  temp_dir d("router");
  auto rs = open_router(d);
  synthetic_conv sc(8, {"alice", "bob"});
  log_complete(*rs, sc, sc.setup(), 100);
  for (int k = 0; k < 3; ++k)
    log_complete(*rs, sc, sc.message("alice"), 100);
  ASSERT_TRUE(rs->append(sc.rc(), sc.message("bob"), 100).has_value());  // index 4, pending
  log_complete(*rs, sc, sc.message("alice"), 100);
  auto g = rs->collect(sc.conv(), 100 + 3600, 3600);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->log_start, 4u);
  EXPECT_TRUE(rs->history_expired("bob", sc.conv()).value());
  EXPECT_TRUE(rs->read_entry(sc.conv(), 4)->has_value());
  // Before the cap nothing unacknowledged goes.
  synthetic_conv sc2(9, {"alice", "bob"});
  log_complete(*rs, sc2, sc2.setup(), 100);
  EXPECT_EQ(rs->collect(sc2.conv(), 100 + 3599, 3600)->deleted, 0u);
}

TEST(router_store, the_directory_registers_each_id_once_and_hands_out_each_prekey_once) {
  temp_dir d("router");
  auto rs = open_router(d);
  crypto::deterministic_rng r(10);
  const public_key alice_lpk = r.array<32>();
  ASSERT_TRUE(rs->register_user("alice", alice_lpk, 77).has_value());
  EXPECT_EQ(rs->register_user("alice", r.array<32>(), 78).error().code, errc::already_exists);
  ASSERT_TRUE(rs->register_provider("mirror-a", r.array<32>()).has_value());
  EXPECT_EQ(rs->register_user("mirror-a", r.array<32>(), 79).error().code, errc::already_exists);
  EXPECT_EQ(rs->register_provider("alice", alice_lpk).error().code, errc::conflict);
  auto u = rs->find_user("alice");
  ASSERT_TRUE(u.has_value() && u->has_value());
  EXPECT_EQ((*u)->lpk, alice_lpk);
  EXPECT_EQ((*u)->registered_at, 77u);

  protocol::upload_prekeys up;
  for (uint64_t id = 1; id <= 3; ++id)
    up.one_time.push_back({id, r.array<32>()});
  up.last_resort = protocol::published_key{1, r.array<32>()};
  ASSERT_TRUE(rs->upload_prekeys("alice", up).has_value());
  ASSERT_TRUE(rs->upload_prekeys("alice", up).has_value());  // a retried upload adds nothing
  EXPECT_EQ(rs->directory_status("alice")->one_time_remaining, 3u);
  EXPECT_EQ(rs->directory_status("alice")->max_prekey_id, 3u);

  auto b = rs->fetch_prekeys({"alice", "alice", "nobody"}, [] { return true; });
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].key.id, 1u);
  EXPECT_EQ((*b)[1].key.id, 2u);
  EXPECT_EQ((*b)[0].lpk, alice_lpk);
  auto denied = rs->fetch_prekeys({"alice"}, [] { return false; });
  EXPECT_EQ(denied->at(0).key.kind, protocol::key_kind::last_resort);
  EXPECT_EQ(rs->fetch_prekeys({"alice"}, [] { return true; })->at(0).key.id, 3u);
  auto empty = rs->fetch_prekeys({"alice"}, [] { return true; });
  EXPECT_EQ(empty->at(0).key.kind, protocol::key_kind::last_resort);
  EXPECT_EQ(rs->directory_status("alice")->one_time_remaining, 0u);
  EXPECT_EQ(rs->directory_status("alice")->last_resort_id, 1u);
}

TEST(router_store, retired_prekeys_leave_the_pool_and_the_count) {
  temp_dir d("router");
  auto rs = open_router(d);
  crypto::deterministic_rng r(11);
  ASSERT_TRUE(rs->register_user("alice", r.array<32>(), 77).has_value());
  ASSERT_TRUE(rs->register_user("alicea", r.array<32>(), 77).has_value());
  protocol::upload_prekeys up;
  for (uint64_t id = 1; id <= 6; ++id)
    up.one_time.push_back({id, r.array<32>()});
  up.last_resort = protocol::published_key{1, r.array<32>()};
  ASSERT_TRUE(rs->upload_prekeys("alice", up).has_value());
  ASSERT_TRUE(rs->upload_prekeys("alicea", up).has_value());
  // Key 1 is handed out; keys 2-4 are then retired by their owner (retiring 1 again is
  // harmless), and the owner whose id extends alice's keeps all of its keys.
  EXPECT_EQ(rs->fetch_prekeys({"alice"}, [] { return true; })->at(0).key.id, 1u);
  auto gone = rs->retire_prekeys("alice", 5);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(*gone, 3u);
  EXPECT_EQ(rs->directory_status("alice")->one_time_remaining, 2u);
  EXPECT_EQ(rs->directory_status("alice")->max_prekey_id, 6u);
  EXPECT_EQ(rs->directory_status("alicea")->one_time_remaining, 6u);
  EXPECT_EQ(*rs->retire_prekeys("alice", 5), 0u);  // a repeated retirement changes nothing
  EXPECT_EQ(*rs->retire_prekeys("alice", 0), 0u);
  EXPECT_EQ(rs->directory_status("alice")->one_time_remaining, 2u);
  // What is handed out next is the oldest key not retired, then the LAST_RESORT key.
  EXPECT_EQ(rs->fetch_prekeys({"alice"}, [] { return true; })->at(0).key.id, 5u);
  EXPECT_EQ(*rs->retire_prekeys("alice", UINT64_MAX), 1u);
  EXPECT_EQ(rs->directory_status("alice")->one_time_remaining, 0u);
  EXPECT_EQ(rs->fetch_prekeys({"alice"}, [] { return true; })->at(0).key.kind,
            protocol::key_kind::last_resort);
  // The retirement is on disk.
  rs.reset();
  rs = open_router(d);
  EXPECT_EQ(rs->directory_status("alice")->one_time_remaining, 0u);
  EXPECT_EQ(rs->directory_status("alicea")->one_time_remaining, 6u);
  EXPECT_EQ(rs->retire_prekeys("nobody", 3).error().code, errc::not_found);
}

TEST(router_store, a_real_deployment_reloads_the_routers_exact_state) {
  temp_dir d("router");
  protocol::conv_id conv{};
  protocol::conv_state live;
  std::map<std::string, std::pair<uint64_t, hash32>> lo;
  {
    testing::durable_world w(d.path(), testing::durable_options{});
    for (const char* u : {"alice", "bob", "carol"})
      w.add_user(u);
    conv = w.create("alice", {"bob", "carol"}).value();
    w.run();
    for (int k = 0; k < 4; ++k) {
      ASSERT_TRUE(w.send(k % 2 ? "bob" : "carol", conv, "hello " + std::to_string(k)).has_value());
      w.run();
    }
    w.receipts_due();
    w.run();
    live = *w.router_conv_for(conv)->state();
    lo = w.router_conv_for(conv)->last_ordered();
    EXPECT_TRUE(w.check_consistency().empty());
  }
  auto rs = router_store::open(d.path() / "router");
  ASSERT_TRUE(rs.has_value());
  auto rc = (*rs)->load_conv(conv, {}, {});
  ASSERT_TRUE(rc.has_value() && rc->has_value());
  EXPECT_EQ(*(*rc)->state(), live);
  EXPECT_EQ((*rc)->last_ordered(), lo);
  EXPECT_TRUE((*rc)->in_flight().empty());
  for (const char* u : {"alice", "bob", "carol"})
    EXPECT_EQ((*rs)->cursor(u, conv)->value().next, live.next) << u;
}

}  // namespace
}  // namespace cowpi::storage

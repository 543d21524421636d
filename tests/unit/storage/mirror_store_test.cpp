// SPDX-License-Identifier: Apache-2.0
// The mirror store: a mirror reloaded from disk equals the live one, D_i is kept for every
// index, answers only until acknowledged, the store is bound to one identity, secrets are sealed.
#include "cowpi/storage/mirror_store.hpp"

#include "durable_world.hpp"
#include "scan_files.hpp"
#include "state_compare.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace cowpi::storage {
namespace {

using testing::durable_world;
using testing::temp_dir;

// A conversation with messages, receipts and a membership change.
protocol::conv_id scenario(durable_world& w, protocol::block_mode mode = protocol::block_mode::pk) {
  for (const char* u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  auto conv = w.create("alice", {"bob", "carol"}, mode).value();
  w.run();
  for (int k = 0; k < 3; ++k) {
    EXPECT_TRUE(w.send(k % 2 ? "bob" : "carol", conv, "before " + std::to_string(k)).has_value());
    w.run();
  }
  EXPECT_TRUE(w.update("bob", conv, {"dave"}, {"carol"}).has_value());
  w.run();
  for (int k = 0; k < 3; ++k) {
    EXPECT_TRUE(w.send(k % 2 ? "dave" : "alice", conv, "after " + std::to_string(k)).has_value());
    w.run();
  }
  w.advance_time(60);
  w.receipts_due();
  w.run();
  EXPECT_TRUE(w.alarms().empty());
  EXPECT_TRUE(w.check_consistency().empty());
  return conv;
}

std::unique_ptr<mirror_store> reopen(const temp_dir& d, size_t k, crypto::rng& r) {
  const std::string id = "mirror-" + std::string(1, static_cast<char>('a' + k));
  auto s = mirror_store::open(d.path() / id, key_file{d.path() / (id + ".key")}, r);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

class mirror_store_modes : public ::testing::TestWithParam<protocol::block_mode> {};

INSTANTIATE_TEST_SUITE_P(modes, mirror_store_modes,
                         ::testing::Values(protocol::block_mode::pk, protocol::block_mode::chain),
                         [](const auto& p) {
                           return p.param == protocol::block_mode::chain
                                      ? std::string("chain")
                                      : std::string("public_key");
                         });

TEST_P(mirror_store_modes, a_mirror_reloaded_from_disk_equals_the_live_one) {
  temp_dir d("mirror");
  std::vector<protocol::mirror> live;
  {
    durable_world w(d.path(), {});
    scenario(w, GetParam());
    for (size_t k = 0; k < 2; ++k)
      live.push_back(w.mirror(k).clone());
  }
  crypto::system_rng r;
  for (size_t k = 0; k < 2; ++k) {
    auto s = reopen(d, k, r);
    ASSERT_NE(s, nullptr);
    auto m = s->load(durable_world::mirror_identity(d.path(), k));
    ASSERT_TRUE(m.has_value()) << m.error().message();
    EXPECT_TRUE(testing::same_mirror(*m, live[k]));
  }
}

TEST(mirror_store, d_is_kept_for_every_index_and_answers_only_until_acknowledged) {
  temp_dir d("mirror");
  protocol::conv_id conv{};
  uint64_t next = 0;
  {
    durable_world w(d.path(), {});
    conv = scenario(w);
    next = w.mirror(0).find(conv)->st.next;
    for (uint64_t i = 0; i < next; ++i) {
      auto se = w.router_db().read_entry(conv, i);
      ASSERT_TRUE(se.has_value() && se->has_value());
      EXPECT_EQ(w.mirror_db(0).d_at(conv, i), (*se)->entry.d) << i;
    }
    EXPECT_FALSE(w.mirror_db(0).d_at(conv, next).has_value());
  }
  crypto::system_rng r;
  auto s = reopen(d, 0, r);
  uint64_t answers = 0;
  ASSERT_TRUE(s->raw()
                  .scan(column::answers, "", "",
                        [&](std::string_view, byte_view) {
                          ++answers;
                          return true;
                        })
                  .has_value());
  EXPECT_EQ(answers, 0u) << "the router acknowledged every answer";
  for (uint64_t i = 0; i < next; ++i)
    EXPECT_TRUE(s->d_at(conv, i).has_value());
}

TEST(mirror_store, an_audit_runs_on_the_reader_thread_and_answers_what_the_mirror_would) {
  temp_dir d("mirror");
  protocol::conv_id conv{};
  uint64_t next = 0;
  {
    durable_world w(d.path(), {});
    conv = scenario(w);
    next = w.mirror(0).find(conv)->st.next;
  }
  crypto::system_rng r;
  auto s = reopen(d, 0, r);
  ASSERT_NE(s, nullptr);
  auto m = s->load(durable_world::mirror_identity(d.path(), 0));
  ASSERT_TRUE(m.has_value()) << m.error().message();
  ASSERT_GT(next, 4u);
  const protocol::audit_query queries[] = {
      {conv, 0, next - 1}, {conv, 2, next + 10}, {conv, next, next + 3}, {conv, 3, 1}};
  for (const auto& q : queries) {
    std::promise<std::pair<protocol::audit_answer, std::thread::id>> got;
    s->audit_async(q, next, m->max_audit(), [&](protocol::audit_answer a) {
      got.set_value({std::move(a), std::this_thread::get_id()});
    });
    auto [answer, where] = got.get_future().get();
    EXPECT_NE(where, std::this_thread::get_id());
    EXPECT_EQ(answer, m->audit(q, *s)) << q.from << ".." << q.to;
  }
  // Bounded by max_audit, and by what the store holds.
  std::promise<protocol::audit_answer> capped;
  s->audit_async({conv, 0, next - 1}, next, 2,
                 [&](protocol::audit_answer a) { capped.set_value(std::move(a)); });
  const auto c = capped.get_future().get();
  ASSERT_EQ(c.d.size(), 2u);
  EXPECT_EQ(c.d[1], s->d_at(conv, 1));
  std::promise<protocol::audit_answer> beyond;
  s->audit_async({conv, 0, next + 5}, next + 5, 4096,
                 [&](protocol::audit_answer a) { beyond.set_value(std::move(a)); });
  EXPECT_EQ(beyond.get_future().get().d.size(), next) << "stops at the first index not held";
}

TEST(mirror_store, a_retried_commit_is_answered_on_the_reader_thread_from_the_stored_d) {
  temp_dir d("mirror");
  protocol::conv_id conv{};
  {
    durable_world w(d.path(), {});
    conv = scenario(w);
  }
  crypto::system_rng r;
  auto s = reopen(d, 0, r);
  ASSERT_NE(s, nullptr);
  const auto d1 = s->d_at(conv, 1);
  ASSERT_TRUE(d1.has_value());
  auto retry = [&](const hash32& dv, std::optional<protocol::answer> stored) {
    std::promise<std::pair<protocol::link_response, std::thread::id>> got;
    s->answer_retry_async(conv, 1, dv, std::move(stored), [&](protocol::link_response a) {
      got.set_value({std::move(a), std::this_thread::get_id()});
    });
    auto [answer, where] = got.get_future().get();
    EXPECT_NE(where, std::this_thread::get_id());
    return answer;
  };
  // The same D: the stored answer, or ALREADY_ANSWERED once it was acknowledged.
  protocol::answer held;
  held.index = 1;
  EXPECT_EQ(retry(*d1, held), protocol::link_response{held});
  EXPECT_EQ(retry(*d1, std::nullopt), protocol::link_response{protocol::already_answered{1}});
  // Another D: CONFLICT naming the one committed.
  hash32 other = *d1;
  other[0] ^= 1;
  EXPECT_EQ(retry(other, held), (protocol::link_response{protocol::conflict{1, *d1}}));
}

TEST(mirror_store, an_ack_deletes_answers_without_an_fsync_of_its_own_and_the_deletion_survives) {
  temp_dir d("mirror");
  protocol::conv_id conv{};
  {
    durable_world w(d.path(), {});
    conv = scenario(w, protocol::block_mode::chain);
    const auto before = w.mirror_db(0).raw().stats();
    ASSERT_TRUE(w.send("alice", conv, "one more").has_value());
    w.run();
    ASSERT_TRUE(w.mirror(0).find(conv)->answers.empty()) << "the router acknowledged it";
    const auto after = w.mirror_db(0).raw().stats();
    // COMMIT (synced) and ACK (lazy, no fsync of its own): two batches, one sync.
    EXPECT_EQ(after.batches - before.batches, 2u);
    EXPECT_EQ(after.syncs - before.syncs, 1u);
  }
  crypto::system_rng r;
  auto s = reopen(d, 0, r);
  ASSERT_NE(s, nullptr);
  auto m = s->load(durable_world::mirror_identity(d.path(), 0));
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_TRUE(m->find(conv)->answers.empty()) << "the lazy deletion reached the disk";
}

TEST(mirror_store, a_repeated_commit_after_a_reload_is_answered_from_the_stored_d) {
  temp_dir d("mirror");
  protocol::conv_id conv{};
  protocol::commit_msg repeat;
  hash32 other{};
  {
    durable_world w(d.path(), {});
    conv = scenario(w);
    auto se = w.router_db().read_entry(conv, 2).value();
    ASSERT_TRUE(se.has_value());
    repeat = protocol::commit_msg{2, se->entry.d, {}};
    repeat.payload.c = se->entry.c;
    other = se->entry.d;
    other[0] ^= 1;
  }
  crypto::system_rng r;
  auto s = reopen(d, 1, r);
  auto m = s->load(durable_world::mirror_identity(d.path(), 1));
  ASSERT_TRUE(m.has_value());
  auto same = m->commit(repeat, *s, 5'000'000, r);
  EXPECT_FALSE(same.persist);
  EXPECT_TRUE(std::holds_alternative<protocol::already_answered>(same.response));
  repeat.d = other;
  auto conflict = m->commit(repeat, *s, 5'000'000, r);
  ASSERT_TRUE(std::holds_alternative<protocol::conflict>(conflict.response));
  EXPECT_NE(std::get<protocol::conflict>(conflict.response).d, other);
}

TEST(mirror_store, a_store_bound_to_one_mirror_refuses_another_identity) {
  temp_dir d("mirror");
  crypto::deterministic_rng r(3);
  auto s = mirror_store::open(d.path() / "m", key_file{d.path() / "m.key"}, r);
  ASSERT_TRUE(s.has_value());
  ASSERT_TRUE((*s)->load(protocol::identity::generate("mirror-a", r)).has_value());
  auto again = (*s)->load(protocol::identity::generate("mirror-a", r));
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, errc::bad_state);
}

TEST(mirror_store, no_secret_key_reaches_the_disk_in_the_clear) {
  temp_dir d("mirror");
  std::vector<crypto::secret<32>> secrets;
  {
    durable_world w(d.path(), {});
    scenario(w);
    for (size_t k = 0; k < 2; ++k) {
      const auto& m = w.mirror(k);
      for (const auto& [id, slot] : m.keys().prekeys())
        secrets.push_back(slot.key.esk.clone());
      for (const auto& [id, slot] : m.keys().last_resort())
        secrets.push_back(slot.key.esk.clone());
      for (const auto& [conv, mc] : m.convs())
        for (const auto& [peer, ch] : mc.channels)
          for (const auto& [id, key] : ch.mine)
            secrets.push_back(key.esk.clone());
    }
  }
  ASSERT_GT(secrets.size(), 100u);
  for (const auto& s : secrets) {
    EXPECT_EQ(testing::file_containing(d.path() / "mirror-a", s.expose()), "");
    EXPECT_EQ(testing::file_containing(d.path() / "mirror-b", s.expose()), "");
  }
}

}  // namespace
}  // namespace cowpi::storage

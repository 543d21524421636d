// SPDX-License-Identifier: Apache-2.0
// protocol::reads_keys and commit_outcome::keys_changed, against what a mirror's PREPARE and
// COMMIT really do to its shared keys. A provider's mirror runs conversations concurrently and
// takes its key lock only when `reads_keys` says so, and the store rewrites the key rows only
// when `keys_changed` says so: a request for which either is false must leave the keys exactly
// as they were. Each conversation is replayed on a copy of a simulated deployment's mirror (the
// same clock and randomness), entry by entry, comparing the keys before and after.
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/sim/world.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>
#include <vector>

namespace cowpi::protocol {
namespace {

/// Everything in a mirror's keys but the secrets (which change only with the public parts).
using key_view =
    std::tuple<std::map<uint64_t, std::pair<public_key, std::optional<channel_ref>>>,
               std::map<uint64_t, std::tuple<public_key, uint64_t, std::set<channel_ref>>>,
               std::map<std::pair<key_kind, uint64_t>, public_key>, std::map<uint64_t, channel_ref>,
               std::tuple<uint64_t, uint64_t, uint64_t>,
               std::map<std::pair<key_kind, uint64_t>, uint64_t>>;

key_view view(mirror& m) {
  const auto& ks = m.keys();
  key_view v;
  for (const auto& [id, s] : ks.prekeys())
    std::get<0>(v).emplace(id, std::make_pair(s.key.pub, s.bound));
  for (const auto& [id, s] : ks.last_resort())
    std::get<1>(v).emplace(id, std::make_tuple(s.key.pub, s.retired_at, s.pending));
  std::get<2>(v) = ks.published();
  std::get<3>(v) = ks.used_prekeys();
  std::get<4>(v) = {ks.next_prekey_id(), ks.next_last_resort_id(), ks.current_last_resort_id()};
  std::get<5>(v) = m.shared_keys().prepared_refs;
  return v;
}

class mirror_keys_rule : public ::testing::TestWithParam<block_mode> {};

INSTANTIATE_TEST_SUITE_P(modes, mirror_keys_rule,
                         ::testing::Values(block_mode::pk, block_mode::chain), [](const auto& p) {
                           return p.param == block_mode::chain ? std::string("chain")
                                                               : std::string("public_key");
                         });

TEST_P(mirror_keys_rule, a_request_said_to_leave_the_keys_alone_leaves_them_alone) {
  sim::world w;
  mirror m = w.mirror_at(0).m.clone();
  crypto::deterministic_rng r = w.mirror_at(0).rng;
  for (const char* u : {"alice", "bob", "carol", "dave", "erin"})
    w.add_user(u);
  auto conv = w.create("alice", {"bob", "carol"}, GetParam()).value();
  w.run();
  // Everyone speaks, dave and erin join, and speak.
  for (const char* u : {"bob", "carol", "alice", "bob"}) {
    ASSERT_TRUE(w.send(u, conv, "hi"));
    w.run();
  }
  ASSERT_TRUE(w.update("bob", conv, {"dave", "erin"}, {"carol"}));
  w.run();
  for (const char* u : {"dave", "erin", "alice", "dave", "bob", "erin"}) {
    ASSERT_TRUE(w.send(u, conv, "hello"));
    w.run();
  }
  w.receipts_due();
  w.run();
  ASSERT_TRUE(w.alarms().empty());

  size_t reading = 0;
  size_t not_reading = 0;
  for (const auto& [i, se] : w.log(conv)) {
    const auto p = se.e.prepare_for(0);
    const bool reads = reads_keys(p, m.find(conv));
    reads ? ++reading : ++not_reading;
    auto before = view(m);
    ASSERT_TRUE(std::holds_alternative<prepared>(m.prepare(p, w.now())));
    if (!reads) {
      EXPECT_TRUE(view(m) == before) << "PREPARE of entry " << i << " changed the keys";
    }
    before = view(m);
    auto out = m.commit(commit_msg{se.e.index, se.e.d, p}, w.mirror_at(0), w.now(), r);
    ASSERT_TRUE(out.persist) << "entry " << i;
    // The replay is exact: the same blocks as the deployment's mirror.
    const auto* a = std::get_if<answer>(&out.response);
    ASSERT_NE(a, nullptr);
    EXPECT_TRUE(se.answers.at(0).has_value() && a->mirror_blocks == *se.answers.at(0));
    if (!reads) {
      EXPECT_TRUE(view(m) == before) << "COMMIT of entry " << i << " changed the keys";
    }
    // The store reads the keys for a COMMIT that changed them: only under the lock.
    EXPECT_TRUE(reads || !out.keys_changed) << "entry " << i;
    if (!out.keys_changed) {
      EXPECT_TRUE(view(m) == before) << "COMMIT of entry " << i << " said no key changed";
    }
  }
  // Both kinds occurred. Only alice reached the mirror through one of its own keys (her SETUP's
  // amb names a PREKEY; her next message releases it): every other member first heard from the
  // mirror, in a block that announced a RATCHET key, and answered on that key.
  EXPECT_EQ(reading, 2u);
  EXPECT_GE(not_reading, 10u);
}

}  // namespace
}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// The sending end of a chain-mode channel (docs/protocol.md §4.8, "Using chains in a
// conversation"): the first block steps and the next ones chain, every step reason fires at its
// bound and not before, rebuilt entries, VOID receipts and removals end an epoch, a failed step
// changes nothing, and a slot's kind follows from its length.
#include "cowpi/protocol/chain_channel.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cowpi::protocol {
namespace {

using crypto::secret;

chain_plaintext with_seed(uint8_t fill) {
  chain_plaintext pt;
  pt.seed.emplace();
  std::fill(pt.seed->expose().begin(), pt.seed->expose().end(), fill);
  return pt;
}

class chain_channel : public ::testing::Test {
protected:
  // Seals S->R's block for the entry with aseq `aseq` at time `now`.
  channel_block seal(uint64_t aseq, uint64_t now, uint64_t announced_id = 0,
                     const chain_plaintext& pt = with_seed(0x11)) {
    auto b = seal_channel_block(s_, alice_, conv_, target(), announced_id, pt, ad_, aseq, now, r_);
    EXPECT_TRUE(b.has_value()) << b.error().message();
    return b.has_value() ? std::move(*b) : channel_block{};
  }

  step_target target() const { return step_target{"bob", bob_.lpk(), ref_, e_pub_}; }

  static bool is_step(const channel_block& b) { return std::holds_alternative<dh_step>(b); }

  crypto::deterministic_rng r_{77};
  identity alice_ = identity::generate("alice", r_);
  identity bob_ = identity::generate("bob", r_);
  secret<32> e_r_ = [this] {
    auto s = r_.secret_bytes<32>();
    crypto::clamp(s.expose());
    return s;
  }();
  public_key e_pub_ = crypto::x25519_base(e_r_);
  conv_id conv_ = r_.array<16>();
  key_ref ref_{key_kind::prekey, 3, e_pub_};
  bytes ad_ = {'s', 'l', 'o', 't'};
  chain_sender s_;
};

TEST_F(chain_channel, the_first_block_steps_and_later_ones_chain_and_the_receiver_opens_both) {
  chain_plaintext first = with_seed(0x21);
  first.announced = published_key{4, crypto::x25519_base(r_.secret_bytes<32>())};
  EXPECT_EQ(step_due(s_, 0, 1000), step_reason::no_epoch);
  const channel_block b0 = seal(1, 1000, 0, first);
  ASSERT_TRUE(is_step(b0));
  EXPECT_EQ(enc_channel_block(b0).size(), dh_step_size);
  EXPECT_EQ(s_.last_epoch, 1u);
  EXPECT_EQ(s_.step_aseq, 1u);
  EXPECT_EQ(step_due(s_, 0, 1000), step_reason::none);

  auto opened = open_dh_step(bob_, e_r_, "alice", alice_.lpk(), conv_, std::get<dh_step>(b0), ad_);
  ASSERT_TRUE(opened.has_value()) << opened.error().message();
  EXPECT_EQ(opened->pt.announced_id, 4u);
  EXPECT_EQ(opened->pt.announced_pub, first.announced->pub);
  EXPECT_TRUE(crypto::ct_equal(opened->pt.seed.expose(), first.seed->expose()));
  recv_chain rc = std::move(opened->chain);

  for (uint64_t aseq = 2; aseq < 5; ++aseq) {
    const channel_block b = seal(aseq, 1000 + aseq, 0, with_seed(static_cast<uint8_t>(aseq)));
    ASSERT_FALSE(is_step(b));
    const auto& cb = std::get<chain_block>(b);
    EXPECT_EQ(cb.epoch, 1u);
    EXPECT_EQ(cb.n, aseq - 2);
    auto o = open_chain_block(&rc, cb, ad_);
    ASSERT_TRUE(o.has_value()) << to_string(o.error());
    ASSERT_TRUE(o->pt.seed.has_value());
    EXPECT_EQ(o->pt.seed->expose()[0], aseq);
    apply_chain_effects(rc, std::move(o->effects));
  }
}

TEST_F(chain_channel, a_newer_announced_ratchet_key_makes_the_sender_step_to_it) {
  (void)seal(1, 0);
  // The step referenced a PREKEY: any announced RATCHET key is newer.
  EXPECT_EQ(step_due(s_, 2, 0), step_reason::newer_key);
  ref_ = key_ref{key_kind::ratchet, 2, public_key{}};
  const channel_block b = seal(2, 0, 2);
  ASSERT_TRUE(is_step(b));
  EXPECT_EQ(std::get<dh_step>(b).epoch, 2u);
  EXPECT_EQ(s_.referenced_kind, key_kind::ratchet);
  EXPECT_EQ(s_.referenced_id, 2u);
  EXPECT_EQ(step_due(s_, 2, 0), step_reason::none);
  EXPECT_EQ(step_due(s_, 1, 0), step_reason::none);
  EXPECT_EQ(step_due(s_, 3, 0), step_reason::newer_key);
}

TEST_F(chain_channel, the_sender_steps_after_dh_every_blocks_and_not_before) {
  (void)seal(1, 0);
  s_.chain.emplace(s_.last_epoch, s_.chain->key().clone(), chain_dh_every - 1);
  s_.acked_next = chain_dh_every - 1;  // every earlier block reached R
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::none);
  ASSERT_FALSE(is_step(seal(2, 0)));
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::dh_every);
  EXPECT_TRUE(is_step(seal(3, 0)));
  EXPECT_EQ(s_.last_epoch, 2u);
}

TEST_F(chain_channel,
       the_sender_steps_once_the_epoch_is_dh_age_old_and_a_clock_step_back_is_not_a_reason) {
  (void)seal(1, 5000);
  EXPECT_EQ(step_due(s_, 0, 5000 + chain_dh_age_seconds - 1), step_reason::none);
  EXPECT_EQ(step_due(s_, 0, 4000), step_reason::none);
  EXPECT_EQ(step_due(s_, 0, 5000 + chain_dh_age_seconds), step_reason::dh_age);
  EXPECT_TRUE(is_step(seal(2, 5000 + chain_dh_age_seconds)));
  EXPECT_EQ(s_.started_at, 5000 + chain_dh_age_seconds);
}

TEST_F(chain_channel,
       a_void_of_an_entry_of_the_current_epoch_forces_a_step_and_an_older_one_does_not) {
  (void)seal(1, 0);
  (void)seal(2, 0);
  ref_ = key_ref{key_kind::ratchet, 1, public_key{}};
  ASSERT_TRUE(is_step(seal(3, 0, 1)));  // epoch 2 starts at aseq 3 (a newer key)
  on_void_reported(s_, 2);              // an entry of epoch 1
  EXPECT_EQ(step_due(s_, 1, 0), step_reason::none);
  on_void_reported(s_, 3);
  EXPECT_EQ(step_due(s_, 1, 0), step_reason::void_reported);
  EXPECT_TRUE(is_step(seal(4, 0, 1)));
  EXPECT_FALSE(s_.void_reported);
  EXPECT_EQ(step_due(s_, 1, 0), step_reason::none);
}

TEST_F(chain_channel, dh_every_fires_long_before_the_counter_is_spent) {
  (void)seal(1, 0);
  s_.chain.emplace(s_.last_epoch, s_.chain->key().clone(), UINT32_MAX);
  ASSERT_TRUE(s_.chain->seal({}, ad_).has_value());
  ASSERT_FALSE(s_.chain->usable());
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::dh_every);
  EXPECT_TRUE(is_step(seal(2, 0)));
  EXPECT_TRUE(s_.chain->usable());
}

TEST_F(chain_channel, a_deferred_step_is_used_only_once_its_version_is_ordered) {
  auto deferred = [&](uint64_t aseq) {
    auto b = seal_channel_block(s_, alice_, conv_, target(), 0, with_seed(1), ad_, aseq, 0, r_,
                                /*defer=*/true);
    EXPECT_TRUE(b.has_value());
    return b.has_value() ? std::move(*b) : channel_block{};
  };
  const hash32 d5a{0x5a}, d5b{0x5b}, d6{0x06};
  // Entry 5 (version A) steps; until it is ordered every block steps again.
  EXPECT_TRUE(is_step(deferred(5)));
  tag_pending(s_, 5, d5a);
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::step_in_flight);
  EXPECT_TRUE(is_step(deferred(6)));
  tag_pending(s_, 6, d6);
  // Entry 5 is rebuilt (version B), then version A is ordered after all: A's epoch is used.
  EXPECT_TRUE(is_step(deferred(5)));
  tag_pending(s_, 5, d5b);
  ASSERT_EQ(s_.pending.size(), 3u);
  on_ordered(s_, 5, d5a);
  ASSERT_TRUE(s_.chain.has_value());
  EXPECT_EQ(s_.chain->epoch(), 1u) << "version A carried epoch 1";
  EXPECT_EQ(s_.pending.size(), 1u) << "version B can no longer be ordered";
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::step_in_flight) << "entry 6's step is in flight";
  // Entry 6 is ordered: its step is the newest R has, and chains follow it.
  on_ordered(s_, 6, d6);
  EXPECT_TRUE(s_.pending.empty());
  EXPECT_EQ(s_.chain->epoch(), 2u);
  EXPECT_EQ(s_.step_aseq, 6u);
  const channel_block b = deferred(7);
  ASSERT_FALSE(is_step(b));
  EXPECT_EQ(std::get<chain_block>(b).epoch, 2u);
  EXPECT_EQ(std::get<chain_block>(b).n, 0u);
}

TEST_F(chain_channel, a_client_steps_before_unordered_blocks_could_push_r_past_max_skip) {
  auto deferred = [&](uint64_t aseq) {
    auto b = seal_channel_block(s_, alice_, conv_, target(), 0, with_seed(1), ad_, aseq, 0, r_,
                                /*defer=*/true);
    EXPECT_TRUE(b.has_value());
    return b.has_value() ? std::move(*b) : channel_block{};
  };
  ASSERT_TRUE(is_step(deferred(1)));
  tag_pending(s_, 1, hash32{1});
  on_ordered(s_, 1, hash32{1});
  // Versions that are rebuilt and never ordered use counters R never sees.
  for (uint32_t k = 0; k < chain_max_skip / 2; ++k)
    ASSERT_FALSE(is_step(deferred(2))) << k;
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::counter_gap);
  // The last of them was ordered after all: R is there, no step needed.
  const slot_block last = chain_block{s_.chain->epoch(), s_.chain->next() - 1, bytes(16)};
  on_ordered(s_, 2, hash32{2}, &last);
  EXPECT_EQ(s_.acked_next, chain_max_skip / 2);
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::none);
}

TEST_F(chain_channel, an_ordered_version_without_a_step_drops_the_pending_ones_of_its_aseq) {
  (void)seal(1, 0);  // epoch 1, used at once (not deferred)
  auto b = seal_channel_block(s_, alice_, conv_, target(), 9, with_seed(1), ad_, 2, 0, r_,
                              /*defer=*/true);  // a newer key: a deferred step in entry 2
  ASSERT_TRUE(b.has_value() && is_step(*b));
  tag_pending(s_, 2, hash32{0x22});
  on_ordered(s_, 2, hash32{0x99});  // another version of entry 2 was ordered
  EXPECT_TRUE(s_.pending.empty());
  EXPECT_EQ(s_.chain->epoch(), 1u) << "R still chains on epoch 1";
}

TEST_F(chain_channel, a_removed_member_is_stepped_to_again_under_a_new_epoch_number) {
  (void)seal(1, 0);
  on_removed(s_);
  EXPECT_FALSE(s_.chain.has_value());
  EXPECT_EQ(step_due(s_, 0, 0), step_reason::no_epoch);
  const channel_block b = seal(2, 0);
  ASSERT_TRUE(is_step(b));
  EXPECT_EQ(std::get<dh_step>(b).epoch, 2u);
}

TEST_F(chain_channel, a_step_that_cannot_be_sealed_changes_nothing) {
  (void)seal(1, 0);
  const chain_sender before = s_.clone();
  e_pub_ = public_key{};  // a low-order receiver key
  auto b = seal_channel_block(s_, alice_, conv_, target(), 9, with_seed(1), ad_, 2, 0, r_);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(s_.last_epoch, before.last_epoch);
  EXPECT_EQ(s_.referenced_id, before.referenced_id);
  EXPECT_EQ(s_.step_aseq, before.step_aseq);
  ASSERT_TRUE(s_.chain.has_value());
  EXPECT_EQ(s_.chain->next(), before.chain->next());
  EXPECT_TRUE(crypto::ct_equal(s_.chain->key().expose(), before.chain->key().expose()));
}

TEST_F(chain_channel, a_channel_whose_epoch_numbers_are_spent_refuses_to_step) {
  s_.last_epoch = UINT32_MAX;
  auto b = seal_channel_block(s_, alice_, conv_, target(), 0, with_seed(1), ad_, 1, 0, r_);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code, errc::bad_state);
  EXPECT_FALSE(s_.chain.has_value());
}

TEST_F(chain_channel, a_slot_kind_follows_from_its_length_and_other_lengths_are_refused) {
  const channel_block step = seal(1, 0);
  const bytes es = enc_channel_block(step);
  auto ds = decode_channel_block(es);
  ASSERT_TRUE(ds.has_value()) << ds.error().message();
  ASSERT_TRUE(is_step(*ds));
  EXPECT_EQ(std::get<dh_step>(*ds), std::get<dh_step>(step));

  chain_plaintext tag_only;
  const channel_block cb = seal(2, 0, 0, tag_only);
  const bytes ec = enc_channel_block(cb);
  EXPECT_EQ(ec.size(), 24u);
  auto dc = decode_channel_block(ec);
  ASSERT_TRUE(dc.has_value()) << dc.error().message();
  EXPECT_EQ(std::get<chain_block>(*dc), std::get<chain_block>(cb));

  for (size_t len : {0u, 8u, 23u, 25u, 97u, 185u, 188u, 190u}) {
    const bytes junk(len, 0x42);
    auto d = decode_channel_block(junk);
    ASSERT_FALSE(d.has_value()) << len;
    EXPECT_EQ(d.error().code, errc::bad_length) << len;
  }
}

}  // namespace
}  // namespace cowpi::protocol

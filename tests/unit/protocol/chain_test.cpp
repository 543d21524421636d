// SPDX-License-Identifier: Apache-2.0
// Symmetric-key chains (docs/protocol.md §4.8): DH steps start matching chains at both ends;
// chain blocks open in and out of order, within and past MAX_SKIP; reused counters, unknown
// epochs, moved blocks and tampered headers fail and change nothing; encodings are exact.
#include "cowpi/protocol/chain.hpp"

#include "cowpi/protocol/encoding.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace cowpi::protocol {
namespace {

using crypto::secret;

bytes ad_of(std::string_view s) {
  return bytes(s.begin(), s.end());
}

chain_plaintext with_seed(uint8_t fill) {
  chain_plaintext pt;
  pt.seed.emplace();
  std::fill(pt.seed->expose().begin(), pt.seed->expose().end(), fill);
  return pt;
}

bool same_key(const secret<32>& a, const secret<32>& b) {
  return std::equal(a.expose().begin(), a.expose().end(), b.expose().begin());
}

// Alice steps to Bob under Bob's PREKEY, so both ends hold epoch 1's chain.
class chain : public ::testing::Test {
protected:
  void SetUp() override {
    auto step =
        seal_dh_step(alice_, "bob", bob_.lpk(), conv_, ref_, e_pub_, announce_pt(), 1, ad_, r_);
    ASSERT_TRUE(step.has_value()) << step.error().message();
    auto opened = open_dh_step(bob_, e_r_, "alice", alice_.lpk(), conv_, step->step, ad_);
    ASSERT_TRUE(opened.has_value()) << opened.error().message();
    send_.emplace(std::move(step->chain));
    recv_ = std::move(opened->chain);
  }

  block_plaintext announce_pt() {
    block_plaintext pt;
    pt.announced_id = 3;
    pt.announced_pub = crypto::x25519_base(r_.secret_bytes<32>());
    return pt;
  }

  chain_block seal(const chain_plaintext& pt, byte_view ad) {
    auto b = send_->seal(pt, ad);
    EXPECT_TRUE(b.has_value()) << b.error().message();
    return b.has_value() ? *b : chain_block{};
  }

  // Opens `b` on Bob's chain and, if it opens, applies its effects (the entry is accepted).
  expected<chain_plaintext, chain_failure> accept(const chain_block& b, byte_view ad) {
    auto o = open_chain_block(&recv_, b, ad);
    if (!o)
      return unexpected{o.error()};
    apply_chain_effects(recv_, std::move(o->effects));
    return std::move(o->pt);
  }

  crypto::deterministic_rng r_{4242};
  identity alice_ = identity::generate("alice", r_);
  identity bob_ = identity::generate("bob", r_);
  secret<32> e_r_ = [this] {
    auto s = r_.secret_bytes<32>();
    crypto::clamp(s.expose());
    return s;
  }();
  public_key e_pub_ = crypto::x25519_base(e_r_);
  conv_id conv_ = r_.array<16>();
  key_ref ref_{key_kind::prekey, 7, e_pub_};
  bytes ad_ = ad_of("slot ad of entry 1");
  std::optional<send_chain> send_;
  recv_chain recv_;
};

TEST_F(chain, a_dh_step_starts_the_same_chain_at_both_ends) {
  EXPECT_EQ(send_->epoch(), 1u);
  EXPECT_EQ(recv_.epoch, 1u);
  EXPECT_EQ(send_->next(), 0u);
  EXPECT_EQ(recv_.next, 0u);
  EXPECT_TRUE(same_key(send_->key(), recv_.ck));
}

TEST_F(chain, blocks_in_order_carry_every_plaintext_layout) {
  const published_key a{9, crypto::x25519_base(r_.secret_bytes<32>())};
  chain_plaintext tag_only;
  chain_plaintext seed = with_seed(0x5a);
  chain_plaintext announce;
  announce.announced = a;
  chain_plaintext both = with_seed(0xa5);
  both.announced = a;
  const std::vector<std::pair<const chain_plaintext*, size_t>> cases = {
      {&tag_only, 24}, {&seed, 56}, {&announce, 64}, {&both, 96}};
  uint32_t n = 0;
  for (const auto& [pt, size] : cases) {
    const chain_block b = seal(*pt, ad_);
    EXPECT_EQ(b.n, n++);
    EXPECT_EQ(enc_chain_block(b).size(), size);
    auto got = accept(b, ad_);
    ASSERT_TRUE(got.has_value()) << to_string(got.error());
    EXPECT_EQ(got->seed.has_value(), pt->seed.has_value());
    if (pt->seed) {
      EXPECT_TRUE(same_key(*got->seed, *pt->seed));
    }
    EXPECT_EQ(got->announced, pt->announced);
  }
  EXPECT_EQ(recv_.next, 4u);
  EXPECT_TRUE(recv_.skipped.empty());
  EXPECT_TRUE(same_key(send_->key(), recv_.ck));
}

TEST_F(chain, blocks_out_of_order_open_from_skipped_keys_which_are_then_deleted) {
  std::vector<chain_block> blocks;
  for (int i = 0; i < 5; ++i)
    blocks.push_back(seal(with_seed(static_cast<uint8_t>(i)), ad_));
  for (const size_t i : {2u, 0u, 4u, 1u, 3u}) {
    auto got = accept(blocks[i], ad_);
    ASSERT_TRUE(got.has_value()) << "block " << i << ": " << to_string(got.error());
    EXPECT_EQ(got->seed->expose()[0], i);
  }
  EXPECT_EQ(recv_.next, 5u);
  EXPECT_TRUE(recv_.skipped.empty());
  // Each was used once: none opens again.
  for (const auto& b : blocks) {
    auto again = open_chain_block(&recv_, b, ad_);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error(), chain_failure::reused_counter);
  }
}

TEST_F(chain, a_counter_max_skip_ahead_opens_and_one_more_is_refused) {
  for (uint32_t i = 0; i < chain_max_skip; ++i)
    (void)seal({}, ad_);  // builds that never reached the log
  const chain_block far = seal({}, ad_);
  ASSERT_EQ(far.n, chain_max_skip);
  ASSERT_TRUE(accept(far, ad_).has_value());
  EXPECT_EQ(recv_.skipped.size(), chain_max_skip);

  for (uint32_t i = 0; i <= chain_max_skip; ++i)
    (void)seal({}, ad_);
  const chain_block too_far = seal({}, ad_);
  ASSERT_EQ(too_far.n - recv_.next, chain_max_skip + 1);
  const auto before = recv_.clone();
  auto got = open_chain_block(&recv_, too_far, ad_);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error(), chain_failure::too_far);
  EXPECT_EQ(recv_.next, before.next);
  EXPECT_TRUE(same_key(recv_.ck, before.ck));
}

TEST_F(chain, stored_skipped_keys_are_bounded_and_the_oldest_go_first) {
  std::vector<chain_block> blocks;
  for (uint32_t i = 0; i <= 2 * chain_max_skip; ++i)
    blocks.push_back(seal({}, ad_));
  ASSERT_TRUE(accept(blocks[chain_max_skip], ad_).has_value());
  ASSERT_TRUE(accept(blocks[2 * chain_max_skip], ad_).has_value());
  EXPECT_EQ(recv_.skipped.size(), chain_max_skip);
  // Skipping 257..511 pushed out the oldest keys of the first run: 0..254 are gone.
  auto old = open_chain_block(&recv_, blocks[0], ad_);
  ASSERT_FALSE(old.has_value());
  EXPECT_EQ(old.error(), chain_failure::reused_counter);
  EXPECT_TRUE(accept(blocks[chain_max_skip + 1], ad_).has_value());
  EXPECT_TRUE(accept(blocks[2 * chain_max_skip - 1], ad_).has_value());
}

TEST_F(chain, a_reused_counter_fails_even_with_a_new_plaintext) {
  const chain_block b0 = seal(with_seed(1), ad_);
  ASSERT_TRUE(accept(b0, ad_).has_value());
  // Whatever key a second block at counter 0 is under, the counter alone refuses it.
  const secret<32> any;
  auto forged = seal_chain_block(any, 1, 0, with_seed(2), ad_);
  ASSERT_TRUE(forged.has_value());
  for (const auto& b : {b0, *forged}) {
    auto got = open_chain_block(&recv_, b, ad_);
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.error(), chain_failure::reused_counter);
  }
}

TEST_F(chain, an_unknown_epoch_is_a_block_failure) {
  const chain_block b = seal({}, ad_);
  auto none = open_chain_block(nullptr, b, ad_);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error(), chain_failure::unknown_epoch);
  chain_block other = b;
  other.epoch = 2;
  auto got = open_chain_block(&recv_, other, ad_);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error(), chain_failure::unknown_epoch);
}

TEST_F(chain, a_failed_block_changes_nothing_and_the_next_one_opens) {
  const chain_block b0 = seal(with_seed(1), ad_);
  const chain_block b1 = seal(with_seed(2), ad_);
  // Moved to another entry (another slot AD), or its header rewritten: the AEAD fails.
  auto moved = open_chain_block(&recv_, b1, ad_of("slot ad of entry 2"));
  ASSERT_FALSE(moved.has_value());
  EXPECT_EQ(moved.error(), chain_failure::decrypt);
  chain_block renumbered = b1;
  renumbered.n = 0;
  auto r = open_chain_block(&recv_, renumbered, ad_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), chain_failure::decrypt);
  chain_block flipped = b1;
  flipped.ct[3] ^= 1;
  EXPECT_FALSE(open_chain_block(&recv_, flipped, ad_).has_value());
  EXPECT_EQ(recv_.next, 0u);
  EXPECT_TRUE(recv_.skipped.empty());
  EXPECT_TRUE(accept(b1, ad_).has_value());
  EXPECT_TRUE(accept(b0, ad_).has_value());
}

TEST_F(chain, a_seed_layout_is_bound_to_the_length_and_cannot_be_truncated) {
  chain_block b = seal(with_seed(7), ad_);
  // Dropping the seed's 32 bytes leaves a tag-only-sized block that does not verify.
  b.ct.erase(b.ct.begin(), b.ct.begin() + 32);
  EXPECT_FALSE(open_chain_block(&recv_, b, ad_).has_value());
}

TEST_F(chain, dh_steps_in_both_directions_at_once_give_independent_chains) {
  // Bob steps to Alice while Alice's step to Bob is in flight (Alice's key is a PREKEY too).
  auto a_e = r_.secret_bytes<32>();
  crypto::clamp(a_e.expose());
  const key_ref a_ref{key_kind::prekey, 1, crypto::x25519_base(a_e)};
  auto back =
      seal_dh_step(bob_, "alice", alice_.lpk(), conv_, a_ref, a_ref.pub, announce_pt(), 1, ad_, r_);
  ASSERT_TRUE(back.has_value());
  auto at_alice = open_dh_step(alice_, a_e, "bob", bob_.lpk(), conv_, back->step, ad_);
  ASSERT_TRUE(at_alice.has_value());
  EXPECT_FALSE(same_key(back->chain.key(), send_->key()));

  const chain_block to_bob = seal(with_seed(1), ad_);
  auto to_alice = back->chain.seal(with_seed(2), ad_);
  ASSERT_TRUE(to_alice.has_value());
  EXPECT_TRUE(accept(to_bob, ad_).has_value());
  auto o = open_chain_block(&at_alice->chain, *to_alice, ad_);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->pt.seed->expose()[0], 2);
  // Neither opens on the other direction's chain.
  EXPECT_FALSE(open_chain_block(&at_alice->chain, to_bob, ad_).has_value());
}

TEST_F(chain, a_dh_step_is_bound_to_its_epoch_and_epoch_zero_is_refused) {
  auto step =
      seal_dh_step(alice_, "bob", bob_.lpk(), conv_, ref_, e_pub_, announce_pt(), 5, ad_, r_);
  ASSERT_TRUE(step.has_value());
  dh_step renumbered = step->step;
  renumbered.epoch = 6;
  EXPECT_FALSE(open_dh_step(bob_, e_r_, "alice", alice_.lpk(), conv_, renumbered, ad_));
  renumbered.epoch = 0;
  EXPECT_FALSE(open_dh_step(bob_, e_r_, "alice", alice_.lpk(), conv_, renumbered, ad_));
  EXPECT_FALSE(
      seal_dh_step(alice_, "bob", bob_.lpk(), conv_, ref_, e_pub_, announce_pt(), 0, ad_, r_));
  // A §4.3 block sealed without AD_step does not open as a step, nor a step as a block.
  auto plain = seal_block(alice_, "bob", bob_.lpk(), conv_, ref_, e_pub_, announce_pt(), ad_, r_);
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(open_dh_step(bob_, e_r_, "alice", alice_.lpk(), conv_, dh_step{5, *plain}, ad_));
  EXPECT_FALSE(open_block(bob_, e_r_, "alice", alice_.lpk(), conv_, step->step.b, ad_));
  auto ok = open_dh_step(bob_, e_r_, "alice", alice_.lpk(), conv_, step->step, ad_);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->chain.epoch, 5u);
  EXPECT_TRUE(same_key(ok->chain.ck, step->chain.key()));
}

TEST_F(chain, a_new_step_replaces_the_receive_chain) {
  const chain_block old = seal({}, ad_);
  auto step =
      seal_dh_step(alice_, "bob", bob_.lpk(), conv_, ref_, e_pub_, announce_pt(), 2, ad_, r_);
  ASSERT_TRUE(step.has_value());
  auto opened = open_dh_step(bob_, e_r_, "alice", alice_.lpk(), conv_, step->step, ad_);
  ASSERT_TRUE(opened.has_value());
  recv_ = std::move(opened->chain);
  auto got = open_chain_block(&recv_, old, ad_);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error(), chain_failure::unknown_epoch);
  auto b = step->chain.seal({}, ad_);
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(accept(*b, ad_).has_value());
}

TEST_F(chain, the_sender_cannot_recompute_a_sent_key) {
  const auto before = send_->key().clone();
  (void)seal({}, ad_);
  EXPECT_FALSE(same_key(before, send_->key()));
  EXPECT_TRUE(same_key(chain_step(before).next_ck, send_->key()));
}

TEST_F(chain, the_last_counter_is_usable_once_then_the_sender_must_step) {
  send_chain last(1, send_->key().clone(), UINT32_MAX);
  auto b = last.seal({}, ad_);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->n, UINT32_MAX);
  EXPECT_FALSE(last.usable());
  auto again = last.seal({}, ad_);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, errc::bad_state);
}

TEST(chain_encoding, blocks_and_steps_round_trip_and_other_lengths_are_refused) {
  chain_block b{0x01020304, 0x0a0b0c0d, bytes(48, 0xee)};
  const bytes e = enc_chain_block(b);
  ASSERT_EQ(e.size(), 56u);
  EXPECT_EQ(e[0], 0x01);
  EXPECT_EQ(e[3], 0x04);
  EXPECT_EQ(e[4], 0x0a);
  EXPECT_EQ(e[7], 0x0d);
  auto d = decode_chain_block(e);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, b);
  for (const size_t n : {0u, 7u, 8u, 23u, 25u, 55u, 57u, 63u, 65u, 95u, 97u, 185u, 189u}) {
    auto bad = decode_chain_block(bytes(n, 0));
    ASSERT_FALSE(bad.has_value()) << n;
    EXPECT_EQ(bad.error().code, errc::bad_length) << n;
  }
  dh_step s;
  s.epoch = 7;
  s.b.ref = key_ref{key_kind::ratchet, 3, public_key{}};
  const auto se = enc_dh_step(s);
  EXPECT_EQ(se.size(), 189u);
  auto sd = decode_dh_step(se);
  ASSERT_TRUE(sd.has_value());
  EXPECT_EQ(*sd, s);
  EXPECT_FALSE(decode_dh_step(bytes(185, 0)).has_value());
  EXPECT_FALSE(decode_dh_step(bytes(190, 0)).has_value());
}

TEST(chain_encoding, derivations_use_distinct_constants) {
  secret<32> ck;
  ck.expose()[0] = 1;
  const auto k = chain_step(ck);
  EXPECT_FALSE(same_key(k.mk, k.next_ck));
  const auto h1 = crypto::hmac_sha256(ck.expose(), bytes{0x01});
  const auto h2 = crypto::hmac_sha256(ck.expose(), bytes{0x02});
  EXPECT_TRUE(same_key(k.mk, h1));
  EXPECT_TRUE(same_key(k.next_ck, h2));
  const auto n = chain_nonce(0x01020304, 0x05060708);
  EXPECT_EQ(n[0], 0x01);
  EXPECT_EQ(n[7], 0x08);
  EXPECT_TRUE(std::all_of(n.begin() + 8, n.end(), [](uint8_t x) { return x == 0; }));
  const conv_id conv{};
  EXPECT_FALSE(same_key(chain_key_0(ck, "a", "b", conv, 1), chain_key_0(ck, "b", "a", conv, 1)));
  EXPECT_FALSE(same_key(chain_key_0(ck, "a", "b", conv, 1), chain_key_0(ck, "a", "b", conv, 2)));
}

}  // namespace
}  // namespace cowpi::protocol

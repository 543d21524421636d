// SPDX-License-Identifier: Apache-2.0
// Identities, NAXOS ephemerals, pairwise keys and blocks (docs/design.md §2): agreement, binding of
// every input, tamper rejection and low-order point rejection.
#include "cowpi/protocol/keys.hpp"

#include "cowpi/protocol/encoding.hpp"

#include "hex.hpp"
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cowpi::protocol {
namespace {

using crypto::secret;

secret<32> fresh_scalar(crypto::rng& r) {
  auto s = r.secret_bytes<32>();
  crypto::clamp(s.expose());
  return s;
}

// Returns the key, or an all-zero one after recording a failure.
secret<32> ok(expected<secret<32>> k) {
  EXPECT_TRUE(k.has_value()) << k.error().message();
  return k.has_value() ? std::move(k).value() : secret<32>{};
}

// The small-order u-coordinates of Curve25519 and their non-canonical encodings (the set
// libsodium 1.0.18 blacklists): 0, 1, the two points of order 8, p - 1, p, p + 1, and an order-8
// point with the ignored top bit set. Each must be refused as a DH input.
std::vector<public_key> low_order_points() {
  using cowpi::testing::hex_array;
  return {
      hex_array<32>("0000000000000000000000000000000000000000000000000000000000000000"),
      hex_array<32>("0100000000000000000000000000000000000000000000000000000000000000"),
      hex_array<32>("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
      hex_array<32>("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
      hex_array<32>("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
      hex_array<32>("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
      hex_array<32>("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
      hex_array<32>("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880"),
  };
}

// Alice sends to Bob under Bob's PREKEY E_R; Carol's keys are the substitutes.
class pair_key : public ::testing::Test {
protected:
  crypto::deterministic_rng r_{2024};
  identity alice_ = identity::generate("alice", r_);
  identity bob_ = identity::generate("bob", r_);
  identity carol_ = identity::generate("carol", r_);
  secret<32> e_r_ = fresh_scalar(r_);
  public_key e_pub_ = crypto::x25519_base(e_r_);
  naxos_keypair x_ = naxos_fresh(alice_, r_);
  conv_id conv_ = r_.array<16>();
  key_ref ref_{key_kind::prekey, 7, e_pub_};

  pair_context ctx() const { return {"alice", "bob", conv_, ref_, x_.pub}; }
  secret<32> send(const pair_context& c) const {
    return ok(pair_key_send(alice_, x_.x, bob_.lpk(), e_pub_, c));
  }
  secret<32> recv(const pair_context& c) const {
    return ok(pair_key_recv(bob_, e_r_, alice_.lpk(), c));
  }
};

TEST_F(pair_key, both_sides_derive_the_same_key) {
  auto ks = send(ctx());
  auto kr = recv(ctx());
  EXPECT_TRUE(ks.ct_equals(kr));
  EXPECT_FALSE(crypto::is_zero(ks.expose()));
}

TEST_F(pair_key, matches_the_design_formula) {
  // K = HKDF(L("pair"), DH(lsk_S, E_R) || DH(x, lpk_R) || DH(x, E_R), info), recomputed here
  // from the primitives so that a silent change of order or label is caught.
  secret<96> ikm;
  auto k = ikm.expose();
  {
    auto lsk = alice_.lsk();
    ASSERT_TRUE(crypto::x25519_into(k.subspan<0, 32>(), lsk.expose(), e_pub_).has_value());
  }
  ASSERT_TRUE(crypto::x25519_into(k.subspan<32, 32>(), x_.x, bob_.lpk()).has_value());
  ASSERT_TRUE(crypto::x25519_into(k.subspan<64, 32>(), x_.x, e_pub_).has_value());
  byte_writer info;
  info.lp("alice").lp("bob").raw(conv_).raw(enc_ref(ref_)).raw(x_.pub);
  EXPECT_EQ(pair_info(ctx()), info.data());
  auto expected_k = crypto::hkdf32(as_bytes(label("pair")), ikm.expose(), info.data());
  EXPECT_TRUE(send(ctx()).ct_equals(expected_k));
}

TEST_F(pair_key, differs_when_any_context_field_differs_on_both_sides) {
  const auto base = send(ctx());
  conv_id other_conv = conv_;
  other_conv[15] ^= 1;
  key_ref kind{key_kind::last_resort, ref_.id, ref_.pub};
  key_ref id{ref_.kind, ref_.id + 1, ref_.pub};
  key_ref pub = ref_;
  pub.pub[0] ^= 1;
  const std::vector<pair_context> variants = {
      {"alicf", "bob", conv_, ref_, x_.pub},  // sender id
      {"alice", "boc", conv_, ref_, x_.pub},  // receiver id
      {"alice", "bob", other_conv, ref_, x_.pub},
      {"alice", "bob", conv_, kind, x_.pub},
      {"alice", "bob", conv_, id, x_.pub},
      {"alice", "bob", conv_, pub, x_.pub},
      // lp() framing: moving a byte between the ids must change the key.
      {"alic", "ebob", conv_, ref_, x_.pub},
  };
  for (size_t i = 0; i < variants.size(); ++i) {
    auto ks = send(variants[i]);
    auto kr = recv(variants[i]);
    EXPECT_TRUE(ks.ct_equals(kr)) << "variant " << i;
    EXPECT_FALSE(ks.ct_equals(base)) << "variant " << i;
  }
}

TEST_F(pair_key, receiver_key_differs_when_x_s_differs) {
  const auto base = send(ctx());
  auto other = naxos_fresh(alice_, r_);
  pair_context c{"alice", "bob", conv_, ref_, other.pub};
  EXPECT_FALSE(recv(c).ct_equals(base));
}

TEST_F(pair_key, receiver_key_differs_when_the_sender_long_term_key_differs) {
  const auto base = send(ctx());
  EXPECT_FALSE(ok(pair_key_recv(bob_, e_r_, carol_.lpk(), ctx())).ct_equals(base));
  // And the sender side: a different lsk_S under the same id.
  auto mallory = identity::generate("alice", r_);
  EXPECT_FALSE(ok(pair_key_send(mallory, x_.x, bob_.lpk(), e_pub_, ctx())).ct_equals(base));
}

TEST_F(pair_key, receiver_key_differs_when_the_receiver_long_term_key_differs) {
  const auto base = send(ctx());
  auto other_bob = identity::generate("bob", r_);
  EXPECT_FALSE(ok(pair_key_recv(other_bob, e_r_, alice_.lpk(), ctx())).ct_equals(base));
  EXPECT_FALSE(ok(pair_key_send(alice_, x_.x, carol_.lpk(), e_pub_, ctx())).ct_equals(base));
}

TEST_F(pair_key, differs_when_the_receiver_key_differs) {
  const auto base = send(ctx());
  auto other_e = fresh_scalar(r_);
  EXPECT_FALSE(ok(pair_key_recv(bob_, other_e, alice_.lpk(), ctx())).ct_equals(base));
  EXPECT_FALSE(ok(pair_key_send(alice_, x_.x, bob_.lpk(), crypto::x25519_base(other_e), ctx()))
                   .ct_equals(base));
}

TEST_F(pair_key, differs_when_the_sender_ephemeral_secret_differs) {
  const auto base = recv(ctx());
  auto other = naxos_fresh(alice_, r_);
  EXPECT_FALSE(ok(pair_key_send(alice_, other.x, bob_.lpk(), e_pub_, ctx())).ct_equals(base));
}

TEST_F(pair_key, rejects_low_order_points_on_either_side) {
  for (const auto& p : low_order_points()) {
    const std::string h = to_hex(p);
    auto s1 = pair_key_send(alice_, x_.x, bob_.lpk(), p, ctx());  // E_R
    ASSERT_FALSE(s1.has_value()) << h;
    EXPECT_EQ(s1.error().code, errc::low_order_point) << h;
    auto s2 = pair_key_send(alice_, x_.x, p, e_pub_, ctx());  // lpk_R
    ASSERT_FALSE(s2.has_value()) << h;
    EXPECT_EQ(s2.error().code, errc::low_order_point) << h;
    auto r1 = pair_key_recv(bob_, e_r_, p, ctx());  // lpk_S
    ASSERT_FALSE(r1.has_value()) << h;
    EXPECT_EQ(r1.error().code, errc::low_order_point) << h;
    pair_context c{"alice", "bob", conv_, ref_, p};  // X_S
    auto r2 = pair_key_recv(bob_, e_r_, alice_.lpk(), c);
    ASSERT_FALSE(r2.has_value()) << h;
    EXPECT_EQ(r2.error().code, errc::low_order_point) << h;
  }
}

// Blocks -----------------------------------------------------------------------------------------

block_plaintext sample_plaintext() {
  block_plaintext pt;
  for (size_t i = 0; i < 32; ++i) {
    pt.seed.expose()[i] = static_cast<uint8_t>(i + 1);
  }
  pt.announced_id = 0x0102030405060708;
  pt.announced_pub.fill(0x5c);
  return pt;
}

class blocks : public pair_key {
protected:
  const bytes ad_ = cowpi::testing::hex("a1a2a3a4");
  block seal() {
    auto b =
        seal_block(alice_, "bob", bob_.lpk(), conv_, ref_, e_pub_, sample_plaintext(), ad_, r_);
    EXPECT_TRUE(b.has_value()) << b.error().message();
    return b.has_value() ? *b : block{};
  }
  expected<block_plaintext> open(const block& b, byte_view ad) {
    return open_block(bob_, e_r_, "alice", alice_.lpk(), conv_, b, ad);
  }
};

TEST_F(blocks, round_trip_restores_the_plaintext) {
  const block b = seal();
  EXPECT_EQ(b.ref, ref_);
  auto pt = open(b, ad_);
  ASSERT_TRUE(pt.has_value()) << pt.error().message();
  const auto want = sample_plaintext();
  EXPECT_TRUE(pt->seed.ct_equals(want.seed));
  EXPECT_EQ(pt->announced_id, want.announced_id);
  EXPECT_EQ(pt->announced_pub, want.announced_pub);
}

TEST_F(blocks, each_seal_uses_a_fresh_ephemeral_and_nonce) {
  const block a = seal();
  const block b = seal();
  EXPECT_NE(a.x, b.x);
  EXPECT_NE(a.nonce, b.nonce);
  EXPECT_NE(a.ct, b.ct);
  EXPECT_TRUE(open(a, ad_).has_value());
  EXPECT_TRUE(open(b, ad_).has_value());
}

TEST_F(blocks, wrong_associated_data_fails_with_decrypt_failed) {
  const block b = seal();
  for (const auto& ad : {bytes{}, cowpi::testing::hex("a1a2a3a5"), cowpi::testing::hex("a1a2a3")}) {
    auto pt = open(b, ad);
    ASSERT_FALSE(pt.has_value());
    EXPECT_EQ(pt.error().code, errc::decrypt_failed);
  }
}

TEST_F(blocks, wrong_receiver_key_fails_with_decrypt_failed) {
  const block b = seal();
  auto other = fresh_scalar(r_);
  auto pt = open_block(bob_, other, "alice", alice_.lpk(), conv_, b, ad_);
  ASSERT_FALSE(pt.has_value());
  EXPECT_EQ(pt.error().code, errc::decrypt_failed);
}

TEST_F(blocks, wrong_sender_receiver_or_conversation_fails_with_decrypt_failed) {
  const block b = seal();
  conv_id other_conv = conv_;
  other_conv[0] ^= 0x80;
  auto r1 = open_block(bob_, e_r_, "alicf", alice_.lpk(), conv_, b, ad_);
  auto r2 = open_block(bob_, e_r_, "alice", carol_.lpk(), conv_, b, ad_);
  auto r3 = open_block(bob_, e_r_, "alice", alice_.lpk(), other_conv, b, ad_);
  auto other_bob = identity::from_secret("bobby", bob_.export_secret());
  auto r4 = open_block(other_bob, e_r_, "alice", alice_.lpk(), conv_, b, ad_);
  for (const auto* r : {&r1, &r2, &r3, &r4}) {
    ASSERT_FALSE(r->has_value());
    EXPECT_EQ(r->error().code, errc::decrypt_failed);
  }
}

TEST_F(blocks, any_single_bit_change_of_the_encoded_block_fails) {
  const block good = seal();
  const auto enc = enc_block(good);
  int opened = 0;
  int undecodable = 0;
  for (size_t bit = 0; bit < enc.size() * 8; ++bit) {
    auto t = enc;
    t[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    auto b = decode_block(t);
    if (!b.has_value()) {
      // Only the kind byte (offset 32) can make the encoding itself invalid.
      EXPECT_EQ(bit / 8, 32u) << "bit " << bit;
      ++undecodable;
      continue;
    }
    auto pt = open(*b, ad_);
    ASSERT_FALSE(pt.has_value()) << "bit " << bit << " accepted";
    EXPECT_EQ(pt.error().code, errc::decrypt_failed) << "bit " << bit;
    ++opened;
  }
  EXPECT_EQ(opened + undecodable, static_cast<int>(block_size * 8));
  EXPECT_GE(opened, static_cast<int>(block_size * 8) - 8);
}

TEST_F(blocks, low_order_points_are_rejected_when_sealing_and_opening) {
  for (const auto& p : low_order_points()) {
    const std::string h = to_hex(p);
    auto s = seal_block(alice_, "bob", bob_.lpk(), conv_, ref_, p, sample_plaintext(), ad_, r_);
    ASSERT_FALSE(s.has_value()) << h;
    EXPECT_EQ(s.error().code, errc::low_order_point) << h;
    block b = seal();
    b.x = p;
    auto o = open(b, ad_);
    ASSERT_FALSE(o.has_value()) << h;
    EXPECT_EQ(o.error().code, errc::low_order_point) << h;
  }
}

// Identities and NAXOS ---------------------------------------------------------------------------

TEST(identity, from_secret_reproduces_the_public_key) {
  crypto::deterministic_rng r(5);
  auto a = identity::generate("alice", r);
  auto lsk = a.export_secret();
  auto b = identity::from_secret("alice", lsk);
  EXPECT_EQ(b.lpk(), a.lpk());
  EXPECT_EQ(b.id(), "alice");
  EXPECT_EQ(b.as_member(), a.as_member());
  EXPECT_EQ(a.lpk(), crypto::x25519_base(lsk));
  auto reader = b.lsk();
  EXPECT_TRUE(crypto::ct_equal(reader.expose(), lsk.expose()));
}

TEST(identity, generate_stores_a_clamped_secret_and_differs_per_draw) {
  crypto::deterministic_rng r(6);
  auto a = identity::generate("alice", r);
  auto b = identity::generate("alice", r);
  EXPECT_NE(a.lpk(), b.lpk());
  auto lsk = a.export_secret();
  EXPECT_EQ(lsk.expose()[0] & 7, 0);
  EXPECT_EQ(lsk.expose()[31] & 0xc0, 0x40);
}

TEST(identity, generate_is_reproducible_from_the_seed) {
  crypto::deterministic_rng r1(8);
  crypto::deterministic_rng r2(8);
  EXPECT_EQ(identity::generate("a", r1).lpk(), identity::generate("a", r2).lpk());
}

TEST(naxos, derive_is_deterministic_given_esk_and_lsk) {
  crypto::deterministic_rng r(11);
  auto owner = identity::generate("alice", r);
  auto esk = r.secret_bytes<32>();
  auto a = naxos_derive(esk, owner);
  auto b = naxos_derive(esk, identity::from_secret("alice", owner.export_secret()));
  EXPECT_TRUE(a.x.ct_equals(b.x));
  EXPECT_EQ(a.pub, b.pub);
  EXPECT_EQ(a.pub, crypto::x25519_base(a.x));
}

TEST(naxos, derive_is_clamped_sha256_of_esk_then_lsk) {
  crypto::deterministic_rng r(12);
  auto owner = identity::generate("alice", r);
  auto esk = r.secret_bytes<32>();
  auto lsk = owner.export_secret();
  crypto::sha256_stream h;
  h.update(esk.expose()).update(lsk.expose());
  auto want = h.finish();
  crypto::clamp(want);
  EXPECT_EQ(to_hex(naxos_derive(esk, owner).x.expose()), to_hex(want));
}

TEST(naxos, derive_differs_for_another_esk_or_another_owner) {
  crypto::deterministic_rng r(13);
  auto alice = identity::generate("alice", r);
  auto bob = identity::generate("bob", r);
  auto esk = r.secret_bytes<32>();
  auto other = r.secret_bytes<32>();
  EXPECT_NE(naxos_derive(esk, alice).pub, naxos_derive(other, alice).pub);
  EXPECT_NE(naxos_derive(esk, alice).pub, naxos_derive(esk, bob).pub);
}

TEST(naxos, fresh_ephemerals_differ) {
  crypto::deterministic_rng r(14);
  auto alice = identity::generate("alice", r);
  EXPECT_NE(naxos_fresh(alice, r).pub, naxos_fresh(alice, r).pub);
}

}  // namespace
}  // namespace cowpi::protocol

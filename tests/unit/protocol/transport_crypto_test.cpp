// SPDX-License-Identifier: Apache-2.0
// Transport channel crypto (docs/design.md §2): handshake session keys bind the whole transcript,
// and frame ciphers accept only the next frame in order, rekeying every 2^20 frames.
#include "cowpi/protocol/transport_crypto.hpp"

#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace cowpi::protocol {
namespace {

using crypto::secret;

class handshake : public ::testing::Test {
protected:
  crypto::deterministic_rng r_{77};
  identity user_ = identity::generate("alice", r_);
  identity router_ = identity::generate("router", r_);
  naxos_keypair x_u_ = naxos_fresh(user_, r_);
  naxos_keypair x_r_ = naxos_fresh(router_, r_);

  handshake_transcript transcript() const {
    handshake_transcript t;
    t.mode = hello_mode::register_user;
    t.id_u = user_.id();
    t.id_r = router_.id();
    t.lpk_u = user_.lpk();
    t.lpk_r = router_.lpk();
    t.x_u = x_u_.pub;
    t.x_r = x_r_.pub;
    return t;
  }
  session_keys client(const handshake_transcript& t) const {
    auto k = client_session_keys(user_, x_u_.x, t);
    EXPECT_TRUE(k.has_value()) << k.error().message();
    return k.has_value() ? std::move(k).value() : session_keys{};
  }
  session_keys router(const handshake_transcript& t) const {
    auto k = router_session_keys(router_, x_r_.x, t);
    EXPECT_TRUE(k.has_value()) << k.error().message();
    return k.has_value() ? std::move(k).value() : session_keys{};
  }
};

TEST_F(handshake, client_and_router_derive_the_same_session_keys) {
  auto c = client(transcript());
  auto r = router(transcript());
  EXPECT_TRUE(c.c2r.ct_equals(r.c2r));
  EXPECT_TRUE(c.r2c.ct_equals(r.r2c));
  EXPECT_FALSE(c.c2r.ct_equals(c.r2c));
  EXPECT_FALSE(crypto::is_zero(c.c2r.expose()));
}

TEST_F(handshake, transcript_has_the_documented_layout) {
  const auto t = transcript();
  byte_writer w;
  w.u8(transport_version).u8(2).lp("alice").lp("router");
  w.raw(user_.lpk()).raw(router_.lpk()).raw(x_u_.pub).raw(x_r_.pub);
  EXPECT_EQ(encode_transcript(t), w.data());
}

TEST_F(handshake, keys_match_the_design_formula) {
  // ikm = DH(lsk_U, X_R) || DH(x_U, lpk_R) || DH(x_U, X_R);
  // k_dir = HKDF(L("transport"), ikm, L(dir) || th).
  const auto t = transcript();
  secret<96> ikm;
  auto k = ikm.expose();
  {
    auto lsk = user_.lsk();
    ASSERT_TRUE(crypto::x25519_into(k.subspan<0, 32>(), lsk.expose(), x_r_.pub).has_value());
  }
  ASSERT_TRUE(crypto::x25519_into(k.subspan<32, 32>(), x_u_.x, router_.lpk()).has_value());
  ASSERT_TRUE(crypto::x25519_into(k.subspan<64, 32>(), x_u_.x, x_r_.pub).has_value());
  byte_writer c2r;
  c2r.raw(label("c2r")).raw(encode_transcript(t));
  byte_writer r2c;
  r2c.raw(label("r2c")).raw(encode_transcript(t));
  auto salt = label("transport");
  auto keys = client(t);
  EXPECT_TRUE(keys.c2r.ct_equals(crypto::hkdf32(as_bytes(salt), ikm.expose(), c2r.data())));
  EXPECT_TRUE(keys.r2c.ct_equals(crypto::hkdf32(as_bytes(salt), ikm.expose(), r2c.data())));
}

TEST_F(handshake, both_sides_compute_the_same_ikm_and_the_keys_are_derived_from_it) {
  const auto t = transcript();
  auto ikm_c = client_handshake_ikm(user_, x_u_.x, t);
  auto ikm_r = router_handshake_ikm(router_, x_r_.x, t);
  ASSERT_TRUE(ikm_c.has_value());
  ASSERT_TRUE(ikm_r.has_value());
  EXPECT_TRUE(ikm_c->ct_equals(*ikm_r));
  const auto k = derive_session_keys(*ikm_c, t);
  const auto c = client(t);
  EXPECT_TRUE(k.c2r.ct_equals(c.c2r));
  EXPECT_TRUE(k.r2c.ct_equals(c.r2c));
}

TEST_F(handshake, keys_differ_if_any_transcript_field_differs) {
  const auto base = client(transcript());
  auto other = naxos_fresh(user_, r_);
  auto stranger = identity::generate("mallory", r_);
  const std::vector<std::pair<std::string, std::function<void(handshake_transcript&)>>> edits = {
      {"version", [](handshake_transcript& t) { t.version = 2; }},
      {"mode", [](handshake_transcript& t) { t.mode = hello_mode::login; }},
      {"id_u", [](handshake_transcript& t) { t.id_u = "alicf"; }},
      {"id_r", [](handshake_transcript& t) { t.id_r = "routes"; }},
      {"id framing",
       [](handshake_transcript& t) {
         t.id_u = "alicer";
         t.id_r = "outer";
       }},
      {"lpk_u", [&stranger](handshake_transcript& t) { t.lpk_u = stranger.lpk(); }},
      {"lpk_r", [&stranger](handshake_transcript& t) { t.lpk_r = stranger.lpk(); }},
      {"x_u", [&other](handshake_transcript& t) { t.x_u = other.pub; }},
      {"x_r", [&other](handshake_transcript& t) { t.x_r = other.pub; }},
  };
  for (const auto& [name, edit] : edits) {
    auto t = transcript();
    edit(t);
    // The router reads the edited transcript; the client keeps the real one.
    auto r = router(t);
    EXPECT_FALSE(r.c2r.ct_equals(base.c2r)) << name;
    EXPECT_FALSE(r.r2c.ct_equals(base.r2c)) << name;
    // And when the client sees the same edit, the keys still change.
    auto c = client(t);
    EXPECT_FALSE(c.c2r.ct_equals(base.c2r)) << name;
    EXPECT_FALSE(c.r2c.ct_equals(base.r2c)) << name;
  }
}

TEST_F(handshake, public_transcript_fields_are_bound_on_both_sides) {
  // For fields that feed no DH, both ends agree on the edited transcript but not with the original.
  const auto base = client(transcript());
  auto t = transcript();
  t.mode = hello_mode::login;
  auto c = client(t);
  auto r = router(t);
  EXPECT_TRUE(c.c2r.ct_equals(r.c2r));
  EXPECT_FALSE(c.c2r.ct_equals(base.c2r));
}

TEST_F(handshake, low_order_ephemerals_or_keys_are_rejected) {
  auto t = transcript();
  t.x_r = public_key{};
  auto c = client_session_keys(user_, x_u_.x, t);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, errc::low_order_point);
  t = transcript();
  t.lpk_r = public_key{};
  EXPECT_EQ(client_session_keys(user_, x_u_.x, t).error().code, errc::low_order_point);
  t = transcript();
  t.x_u = public_key{};
  auto r = router_session_keys(router_, x_r_.x, t);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::low_order_point);
  t = transcript();
  t.lpk_u = public_key{};
  EXPECT_EQ(router_session_keys(router_, x_r_.x, t).error().code, errc::low_order_point);
}

// Frame ciphers -----------------------------------------------------------------------------------

secret<32> test_key(uint8_t fill) {
  secret<32> k;
  for (auto& b : k.expose()) {
    b = fill;
  }
  return k;
}

bytes payload(uint64_t n) {
  byte_writer w;
  w.raw("frame ").be64(n);
  return std::move(w).take();
}

byte_array<24> nonce_for(uint64_t ctr) {
  byte_array<24> n{};
  for (size_t i = 0; i < 8; ++i) {
    n[16 + i] = static_cast<uint8_t>(ctr >> (56 - 8 * i));
  }
  return n;
}

secret<32> rekeyed(const secret<32>& k) {
  return crypto::hkdf32(as_bytes(label("rekey")), k.expose(), {});
}

TEST(frame_cipher, a_sequence_of_frames_decrypts_in_order) {
  frame_cipher tx(test_key(1));
  frame_cipher rx(test_key(1));
  for (uint64_t i = 0; i < 16; ++i) {
    auto ct = tx.seal(payload(i));
    auto pt = rx.open(ct);
    ASSERT_TRUE(pt.has_value()) << "frame " << i << ": " << pt.error().message();
    EXPECT_EQ(*pt, payload(i));
  }
  EXPECT_EQ(tx.frames(), 16u);
  EXPECT_EQ(rx.frames(), 16u);
}

TEST(frame_cipher, frame_n_is_aead_with_a_counter_nonce_and_the_frame_label) {
  frame_cipher tx(test_key(2));
  const auto k = test_key(2);
  for (uint64_t i = 0; i < 3; ++i) {
    auto ct = tx.seal(payload(i));
    auto pt = crypto::aead_open(k.expose(), nonce_for(i), ct, as_bytes(label("frame")));
    ASSERT_TRUE(pt.has_value()) << "frame " << i;
    EXPECT_EQ(*pt, payload(i));
  }
}

TEST(frame_cipher, the_same_payload_encrypts_differently_per_frame) {
  frame_cipher tx(test_key(3));
  EXPECT_NE(tx.seal(payload(0)), tx.seal(payload(0)));
}

TEST(frame_cipher, a_reordered_frame_fails_and_does_not_advance_the_counter) {
  frame_cipher tx(test_key(4));
  frame_cipher rx(test_key(4));
  auto f0 = tx.seal(payload(0));
  auto f1 = tx.seal(payload(1));
  auto r = rx.open(f1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::decrypt_failed);
  EXPECT_EQ(rx.frames(), 0u);
  EXPECT_TRUE(rx.open(f0).has_value());  // nothing changed on failure
}

TEST(frame_cipher, a_replayed_frame_fails) {
  frame_cipher tx(test_key(5));
  frame_cipher rx(test_key(5));
  auto f0 = tx.seal(payload(0));
  ASSERT_TRUE(rx.open(f0).has_value());
  auto r = rx.open(f0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::decrypt_failed);
  EXPECT_EQ(rx.frames(), 1u);
}

TEST(frame_cipher, a_dropped_frame_makes_the_next_one_fail) {
  frame_cipher tx(test_key(6));
  frame_cipher rx(test_key(6));
  auto f0 = tx.seal(payload(0));
  (void)tx.seal(payload(1));
  auto f2 = tx.seal(payload(2));
  ASSERT_TRUE(rx.open(f0).has_value());
  auto r = rx.open(f2);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::decrypt_failed);
}

TEST(frame_cipher, a_frame_of_the_other_direction_fails) {
  crypto::deterministic_rng rng(9);
  auto user = identity::generate("alice", rng);
  auto router = identity::generate("router", rng);
  auto x_u = naxos_fresh(user, rng);
  auto x_r = naxos_fresh(router, rng);
  handshake_transcript t;
  t.id_u = "alice";
  t.id_r = "router";
  t.lpk_u = user.lpk();
  t.lpk_r = router.lpk();
  t.x_u = x_u.pub;
  t.x_r = x_r.pub;
  auto ck = client_session_keys(user, x_u.x, t);
  auto rk = router_session_keys(router, x_r.x, t);
  ASSERT_TRUE(ck.has_value());
  ASSERT_TRUE(rk.has_value());
  frame_cipher client_tx(std::move(ck->c2r));
  frame_cipher router_rx(std::move(rk->c2r));
  frame_cipher router_tx(std::move(rk->r2c));
  frame_cipher client_rx(std::move(ck->r2c));
  auto up = client_tx.seal(payload(0));
  auto down = router_tx.seal(payload(0));
  EXPECT_FALSE(client_rx.open(up).has_value());
  EXPECT_FALSE(router_rx.open(down).has_value());
  EXPECT_TRUE(router_rx.open(up).has_value());
  EXPECT_TRUE(client_rx.open(down).has_value());
}

TEST(frame_cipher, a_tampered_frame_fails) {
  frame_cipher tx(test_key(7));
  auto f = tx.seal(payload(0));
  for (size_t i = 0; i < f.size(); ++i) {
    frame_cipher rx(test_key(7));
    auto t = f;
    t[i] ^= 0x01;
    EXPECT_FALSE(rx.open(t).has_value()) << "byte " << i;
  }
}

TEST(frame_cipher, frames_across_the_rekey_boundary_decrypt) {
  frame_cipher tx(test_key(8));
  frame_cipher rx(test_key(8));
  tx.skip_for_test(rekey_interval - 2);
  rx.skip_for_test(rekey_interval - 2);
  for (uint64_t n = rekey_interval - 2; n < rekey_interval + 3; ++n) {
    auto pt = rx.open(tx.seal(payload(n)));
    ASSERT_TRUE(pt.has_value()) << "frame " << n;
    EXPECT_EQ(*pt, payload(n));
  }
  EXPECT_EQ(rx.frames(), rekey_interval + 3);
}

TEST(frame_cipher, the_rekey_follows_the_design_formula) {
  const auto k0 = test_key(9);
  const auto k1 = rekeyed(k0);
  const auto k2 = rekeyed(k1);
  const auto ad = label("frame");
  frame_cipher tx(test_key(9));
  tx.skip_for_test(rekey_interval - 1);
  // Frame 2^20 - 1: still the original key, counter 2^20 - 1.
  auto last = tx.seal(payload(1));
  EXPECT_TRUE(crypto::aead_open(k0.expose(), nonce_for(rekey_interval - 1), last, as_bytes(ad))
                  .has_value());
  // Frame 2^20: the key rekeyed once, counter back to 0.
  auto first = tx.seal(payload(2));
  EXPECT_TRUE(crypto::aead_open(k1.expose(), nonce_for(0), first, as_bytes(ad)).has_value());
  EXPECT_FALSE(crypto::aead_open(k0.expose(), nonce_for(0), first, as_bytes(ad)).has_value());
  // Frame 2 * 2^20 + 3 (skipping across a second boundary): rekeyed twice, counter 3.
  frame_cipher far(test_key(9));
  far.skip_for_test(2 * rekey_interval + 3);
  EXPECT_EQ(far.frames(), 2 * rekey_interval + 3);
  auto f = far.seal(payload(3));
  EXPECT_TRUE(crypto::aead_open(k2.expose(), nonce_for(3), f, as_bytes(ad)).has_value());
}

TEST(frame_cipher, the_exposed_nonce_and_rekey_are_the_ones_frames_use) {
  EXPECT_EQ(frame_nonce(0), nonce_for(0));
  EXPECT_EQ(frame_nonce(rekey_interval - 1), nonce_for(rekey_interval - 1));
  EXPECT_EQ(frame_nonce(rekey_interval), nonce_for(0));
  EXPECT_EQ(frame_nonce(2 * rekey_interval + 5), nonce_for(5));
  EXPECT_TRUE(rekey_frame_key(test_key(11)).ct_equals(rekeyed(test_key(11))));
  frame_cipher tx(test_key(11));
  tx.skip_for_test(rekey_interval);
  auto f = tx.seal(payload(0));
  EXPECT_TRUE(crypto::aead_open(rekey_frame_key(test_key(11)).expose(), frame_nonce(rekey_interval),
                                f, as_bytes(label("frame")))
                  .has_value());
}

TEST(frame_cipher, a_cipher_that_did_not_rekey_cannot_decrypt_a_post_boundary_frame) {
  frame_cipher tx(test_key(10));
  tx.skip_for_test(rekey_interval);
  auto post = tx.seal(payload(0));  // counter 0 again, under the rekeyed key
  // A receiver still on the original key at counter 0 uses the same nonce but the old key.
  frame_cipher stale(test_key(10));
  auto r = stale.open(post);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::decrypt_failed);
  // The one that did rekey can.
  frame_cipher rx(test_key(10));
  rx.skip_for_test(rekey_interval);
  EXPECT_TRUE(rx.open(post).has_value());
}

}  // namespace
}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// The crypto wrappers and secret holders: AEAD tamper rejection, secret wiping, the absence of
// `==` on secrets, locked secrets, constant-time comparison, the seeded RNG and clamping.
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/primitives.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/crypto/secret.hpp"

#include "hex.hpp"
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <new>
#include <ostream>
#include <type_traits>

namespace cowpi::crypto {
namespace {

using cowpi::testing::hex;

// A small AEAD case: every bit of it is flipped in turn.
struct aead_case {
  bytes key = bytes(32, 0x11);
  bytes nonce = hex("000102030405060708090a0b0c0d0e0f1011121314151617");
  bytes pt = hex("0123456789abcdef");
  bytes ad = hex("a0a1a2a3a4a5a6a7");
  bytes sealed() const {
    auto s = aead_seal(key, nonce, pt, ad);
    EXPECT_TRUE(s.has_value());
    return s.has_value() ? *s : bytes{};
  }
};

void flip(bytes& b, size_t bit) {
  b[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
}

// Opens and expects `decrypt_failed`; returns 1 when it was, so callers can count the rejections.
int expect_rejected(const aead_case& c, const bytes& sealed, size_t bit) {
  auto o = aead_open(c.key, c.nonce, sealed, c.ad);
  if (o.has_value()) {
    ADD_FAILURE() << "bit " << bit << " accepted";
    return 0;
  }
  EXPECT_EQ(o.error().code, errc::decrypt_failed) << "bit " << bit;
  return o.error().code == errc::decrypt_failed ? 1 : 0;
}

TEST(aead, seals_and_opens_the_unmodified_message) {
  aead_case c;
  auto s = c.sealed();
  EXPECT_EQ(s.size(), c.pt.size() + aead_tag_size);
  auto o = aead_open(c.key, c.nonce, s, c.ad);
  ASSERT_TRUE(o.has_value()) << o.error().message();
  EXPECT_EQ(*o, c.pt);
}

TEST(aead, rejects_any_single_bit_change_of_the_ciphertext) {
  aead_case c;
  const bytes good = c.sealed();
  int checks = 0;
  for (size_t bit = 0; bit < c.pt.size() * 8; ++bit) {
    bytes s = good;
    flip(s, bit);
    checks += expect_rejected(c, s, bit);
  }
  EXPECT_EQ(checks, 64);
}

TEST(aead, rejects_any_single_bit_change_of_the_tag) {
  aead_case c;
  const bytes good = c.sealed();
  int checks = 0;
  for (size_t bit = c.pt.size() * 8; bit < good.size() * 8; ++bit) {
    bytes s = good;
    flip(s, bit);
    checks += expect_rejected(c, s, bit);
  }
  EXPECT_EQ(checks, 128);
}

TEST(aead, rejects_any_single_bit_change_of_the_nonce) {
  aead_case c;
  const bytes good = c.sealed();
  int checks = 0;
  for (size_t bit = 0; bit < aead_nonce_size * 8; ++bit) {
    aead_case t = c;
    flip(t.nonce, bit);
    checks += expect_rejected(t, good, bit);
  }
  EXPECT_EQ(checks, 192);
}

TEST(aead, rejects_any_single_bit_change_of_the_associated_data) {
  aead_case c;
  const bytes good = c.sealed();
  int checks = 0;
  for (size_t bit = 0; bit < c.ad.size() * 8; ++bit) {
    aead_case t = c;
    flip(t.ad, bit);
    checks += expect_rejected(t, good, bit);
  }
  EXPECT_EQ(checks, 64);
}

TEST(aead, rejects_any_single_bit_change_of_the_key) {
  aead_case c;
  const bytes good = c.sealed();
  int checks = 0;
  for (size_t bit = 0; bit < aead_key_size * 8; ++bit) {
    aead_case t = c;
    flip(t.key, bit);
    checks += expect_rejected(t, good, bit);
  }
  EXPECT_EQ(checks, 256);
}

TEST(aead, rejects_truncated_and_extended_ciphertexts) {
  aead_case c;
  const bytes good = c.sealed();
  for (size_t n = 0; n < good.size(); ++n) {
    bytes s(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    auto o = aead_open(c.key, c.nonce, s, c.ad);
    ASSERT_FALSE(o.has_value()) << "length " << n;
    EXPECT_EQ(o.error().code, n < aead_tag_size ? errc::bad_length : errc::decrypt_failed);
  }
  bytes longer = good;
  longer.push_back(0);
  EXPECT_EQ(aead_open(c.key, c.nonce, longer, c.ad).error().code, errc::decrypt_failed);
}

TEST(aead, refuses_keys_and_nonces_of_the_wrong_length) {
  aead_case c;
  const bytes good = c.sealed();
  for (const size_t n : {0u, 16u, 31u, 33u}) {
    EXPECT_EQ(aead_seal(bytes(n, 1), c.nonce, c.pt, c.ad).error().code, errc::bad_length);
    EXPECT_EQ(aead_open(bytes(n, 1), c.nonce, good, c.ad).error().code, errc::bad_length);
  }
  for (const size_t n : {0u, 8u, 12u, 23u, 25u, 32u}) {
    EXPECT_EQ(aead_seal(c.key, bytes(n, 1), c.pt, c.ad).error().code, errc::bad_length);
    EXPECT_EQ(aead_open(c.key, bytes(n, 1), good, c.ad).error().code, errc::bad_length);
  }
}

TEST(aead, into_variants_refuse_wrong_output_sizes) {
  aead_case c;
  bytes out(c.pt.size() + aead_tag_size - 1);
  EXPECT_EQ(aead_seal_into(out, c.key, c.nonce, c.pt, c.ad).error().code, errc::bad_length);
  out.resize(c.pt.size() + aead_tag_size + 1);
  EXPECT_EQ(aead_seal_into(out, c.key, c.nonce, c.pt, c.ad).error().code, errc::bad_length);
  const bytes good = c.sealed();
  bytes pt(c.pt.size() + 1);
  EXPECT_EQ(aead_open_into(pt, c.key, c.nonce, good, c.ad).error().code, errc::bad_length);
}

TEST(aead, open_into_zeroes_the_output_on_failure) {
  aead_case c;
  bytes bad = c.sealed();
  bad.back() ^= 1;
  bytes out(c.pt.size(), 0xee);
  auto r = aead_open_into(out, c.key, c.nonce, bad, c.ad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::decrypt_failed);
  EXPECT_EQ(out, bytes(c.pt.size(), 0));
}

TEST(aead, seal_into_matches_seal) {
  aead_case c;
  bytes out(c.pt.size() + aead_tag_size);
  ASSERT_TRUE(aead_seal_into(out, c.key, c.nonce, c.pt, c.ad).has_value());
  EXPECT_EQ(out, c.sealed());
}

// secret<N> ---------------------------------------------------------------------------------------

template <size_t N>
void fill_pattern(secret<N>& s, uint8_t start) {
  for (size_t i = 0; i < N; ++i) {
    s.expose()[i] = static_cast<uint8_t>(start + i);
  }
}

TEST(secret, starts_all_zero) {
  secret<48> s;
  EXPECT_TRUE(is_zero(s.expose()));
}

TEST(secret, move_construction_zeroes_the_source) {
  secret<32> a;
  fill_pattern(a, 1);
  const bytes expected(a.expose().begin(), a.expose().end());
  secret<32> b(std::move(a));
  EXPECT_EQ(bytes(b.expose().begin(), b.expose().end()), expected);
  // Reading the moved-from source is the point: the contract says it is zeroed.
  // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
  EXPECT_TRUE(is_zero(a.expose()));
}

TEST(secret, move_assignment_zeroes_the_source) {
  secret<32> a;
  fill_pattern(a, 7);
  const bytes expected(a.expose().begin(), a.expose().end());
  secret<32> b;
  fill_pattern(b, 100);
  b = std::move(a);
  EXPECT_EQ(bytes(b.expose().begin(), b.expose().end()), expected);
  // Reading the moved-from source is the point: the contract says it is zeroed.
  // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
  EXPECT_TRUE(is_zero(a.expose()));
}

TEST(secret, destructor_wipes_the_bytes) {
  using s32 = secret<32>;
  alignas(s32) std::array<unsigned char, sizeof(s32)> storage{};
  auto* s = new (storage.data()) s32();
  fill_pattern(*s, 0xa0);
  // The pattern is really in the storage before destruction ...
  bool all_set = true;
  for (size_t i = 0; i < 32; ++i) {
    all_set = all_set && storage[i] == static_cast<uint8_t>(0xa0 + i);
  }
  ASSERT_TRUE(all_set);
  s->~s32();
  // ... and gone after it.
  for (size_t i = 0; i < storage.size(); ++i) {
    EXPECT_EQ(storage[i], 0) << "byte " << i;
  }
}

TEST(secret, wipe_zeroes_the_bytes) {
  secret<32> a;
  fill_pattern(a, 3);
  ASSERT_FALSE(is_zero(a.expose()));
  a.wipe();
  EXPECT_TRUE(is_zero(a.expose()));
}

TEST(secret, from_copies_exactly_n_bytes_and_clone_is_equal) {
  const bytes b = hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  auto a = secret<32>::from(b);
  EXPECT_EQ(bytes(a.expose().begin(), a.expose().end()), b);
  auto c = a.clone();
  EXPECT_TRUE(c.ct_equals(a));
  EXPECT_FALSE(is_zero(a.expose()));  // cloning leaves the original intact
  c.expose()[31] ^= 1;
  EXPECT_FALSE(c.ct_equals(a));
}

// `a == b` must not compile for secrets (compare with ct_equals/ct_equal), nor `a != b` (C++20
// rewrites != from ==), nor streaming. The positive checks on byte_array show the concepts can be
// satisfied, so the negative ones are not vacuous.
template <class T>
concept has_equality = requires(const T& a, const T& b) {
  a == b;
};
template <class T>
concept has_inequality = requires(const T& a, const T& b) {
  a != b;
};
template <class T>
concept streamable = requires(std::ostream& o, const T& a) {
  o << a;
};

static_assert(has_equality<byte_array<32>>);
static_assert(has_inequality<byte_array<32>>);
static_assert(streamable<int>);
static_assert(!has_equality<secret<32>>);
static_assert(!has_inequality<secret<32>>);
static_assert(!streamable<secret<32>>);
static_assert(!has_equality<locked_secret<32>>);
static_assert(!streamable<locked_secret<32>>);
static_assert(!std::is_copy_constructible_v<secret<32>>);
static_assert(!std::is_copy_assignable_v<secret<32>>);
static_assert(std::is_nothrow_move_constructible_v<secret<32>>);
static_assert(std::is_nothrow_move_assignable_v<secret<32>>);
static_assert(!std::is_copy_constructible_v<locked_secret<32>>);
static_assert(!std::is_copy_assignable_v<locked_secret<32>>);

// locked_secret<N> --------------------------------------------------------------------------------

TEST(locked_secret, default_is_all_zero) {
  locked_secret<32> l;
  auto r = l.read();
  EXPECT_TRUE(is_zero(r.expose()));
}

TEST(locked_secret, round_trips_through_reader_and_clone) {
  secret<32> s;
  fill_pattern(s, 0x40);
  locked_secret<32> l(s);
  {
    auto r = l.read();
    EXPECT_TRUE(ct_equal(r.expose(), s.expose()));
    // Several readers at once see the same bytes.
    auto r2 = l.read();
    EXPECT_TRUE(ct_equal(r2.expose(), s.expose()));
  }
  // After every reader is gone a new reader still works (the memory is re-protected, not lost).
  auto c = l.clone();
  EXPECT_TRUE(c.ct_equals(s));
}

TEST(locked_secret, survives_a_move) {
  secret<32> s;
  fill_pattern(s, 0x90);
  locked_secret<32> a(s);
  locked_secret<32> b(std::move(a));
  EXPECT_TRUE(b.clone().ct_equals(s));
  locked_secret<32> c;
  c = std::move(b);
  EXPECT_TRUE(c.clone().ct_equals(s));
}

// ct_equal / is_zero ------------------------------------------------------------------------------

TEST(ct_equal, is_true_only_for_equal_bytes_of_equal_length) {
  const bytes a = hex("000102030405060708090a0b0c0d0e0f");
  EXPECT_TRUE(ct_equal(a, a));
  EXPECT_TRUE(ct_equal(a, bytes(a)));
  EXPECT_TRUE(ct_equal(bytes{}, bytes{}));
  for (size_t i = 0; i < a.size(); ++i) {
    bytes b = a;
    b[i] ^= 0x80;
    EXPECT_FALSE(ct_equal(a, b)) << "byte " << i;
  }
  EXPECT_FALSE(ct_equal(a, byte_view(a).first(15)));
  EXPECT_FALSE(ct_equal(byte_view(a).first(15), a));
  EXPECT_FALSE(ct_equal(bytes{}, bytes{0}));
}

TEST(is_zero, is_true_only_for_all_zero_bytes) {
  EXPECT_TRUE(is_zero(bytes(32, 0)));
  bytes b(32, 0);
  b[31] = 1;
  EXPECT_FALSE(is_zero(b));
  b[31] = 0;
  b[0] = 0x80;
  EXPECT_FALSE(is_zero(b));
}

// deterministic_rng -------------------------------------------------------------------------------

bytes draw(rng& r, size_t n) {
  bytes b(n);
  r.fill(b);
  return b;
}

TEST(deterministic_rng, same_seed_gives_the_same_stream) {
  deterministic_rng a(7);
  deterministic_rng b(7);
  for (const size_t n : {1u, 32u, 24u, 100u, 0u, 64u}) {
    EXPECT_EQ(draw(a, n), draw(b, n)) << "size " << n;
  }
  EXPECT_EQ(a.calls(), 6u);
  EXPECT_EQ(b.calls(), 6u);
}

TEST(deterministic_rng, different_seeds_give_different_streams) {
  deterministic_rng a(1);
  deterministic_rng b(2);
  EXPECT_NE(draw(a, 32), draw(b, 32));
  byte_array<32> s1{};
  byte_array<32> s2{};
  s2[31] = 1;  // differs only in the last seed byte
  deterministic_rng c(s1);
  deterministic_rng d(s2);
  EXPECT_NE(draw(c, 32), draw(d, 32));
}

TEST(deterministic_rng, successive_fills_differ) {
  deterministic_rng a(3);
  EXPECT_NE(draw(a, 32), draw(a, 32));
}

TEST(deterministic_rng, integer_seed_is_its_big_endian_bytes_then_zeros) {
  byte_array<32> seed{};
  seed[6] = 0x12;
  seed[7] = 0x34;
  deterministic_rng a(0x1234);
  deterministic_rng b(seed);
  EXPECT_EQ(draw(a, 48), draw(b, 48));
}

TEST(deterministic_rng, secret_bytes_and_array_draw_from_the_stream) {
  deterministic_rng a(9);
  deterministic_rng b(9);
  auto s = a.secret_bytes<32>();
  EXPECT_EQ(bytes(s.expose().begin(), s.expose().end()), draw(b, 32));
  auto arr = a.array<24>();
  EXPECT_EQ(bytes(arr.begin(), arr.end()), draw(b, 24));
}

// clamp / X25519 ----------------------------------------------------------------------------------

TEST(clamp, clears_the_low_three_bits_and_bit_255_and_sets_bit_254) {
  byte_array<32> ones{};
  ones.fill(0xff);
  clamp(ones);
  EXPECT_EQ(ones[0], 0xf8);
  EXPECT_EQ(ones[31], 0x7f);
  for (size_t i = 1; i < 31; ++i) {
    EXPECT_EQ(ones[i], 0xff) << "byte " << i;
  }

  byte_array<32> zeros{};
  clamp(zeros);
  EXPECT_EQ(zeros[0], 0x00);
  EXPECT_EQ(zeros[31], 0x40);
  for (size_t i = 1; i < 31; ++i) {
    EXPECT_EQ(zeros[i], 0x00) << "byte " << i;
  }

  byte_array<32> again = ones;
  clamp(again);
  EXPECT_EQ(again, ones);  // idempotent
}

TEST(x25519, matches_rfc7748_section_6_1) {
  auto a =
      secret_key::from(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  auto b =
      secret_key::from(hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
  const public_key pa = x25519_base(a);
  const public_key pb = x25519_base(b);
  EXPECT_EQ(to_hex(pa), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(to_hex(pb), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto ab = x25519(a, pb);
  auto ba = x25519(b, pa);
  ASSERT_TRUE(ab.has_value());
  ASSERT_TRUE(ba.has_value());
  EXPECT_EQ(to_hex(ab->expose()),
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_TRUE(ab->ct_equals(*ba));
}

TEST(x25519, into_zeroes_the_output_for_a_low_order_point) {
  auto a =
      secret_key::from(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  byte_array<32> out{};
  out.fill(0xee);
  auto r = x25519_into(out, a, public_key{});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::low_order_point);
  EXPECT_EQ(out, byte_array<32>{});
}

// sha256 / hmac / hkdf ----------------------------------------------------------------------------

TEST(sha256, matches_fips_180_2_abc_and_the_stream_matches_one_shot) {
  EXPECT_EQ(to_hex(sha256(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  sha256_stream st;
  st.update(as_bytes("a")).update(as_bytes("")).update(as_bytes("bc"));
  EXPECT_EQ(st.finish(), sha256(as_bytes("abc")));
}

TEST(hkdf_sha256, empty_salt_equals_32_zero_bytes_and_zero_length_output_succeeds) {
  const bytes ikm(22, 0x0b);
  bytes a(42);
  bytes b(42);
  ASSERT_TRUE(hkdf_sha256(a, {}, ikm, {}).has_value());
  ASSERT_TRUE(hkdf_sha256(b, bytes(32, 0), ikm, {}).has_value());
  EXPECT_EQ(a, b);
  bytes none;
  EXPECT_TRUE(hkdf_sha256(none, {}, ikm, {}).has_value());
}

TEST(hkdf_sha256, refuses_more_than_255_blocks) {
  bytes ok(hkdf_max_output);
  EXPECT_TRUE(hkdf_sha256(ok, {}, bytes(32, 1), {}).has_value());
  bytes too_long(hkdf_max_output + 1, 0x77);
  auto r = hkdf_sha256(too_long, {}, bytes(32, 1), {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::output_too_long);
  EXPECT_EQ(too_long, bytes(hkdf_max_output + 1, 0x77));
}

}  // namespace
}  // namespace cowpi::crypto

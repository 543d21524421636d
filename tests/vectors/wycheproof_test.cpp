// SPDX-License-Identifier: Apache-2.0
// Runs the Wycheproof X25519, XChaCha20-Poly1305, HKDF-SHA256 and HMAC-SHA256 vectors and the RFC
// 5869 HKDF cases through cowpi's own crypto wrappers (never raw libsodium).
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/primitives.hpp"
#include "cowpi/crypto/secret.hpp"

#include "hex.hpp"
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>

namespace cowpi::crypto {
namespace {

using json = nlohmann::json;

// Loads tests/vectors/wycheproof/<name>; a missing or broken file fails the test (and the
// per-file vector count then fails too, so nothing passes silently).
json load(const std::string& name) {
  const std::string path = std::string(COWPI_SOURCE_DIR) + "/tests/vectors/wycheproof/" + name;
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path;
    return json::object();
  }
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ADD_FAILURE() << "cannot parse " << path;
    return json::object();
  }
  return j;
}

// Every vector of `j` with its group, in file order.
template <class F>
void for_each_vector(const json& j, F&& f) {
  if (!j.contains("testGroups")) {
    return;
  }
  for (const auto& g : j.at("testGroups")) {
    for (const auto& t : g.at("tests")) {
      f(g, t);
    }
  }
}

bytes field(const json& t, const char* name) {
  auto b = from_hex(t.at(name).get<std::string>());
  if (!b) {
    ADD_FAILURE() << "tcId " << t.at("tcId") << ": field " << name << " is not hex";
    return {};
  }
  return *b;
}

bool has_flag(const json& t, std::string_view flag) {
  for (const auto& f : t.at("flags")) {
    if (f.get<std::string>() == flag) {
      return true;
    }
  }
  return false;
}

// The harness's length check for X25519: our API takes exactly 32-byte keys (a `secret_key` and a
// `public_key`), so a vector key of any other length is refused here, before any call.
bool to_x25519_keys(const bytes& priv, const bytes& pub, secret_key& sk, public_key& pk) {
  if (priv.size() != x25519_key_size || pub.size() != x25519_key_size) {
    return false;
  }
  sk = secret_key::from(priv);
  std::copy(pub.begin(), pub.end(), pk.begin());
  return true;
}

// X25519 (RFC 7748). What the file's results and flags mean for us:
// - `valid` (Normal, Ktv, EdgeCase*, SpecialPublicKey): must give the listed shared secret.
// - `acceptable` + ZeroSharedSecret (here always with LowOrderPublic): the public key is a
//   low-order point, the output is all zero, and RFC 7748 §6.1 allows rejecting it. We must
//   reject it (docs/design.md §2), with `errc::low_order_point`.
// - `acceptable` otherwise (Twist, NonCanonicalPublic, SmallPublicKey, EdgeCaseMultiplication,
//   EdgeCaseShared, SpecialPublicKey, Ktv): RFC 7748 defines the result (twist points are
//   multiplied, non-canonical u is reduced mod p, the top bit is ignored) and we accept them: they
//   must give the listed secret. An attacker gains nothing from them, since every NAXOS DH also
//   binds the public values in the HKDF info.
// - `invalid`: this file has none (asserted below). Were one added, it would have to fail, either
//   at the harness's length check or with an error from `x25519`.
TEST(wycheproof_x25519, every_vector_gives_the_listed_secret_or_is_rejected_as_low_order) {
  const json j = load("x25519_test.json");
  std::map<std::string, int> by_result;
  int rejected_low_order = 0;
  for_each_vector(j, [&](const json&, const json& t) {
    const auto id = t.at("tcId").get<int>();
    const auto result = t.at("result").get<std::string>();
    ++by_result[result];
    const bytes shared = field(t, "shared");
    secret_key sk;
    public_key pk{};
    if (!to_x25519_keys(field(t, "private"), field(t, "public"), sk, pk)) {
      EXPECT_EQ(result, "invalid") << "tcId " << id << ": a listed key has the wrong length";
      return;
    }
    auto out = x25519(sk, pk);
    if (has_flag(t, "ZeroSharedSecret")) {
      EXPECT_EQ(result, "acceptable") << "tcId " << id;
      EXPECT_EQ(shared, bytes(32, 0)) << "tcId " << id;
      ASSERT_FALSE(out.has_value()) << "tcId " << id << ": low-order point accepted";
      EXPECT_EQ(out.error().code, errc::low_order_point) << "tcId " << id;
      ++rejected_low_order;
    } else if (result == "invalid") {
      EXPECT_FALSE(out.has_value()) << "tcId " << id << ": invalid vector accepted";
    } else {
      ASSERT_TRUE(out.has_value()) << "tcId " << id << ": " << out.error().message();
      EXPECT_EQ(to_hex(out->expose()), to_hex(shared)) << "tcId " << id;
    }
  });
  EXPECT_EQ(by_result["valid"], 264);
  EXPECT_EQ(by_result["acceptable"], 254);
  EXPECT_EQ(by_result["invalid"], 0);
  EXPECT_EQ(rejected_low_order, 31);
  EXPECT_EQ(by_result["valid"] + by_result["acceptable"] + by_result["invalid"],
            j.value("numberOfTests", -1));
}

// XChaCha20-Poly1305-IETF. `valid` vectors seal to ct || tag and open back; `invalid` ones are
// ModifiedTag (must fail to open with `decrypt_failed`) or InvalidNonceSize (a nonce other than
// 24 bytes: our wrappers' own length check refuses it with `bad_length`, sealing and opening).
TEST(wycheproof_xchacha20_poly1305, valid_vectors_round_trip_and_invalid_ones_are_refused) {
  const json j = load("xchacha20_poly1305_test.json");
  std::map<std::string, int> by_result;
  int bad_nonce = 0;
  int modified_tag = 0;
  for_each_vector(j, [&](const json&, const json& t) {
    const auto id = t.at("tcId").get<int>();
    const auto result = t.at("result").get<std::string>();
    ++by_result[result];
    const bytes key = field(t, "key");
    const bytes nonce = field(t, "iv");
    const bytes aad = field(t, "aad");
    const bytes msg = field(t, "msg");
    bytes sealed = field(t, "ct");
    const bytes tag = field(t, "tag");
    sealed.insert(sealed.end(), tag.begin(), tag.end());

    if (has_flag(t, "InvalidNonceSize")) {
      ++bad_nonce;
      EXPECT_EQ(result, "invalid") << "tcId " << id;
      EXPECT_NE(nonce.size(), aead_nonce_size) << "tcId " << id;
      auto s = aead_seal(key, nonce, msg, aad);
      ASSERT_FALSE(s.has_value()) << "tcId " << id;
      EXPECT_EQ(s.error().code, errc::bad_length) << "tcId " << id;
      auto o = aead_open(key, nonce, sealed, aad);
      ASSERT_FALSE(o.has_value()) << "tcId " << id;
      EXPECT_EQ(o.error().code, errc::bad_length) << "tcId " << id;
      return;
    }
    auto opened = aead_open(key, nonce, sealed, aad);
    if (result == "valid") {
      auto s = aead_seal(key, nonce, msg, aad);
      ASSERT_TRUE(s.has_value()) << "tcId " << id << ": " << s.error().message();
      EXPECT_EQ(to_hex(*s), to_hex(sealed)) << "tcId " << id;
      ASSERT_TRUE(opened.has_value()) << "tcId " << id << ": " << opened.error().message();
      EXPECT_EQ(to_hex(*opened), to_hex(msg)) << "tcId " << id;
    } else {
      EXPECT_TRUE(has_flag(t, "ModifiedTag")) << "tcId " << id << ": unexpected invalid case";
      ++modified_tag;
      ASSERT_FALSE(opened.has_value()) << "tcId " << id << ": modified tag accepted";
      EXPECT_EQ(opened.error().code, errc::decrypt_failed) << "tcId " << id;
    }
  });
  EXPECT_EQ(by_result["valid"], 246);
  EXPECT_EQ(by_result["invalid"], 69);
  EXPECT_EQ(by_result["acceptable"], 0);
  EXPECT_EQ(bad_nonce, 9);
  EXPECT_EQ(modified_tag, 60);
  EXPECT_EQ(by_result["valid"] + by_result["invalid"], j.value("numberOfTests", -1));
}

// HKDF-SHA256 (RFC 5869). `valid` vectors (empty salts and the maximal 255 * 32 bytes included)
// produce okm; `invalid` ones (SizeTooLarge) ask for 255 * 32 + 1 bytes and must fail with
// `output_too_long` without writing anything.
TEST(wycheproof_hkdf_sha256, valid_vectors_give_okm_and_oversized_requests_fail) {
  const json j = load("hkdf_sha256_test.json");
  std::map<std::string, int> by_result;
  int too_large = 0;
  for_each_vector(j, [&](const json&, const json& t) {
    const auto id = t.at("tcId").get<int>();
    const auto result = t.at("result").get<std::string>();
    ++by_result[result];
    const auto size = t.at("size").get<size_t>();
    bytes out(size, 0x5a);
    auto r = hkdf_sha256(out, field(t, "salt"), field(t, "ikm"), field(t, "info"));
    if (result == "valid") {
      ASSERT_TRUE(r.has_value()) << "tcId " << id << ": " << r.error().message();
      EXPECT_EQ(to_hex(out), to_hex(field(t, "okm"))) << "tcId " << id;
    } else {
      EXPECT_TRUE(has_flag(t, "SizeTooLarge")) << "tcId " << id << ": unexpected invalid case";
      EXPECT_GT(size, hkdf_max_output) << "tcId " << id;
      ++too_large;
      ASSERT_FALSE(r.has_value()) << "tcId " << id;
      EXPECT_EQ(r.error().code, errc::output_too_long) << "tcId " << id;
      EXPECT_EQ(out, bytes(size, 0x5a)) << "tcId " << id << ": wrote output on failure";
    }
  });
  EXPECT_EQ(by_result["valid"], 83);
  EXPECT_EQ(by_result["invalid"], 3);
  EXPECT_EQ(by_result["acceptable"], 0);
  EXPECT_EQ(too_large, 3);
  EXPECT_EQ(by_result["valid"] + by_result["invalid"], j.value("numberOfTests", -1));
}

// HMAC-SHA256 with full (256-bit) and truncated (128-bit) tags and 128-, 256- and 520-bit keys:
// the first tagSize bits of our tag must equal the listed tag for `valid` vectors and differ for
// `invalid` ones (ModifiedTag).
TEST(wycheproof_hmac_sha256, truncated_tags_match_valid_vectors_and_differ_from_modified_ones) {
  const json j = load("hmac_sha256_test.json");
  std::map<std::string, int> by_result;
  for_each_vector(j, [&](const json& g, const json& t) {
    const auto id = t.at("tcId").get<int>();
    const auto result = t.at("result").get<std::string>();
    ++by_result[result];
    const auto tag_bits = g.at("tagSize").get<size_t>();
    ASSERT_EQ(tag_bits % 8, 0u) << "tcId " << id;
    ASSERT_LE(tag_bits, 256u) << "tcId " << id;
    const bytes listed = field(t, "tag");
    ASSERT_EQ(listed.size(), tag_bits / 8) << "tcId " << id;
    auto ours = hmac_sha256(field(t, "key"), field(t, "msg"));
    const bool match = ct_equal(byte_view(ours.expose()).first(tag_bits / 8), listed);
    if (result == "valid") {
      EXPECT_TRUE(match) << "tcId " << id;
    } else {
      EXPECT_TRUE(has_flag(t, "ModifiedTag")) << "tcId " << id << ": unexpected invalid case";
      EXPECT_FALSE(match) << "tcId " << id << ": modified tag verified";
    }
  });
  EXPECT_EQ(by_result["valid"], 66);
  EXPECT_EQ(by_result["invalid"], 108);
  EXPECT_EQ(by_result["acceptable"], 0);
  EXPECT_EQ(by_result["valid"] + by_result["invalid"], j.value("numberOfTests", -1));
}

// RFC 5869 Appendix A, test cases 1-3 (SHA-256), from the RFC text. PRK is checked through
// `hmac_sha256` (HKDF-Extract is HMAC(salt, IKM), an absent salt being 32 zero bytes).
struct rfc5869_case {
  const char* ikm;
  const char* salt;
  const char* info;
  size_t length;
  const char* prk;
  const char* okm;
};

constexpr std::array<rfc5869_case, 3> rfc5869_cases = {{
    // A.1: basic test case with SHA-256.
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
     "f0f1f2f3f4f5f6f7f8f9", 42, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
    // A.2: SHA-256 with longer inputs and outputs.
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f",
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
     "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
     "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
     "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     82, "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
    // A.3: SHA-256 with zero-length salt and info.
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
}};

TEST(rfc5869, sha256_test_cases_1_to_3_give_the_listed_prk_and_okm) {
  int n = 0;
  for (const auto& c : rfc5869_cases) {
    SCOPED_TRACE("RFC 5869 test case " + std::to_string(n + 1));
    const bytes ikm = cowpi::testing::hex(c.ikm);
    const bytes salt = cowpi::testing::hex(c.salt);
    const bytes info = cowpi::testing::hex(c.info);
    const bytes extract_key = salt.empty() ? bytes(32, 0) : salt;
    EXPECT_EQ(to_hex(hmac_sha256(extract_key, ikm).expose()), c.prk);
    bytes okm(c.length);
    ASSERT_TRUE(hkdf_sha256(okm, salt, ikm, info).has_value());
    EXPECT_EQ(to_hex(okm), c.okm);
    ++n;
  }
  EXPECT_EQ(n, 3);
}

TEST(rfc5869, hkdf32_is_the_first_32_bytes_of_hkdf) {
  const auto& c = rfc5869_cases[1];
  const bytes ikm = cowpi::testing::hex(c.ikm);
  const bytes salt = cowpi::testing::hex(c.salt);
  const bytes info = cowpi::testing::hex(c.info);
  EXPECT_EQ(to_hex(hkdf32(salt, ikm, info).expose()), std::string(c.okm).substr(0, 64));
}

}  // namespace
}  // namespace cowpi::crypto

// SPDX-License-Identifier: Apache-2.0
// libsodium wrappers: every length checked, every failure an error value.
#include "cowpi/crypto/primitives.hpp"

#include <algorithm>

namespace cowpi::crypto {

void clamp(std::span<uint8_t, 32> k) noexcept {
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
}

public_key x25519_base(const secret_key& sk) noexcept {
  public_key pk{};
  crypto_scalarmult_base(pk.data(), sk.expose().data());
  return pk;
}

expected<void> x25519_into(std::span<uint8_t, 32> out, std::span<const uint8_t, 32> sk,
                           const public_key& pk) noexcept {
  // libsodium returns -1 when the output is all zero (a low-order point).
  if (crypto_scalarmult(out.data(), sk.data(), pk.data()) != 0) {
    sodium_memzero(out.data(), out.size());
    return fail(errc::low_order_point, "x25519 result is zero");
  }
  return {};
}

expected<void> x25519_into(std::span<uint8_t, 32> out, const secret_key& sk,
                           const public_key& pk) noexcept {
  return x25519_into(out, sk.expose(), pk);
}

expected<secret<32>> x25519(const secret_key& sk, const public_key& pk) noexcept {
  secret<32> out;
  auto r = x25519_into(out.expose(), sk, pk);
  if (!r)
    return unexpected{std::move(r).error()};
  return out;
}

hash32 sha256(byte_view m) noexcept {
  hash32 h{};
  crypto_hash_sha256(h.data(), m.data(), m.size());
  return h;
}

secret<32> hmac_sha256(byte_view key, byte_view m) noexcept {
  secret<32> tag;
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key.data(), key.size());
  crypto_auth_hmacsha256_update(&st, m.data(), m.size());
  crypto_auth_hmacsha256_final(&st, tag.expose().data());
  sodium_memzero(&st, sizeof st);
  return tag;
}

expected<void> hkdf_sha256(std::span<uint8_t> out, byte_view salt, byte_view ikm,
                           byte_view info) noexcept {
  if (out.size() > hkdf_max_output)
    return fail(errc::output_too_long, "hkdf output > 255*32");
  static constexpr uint8_t zero_salt[32] = {};
  byte_view key = salt.empty() ? byte_view{zero_salt, sizeof zero_salt} : salt;
  // Extract.
  secret<32> prk = hmac_sha256(key, ikm);
  // Expand: T(i) = HMAC(PRK, T(i-1) || info || i).
  secret<32> t;
  size_t t_len = 0;
  size_t done = 0;
  for (unsigned i = 1; done < out.size(); ++i) {
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, prk.expose().data(), prk.size);
    crypto_auth_hmacsha256_update(&st, t.expose().data(), t_len);
    crypto_auth_hmacsha256_update(&st, info.data(), info.size());
    const auto counter = static_cast<uint8_t>(i);
    crypto_auth_hmacsha256_update(&st, &counter, 1);
    crypto_auth_hmacsha256_final(&st, t.expose().data());
    sodium_memzero(&st, sizeof st);
    t_len = 32;
    size_t n = std::min(out.size() - done, t_len);
    std::copy_n(t.expose().data(), n, out.data() + done);
    done += n;
  }
  return {};
}

secret<32> hkdf32(byte_view salt, byte_view ikm, byte_view info) noexcept {
  secret<32> k;
  // 32 <= 255 * 32, so this cannot fail.
  auto r = hkdf_sha256(k.expose(), salt, ikm, info);
  COWPI_ASSERT(r.has_value());
  return k;
}

namespace {
expected<void> check_key_nonce(byte_view key, byte_view nonce) noexcept {
  if (key.size() != aead_key_size)
    return fail(errc::bad_length, "aead key must be 32 bytes");
  if (nonce.size() != aead_nonce_size)
    return fail(errc::bad_length, "aead nonce must be 24 bytes");
  return {};
}
}  // namespace

expected<void> aead_seal_into(std::span<uint8_t> out, byte_view key, byte_view nonce, byte_view pt,
                              byte_view ad) noexcept {
  COWPI_TRY_VOID(check_key_nonce(key, nonce));
  if (out.size() != pt.size() + aead_tag_size)
    return fail(errc::bad_length, "aead output must be plaintext + 16 bytes");
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data(), &n, pt.data(), pt.size(), ad.data(),
                                             ad.size(), nullptr, nonce.data(), key.data());
  return {};
}

expected<bytes> aead_seal(byte_view key, byte_view nonce, byte_view pt, byte_view ad) {
  bytes out(pt.size() + aead_tag_size);
  COWPI_TRY_VOID(aead_seal_into(out, key, nonce, pt, ad));
  return out;
}

expected<void> aead_open_into(std::span<uint8_t> out, byte_view key, byte_view nonce, byte_view ct,
                              byte_view ad) noexcept {
  COWPI_TRY_VOID(check_key_nonce(key, nonce));
  if (ct.size() < aead_tag_size)
    return fail(errc::bad_length, "ciphertext shorter than tag");
  if (out.size() != ct.size() - aead_tag_size)
    return fail(errc::bad_length, "aead output must be ciphertext - 16 bytes");
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &n, nullptr, ct.data(), ct.size(),
                                                 ad.data(), ad.size(), nonce.data(), key.data())
      != 0) {
    sodium_memzero(out.data(), out.size());
    return fail(errc::decrypt_failed, "aead authentication failed");
  }
  return {};
}

expected<bytes> aead_open(byte_view key, byte_view nonce, byte_view ct, byte_view ad) {
  if (ct.size() < aead_tag_size)
    return fail(errc::bad_length, "ciphertext shorter than tag");
  bytes out(ct.size() - aead_tag_size);
  COWPI_TRY_VOID(aead_open_into(out, key, nonce, ct, ad));
  return out;
}

}  // namespace cowpi::crypto

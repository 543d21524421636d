// SPDX-License-Identifier: Apache-2.0
// Thin, checked wrappers over libsodium 1.0.18: X25519, SHA-256, HMAC-SHA256,
// HKDF-SHA256 (RFC 5869) and XChaCha20-Poly1305-IETF.
#pragma once

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/expected.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace cowpi::crypto {

inline constexpr size_t x25519_key_size = 32;  // crypto_scalarmult_BYTES
inline constexpr size_t sha256_size = 32;      // crypto_hash_sha256_BYTES
inline constexpr size_t aead_key_size = 32;    // ..._ietf_KEYBYTES
inline constexpr size_t aead_nonce_size = 24;  // ..._ietf_NPUBBYTES
inline constexpr size_t aead_tag_size = 16;    // ..._ietf_ABYTES
inline constexpr size_t hkdf_max_output = 255 * 32;

/// An X25519 public key (a u-coordinate). Public: copyable and printable.
using public_key = byte_array<x25519_key_size>;
/// An X25519 secret scalar.
using secret_key = secret<x25519_key_size>;

/// Clamps `k` in place (RFC 7748: clear bits 0-2 and 255, set bit 254).
void clamp(std::span<uint8_t, 32> k) noexcept;

/// Returns `sk * G`.
[[nodiscard]] public_key x25519_base(const secret_key& sk) noexcept;

/// Returns the X25519 shared secret `sk * pk`. Fails with
/// `errc::low_order_point` when the result is all zero (a low-order `pk`).
[[nodiscard]] expected<secret<32>> x25519(const secret_key& sk, const public_key& pk) noexcept;

/// Writes `sk * pk` into `out` (a slice of a larger secret buffer, e.g. an
/// HKDF input). Same failure as `x25519`; on failure `out` is zeroed.
[[nodiscard]] expected<void> x25519_into(std::span<uint8_t, 32> out, const secret_key& sk,
                                         const public_key& pk) noexcept;
/// As above, with the scalar given as raw bytes (e.g. a locked key's reader).
[[nodiscard]] expected<void> x25519_into(std::span<uint8_t, 32> out,
                                         std::span<const uint8_t, 32> sk,
                                         const public_key& pk) noexcept;

/// Returns SHA-256(`m`).
[[nodiscard]] hash32 sha256(byte_view m) noexcept;

/// Incremental SHA-256 over several parts.
class sha256_stream {
public:
  sha256_stream() noexcept { crypto_hash_sha256_init(&st_); }
  ~sha256_stream() { sodium_memzero(&st_, sizeof st_); }
  sha256_stream(const sha256_stream&) = delete;
  sha256_stream& operator=(const sha256_stream&) = delete;
  sha256_stream(sha256_stream&&) = delete;
  sha256_stream& operator=(sha256_stream&&) = delete;
  sha256_stream& update(byte_view m) noexcept {
    crypto_hash_sha256_update(&st_, m.data(), m.size());
    return *this;
  }
  hash32 finish() noexcept {
    hash32 h{};
    crypto_hash_sha256_final(&st_, h.data());
    return h;
  }

private:
  crypto_hash_sha256_state st_{};
};

/// Returns HMAC-SHA256(`key`, `m`); any key length (RFC 2104).
[[nodiscard]] secret<32> hmac_sha256(byte_view key, byte_view m) noexcept;

/// HKDF-SHA256 (RFC 5869) into `out`, built on libsodium's HMAC-SHA256.
/// An empty `salt` means 32 zero bytes. Fails with `errc::output_too_long`
/// when `out.size() > 255 * 32` (and writes nothing).
[[nodiscard]] expected<void> hkdf_sha256(std::span<uint8_t> out, byte_view salt, byte_view ikm,
                                         byte_view info) noexcept;

/// The 32-byte HKDF of docs/design.md: `HKDF(salt, ikm, info)`.
[[nodiscard]] secret<32> hkdf32(byte_view salt, byte_view ikm, byte_view info) noexcept;

/// XChaCha20-Poly1305-IETF encryption. Returns ciphertext || 16-byte tag.
/// Fails with `errc::bad_length` if `key` is not 32 bytes or `nonce` not 24.
[[nodiscard]] expected<bytes> aead_seal(byte_view key, byte_view nonce, byte_view pt, byte_view ad);

/// Encrypts into `out`, which must be exactly `pt.size() + 16` bytes.
[[nodiscard]] expected<void> aead_seal_into(std::span<uint8_t> out, byte_view key, byte_view nonce,
                                            byte_view pt, byte_view ad) noexcept;

/// XChaCha20-Poly1305-IETF decryption of ciphertext || tag. Fails with
/// `errc::bad_length` (key, nonce or a ciphertext shorter than the tag) or
/// `errc::decrypt_failed`; on failure nothing is returned.
[[nodiscard]] expected<bytes> aead_open(byte_view key, byte_view nonce, byte_view ct, byte_view ad);

/// Decrypts into `out`, which must be exactly `ct.size() - 16` bytes (use a
/// secret's `expose()` for key material). On failure `out` is zeroed.
[[nodiscard]] expected<void> aead_open_into(std::span<uint8_t> out, byte_view key, byte_view nonce,
                                            byte_view ct, byte_view ad) noexcept;

}  // namespace cowpi::crypto

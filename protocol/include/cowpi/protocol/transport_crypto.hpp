// SPDX-License-Identifier: Apache-2.0
// The client<->router transport channel's cryptography (docs/design.md §2): the
// NAXOS handshake keys and per-direction counter-nonce frame ciphers.
#pragma once

#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/limits.hpp"

#include <cstdint>
#include <string>

namespace cowpi::protocol {

/// HELLO mode; the numbers are those of `th`.
enum class hello_mode : uint8_t { login = 1, register_user = 2 };

/// The public handshake values bound into the session keys.
struct handshake_transcript {
  uint8_t version = transport_version;
  hello_mode mode = hello_mode::login;
  std::string id_u;
  std::string id_r;
  public_key lpk_u{};
  public_key lpk_r{};
  public_key x_u{};
  public_key x_r{};
};

/// `th = u8(version) || u8(mode) || lp(id_U) || lp(id_R) || lpk_U || lpk_R || X_U || X_R`.
bytes encode_transcript(const handshake_transcript& t);

/// Per-direction session keys.
struct session_keys {
  crypto::secret<32> c2r;
  crypto::secret<32> r2c;
};

/// Client side: `ikm = DH(lsk_U, X_R) || DH(x_U, lpk_R) || DH(x_U, X_R)` (96 bytes), with
/// `X_R` and `lpk_R` from `t`. Fails with `errc::low_order_point` if any DH is zero.
[[nodiscard]] expected<crypto::secret<96>> client_handshake_ikm(const identity& user,
                                                                const crypto::secret<32>& x_u,
                                                                const handshake_transcript& t);

/// Router side: `ikm = DH(x_R, lpk_U) || DH(lsk_R, X_U) || DH(x_R, X_U)`, the same 96 bytes
/// as the client's. Fails with `errc::low_order_point` if any DH is zero.
[[nodiscard]] expected<crypto::secret<96>> router_handshake_ikm(const identity& router,
                                                                const crypto::secret<32>& x_r,
                                                                const handshake_transcript& t);

/// `k_c2r = HKDF(L("transport"), ikm, L("c2r") || th)` and `k_r2c` likewise with `L("r2c")`.
session_keys derive_session_keys(const crypto::secret<96>& ikm, const handshake_transcript& t);

/// Client side: `derive_session_keys(client_handshake_ikm(...))`. Fails as that.
[[nodiscard]] expected<session_keys> client_session_keys(const identity& user,
                                                         const crypto::secret<32>& x_u,
                                                         const handshake_transcript& t);

/// Router side: `derive_session_keys(router_handshake_ikm(...))`. Fails as that.
[[nodiscard]] expected<session_keys> router_session_keys(const identity& router,
                                                         const crypto::secret<32>& x_r,
                                                         const handshake_transcript& t);

/// One rekey of a direction's frame key, every `rekey_interval` frames:
/// `HKDF(salt = L("rekey"), ikm = k, info = "")`.
crypto::secret<32> rekey_frame_key(const crypto::secret<32>& k);

/// The nonce of frame `n` (from 0) of a direction: 16 zero bytes || be64(n mod 2^20).
byte_array<24> frame_nonce(uint64_t n) noexcept;

/// One direction of the encrypted frame stream. Frame n (from 0) uses the
/// key rekeyed floor(n / 2^20) times and nonce 16 zero bytes || be64(n mod
/// 2^20), AD = L("frame"). Both ends advance in lockstep; nothing is signalled.
class frame_cipher {
public:
  explicit frame_cipher(crypto::secret<32> key) noexcept : key_(std::move(key)) {}

  /// Encrypts the next frame's payload; returns ciphertext || tag.
  bytes seal(byte_view pt);
  /// Decrypts the next frame. On failure the stream is dead: the caller must
  /// close the connection (the counter has not advanced).
  [[nodiscard]] expected<bytes> open(byte_view ct);
  /// Frames processed so far in this direction.
  uint64_t frames() const noexcept { return n_; }
  /// Test hook: jump the counter (rekeying as if the frames had passed).
  void skip_for_test(uint64_t frames);

private:
  void advance();
  crypto::secret<32> key_;
  uint64_t n_ = 0;
};

}  // namespace cowpi::protocol

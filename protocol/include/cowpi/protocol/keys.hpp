// SPDX-License-Identifier: Apache-2.0
// Identities, NAXOS ephemerals and the pairwise block of docs/design.md §2:
// `K = HKDF(L("pair"), DH(lsk_S,E_R) || DH(x,lpk_R) || DH(x,E_R), info)`.
#pragma once

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/types.hpp"

#include <string>
#include <string_view>

namespace cowpi::protocol {

/// A long-term X25519 identity: `lsk = clamp(32 random bytes)` stored clamped
/// in locked memory, `lpk = lsk * G`. Move-only.
class identity {
public:
  /// Generates a fresh identity for `id`.
  static identity generate(std::string id, crypto::rng& r);
  /// Rebuilds an identity from its stored (clamped) secret.
  static identity from_secret(std::string id, const crypto::secret<32>& lsk);

  const std::string& id() const noexcept { return id_; }
  const public_key& lpk() const noexcept { return lpk_; }
  /// Read access to `lsk`; keep the reader only as long as the computation.
  crypto::locked_secret<32>::reader lsk() const { return lsk_.read(); }
  /// Returns a copy of `lsk` for sealing into storage.
  crypto::secret<32> export_secret() const { return lsk_.clone(); }
  member as_member() const { return member{id_, lpk_}; }

private:
  identity(std::string id, crypto::locked_secret<32> lsk, const public_key& lpk)
      : id_(std::move(id)), lsk_(std::move(lsk)), lpk_(lpk) {}
  std::string id_;
  crypto::locked_secret<32> lsk_;
  public_key lpk_{};
};

/// Returns true iff `pk` is usable as an X25519 public key: not a low-order
/// point (X25519 with any clamped scalar would give zero).
bool usable_public_key(const public_key& pk);

/// A NAXOS key pair derived from a stored or fresh seed:
/// `x = clamp(H(esk || lsk))`, `X = x * G`.
struct naxos_keypair {
  crypto::secret<32> x;
  public_key pub{};
};

/// Derives the NAXOS key pair of seed `esk` for the owner of `lsk`.
naxos_keypair naxos_derive(const crypto::secret<32>& esk, const identity& owner);

/// Derives only the secret scalar `x = clamp(H(esk || lsk))` (a receiver
/// opening a block needs no public key: this saves a base-point multiplication).
crypto::secret<32> naxos_secret(const crypto::secret<32>& esk, const identity& owner);

/// Returns a fresh one-shot NAXOS ephemeral (`esk` drawn from `r` and wiped).
naxos_keypair naxos_fresh(const identity& owner, crypto::rng& r);

/// The public context a pairwise block key binds: sender and receiver ids,
/// the conversation, the receiver key reference (as on the wire) and X_S.
struct pair_context {
  std::string_view sender;
  std::string_view receiver;
  const conv_id& conv;
  const key_ref& ref;
  const public_key& x_s;
};

/// `info = lp(S) || lp(R) || conv || enc(ref) || X_S`.
bytes pair_info(const pair_context& ctx);

/// Sender side: `K` from `lsk_S`, the one-shot `x`, `lpk_R` and the receiver
/// key `e_pub` (the real public key even for RATCHET refs, whose `ref.pub` is
/// zero). Fails with `errc::low_order_point` if any DH is zero.
[[nodiscard]] expected<crypto::secret<32>> pair_key_send(const identity& sender,
                                                         const crypto::secret<32>& x,
                                                         const public_key& lpk_r,
                                                         const public_key& e_pub,
                                                         const pair_context& ctx);

/// Receiver side: the same `K` from `e_R`, `lsk_R`, `lpk_S` and `X_S`.
[[nodiscard]] expected<crypto::secret<32>> pair_key_recv(const identity& receiver,
                                                         const crypto::secret<32>& e_r,
                                                         const public_key& lpk_s,
                                                         const pair_context& ctx);

/// A block plaintext: `seed[32] || be64(announced.id) || announced.pub[32]`.
struct block_plaintext {
  crypto::secret<32> seed;
  uint64_t announced_id = 0;
  public_key announced_pub{};
};

/// Builds a block from `sender` to (`receiver`, `lpk_r`) under receiver key
/// `ref` (its DH public key `e_pub`), with a fresh one-shot ephemeral and a
/// fresh random nonce, encrypting `pt` with associated data `ad`. When `key_out` is given it
/// receives the block key `K` (a DH step derives its chain from it, §4.8).
[[nodiscard]] expected<block> seal_block(const identity& sender, std::string_view receiver,
                                         const public_key& lpk_r, const conv_id& conv,
                                         const key_ref& ref, const public_key& e_pub,
                                         const block_plaintext& pt, byte_view ad, crypto::rng& r,
                                         crypto::secret<32>* key_out = nullptr);

/// Opens a block addressed to `receiver` from (`sender`, `lpk_s`), with the
/// secret `e_r` of the key the block's ref names. Fails with
/// `errc::low_order_point` or `errc::decrypt_failed`; nothing else changes. When `key_out` is
/// given, an opened block's key `K` is written to it.
[[nodiscard]] expected<block_plaintext> open_block(const identity& receiver,
                                                   const crypto::secret<32>& e_r,
                                                   std::string_view sender, const public_key& lpk_s,
                                                   const conv_id& conv, const block& b,
                                                   byte_view ad,
                                                   crypto::secret<32>* key_out = nullptr);

}  // namespace cowpi::protocol

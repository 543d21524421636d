// SPDX-License-Identifier: Apache-2.0
// Symmetric-key chains on a pairwise channel (docs/protocol.md §4.8): a DH step (a §4.3 block
// that starts an epoch) yields a chain key, and later blocks of the epoch are chain blocks
// sealed under message keys derived from it by HMAC. Pure: the caller persists a send chain
// after `seal` and before the block leaves, and applies a receive chain's effects only when the
// entry carrying the block is accepted.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace cowpi::protocol {

/// `be32(e) || be32(n)`.
inline constexpr size_t chain_header_size = 8;
/// `be32(e) || enc(block)`.
inline constexpr size_t dh_step_size = 4 + block_size;  // 189
/// An announced key in a chain block's plaintext: `be64(id) || pub[32]`.
inline constexpr size_t chain_announce_size = 40;

/// What a chain block's plaintext carries: a seed (a MESSAGE's author blocks only) and an
/// announced receive key (only while one is due), each optional.
struct chain_plaintext {
  std::optional<crypto::secret<32>> seed;
  std::optional<published_key> announced;

  chain_plaintext clone() const;
};

/// `enc(chain block)`: 24, 56, 64 or 96 bytes.
bytes enc_chain_block(const chain_block& b);
/// Parses `enc(chain block)`. Fails with `errc::bad_length` unless the ciphertext is 16, 48, 56
/// or 88 bytes.
[[nodiscard]] expected<chain_block> decode_chain_block(byte_view in);
/// `enc(DH step)`: 189 bytes.
std::array<uint8_t, dh_step_size> enc_dh_step(const dh_step& s) noexcept;
/// Parses `enc(DH step)`. Fails as `decode_block`, and with `errc::bad_length` unless 189 bytes.
[[nodiscard]] expected<dh_step> decode_dh_step(byte_view in) noexcept;

/// `CK_0 = HKDF(salt = L("chain"), ikm = K, info = lp(S) || lp(R) || conv || be32(e))`.
crypto::secret<32> chain_key_0(const crypto::secret<32>& k, std::string_view sender,
                               std::string_view receiver, const conv_id& conv, uint32_t epoch);
/// One chain step: `mk_n = HMAC(CK_n, 0x01)`, `CK_{n+1} = HMAC(CK_n, 0x02)`.
struct chain_step_keys {
  crypto::secret<32> mk;
  crypto::secret<32> next_ck;
};
chain_step_keys chain_step(const crypto::secret<32>& ck) noexcept;
/// `nonce_n = be32(e) || be32(n) || 0x00 * 16`.
byte_array<24> chain_nonce(uint32_t epoch, uint32_t n) noexcept;
/// `AD_chain = L("chain-block") || be32(e) || be32(n) || ad`.
bytes chain_block_ad(uint32_t epoch, uint32_t n, byte_view ad);
/// `AD_step = L("chain-step") || be32(e) || ad`.
bytes dh_step_ad(uint32_t epoch, byte_view ad);

/// Seals one chain block under message key `mk` at position (`epoch`, `n`).
[[nodiscard]] expected<chain_block> seal_chain_block(const crypto::secret<32>& mk, uint32_t epoch,
                                                     uint32_t n, const chain_plaintext& pt,
                                                     byte_view ad);
/// Opens one chain block under `mk`: the plaintext's layout follows from the ciphertext's length.
[[nodiscard]] expected<chain_plaintext> open_chain_block_with(const crypto::secret<32>& mk,
                                                              const chain_block& b, byte_view ad);

/// The sending end of one epoch: `(e, CK_n, n)`. Move-only.
class send_chain {
public:
  /// `spent`: restored from storage, a chain whose last counter was used.
  send_chain(uint32_t epoch, crypto::secret<32> ck, uint32_t next, bool spent = false) noexcept
      : epoch_(epoch), next_(next), ck_(std::move(ck)), spent_(spent) {}

  uint32_t epoch() const noexcept { return epoch_; }
  /// The counter the next block takes.
  uint32_t next() const noexcept { return next_; }
  /// `CK_next`, for storage.
  const crypto::secret<32>& key() const noexcept { return ck_; }
  /// False once the counter is spent (`next == 2^32 - 1` was used): the sender must step.
  bool usable() const noexcept { return !spent_; }
  send_chain clone() const;

  /// Seals the next block and advances the chain (`CK_n` is wiped). Fails with
  /// `errc::bad_state` when the counter is spent. The caller persists the advanced chain
  /// before the block leaves.
  [[nodiscard]] expected<chain_block> seal(const chain_plaintext& pt, byte_view ad);

private:
  uint32_t epoch_;
  uint32_t next_;
  crypto::secret<32> ck_;
  bool spent_ = false;
};

/// The receiving end of a channel: the current epoch's `(e, CK_next, next)` and the message keys
/// of counters passed over.
struct recv_chain {
  uint32_t epoch = 0;
  uint32_t next = 0;
  crypto::secret<32> ck;
  std::map<uint32_t, crypto::secret<32>> skipped;

  recv_chain clone() const;
};

/// Why a chain block did not open.
enum class chain_failure : uint8_t {
  /// No receive chain, or one of another epoch (a step never received is a lost block).
  unknown_epoch = 1,
  /// A counter below `next` that is not a skipped one: reused or replayed.
  reused_counter,
  /// A counter more than `chain_max_skip` past `next`.
  too_far,
  /// The AEAD failed.
  decrypt,
};

std::string_view to_string(chain_failure f) noexcept;

/// What accepting a chain block changes: either a skipped key is used up, or the chain moves
/// to `(next_ck, next)` and the keys passed over join `skipped`.
struct chain_effects {
  uint32_t epoch = 0;
  uint32_t n = 0;
  bool from_skipped = false;
  uint32_t next = 0;
  crypto::secret<32> next_ck;
  std::vector<std::pair<uint32_t, crypto::secret<32>>> newly_skipped;
};

struct opened_chain_block {
  chain_plaintext pt;
  chain_effects effects;
};

/// Opens a chain block on `rc` (null: the channel has no receive chain). Changes nothing.
[[nodiscard]] expected<opened_chain_block, chain_failure> open_chain_block(const recv_chain* rc,
                                                                           const chain_block& b,
                                                                           byte_view ad);
/// Applies an accepted chain block's effects. REQUIRES: `rc` is the chain it was opened on,
/// unchanged since (the caller applies effects in acceptance order; a mismatch is ignored).
void apply_chain_effects(recv_chain& rc, chain_effects e);

/// A sealed DH step and the send chain it starts.
struct sealed_dh_step {
  dh_step step;
  send_chain chain;
};

/// Seals a DH step for epoch `epoch` (non-zero) from `sender` to (`receiver`, `lpk_r`) under
/// receiver key `ref` (its DH public key `e_pub`), with `AD_step`, and derives its chain.
[[nodiscard]] expected<sealed_dh_step> seal_dh_step(const identity& sender,
                                                    std::string_view receiver,
                                                    const public_key& lpk_r, const conv_id& conv,
                                                    const key_ref& ref, const public_key& e_pub,
                                                    const block_plaintext& pt, uint32_t epoch,
                                                    byte_view ad, crypto::rng& r);

/// An opened DH step and the receive chain it starts (to replace the channel's on acceptance).
struct opened_dh_step {
  block_plaintext pt;
  recv_chain chain;
};

/// Opens a DH step with the secret `e_r` of the key its block names. Fails with `errc::invalid`
/// for epoch 0, else as `open_block`. Changes nothing.
[[nodiscard]] expected<opened_dh_step> open_dh_step(const identity& receiver,
                                                    const crypto::secret<32>& e_r,
                                                    std::string_view sender,
                                                    const public_key& lpk_s, const conv_id& conv,
                                                    const dh_step& s, byte_view ad);

}  // namespace cowpi::protocol

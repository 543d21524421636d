// SPDX-License-Identifier: Apache-2.0
// The sending end of one pairwise channel S->R in chain mode (docs/protocol.md §4.8, "Using
// chains in a conversation"): when S must make a DH step, what each block of the channel is
// (a DH step or a chain block), and how rebuilt entries, VOID receipts and removals end an
// epoch. Also the length rule that tells a receiver which kind of block a slot holds. Pure and
// deterministic: time comes from the caller.
#pragma once

#include "cowpi/protocol/chain.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

namespace cowpi::protocol {

/// A channel steps after this many chain blocks of one epoch (§4.8: bounds PCS healing).
inline constexpr uint32_t chain_dh_every = 1024;
/// A channel steps when its epoch is older than this, in seconds (§4.8: 24 h).
inline constexpr uint64_t chain_dh_age_seconds = 24 * 3600;

/// Why a sender must make a DH step on a channel; `none` when a chain block will do.
enum class step_reason : uint8_t {
  none = 0,
  no_epoch,        // no epoch on the channel (first contact, after a re-add or a dropped step)
  newer_key,       // R announced a receive key newer than the one the step referenced
  dh_every,        // `chain_dh_every` chain blocks sealed in the epoch
  dh_age,          // the epoch is older than `chain_dh_age_seconds`
  void_reported,   // R reported one of S's entries of this epoch VOID (R may have lost the step)
  step_in_flight,  // a step S sealed is in an entry not yet known to be ordered (client)
  counter_gap,     // half of MAX_SKIP counters sealed past the last one known to reach R
};

/// Returns "no epoch", "newer key", ...
std::string_view to_string(step_reason r) noexcept;

/// A DH step a client sealed in an entry not yet known to be ordered: its chain is used only
/// once that entry is (§4.8 "Establishment").
struct pending_step {
  /// The entry's aseq and D (D is zero until `tag_pending`).
  uint64_t aseq = 0;
  hash32 d{};
  send_chain chain;
  key_kind referenced_kind = key_kind::prekey;
  uint64_t referenced_id = 0;
  uint64_t started_at = 0;

  pending_step clone() const;
};

/// S's state for S->R. Move-only (it holds a chain key). Persist it after every `seal` and
/// before the entry leaves, so a counter is never reused after a crash.
struct chain_sender {
  /// The last epoch number S used on the channel: it outlives re-adds and dropped epochs, so an
  /// epoch number is never used twice on one channel.
  uint32_t last_epoch = 0;
  /// The current epoch's chain, if any.
  std::optional<send_chain> chain;
  /// The receiver key the current epoch's step referenced (kind and id).
  key_kind referenced_kind = key_kind::prekey;
  uint64_t referenced_id = 0;
  /// When the current epoch's step was sealed (caller's clock, seconds).
  uint64_t started_at = 0;
  /// The aseq of the entry that carries the current epoch's step.
  uint64_t step_aseq = 0;
  /// Set by `on_void_reported` for an entry of the current epoch.
  bool void_reported = false;
  /// Client: steps in entries not yet ordered, in the order sealed. While any is left, every
  /// block on the channel is a DH step.
  std::vector<pending_step> pending;
  /// Client: the counter after the last chain block of the current epoch known to be ordered
  /// (R's `next` at least). Versions that are rebuilt or never ordered use counters R never
  /// sees; S steps before the gap could pass MAX_SKIP.
  uint32_t acked_next = 0;

  chain_sender clone() const;
};

/// Decides whether S must step on `s` at time `now`, given R's newest announced receive key
/// (`announced_id`, a RATCHET id; 0 when R announced none). The first reason that applies, in
/// the order of `step_reason`. (`dh_every` also keeps a chain's counter far from spent.)
step_reason step_due(const chain_sender& s, uint64_t announced_id, uint64_t now) noexcept;

/// What one slot of an entry holds in chain mode.
using channel_block = std::variant<dh_step, chain_block>;

/// The receiver key and long-term key a DH step is sealed to, and what it carries.
struct step_target {
  std::string_view receiver;
  public_key lpk{};
  key_ref ref;
  /// The DH public key of `ref` (for a RATCHET key, the announced one; `ref.pub` is zero).
  public_key e_pub{};
};

/// The block S puts in the slot for R in the entry with aseq `aseq`, built at `now`: a DH step
/// when `step_due` says so (the epoch becomes `last_epoch + 1`, its chain replaces the old one),
/// else the next chain block. `pt` is what the block carries: a DH step always carries
/// `pt.announced` (S's newest receive key; 0/zero when none) and the seed, a chain block
/// carries exactly `pt`. With `defer` (a client, whose entry may be rebuilt or never ordered)
/// a step's chain waits in `pending` until `on_ordered`; without it (a mirror, whose answers
/// are final) the step's chain is used at once. On failure `s` is unchanged.
[[nodiscard]] expected<channel_block> seal_channel_block(chain_sender& s, const identity& sender,
                                                         const conv_id& conv, const step_target& to,
                                                         uint64_t announced_id,
                                                         const chain_plaintext& pt, byte_view ad,
                                                         uint64_t aseq, uint64_t now,
                                                         crypto::rng& r, bool defer = false);

/// The pending steps of entry `aseq` sealed since the last call belong to the version with
/// digest `d` (known once every block of the entry is built).
void tag_pending(chain_sender& s, uint64_t aseq, const hash32& d) noexcept;

/// S's entry `aseq` was ordered with digest `d`, carrying `sent` on this channel (nullptr when
/// unknown or absent): a pending step of that version becomes the channel's epoch (R accepts
/// it before any later entry); pending steps of other versions of `aseq` or of earlier aseqs
/// can never be ordered and are dropped; a chain block of the current epoch moves `acked_next`.
void on_ordered(chain_sender& s, uint64_t aseq, const hash32& d, const slot_block* sent = nullptr);

/// R's RECEIPT reported S's entry with aseq `aseq` VOID: if it belongs to the current epoch, S
/// steps at its next block.
void on_void_reported(chain_sender& s, uint64_t aseq) noexcept;

/// R left the conversation (removed or left): the channel starts again with no epoch when R is
/// re-added. `last_epoch` is kept.
void on_removed(chain_sender& s) noexcept;

/// `enc(slot block)`: 189 bytes for a DH step, 24-96 for a chain block.
bytes enc_channel_block(const channel_block& b);

/// Parses a chain-mode slot by its length: 189 bytes is a DH step, 24, 56, 64 or 96 bytes a
/// chain block; anything else fails with `errc::bad_length`.
[[nodiscard]] expected<channel_block> decode_channel_block(byte_view in);

}  // namespace cowpi::protocol

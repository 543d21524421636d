// SPDX-License-Identifier: Apache-2.0
// Pairwise channels and the keys a party publishes (docs/design.md §2): one-time
// PREKEYs, LAST_RESORT keys, announced RATCHET receive keys, which key a
// sender references, how a receiver finds the key a block names, and the
// retirement rules. Shared by clients (user<->user, user->mirror) and
// mirrors (mirror->user).
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/chain_channel.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/types.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::protocol {

/// A key a party owns: the NAXOS seed `esk` (the secret scalar is
/// `clamp(H(esk || lsk))`, so a leaked seed alone reveals nothing) and its
/// public key.
struct owned_key {
  crypto::secret<32> esk;
  public_key pub{};
  /// When it was made (seconds; the caller's clock), for age limits.
  uint64_t created = 0;

  owned_key clone() const { return owned_key{esk.clone(), pub, created}; }
};

/// Makes a fresh owned key for `owner`.
owned_key make_owned_key(const identity& owner, uint64_t now, crypto::rng& r);

/// A pairwise channel's name from one party's point of view: the
/// conversation and the peer (a user or a mirror).
struct channel_ref {
  conv_id conv{};
  std::string peer;
  friend auto operator<=>(const channel_ref&, const channel_ref&) = default;
};

/// One one-time PREKEY still held, and the channel it was first used on.
struct prekey_slot {
  owned_key key;
  std::optional<channel_ref> bound;
  prekey_slot clone() const { return prekey_slot{key.clone(), bound}; }
};

/// One LAST_RESORT key still held.
struct last_resort_slot {
  owned_key key;
  /// 0 while current; else when it was replaced.
  uint64_t retired_at = 0;
  /// Channels that used it and have not yet referenced one of our RATCHET keys.
  std::set<channel_ref> pending;
  last_resort_slot clone() const { return last_resort_slot{key.clone(), retired_at, pending}; }
};

/// Every PREKEY and LAST_RESORT key a party publishes, across conversations.
/// The record of published (kind, id, pub) is kept forever: a block naming a
/// key not in it is a DIRECTORY failure (the router substituted it).
class key_store {
public:
  key_store() = default;
  key_store(const key_store&) = delete;
  key_store& operator=(const key_store&) = delete;
  key_store(key_store&&) = default;
  key_store& operator=(key_store&&) = default;
  ~key_store() = default;
  key_store clone() const;

  /// Makes `count` new one-time pre-keys, records them as published and
  /// returns their public parts (for an upload).
  std::vector<published_key> make_prekeys(const identity& owner, size_t count, uint64_t now,
                                          crypto::rng& r);
  /// Makes a new LAST_RESORT key, retiring the current one (kept until its
  /// grace period and pending channels allow `expire`); returns it.
  published_key rotate_last_resort(const identity& owner, uint64_t now, crypto::rng& r);
  /// The current LAST_RESORT key, if any.
  std::optional<published_key> current_last_resort() const;

  /// Deletes PREKEYs older than `max_age` and retired LAST_RESORT keys whose
  /// grace period has passed and that no pending channel still needs.
  /// Returns the ids deleted (kind, id).
  std::vector<std::pair<key_kind, uint64_t>> expire(uint64_t now, uint64_t prekey_max_age,
                                                    uint64_t last_resort_grace);

  /// True iff (kind, id, pub) was ever published by this party.
  bool was_published(key_kind kind, uint64_t id, const public_key& pub) const;

  /// One-time PREKEYs that were used and then deleted, with the channel that used them (kept
  /// forever, like the record of published keys): a block naming one of them from another
  /// channel means the directory handed it out twice, a DIRECTORY failure, not the sender's.
  const std::map<uint64_t, channel_ref>& used_prekeys() const noexcept { return used_prekeys_; }
  /// Deletes PREKEY `id`, recording that `chan` used it.
  void consume_prekey(uint64_t id, const channel_ref& chan);
  /// Restores one used-PREKEY record (storage).
  void restore_used_prekey(uint64_t id, channel_ref chan) {
    used_prekeys_.insert_or_assign(id, std::move(chan));
  }

  const std::map<uint64_t, prekey_slot>& prekeys() const noexcept { return prekeys_; }
  const std::map<uint64_t, last_resort_slot>& last_resort() const noexcept { return last_resort_; }
  const std::map<std::pair<key_kind, uint64_t>, public_key>& published() const noexcept {
    return published_;
  }
  uint64_t next_prekey_id() const noexcept { return next_prekey_id_; }
  uint64_t next_last_resort_id() const noexcept { return next_last_resort_id_; }
  uint64_t current_last_resort_id() const noexcept { return current_last_resort_; }

  // Mutators used when a block is accepted (see `block_effects`) and by storage to restore.
  std::map<uint64_t, prekey_slot>& mutable_prekeys() noexcept { return prekeys_; }
  std::map<uint64_t, last_resort_slot>& mutable_last_resort() noexcept { return last_resort_; }
  std::map<std::pair<key_kind, uint64_t>, public_key>& mutable_published() noexcept {
    return published_;
  }
  void restore_counters(uint64_t next_prekey, uint64_t next_lr, uint64_t current_lr) noexcept {
    next_prekey_id_ = next_prekey;
    next_last_resort_id_ = next_lr;
    current_last_resort_ = current_lr;
  }

private:
  std::map<uint64_t, prekey_slot> prekeys_;
  std::map<uint64_t, last_resort_slot> last_resort_;
  std::map<std::pair<key_kind, uint64_t>, public_key> published_;
  std::map<uint64_t, channel_ref> used_prekeys_;
  uint64_t next_prekey_id_ = 1;
  uint64_t next_last_resort_id_ = 1;
  uint64_t current_last_resort_ = 0;
};

/// One pairwise channel (conv, peer) from this party's side.
struct channel {
  /// RATCHET receive keys this party announced to the peer (at most two live).
  std::map<uint64_t, owned_key> mine;
  /// The id this party currently announces (0: none yet).
  uint64_t announced = 0;
  /// True once the peer referenced `announced`: the next send makes a new one.
  bool announced_referenced = false;
  /// The peer's newest announced key for us.
  std::optional<published_key> peer_latest;
  /// A fetched PREKEY or LAST_RESORT key of the peer, used until `peer_latest`.
  std::optional<key_ref> first_contact;
  /// Our PREKEY the peer used on this channel; deleted once the peer
  /// references one of our RATCHET keys here.
  std::optional<uint64_t> peer_used_prekey;
  /// Our LAST_RESORT key the peer used on this channel, released likewise.
  std::optional<uint64_t> peer_used_last_resort;

  // Chain mode (docs/protocol.md §4.8); unused in a public-key conversation.
  /// The sending end toward the peer.
  chain_sender out;
  /// The receiving chain from the peer: the epoch of the last DH step accepted from it.
  std::optional<recv_chain> in;
  /// Blocks accepted from the peer since `announced` was made (a new key is announced once
  /// the current one is referenced and this reaches `chain_dh_every`, or it is `chain_dh_age`
  /// old).
  uint32_t received_since_announce = 0;
  /// The epoch of the peer's latest DH step that could not open because the directory handed
  /// the peer a key of ours it must not (never published, or a PREKEY used on another channel:
  /// `block_failure::directory`); 0: none since the last step accepted. A chain block of that
  /// epoch cannot open either, and the directory is blamed for it too (§4.8).
  uint32_t broken_epoch = 0;

  channel clone() const;
};

/// The receiver key a sender uses on a channel: its wire ref and DH public key.
struct send_target {
  key_ref ref;
  public_key e_pub{};
};

/// Which receiver key to reference: the peer's `peer_latest`, else the
/// fetched first-contact key. `std::nullopt` when the caller must fetch one.
std::optional<send_target> choose_target(const channel& ch);

/// Returns the key to announce on `ch`, making a new one (id from `counter`,
/// which is incremented) when none exists or the peer referenced the current one.
published_key announce(channel& ch, uint64_t& counter, const identity& owner, uint64_t now,
                       crypto::rng& r);

/// What accepting a block changes (computed by `open_on_channel`, applied
/// only when the whole entry is accepted).
struct block_effects {
  channel_ref chan;
  key_ref ref;
  published_key announced;
  /// True when the block named a PREKEY already bound to another channel.
  bool prekey_reused = false;
  /// False for a chain block: it names no receiver key (`ref` is unused).
  bool names_key = true;
  /// False for a chain block that announces nothing (`announced` is unused).
  bool has_announced = true;
  /// A DH step: the receiving chain it starts (it replaces the channel's).
  std::optional<recv_chain> new_chain;
  /// A chain block: what accepting it changes on the channel's receiving chain.
  std::optional<chain_effects> chain;

  block_effects clone() const;
};

/// Why a block did not open.
enum class block_failure : uint8_t {
  /// The key it names was never published by us or is a PREKEY used on another channel: the
  /// directory substituted it. Also a chain block that does not open in the epoch of a DH step
  /// that failed so (`channel::broken_epoch`).
  directory = 1,
  /// Unknown or retired key, bad ref, failed AEAD, bad plaintext.
  failed,
};

struct opened_block {
  block_plaintext pt;
  block_effects effects;
};

/// Opens the slot `s` from (`sender`, `lpk_s`) with `ad` in a conversation of mode `mode`; a
/// slot of the other mode fails. A §4.3 block or a DH step: finds the receiver key its ref
/// names (our key store for PREKEY and LAST_RESORT, the channel for RATCHET), opens it and
/// checks the announced key is well-formed. A chain block: opens it on the channel's receiving
/// chain (§4.8's rule table) and checks an announced key, if any, is well-formed. Changes
/// nothing. The seed rule is the caller's (it depends on the message type); the opened
/// plaintext's seed is zero when a chain block carries none.
[[nodiscard]] expected<opened_block, block_failure> open_on_channel(
    const identity& self, const key_store& keys, const channel* ch, const conv_id& conv,
    std::string_view sender, const public_key& lpk_s, const slot_block& s, byte_view ad,
    block_mode mode = block_mode::pk);

/// Applies an accepted block's effects to the channel and key store: record
/// the peer's announced key if newer, retire our RATCHET keys older than the
/// one referenced, bind a first-used PREKEY, and release PREKEY/LAST_RESORT
/// obligations once the peer references a RATCHET key.
void apply_effects(channel& ch, key_store& keys, const block_effects& e);

/// Chain mode: whether S must make a DH step on `ch` at `now` (`step_due` with the peer's
/// newest announced key).
[[nodiscard]] step_reason chain_step_due(const channel& ch, uint64_t now) noexcept;

/// Chain mode: whether the next send on `ch` at `now` makes a new announced receive key (none
/// yet, or the current one was referenced and is `chain_dh_age` old or received
/// `chain_dh_every` blocks).
[[nodiscard]] bool chain_announce_due(const channel& ch, uint64_t now) noexcept;

/// Chain mode: whether the next send on `ch` at `now` is a chain block that changes nothing
/// on the channel but its send chain (no DH step, no new announced key).
[[nodiscard]] bool chain_block_only(const channel& ch, uint64_t now) noexcept;

/// Chain mode: the slot from `self` to (`peer`, `lpk_peer`) on `ch` in the entry with aseq
/// `aseq`: a DH step to `target` when `chain_step_due`, else the next chain block. A DH step
/// carries our announced key (a new one once the current one was referenced and is
/// `chain_dh_age` old or received `chain_dh_every` blocks); a chain block carries it only while
/// the peer has not referenced it. A non-zero `seed` is carried. `defer`: see
/// `seal_channel_block` (clients defer, mirrors do not). Fails with `errc::unknown_key` when a
/// step is due and `target` is empty; on failure the send chain is unchanged (a new announced
/// key may have been made, as with `send_on_channel`).
[[nodiscard]] expected<slot_block> send_chain_on_channel(
    const identity& self, channel& ch, uint64_t& counter, const conv_id& conv,
    std::string_view peer, const public_key& lpk_peer, const std::optional<send_target>& target,
    const crypto::secret<32>& seed, byte_view ad, uint64_t aseq, uint64_t now, crypto::rng& r,
    bool defer);

/// A slot nobody can open, of `mode`: random bytes under a RATCHET ref with id 0 (never
/// announced), as a §4.3 block or as a DH step of epoch 1.
slot_block dead_slot(block_mode mode, crypto::rng& r);

/// Builds a block from `self` to (`peer`, `lpk_peer`) on `ch`: announces our
/// current key (see `announce`) and references `target`.
[[nodiscard]] expected<block> send_on_channel(const identity& self, channel& ch, uint64_t& counter,
                                              const conv_id& conv, std::string_view peer,
                                              const public_key& lpk_peer, const send_target& target,
                                              const crypto::secret<32>& seed, byte_view ad,
                                              uint64_t now, crypto::rng& r);

}  // namespace cowpi::protocol

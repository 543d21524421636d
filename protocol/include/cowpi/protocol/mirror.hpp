// SPDX-License-Identifier: Apache-2.0
// The mirror provider's state machine (docs/design.md §3.4): PREPARE (a dry run),
// COMMIT (each index exactly once, CONFLICT and GAP answers, a stored answer
// for retries), mirror blocks binding (conv, i, T_i, H(block_U)), ACK, STATUS,
// AUDIT and its pre-keys. Pure: the caller persists and answers.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/channel.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/state.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace cowpi::protocol {

/// A mirror's record of one conversation. Conversation records are never
/// deleted: an existing record is the tombstone that refuses a second SETUP.
struct mirror_conv {
  conv_state st;
  /// Channels with each member (blocks to them, amb from them).
  std::map<std::string, channel> channels;
  /// RATCHET id counters per member; they outlive the channels.
  std::map<std::string, uint64_t> ratchet_next;
  /// Members' LAST_RESORT keys attached by the router (used until a member
  /// announces a key to us).
  std::map<std::string, published_key> member_lr;
  /// Answers kept until the router acknowledges them.
  std::map<uint64_t, answer> answers;

  mirror_conv clone() const;
};

/// D_i for every index, kept forever by storage (CONFLICT answers, AUDIT).
class mirror_history {
public:
  virtual ~mirror_history() = default;
  virtual std::optional<hash32> d_at(const conv_id& conv, uint64_t i) const = 0;
};

struct mirror_options {
  uint64_t prekey_max_age = 30 * 24 * 3600;
  uint64_t last_resort_period = 7 * 24 * 3600;
  uint64_t last_resort_grace = 30 * 24 * 3600;
  /// Most indices one AUDIT answers.
  uint64_t max_audit = 4096;
};

/// What a COMMIT produced. When `persist` is set the caller writes the
/// conversation record (state, channels, the answer), `d` at `index` and
/// the key store in ONE synced batch, and only then sends `response`.
struct commit_outcome {
  link_response response;
  bool persist = false;
  uint64_t index = 0;
  hash32 d{};
  /// With `persist`: the commit may have changed the key store (amb named one of our PREKEY or
  /// LAST_RESORT keys, or released such a key's obligation); false for a chain block and for a
  /// RATCHET reference on a channel that holds no obligation.
  bool keys_changed = false;
};

/// The mirror's own keys, shared by all its conversations: its key store and the keys that
/// PREPAREs not yet committed name (kept through `expire_keys`), with the PREPARE time.
struct mirror_keys {
  key_store store;
  std::map<std::pair<key_kind, uint64_t>, uint64_t> prepared_refs;
};

struct mirror_conv;

/// Whether a PREPARE or COMMIT of `p` in the conversation whose record is `mc` (null when the
/// mirror holds none) reads or changes `mirror_keys`: when its amb names one of our PREKEY or
/// LAST_RESORT keys, or names a RATCHET key on a channel whose author first reached us through
/// such a key (its first reference of a RATCHET key releases that key's obligation). A chain
/// block, and a RATCHET reference on any other channel, touch only the conversation's record.
[[nodiscard]] bool reads_keys(const prepare_msg& p, const mirror_conv* mc) noexcept;

/// One mirror. The calls without a conversation record argument are not thread-safe: one caller
/// at a time. The calls that take one (`mirror_conv*`) are const and touch only that record,
/// `mirror_keys` when `reads_keys` says so, and the immutable identity and options: a caller may
/// run them for distinct conversations concurrently (a writer per conversation, as the
/// provider's mirror conversation actors do) while it serialises every call that `reads_keys`
/// with one another and with `make_prekeys` and `expire_keys`.
class mirror {
public:
  mirror(identity self, mirror_options opts = {});
  mirror(const mirror&) = delete;
  mirror& operator=(const mirror&) = delete;
  mirror(mirror&&) = default;
  mirror& operator=(mirror&&) = default;
  ~mirror() = default;
  mirror clone() const;

  const identity& self() const noexcept { return self_; }
  /// Test hook: a lying mirror skips `validate`, the LAST_RESORT checks and
  /// the amb check, and attests whatever the router sends (tests only).
  void set_lying_for_test(bool lie) noexcept { lying_ = lie; }

  /// PREPARE: `validate` without the index rules (`parent < next`), `amb`,
  /// the attached LAST_RESORT keys; answers `prepared{D}` or `link_reject`.
  /// Changes nothing durable.
  link_response prepare(const prepare_msg& p, uint64_t now);
  /// COMMIT(i, D): see docs/design.md §3.4 step 4.
  commit_outcome commit(const commit_msg& cm, const mirror_history& h, uint64_t now,
                        crypto::rng& r);
  /// ACK(conv, i): drops answers <= i. Returns true if something changed.
  bool ack(const link_ack& a);
  status_answer status(const conv_id& conv) const;

  /// `prepare` on the record `mc` of `p`'s conversation (null when the mirror holds none),
  /// reading and changing `keys` only when `reads_keys(p, mc)`.
  link_response prepare(const mirror_conv* mc, mirror_keys& keys, const prepare_msg& p,
                        uint64_t now) const;
  /// `commit` on the record `mc` of `cm`'s conversation (null when the mirror holds none; a
  /// SETUP's new record is then returned in `created`), reading and changing `keys` only when
  /// `reads_keys(cm.payload, mc)`.
  commit_outcome commit(mirror_conv* mc, std::optional<mirror_conv>& created, mirror_keys& keys,
                        const commit_msg& cm, const mirror_history& h, uint64_t now,
                        crypto::rng& r) const;
  /// `ack` on the record of `a`'s conversation.
  static bool ack(mirror_conv& mc, const link_ack& a);
  /// `status` of a conversation whose record is `mc` (null when the mirror holds none).
  static status_answer status(const mirror_conv* mc);
  audit_answer audit(const audit_query& q, const mirror_history& h) const;
  /// What `audit` answers for a conversation whose next index is `next`, reading at most
  /// `max_audit` D values from `h`; needs no mirror state, so it may run on another thread
  /// against a thread-safe `h` (`audit` = this with the conversation's `next`).
  static audit_answer audit_range(const audit_query& q, uint64_t next, uint64_t max_audit,
                                  const mirror_history& h);
  /// What `commit` answers for index `i` of `conv`, already committed (`i < next`), retried
  /// with D = `d`: `stored` (the answer still held) or ALREADY_ANSWERED when `d` is the D_i
  /// held in `h`, else CONFLICT. Reads one D value and no mirror state, so it may run on another
  /// thread against a thread-safe `h`.
  static link_response answer_retry(const conv_id& conv, uint64_t i, const hash32& d,
                                    const std::optional<answer>& stored, const mirror_history& h);
  uint64_t max_audit() const noexcept { return opts_.max_audit; }
  /// Makes `count` one-time pre-keys (and rotates LAST_RESORT when due).
  mirror_prekeys make_prekeys(size_t count, uint64_t now, crypto::rng& r);
  /// Retires expired keys, except those an outstanding PREPARE references.
  bool expire_keys(uint64_t now);

  const std::map<conv_id, mirror_conv>& convs() const noexcept { return convs_; }
  const mirror_conv* find(const conv_id& conv) const noexcept;
  const key_store& keys() const noexcept { return keys_.store; }
  std::map<conv_id, mirror_conv>& mutable_convs() noexcept { return convs_; }
  key_store& mutable_keys() noexcept { return keys_.store; }
  /// The keys every conversation shares (see the class comment for who may touch them when).
  mirror_keys& shared_keys() noexcept { return keys_; }

private:
  struct checked;
  expected<checked, link_reject> check(const mirror_conv* mc, const key_store& keys,
                                       const prepare_msg& p, std::optional<uint64_t> index) const;
  /// The block of COMMIT `i` (transcript hash `t_i`) to slot `u` (long-term key `lpk`), bound to
  /// `bind`, on the channel with `u`: to its announced key, else to its LAST_RESORT key `lr`.
  expected<slot_block> mirror_block(mirror_conv& mc, const common& c, uint64_t i, const hash32& t_i,
                                    const std::string& u, const public_key& lpk, const hash32& bind,
                                    const published_key* lr, uint64_t now, crypto::rng& r) const;

  identity self_;
  mirror_options opts_;
  mirror_keys keys_;
  std::map<conv_id, mirror_conv> convs_;
  bool lying_ = false;
};

}  // namespace cowpi::protocol

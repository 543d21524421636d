// SPDX-License-Identifier: Apache-2.0
// The client (one user) state machine of Mobile CoWPI (docs/design.md §2-§3):
// pre-keys, SETUP, MESSAGE, RECEIPT, UPDATE, acceptance (§3.5), the outbox
// (§3.8) and the receipt rule (§3.7). Pure: no I/O, no clocks (time is an
// argument), randomness from the injected rng.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/channel.hpp"
#include "cowpi/protocol/events.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/state.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cowpi::protocol {

/// Where a client's conversation stands.
enum class conv_status : uint8_t {
  /// We submitted its SETUP and wait for the echo.
  pending_setup = 1,
  active,
  /// Stopped at `halt_index` by an alarm; sends nothing more there.
  halted,
};

/// One submitted version of an outbox message.
struct outbox_version {
  hash32 d{};
  submit_msg submit;
  friend bool operator==(const outbox_version&, const outbox_version&) = default;
};

/// A message handed to the router and not yet seen ordered (§3.8).
struct outbox_entry {
  /// Stable for the entry's life (its aseq may change when it is rebuilt).
  uint64_t id = 0;
  uint64_t aseq = 0;
  msg_type type = msg_type::message;
  /// MESSAGE: the plaintext, to rebuild with the same aseq.
  bytes plaintext;
  /// UPDATE: the requested ops, re-applied on rebuild.
  member_list adds;
  std::vector<std::string> removes;
  /// Every submitted version (the last is current); whichever is ordered counts.
  std::vector<outbox_version> versions;
  /// STALE(u) received: rebuild once the UPDATE at u is processed.
  std::optional<uint64_t> stale_after;
  friend bool operator==(const outbox_entry&, const outbox_entry&) = default;
};

/// A version of an abandoned aseq that the router may still order (§3.6).
struct orphan_version {
  uint64_t aseq = 0;
  hash32 d{};
  /// MESSAGE: its plaintext. If this version comes back ordered, it is what the author's
  /// transcript shows (whatever message now holds that aseq in the outbox).
  bytes plaintext{};
  /// The outbox entry this version came from while that entry still waits to be ordered
  /// under another aseq (0: the entry was abandoned). If this version is ordered, that entry
  /// is sent and leaves the outbox.
  uint64_t entry_id = 0;
  friend bool operator==(const orphan_version&, const orphan_version&) = default;
};

/// Everything a client holds for one conversation.
struct client_conv {
  conv_state st;
  conv_status status = conv_status::active;
  uint64_t halt_index = 0;
  /// Pairwise channels with other members and with the mirrors of MS.
  std::map<std::string, channel> channels;
  /// RATCHET id counters per peer; they outlive the channels (§2).
  std::map<std::string, uint64_t> ratchet_next;
  std::vector<outbox_entry> outbox;
  std::vector<orphan_version> orphans;
  /// The next outbox entry id.
  uint64_t next_outbox_id = 1;
  /// VOID indices not yet covered by one of our ordered RECEIPTs.
  std::set<uint64_t> voids_pending;
  /// Greatest index accepted from another member (-1: none).
  int64_t last_foreign = -1;
  /// Greatest parent of our own entries, ordered or in the outbox (-1: none).
  int64_t own_parent = -1;
  /// Time of our last RECEIPT submission.
  uint64_t last_receipt_time = 0;
  /// Indices for which a PROVIDER alarm was raised (once per (conv, i)).
  std::set<uint64_t> alarmed;
  /// D of recent indices (the duplicate check of §3.5 step 1).
  std::map<uint64_t, hash32> d_recent;

  client_conv clone() const;
};

/// What a removed member keeps (§3.5 step 0, §3.6).
struct client_tombstone {
  uint64_t own_aseq = 0;
  std::map<std::string, uint64_t> ratchet_next;
  /// The index after the UPDATE that removed us: a joining UPDATE below it is a replay of
  /// one that added us before (0: no such bound).
  uint64_t next = 0;
  friend bool operator==(const client_tombstone&, const client_tombstone&) = default;
};

/// Read access to D_i of indices older than the client keeps in memory
/// (storage provides it). Optional: without it such duplicates are dropped.
class client_history {
public:
  virtual ~client_history() = default;
  virtual std::optional<hash32> d_at(const conv_id& conv, uint64_t i) const = 0;
};

/// The pre-keys to upload (`client::plan_prekey_upload`). Persist the key store before
/// uploading when `keys_changed`.
struct prekey_upload {
  upload_prekeys up;
  bool keys_changed = false;
  bool empty() const noexcept { return up.one_time.empty() && !up.last_resort; }
};

/// Tunables of the client (not protocol constants).
struct client_options {
  /// One-time pre-keys to keep published.
  size_t prekey_target = 100;
  /// Top up when the router reports fewer than this many.
  size_t prekey_low_water = 25;
  /// PREKEY maximum age (seconds).
  uint64_t prekey_max_age = 30 * 24 * 3600;
  /// LAST_RESORT rotation period and grace (seconds; grace >= router retention).
  uint64_t last_resort_period = 7 * 24 * 3600;
  uint64_t last_resort_grace = 30 * 24 * 3600;
  /// How many D_i to keep in memory per conversation.
  size_t d_window = 256;
  /// Most envelopes buffered ahead of `next` per conversation.
  size_t max_buffered = 4096;
};

/// Test hooks that turn a client into a dishonest author (equivocation,
/// wedging). Empty in production; only tests set them.
struct client_test_hooks {
  /// Rewrites C before it is hashed (e.g. a random parent_hash).
  std::function<void(common&)> on_common;
  /// Rewrites the seed sealed into one recipient's block.
  std::function<void(const std::string& recipient, crypto::secret<32>& seed)> on_seed;
  /// Rewrites one recipient's block after sealing (before blocks_root).
  std::function<void(const std::string& recipient, slot_block& b)> on_block;
  /// Rewrites one author->mirror block after sealing.
  std::function<void(const std::string& mirror, slot_block& b)> on_amb;
};

/// A message ready for the router: persist the client (the outbox) first.
struct outgoing {
  conv_id conv{};
  uint64_t aseq = 0;
  submit_msg submit;
};

/// What persisting after an operation must cover.
struct client_changes {
  std::set<conv_id> convs;          // conversation records (state, channels, outbox, ...)
  std::set<conv_id> removed_convs;  // conversations turned into tombstones
  bool keys = false;                // the key store
  bool identity = false;
};

/// The result of handing the client one envelope.
struct receive_result {
  std::vector<accepted_entry> accepted;
  std::vector<alarm> alarms;
  /// To send, in order, after persisting: acknowledgements and resubmissions.
  std::vector<ack_msg> acks;
  std::vector<outgoing> resubmit;
  /// Set when a conversation we created was taken: it was recreated under
  /// `new_conv`, whose SETUP is in `resubmit`.
  std::optional<std::pair<conv_id, conv_id>> recreated;
  client_changes changes;
};

/// The result of a rejection hint.
struct rejection_result {
  std::vector<outgoing> resubmit;
  /// A permanent rejection: the message was dropped from the outbox.
  std::optional<rejection> dropped;
  client_changes changes;
};

/// How a client meets the router's refusal of one of its entries (§3.8), decided from the
/// rejection alone before `client::on_rejection` runs.
struct rejection_plan {
  /// The rejection as `on_rejection` takes it: a LIMIT that is flow control
  /// (`limit_pending`, `limit_update_rate`, `limit_setup_rate`) becomes UNAVAILABLE with the
  /// same detail: the entry is kept and resent, not dropped.
  rejection handled;
  /// The entry stays in the outbox (resent, rebuilt or already ordered): the send did not fail.
  bool keeps_message = false;
  /// Resend no sooner than this many seconds (the router's wait in a LIMIT(update_rate or
  /// setup_rate), clamped to 1..3600); 0: the caller's backoff alone.
  uint64_t wait_s = 0;
  /// Handling it may rebuild entries (STALE, and a permanent refusal), which needs a key for
  /// every peer first.
  bool needs_keys = false;
};

/// Classifies `r` (pure).
rejection_plan plan_rejection(const rejection& r);

/// One user's client. Not thread-safe (a value the caller serialises).
///
/// Every operation either fails with no change, or changes the client. `receive` and
/// `on_rejection` say in `client_changes` what to persist; the sending operations (`create`,
/// `send_message`, `send_receipt`, `update`, `flush_rebuilds`) change the conversation they
/// name, `add_bundles` its channels, and `make_prekeys`/`expire_keys` the key store. Persist
/// before sending anything an operation returns (docs/design.md §4 "Acknowledgement = durability").
class client {
public:
  client(identity self, member_list pinned_ms, client_options opts = {});
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  client(client&&) = default;
  client& operator=(client&&) = default;
  ~client() = default;
  /// A deep copy (secrets included), for simulations of crash and restore.
  client clone() const;

  const identity& self() const noexcept { return self_; }
  const member_list& pinned_ms() const noexcept { return pinned_ms_; }
  const client_options& options() const noexcept { return opts_; }
  /// Installs dishonest-author hooks (tests only).
  void set_hooks_for_test(client_test_hooks h) { hooks_ = std::move(h); }

  // -- Pre-keys ------------------------------------------------------------
  /// Makes `count` one-time pre-keys (and a first LAST_RESORT key when there
  /// is none, or a rotation when the current one is older than the period)
  /// and returns the upload. Changes the key store.
  upload_prekeys make_prekeys(size_t count, uint64_t now, crypto::rng& r);
  /// How many pre-keys to upload given the router's count (0: none needed).
  size_t prekeys_needed(uint64_t router_remaining) const noexcept;
  /// Deletes expired pre-keys and retired LAST_RESORT keys (§2 retirement).
  /// Returns true if anything changed.
  bool expire_keys(uint64_t now);
  /// The id below which none of our PREKEYs can still open a first contact: the oldest one
  /// neither used nor expired, else the next id to be made. The router's pool may still hold
  /// keys below it (expired here, or used): `retire_prekeys{below}` drops them there
  /// (docs/protocol.md §12, "Retired keys leave the pool").
  uint64_t prekey_retire_floor() const noexcept;
  /// The current LAST_RESORT key is missing or older than `last_resort_period`.
  bool last_resort_due(uint64_t now) const noexcept;
  /// What to upload so that the router holds enough of our pre-keys (§2, docs/protocol.md §12).
  /// `pool` is the router's ACCOUNT_STATUS answer; without one (at REGISTER) every unbound key
  /// goes, topped up to `prekey_target`. With one: the unbound keys above its highest id (made
  /// but never uploaded), new keys when its count is below `prekey_low_water` (up to
  /// `prekey_target`), and our current LAST_RESORT key when it is not the one it holds. A
  /// LAST_RESORT key is rotated when due. Never more than `max_prekey_batch` one-time keys.
  [[nodiscard]] prekey_upload plan_prekey_upload(const status_result* pool, uint64_t now,
                                                 crypto::rng& r);

  // -- Sending -------------------------------------------------------------
  /// Members and mirrors of `conv` this client has no key to send to yet:
  /// fetch bundles for them, then `add_bundles`.
  std::vector<std::string> missing_keys(const conv_id& conv) const;
  /// Records fetched first-contact keys for `conv`: for its members and mirrors, and for
  /// users about to be added by `update` (so any owner is recorded). A bundle whose lpk
  /// differs from a pinned mirror's is refused with `errc::directory` and nothing is recorded.
  /// `requested` are the owners the fetch asked for: a current member among them left without
  /// a usable key (the directory does not know it, or holds another long-term key for it than
  /// the conversation does) is *unreachable*: it is left out of `missing_keys`, and messages
  /// carry a block for it that nobody can open (it reads them as VOID), so it never keeps us
  /// from sending to the others or from removing it. Returns the members refused this way.
  [[nodiscard]] expected<std::vector<std::string>> add_bundles(
      const conv_id& conv, const std::vector<prekey_bundle>& bundles,
      const std::vector<std::string>& requested = {});
  /// Members of `conv` currently unreachable (see `add_bundles`).
  std::vector<std::string> unreachable(const conv_id& conv) const;
  /// Creates a conversation with `others` (ids with long-term keys) using
  /// first-contact `bundles` for each of them and for each pinned mirror.
  /// Fails with `errc::unknown_key` when a bundle is missing. `mode` is the conversation's
  /// block mode for its whole life (docs/protocol.md §5.2: its C.version).
  /// `chosen`, when set, is the conversation id (drawn earlier with `new_conv_id`, so that
  /// the key fetch could name it); it fails with `errc::already_exists` when taken.
  [[nodiscard]] expected<outgoing> create(const member_list& others,
                                          const std::vector<prekey_bundle>& bundles, uint64_t now,
                                          crypto::rng& r, block_mode mode = block_mode::pk,
                                          std::optional<conv_id> chosen = std::nullopt);
  /// A random conversation id that names none of ours, live or tombstoned.
  [[nodiscard]] conv_id new_conv_id(crypto::rng& r) const;
  /// Sends a chat message.
  [[nodiscard]] expected<outgoing> send_message(const conv_id& conv, byte_view plaintext,
                                                uint64_t now, crypto::rng& r);
  /// Sends a standalone RECEIPT (whether one is due is `receipt_due`).
  [[nodiscard]] expected<outgoing> send_receipt(const conv_id& conv, uint64_t now, crypto::rng& r);
  /// Adds and/or removes members (removing oneself = leaving). `adds` carry
  /// long-term keys; each added id needs a bundle (`add_bundles`) first.
  [[nodiscard]] expected<outgoing> update(const conv_id& conv, const member_list& adds,
                                          const std::vector<std::string>& removes, uint64_t now,
                                          crypto::rng& r);
  /// The receipt rule of §3.7 at time `now`: something new to acknowledge (an entry from
  /// another member that is not a RECEIPT: answering RECEIPTs would have members answer each
  /// other's for ever) newer than our latest parent, or an unreported VOID; at most one per
  /// R(n). Every entry we author acknowledges up to its parent, so the 24 h floor always holds
  /// while something is unacknowledged: R(n) is far below it.
  bool receipt_due(const conv_id& conv, uint64_t now) const;

  // -- Receiving -----------------------------------------------------------
  /// Acceptance of one envelope (§3.5). Buffers envelopes ahead of `next`
  /// and processes them once they are due. Never fails: problems are alarms.
  receive_result receive(const envelope& e, uint64_t now, crypto::rng& r,
                         const client_history* history = nullptr);

  /// Handles a router rejection of the message (`conv`, `aseq`) (§3.8). An
  /// unauthenticated hint: it never changes conversation state.
  rejection_result on_rejection(const conv_id& conv, uint64_t aseq, const rejection& rej,
                                uint64_t now, crypto::rng& r);
  /// Rebuilds outbox messages whose STALE(u) UPDATE has been processed (or
  /// whose rebuild waited for keys); returns them to send.
  std::vector<outgoing> flush_rebuilds(const conv_id& conv, uint64_t now, crypto::rng& r);
  /// Every outbox message of `conv`, current versions, for resending after a
  /// reconnect.
  std::vector<outgoing> pending(const conv_id& conv) const;

  // -- State access (storage, UI) -------------------------------------------
  const std::map<conv_id, client_conv>& convs() const noexcept { return convs_; }
  const std::map<conv_id, client_tombstone>& tombstones() const noexcept { return tombstones_; }
  const client_conv* find(const conv_id& conv) const noexcept;
  const key_store& keys() const noexcept { return keys_; }
  /// Restore hooks for storage.
  std::map<conv_id, client_conv>& mutable_convs() noexcept { return convs_; }
  std::map<conv_id, client_tombstone>& mutable_tombstones() noexcept { return tombstones_; }
  key_store& mutable_keys() noexcept { return keys_; }

private:
  struct build_result;
  struct entry_run;  // one envelope's way through §3.5 (client_receive.cpp)
  expected<build_result> build(client_conv& cc, const common& c_template, const bytes* plaintext,
                               uint64_t now, crypto::rng& r, const member_list* peer_lpks);
  void process_one(const envelope& e, uint64_t now, crypto::rng& r, const client_history* history,
                   receive_result& out);
  std::vector<outgoing> rebuild_from(client_conv& cc, size_t first, uint64_t now, crypto::rng& r);
  expected<slot_block> send_with_fallback(client_conv& cc, channel& ch, uint64_t& counter,
                                          const conv_id& conv, const std::string& peer,
                                          const public_key& lpk, const crypto::secret<32>& seed,
                                          byte_view ad, block_mode mode, uint64_t aseq,
                                          uint64_t now, crypto::rng& r);

  identity self_;
  member_list pinned_ms_;
  client_options opts_;
  key_store keys_;
  std::map<conv_id, client_conv> convs_;
  std::map<conv_id, client_tombstone> tombstones_;
  client_test_hooks hooks_;
  /// Envelopes ahead of `next` (memory only: the router resends them).
  std::map<conv_id, std::map<uint64_t, envelope>> buffer_;
  /// Members the directory has no usable key for (memory only: a fetch after a restart
  /// finds them again). They get blocks nobody can open until one of them announces a key.
  std::map<conv_id, std::set<std::string>> unreachable_;
};

}  // namespace cowpi::protocol

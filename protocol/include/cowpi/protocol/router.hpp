// SPDX-License-Identifier: Apache-2.0
// The routing provider's pure logic (docs/design.md §3.4, §3.10): intake checks,
// per-author FIFOs and PREPARE serialisation, index assignment, COMMIT
// bookkeeping, tailored envelopes, and the pre-key directory policy. The
// networked runtime (actors/) calls it; nothing here does I/O.
#pragma once

#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/state.hpp"
#include "cowpi/protocol/validate.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cowpi::protocol {

/// Router-intake limits from configuration. They may only be stricter than
/// the protocol's constants (config loading enforces it); `validate` and the
/// mirrors never see them.
struct intake_limits {
  size_t max_members = 1024;
  uint64_t max_body = 40 + 64 * 1024;
  /// Queued (not yet ordered) messages per author per conversation.
  size_t max_pending_per_author = 64;
  /// Queued messages per conversation (past it: UNAVAILABLE, retryable).
  size_t max_pending_per_conv = 1024;
  /// Minimum seconds between two UPDATEs of one author in one conversation (0: no limit);
  /// with a limit, an author also has at most one UPDATE queued or in flight. Past it:
  /// LIMIT(update_rate) with the seconds to wait as its value.
  uint64_t min_update_interval = 5;
};

/// One ordered log entry: what storage writes at (conv, i) together with the
/// conversation record, in one synced batch, before COMMIT is sent.
struct log_entry {
  uint64_t index = 0;
  common c;
  std::optional<bytes> body;
  hash32 blocks_root{};
  hash32 d{};
  hash32 t_prev{};
  hash32 t{};
  /// slots(C): every recipient and the author, sorted; a member's slot is its
  /// position here.
  std::vector<std::string> slots;
  /// The author block for each recipient (sorted by recipient).
  std::vector<recipient_block> blocks;
  /// One author->mirror block per mirror of MS, in MS order.
  std::vector<slot_block> ambs;
  /// LAST_RESORT keys attached to PREPARE/COMMIT (added members; all for SETUP).
  std::vector<last_resort_attachment> last_resort;
  /// Members added by this entry (all members for SETUP): their cursors start here.
  std::vector<std::string> joiners;

  /// The PREPARE payload for mirror number `k` of MS.
  prepare_msg prepare_for(size_t k) const;
  /// The (R, H(block_R)) pairs.
  std::vector<block_digest> digests() const;
  friend bool operator==(const log_entry&, const log_entry&) = default;
};

/// A member's delivery cursor in one conversation: the first index it has not acknowledged and,
/// once an UPDATE removed it, the last index it holds a slot in.
struct delivery_cursor {
  uint64_t next = 0;
  std::optional<uint64_t> last;
  friend bool operator==(const delivery_cursor&, const delivery_cursor&) = default;
};

/// The members whose cursors entry `e` changes once it is deliverable: its joiners, then (for
/// an UPDATE) the members it removes.
std::vector<std::string> cursor_members(const log_entry& e);

/// The cursors entry `e` sets once it is deliverable (docs/protocol.md §7.5), for
/// `cursor_members(e)` in order, given their cursors now (`current`, aligned with them; nullopt:
/// none) and `log_start`, the first index the log still holds. A joiner starts at `e.index`,
/// except a re-added member still catching up on its earlier membership, which keeps its
/// cursor (it must first receive the entries up to the UPDATE that removed it, or it would
/// buffer the joining UPDATE for ever) unless retention deleted what it points to (a cursor
/// below the log's start reads HISTORY_EXPIRED for ever). A removed member keeps its cursor and
/// holds slots up to `e.index`; one without a cursor gets none. REQUIRES: `current` has one
/// entry per `cursor_members(e)`.
std::vector<std::pair<std::string, delivery_cursor>> cursor_changes(
    const log_entry& e, const std::vector<std::optional<delivery_cursor>>& current,
    uint64_t log_start);

/// The mirror blocks of one entry, per mirror (MS order), each in slots order.
using mirror_answers = std::vector<std::optional<std::vector<slot_block>>>;

/// Builds the ENVELOPE of `e` for `member` from the stored entry and every
/// mirror's answer. `member` must hold a slot. Fails with `errc::not_found`
/// if it does not, `errc::bad_state` if an answer is missing.
[[nodiscard]] expected<envelope> make_envelope(const log_entry& e, const mirror_answers& a,
                                               const std::string& member);

/// A PREPARE round for the head of one author's FIFO.
struct prepare_job {
  uint64_t job = 0;
  std::string author;
  uint64_t aseq = 0;
  /// One PREPARE per mirror of MS, in MS order.
  std::vector<prepare_msg> per_mirror;
};

/// What a complete PREPARE round decided.
struct prepare_decision {
  /// Rejections to send, each for (author, aseq).
  struct rejected {
    std::string author;
    uint64_t aseq = 0;
    rejection why;
  };
  std::vector<rejected> rejections;
  /// When ordered: the entry to persist (with the conversation record) before
  /// sending COMMIT(i, D) with `entry.prepare_for(k)` to mirror k.
  std::optional<log_entry> ordered;
};

/// What one mirror's COMMIT answer led to.
struct commit_progress {
  /// All mirrors answered `index`: persist the answers, ACK every mirror,
  /// mark the entry deliverable and poke its members.
  std::optional<uint64_t> complete;
  /// The mirror reported GAP(next): resend its COMMITs from `next`.
  std::optional<uint64_t> resend_from;
  /// CONFLICT or REJECT at COMMIT: stop the conversation (operator alarm).
  std::optional<std::string> stop_reason;
  /// With `complete`: the entry and every mirror's blocks, to persist.
  std::optional<log_entry> entry;
  mirror_answers answers;
};

/// What the directory holds for a user, as PREPARE needs it: the registered long-term key and
/// the current LAST_RESORT key (nullopt: none uploaded yet).
struct directory_entry {
  public_key lpk{};
  std::optional<published_key> last_resort;
};

/// Looks a user up in the directory (nullopt: not registered).
using directory_lookup = std::function<std::optional<directory_entry>(const std::string&)>;

/// The routing provider's state for one conversation. Not thread-safe: the
/// conversation actor owns it.
class router_conv {
public:
  /// A conversation not yet set up (or being set up) under `conv`.
  explicit router_conv(const conv_id& conv, member_list configured_ms, intake_limits limits);

  // -- Persisted part (the conversation record) ------------------------------
  /// The state after the last ordered index; nullptr before SETUP.
  const conv_state* state() const noexcept { return st_ ? &*st_ : nullptr; }
  bool stopped() const noexcept { return stopped_; }
  const std::string& stop_reason() const noexcept { return stop_reason_; }
  /// Per author: the index and D of its last ordered message.
  const std::map<std::string, std::pair<uint64_t, hash32>>& last_ordered() const noexcept {
    return last_ordered_;
  }
  /// Per author: when its last UPDATE was ordered (rate limit).
  const std::map<std::string, uint64_t>& last_update_time() const noexcept {
    return last_update_time_;
  }
  /// Restores the persisted part (storage).
  void restore(std::optional<conv_state> st, bool stopped, std::string reason,
               std::map<std::string, std::pair<uint64_t, hash32>> last_ordered,
               std::map<std::string, uint64_t> last_update_time);
  /// Stops the conversation (after CONFLICT/REJECT at COMMIT): clients get STOPPED.
  void stop(std::string reason);

  // -- Intake and ordering ---------------------------------------------------
  /// Intake checks of §3.4 step 1 for a SUBMIT from `session_user` at `now`.
  /// On success the message is queued (or was already queued: idempotent) and
  /// its aseq is returned; else a typed rejection.
  [[nodiscard]] expected<uint64_t, rejection> intake(submit_msg s, const std::string& session_user,
                                                     uint64_t now);
  /// Heads of FIFOs that may be PREPAREd now (their author has nothing in
  /// flight). `directory` gives each added member's registered key and LAST_RESORT key.
  /// Heads that fail `validate` are rejected into `rejections` instead, and so are SETUPs and
  /// UPDATEs naming a member with a key other than its registered one (`INVALID(member_key)`)
  /// or one unknown or without a LAST_RESORT key (`UNKNOWN_USER(id)`).
  std::vector<prepare_job> ready(const directory_lookup& directory,
                                 std::vector<prepare_decision::rejected>& rejections);
  /// Every id `ready` would look up in the directory if called now (the members of SETUP heads
  /// and the adds of UPDATE heads), sorted, without duplicates: a caller that must not block
  /// reads them first.
  std::vector<std::string> directory_needs() const;
  /// Records mirror `k`'s answer to `job`. Returns a decision once every
  /// mirror answered (or one rejected); `timeout` marks a mirror that did not answer.
  std::optional<prepare_decision> on_prepared(uint64_t job, size_t k, const link_response& r,
                                              uint64_t now);
  /// Gives up on a PREPARE round (a mirror timed out): UNAVAILABLE.
  std::optional<prepare_decision> on_prepare_timeout(uint64_t job);
  /// Records mirror `k`'s answer to COMMIT(index).
  commit_progress on_commit_answer(uint64_t index, size_t k, const link_response& r);
  /// Entries ordered but not answered by every mirror (volatile copy; storage
  /// reloads them after a restart through `resume`).
  const std::map<uint64_t, log_entry>& in_flight() const noexcept { return in_flight_; }
  /// The answers collected so far for an in-flight entry.
  const mirror_answers* answers(uint64_t index) const;
  /// After a restart: an entry logged but missing answers (it counts as in
  /// flight for its author until complete).
  void resume(log_entry e, mirror_answers known);
  /// Number of queued and in-flight messages.
  size_t pending() const noexcept;

private:
  struct queued {
    submit_msg s;
    hash32 d{};
    hash32 root{};
    std::vector<block_digest> digests;
  };
  struct author_queue {
    std::deque<queued> fifo;
    /// The head is being PREPAREd (job id) or its entry awaits COMMIT answers.
    std::optional<uint64_t> job;
    std::optional<uint64_t> committing;
  };
  struct job_state {
    std::string author;
    queued q;
    std::vector<std::optional<link_response>> answers;
    std::vector<last_resort_attachment> last_resort;
  };

  void reject_queue(const std::string& author, const rejection& why,
                    std::vector<prepare_decision::rejected>& out);
  uint64_t expected_aseq(const std::string& author) const;

  conv_id conv_{};
  member_list configured_ms_;
  intake_limits limits_;
  std::optional<conv_state> st_;
  bool stopped_ = false;
  std::string stop_reason_;
  std::map<std::string, std::pair<uint64_t, hash32>> last_ordered_;
  std::map<std::string, uint64_t> last_update_time_;

  std::map<std::string, author_queue> queues_;
  std::map<uint64_t, job_state> jobs_;
  uint64_t next_job_ = 1;
  std::map<uint64_t, log_entry> in_flight_;
  std::map<uint64_t, mirror_answers> collected_;
};

/// Maps a `validate` failure to the router's typed answer (§3.10).
rejection rejection_for(rule r, const conv_state* s, const common& c);

/// The pre-key directory's hand-out policy (§2 "Pre-keys"): a requester may
/// take one-time keys up to `budget` per `window` seconds (enough for one
/// SETUP of maximum size); past it, or when a pool is empty, the owner's
/// LAST_RESORT key is handed out, so a fetch never fails.
struct fetch_budget {
  uint64_t window_start = 0;
  uint64_t used = 0;
};

struct directory_policy {
  uint64_t window = 3600;
  uint64_t budget = 2 * (1024 + 8);
  /// Takes one one-time key from the budget if allowed; returns false if the
  /// requester must get LAST_RESORT keys.
  bool take(fetch_budget& b, uint64_t now) const noexcept;
};

}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// The routing provider's persistent state (docs/design.md §5): the user directory and pre-key
// pools, conversation records, the ordered log stored once and addressable per recipient, delivery
// cursors and low-water-mark retention.
#pragma once

#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/store.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cowpi::storage {

/// A registered user.
struct user_info {
  std::string id;
  crypto::public_key lpk{};
  uint64_t registered_at = 0;
};

/// A log entry read back with every mirror's answer (empty while it is still pending).
struct stored_entry {
  protocol::log_entry entry;
  protocol::mirror_answers answers;
  /// True once every mirror's COMMIT answer is persisted (the entry is deliverable).
  bool complete = false;
  uint64_t ordered_at = 0;
};

namespace detail {
class task_thread;
}

/// What `collect` removed.
struct gc_result {
  /// The first index the log still holds (entries below it are gone).
  uint64_t log_start = 0;
  uint64_t deleted = 0;
};

/// The router's store. Thread-safe: conversation actors, queue actors and the directory may call
/// it concurrently; writes from all of them are group-committed into shared synced writes.
/// Conversation writes (`append`, `persist_answers`, `persist_stop`) for one conversation must
/// come from its single owner, in order; directory operations are serialised internally.
class router_store {
public:
  /// Opens (creating) the router store at `path`. Fails as `open_store`.
  [[nodiscard]] static expected<std::unique_ptr<router_store>> open(
      const std::filesystem::path& path, const open_options& o = {});

  explicit router_store(std::unique_ptr<store> s);
  ~router_store();
  router_store(const router_store&) = delete;
  router_store& operator=(const router_store&) = delete;
  /// The underlying store, for tests and benchmarks; the runtime uses the typed calls.
  store& raw() noexcept { return *s_; }
  /// The group-commit writer's counters, and whether a write failed (metrics).
  write_stats stats() const noexcept { return s_->stats(); }
  bool failed() const noexcept { return s_->failed(); }
  /// True when some user is registered here (a router node then holds data for the shard map
  /// check, even before any conversation).
  [[nodiscard]] expected<bool> has_users() const;
  /// `storage::check_shard_map` on this store (shard_map.hpp).
  [[nodiscard]] expected<void> check_shard_map(const std::vector<std::string>& nodes,
                                               bool holds_data);

  // -- Directory ---------------------------------------------------------------------------
  /// Registers `id` with `lpk` at time `now`, creating its (empty) directory entry. Fails with
  /// `errc::already_exists` when the id is a registered user or a provider's id.
  [[nodiscard]] expected<void> register_user(const std::string& id, const public_key& lpk,
                                             uint64_t now);
  /// Records a provider (mirror) id and its lpk from configuration so that its pre-keys can be
  /// uploaded and fetched; idempotent. Fails with `errc::conflict` if the id is held by a user
  /// or by a provider with another lpk.
  [[nodiscard]] expected<void> register_provider(const std::string& id, const public_key& lpk);
  [[nodiscard]] expected<std::optional<user_info>> find_user(const std::string& id) const;
  /// Adds one-time keys to `owner`'s pool (ids not above the highest ever uploaded are
  /// ignored: an upload is idempotent) and replaces its LAST_RESORT key if one is given, in one
  /// synced batch. Fails with `errc::not_found` for an unknown owner and with
  /// `errc::too_large`, storing nothing, when the pool would hold more than
  /// `protocol::max_prekey_pool` keys.
  [[nodiscard]] expected<void> upload_prekeys(const std::string& owner,
                                              const protocol::upload_prekeys& up);
  /// Drops from `owner`'s pool the one-time keys with ids below `below` (its owner retired
  /// them) and lowers its count, in one synced batch; returns how many went. Fails with
  /// `errc::not_found` for an unknown owner.
  [[nodiscard]] expected<uint64_t> retire_prekeys(const std::string& owner, uint64_t below);
  /// One bundle per known owner (unknown ones are left out), in one synced batch: a one-time
  /// key taken out of the pool when the pool has one and `take_one_time()` allows it, else the
  /// LAST_RESORT key (an owner with neither is left out). A key is handed out at most once.
  [[nodiscard]] expected<std::vector<protocol::prekey_bundle>> fetch_prekeys(
      const std::vector<std::string>& owners, const std::function<bool()>& take_one_time);
  /// The directory status of `owner` (pool level, LAST_RESORT id, highest one-time id).
  [[nodiscard]] expected<protocol::status_result> directory_status(const std::string& owner) const;
  /// What the ordering path needs of users a SETUP or UPDATE adds: per id its registered key
  /// and LAST_RESORT key (nullopt: not registered).
  using directory_entries = std::map<std::string, std::optional<protocol::directory_entry>>;
  /// Reads `directory_entries` of `ids` on the store's reader thread; `done` runs there
  /// (dropped when the store closes).
  void directory_entries_async(std::vector<std::string> ids,
                               std::function<void(expected<directory_entries>)> done);
  /// The LAST_RESORT key of `owner`, for PREPARE attachments.
  [[nodiscard]] expected<std::optional<protocol::published_key>> last_resort(
      const std::string& owner) const;

  // -- Conversations and the log ------------------------------------------------------------
  /// Loads conversation `conv`: its record restored into a `router_conv` and every entry still
  /// missing mirror answers resumed (in flight, to resend COMMIT). nullopt for a conversation
  /// the router never logged.
  [[nodiscard]] expected<std::optional<protocol::router_conv>> load_conv(
      const protocol::conv_id& conv, protocol::member_list configured_ms,
      protocol::intake_limits limits) const;
  using loaded_conv = std::shared_ptr<expected<std::optional<protocol::router_conv>>>;
  /// `load_conv` on the store's reader thread; `done` runs there (dropped when the store
  /// closes).
  void load_conv_async(const protocol::conv_id& conv, protocol::member_list configured_ms,
                       protocol::intake_limits limits, std::function<void(loaded_conv)> done);
  /// The batch of `append`: the log entry, its author blocks, its pending amb_o/LAST_RESORT
  /// row, and the rows of the conversation record `rc` (state after the entry) that the entry
  /// changed: header, the author's row and T_i; on SETUP/UPDATE also ms, members, every peer row
  /// and the deletion of T_j below last_update. `now` is the router's clock (retention cap).
  [[nodiscard]] write_batch append_batch(const protocol::router_conv& rc,
                                         const protocol::log_entry& e, uint64_t now) const;
  /// Writes `append_batch` and returns once it is synced (group-committed with concurrent
  /// writers). Only then may COMMIT be sent.
  [[nodiscard]] expected<void> append(const protocol::router_conv& rc, const protocol::log_entry& e,
                                      uint64_t now);
  /// `append` without waiting: `done` runs on the writer thread after the sync.
  void append_async(const protocol::router_conv& rc, const protocol::log_entry& e, uint64_t now,
                    store::done_fn done);
  /// Persists every mirror's answer for `e` (the entry becomes deliverable) in one synced
  /// batch: the mirror blocks, the deletion of the pending row, the cursors of joiners
  /// (starting at e.index, the conversation joining their set) and, for removed members, the
  /// last index they hold a slot in. Only then may the router ACK the mirrors.
  /// REQUIRES: `a` has one answer per mirror, each with one block per slot.
  [[nodiscard]] expected<void> persist_answers(const protocol::log_entry& e,
                                               const protocol::mirror_answers& a);
  /// `persist_answers` without waiting: the batch is queued before this returns and `done`
  /// runs on the writer thread after the sync (or at once, with the error, when a cursor read
  /// fails and nothing was queued).
  void persist_answers_async(const protocol::log_entry& e, const protocol::mirror_answers& a,
                             store::done_fn done);
  /// Persists that `rc` was stopped (CONFLICT or REJECT at COMMIT).
  [[nodiscard]] expected<void> persist_stop(const protocol::router_conv& rc);
  /// `persist_stop` without waiting: `done` runs on the writer thread after the sync (or at
  /// once with the error for a conversation never logged).
  void persist_stop_async(const protocol::router_conv& rc, store::done_fn done);

  /// The entry at (conv, i) with its answers, or nullopt if not (or no longer) held.
  [[nodiscard]] expected<std::optional<stored_entry>> read_entry(const protocol::conv_id& conv,
                                                                 uint64_t i) const;
  /// The ENVELOPE of (conv, i) for `member`, read from that member's rows only. nullopt when
  /// the entry is not held, not complete, or has no slot for `member`.
  [[nodiscard]] expected<std::optional<protocol::envelope>> envelope_for(
      const protocol::conv_id& conv, uint64_t i, const std::string& member) const;
  /// The envelopes for `member` from index `from` on: stops at the first entry not held or
  /// not complete, skips entries without a slot for `member`, returns at most `limit`.
  [[nodiscard]] expected<std::vector<protocol::envelope>> envelopes_from(
      const protocol::conv_id& conv, const std::string& member, uint64_t from, size_t limit) const;
  /// `envelopes_from` without touching the disk, for callers that must not block: nullopt when
  /// a row it needs is not in memory (RocksDB's memtables and block cache); read those with
  /// `envelopes_from_async`.
  [[nodiscard]] expected<std::optional<std::vector<protocol::envelope>>> envelopes_in_memory(
      const protocol::conv_id& conv, const std::string& member, uint64_t from, size_t limit) const;
  using envelopes_fn = std::function<void(expected<std::vector<protocol::envelope>>)>;
  /// `envelopes_from` on the store's reader thread, in request order; `done` runs there. Reads
  /// still queued when the store closes are dropped without calling `done`.
  void envelopes_from_async(const protocol::conv_id& conv, const std::string& member, uint64_t from,
                            size_t limit, envelopes_fn done);
  /// Every conversation the router has logged (a record is also its tombstone).
  [[nodiscard]] expected<std::vector<protocol::conv_id>> conversations() const;
  /// The first index the log of `conv` still holds (0 if nothing was collected).
  [[nodiscard]] expected<uint64_t> log_start(const protocol::conv_id& conv) const;
  /// `log_start` from memory only, for callers that must not block: nullopt when the row is
  /// only on disk (read it with `log_start_async`).
  [[nodiscard]] expected<std::optional<uint64_t>> log_start_in_memory(
      const protocol::conv_id& conv) const;
  /// `log_start` on the store's reader thread; `done` runs there (dropped when the store closes).
  void log_start_async(const protocol::conv_id& conv, std::function<void(expected<uint64_t>)> done);
  /// The next index of `conv` (number of entries ever logged), 0 if unknown.
  [[nodiscard]] expected<uint64_t> next_index(const protocol::conv_id& conv) const;
  /// What the router holds of one conversation for the cross-provider audit.
  struct audit_rows {
    uint64_t next = 0;
    uint64_t log_start = 0;
    /// D_i of every log entry still held.
    std::map<uint64_t, hash32> d;
    /// Entries still missing mirror answers (a mirror may not hold them yet).
    std::set<uint64_t> in_flight;
  };
  /// Reads `audit_rows` of `conv` (a scan of its log and pending rows: may touch the disk).
  [[nodiscard]] expected<audit_rows> audit_view(const protocol::conv_id& conv) const;

  // -- Delivery cursors ---------------------------------------------------------------------
  /// `user`'s cursor in `conv`, if `conv` is in its set.
  [[nodiscard]] expected<std::optional<cursor_record>> cursor(const std::string& user,
                                                              const protocol::conv_id& conv) const;
  /// `user`'s conversation set with its cursors.
  [[nodiscard]] expected<std::vector<std::pair<protocol::conv_id, cursor_record>>> cursors_of(
      const std::string& user) const;
  /// What a delivery queue loads when its user attaches: `cursors_of(user)` and, in the same
  /// order, each conversation's `log_start`.
  struct user_cursors {
    std::vector<std::pair<protocol::conv_id, cursor_record>> cursors;
    std::vector<uint64_t> log_starts;
  };
  using user_cursors_fn = std::function<void(expected<user_cursors>)>;
  /// Reads `user_cursors` for `user` on the store's reader thread (its scan and point reads
  /// may touch the disk), in order with `envelopes_from_async`; `done` runs there. Dropped
  /// without calling `done` when the store closes first.
  void cursors_async(const std::string& user, user_cursors_fn done);
  /// `user_cursors` of one conversation on the store's reader thread: `user`'s cursor in
  /// `conv` and the log's start, or no entry when `conv` is not in the user's set. Dropped when
  /// the store closes.
  void cursor_async(const std::string& user, const protocol::conv_id& conv, user_cursors_fn done);
  /// `user` acknowledged (conv, index): its cursor moves to index + 1 if that is further
  /// (a stale or repeated ack changes nothing). Synced. Fails with `errc::not_found` when conv
  /// is not in the user's set.
  [[nodiscard]] expected<void> ack(const std::string& user, const protocol::conv_id& conv,
                                   uint64_t index);
  /// `ack` without waiting: the cursor row is queued (a lazy batch, docs/storage.md §6) and
  /// `done` runs on the store's writer thread once it is written, or at once on the caller's
  /// thread when nothing is queued (a stale ack: success; `errc::not_found`; a read error).
  void ack_async(const std::string& user, const protocol::conv_id& conv, uint64_t index,
                 store::done_fn done);
  /// True when the user's next index is below the log's start (HISTORY_EXPIRED: it must be
  /// re-added).
  [[nodiscard]] expected<bool> history_expired(const std::string& user,
                                               const protocol::conv_id& conv) const;

  // -- Retention ----------------------------------------------------------------------------
  /// Deletes, from the start of `conv`'s log, every complete entry that each of its slots has
  /// acknowledged (the low-water mark) or that was logged at least `retention_cap` seconds
  /// before `now`; stops at the first entry that is neither. One synced batch. The
  /// conversation record (state, T_j, tombstone) is never deleted.
  [[nodiscard]] expected<gc_result> collect(const protocol::conv_id& conv, uint64_t now,
                                            uint64_t retention_cap);

private:
  expected<std::optional<owner_record>> owner(const std::string& id) const;
  void release_overlay(const std::vector<std::string>& keys_done);
  /// Builds and queues the answers batch; on success `done` has moved into its callback. With
  /// `miss`, rows are read from memory only: when one is on disk `*miss` is set and nothing is
  /// queued or changed.
  expected<void> queue_answers(const protocol::log_entry& e, const protocol::mirror_answers& a,
                               store::done_fn& done, bool* miss);
  /// `ack_async`'s work; `from_memory`: a row only on disk sends the call to the reader thread.
  void queue_ack(const std::string& user, const protocol::conv_id& conv, uint64_t index,
                 store::done_fn done, bool from_memory);
  /// A point read; with `miss`, from memory only (`*miss` set, nothing returned, when the row
  /// is only on disk).
  expected<std::optional<bytes>> get_row(column c, const std::string& key, bool* miss) const;

  std::unique_ptr<store> s_;
  /// Runs `envelopes_from_async` (declared after `s_`: stopped before the store closes).
  std::unique_ptr<detail::task_thread> reader_;
  /// Serialises read-modify-write directory operations (held across their synced write).
  std::mutex dir_mu_;
  /// Per conversation: answers batches handed to the reader thread and not yet queued (later
  /// ones follow them there, to keep the conversation's order).
  std::mutex deferred_mu_;
  std::map<protocol::conv_id, size_t> deferred_answers_;
  /// Guards `cursor_overlay_`. Recursive: a write refused at once completes on the caller's
  /// thread, inside the lock.
  mutable std::recursive_mutex cursor_mu_;
  /// Cursor rows queued but not yet synced (value, writes in flight), so that a read-modify-
  /// write never starts from a value older than one already queued.
  std::map<std::string, std::pair<cursor_record, uint64_t>> cursor_overlay_;
};

}  // namespace cowpi::storage

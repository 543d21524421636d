// SPDX-License-Identifier: Apache-2.0
// A mirror provider's persistent state (docs/design.md §3.4, §5): per conversation its state, D_i
// for every index, T_j since last_update, the sealed pairwise channels, the answers kept until the
// router acknowledges them, and its own sealed key store.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/sealer.hpp"
#include "cowpi/storage/store.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace cowpi::storage {

namespace detail {
class row_cache;
class task_thread;
}  // namespace detail

/// The mirror's store; also its `mirror_history` (D_i read from disk). Every write is one
/// synced batch that contains only the rows the operation changed (a row cache remembers what
/// was written). The caller serialises calls, as it serialises calls into `protocol::mirror`;
/// `d_at` may be called from any thread.
class mirror_store final : public protocol::mirror_history {
public:
  /// Opens (creating) the mirror store at `path` and unlocks it with `key` (see `unlock`).
  /// `r` supplies the sealing nonces for the store's lifetime and must outlive it.
  [[nodiscard]] static expected<std::unique_ptr<mirror_store>> open(
      const std::filesystem::path& path, const key_source& key, crypto::rng& r,
      const open_options& o = {});

  mirror_store(std::unique_ptr<store> s, sealer sl, crypto::rng& r);
  ~mirror_store() override;
  mirror_store(const mirror_store&) = delete;
  mirror_store& operator=(const mirror_store&) = delete;

  /// The underlying store, for tests and benchmarks; the runtime uses the typed calls.
  store& raw() noexcept { return *s_; }
  /// The group-commit writer's counters, and whether a write failed (metrics).
  write_stats stats() const noexcept { return s_->stats(); }
  bool failed() const noexcept { return s_->failed(); }
  /// `storage::check_shard_map` on this store (shard_map.hpp).
  [[nodiscard]] expected<void> check_shard_map(const std::vector<std::string>& nodes,
                                               bool holds_data);

  /// Loads the mirror: its key store, every conversation record (a record is also the
  /// tombstone that refuses a second SETUP) and the answers still held. The first load binds
  /// the store to `self`'s (id, lpk); a later load with another identity fails with
  /// `errc::bad_state` (a mirror with lost or restored data must take a new identity, §4).
  [[nodiscard]] expected<protocol::mirror> load(protocol::identity self,
                                                protocol::mirror_options opts = {});

  /// After `mirror::commit` returned `persist`: writes the changed rows of conversation `conv`
  /// (state, channels, the new answer), D_index and, when `keys_changed` (the outcome's flag),
  /// the key store changes in ONE synced batch. Only then may the answer be sent.
  [[nodiscard]] expected<void> persist_commit(const protocol::mirror& m,
                                              const protocol::conv_id& conv, uint64_t index,
                                              const hash32& d, bool keys_changed = true);
  /// `persist_commit` without waiting: the batch is built and queued for the group-commit
  /// writer before this returns (batches keep the order of the calls, whatever the thread), and
  /// `done` runs on the writer thread once it is synced or failed; only then may the answer be
  /// sent. A conversation the mirror does not hold calls `done` with `errc::bad_state` at once.
  void persist_commit_async(const protocol::mirror& m, const protocol::conv_id& conv,
                            uint64_t index, const hash32& d, bool keys_changed,
                            store::done_fn done);
  /// `persist_commit_async` for a caller that holds the conversation's record `mc` itself (a
  /// writer per conversation: `protocol::mirror`'s per-conversation calls); `keys`, when the
  /// commit may have changed the key store, is read while this runs (the caller holds the lock it
  /// serialises key changes with until this returns).
  void persist_commit_async(const protocol::mirror_conv& mc, uint64_t index, const hash32& d,
                            const protocol::key_store* keys, store::done_fn done);
  /// After `mirror::ack` returned true: deletes the acknowledged answers (a lazy batch:
  /// synced by the node's next synced write, docs/storage.md §6).
  [[nodiscard]] expected<void> persist_ack(const protocol::mirror& m,
                                           const protocol::conv_id& conv);
  /// `persist_ack` without waiting, ordered like `persist_commit_async`; `done` runs at once
  /// when nothing changed.
  void persist_ack_async(const protocol::mirror& m, const protocol::conv_id& conv,
                         store::done_fn done);
  /// `persist_ack_async` of the record `mc` the caller holds.
  void persist_ack_async(const protocol::mirror_conv& mc, store::done_fn done);
  /// Runs `done` on the writer thread once every batch queued before this call is applied
  /// (an empty write: no sync of its own).
  void barrier_async(store::done_fn done);
  /// After `make_prekeys` or `expire_keys`: writes the key store's changes.
  [[nodiscard]] expected<void> persist_keys(const protocol::mirror& m);
  /// `persist_keys` without waiting, ordered like `persist_commit_async`; `done` runs at once
  /// when nothing changed.
  void persist_keys_async(const protocol::mirror& m, store::done_fn done);
  /// `persist_keys_async` of the key store `keys` (read while this runs).
  void persist_keys_async(const protocol::key_store& keys, store::done_fn done);

  /// D_i, kept forever (CONFLICT answers and AUDIT). A storage error reads as "not held".
  std::optional<hash32> d_at(const protocol::conv_id& conv, uint64_t i) const override;
  /// `protocol::mirror::audit_range(q, next, max_audit, *this)` on the store's reader thread
  /// (its up to `max_audit` point reads may touch the disk); `done` runs there with the
  /// answer. Calls are answered in order; tasks not started when the store closes are dropped.
  void audit_async(const protocol::audit_query& q, uint64_t next, uint64_t max_audit,
                   std::function<void(protocol::audit_answer)> done);

  /// `protocol::mirror::answer_retry(conv, i, d, stored, *this)` on the store's reader thread
  /// (its D read may touch the disk); `done` runs there, in order with `audit_async`. Tasks not
  /// started when the store closes are dropped.
  void answer_retry_async(const protocol::conv_id& conv, uint64_t i, const hash32& d,
                          std::optional<protocol::answer> stored,
                          std::function<void(protocol::link_response)> done);

  // -- Offline resharding (cowpi/storage/reshard.hpp) -------------------------------------------
  // Row-level calls for a store no daemon runs on and that was not `load`ed: they bypass the row
  // cache a loaded store keeps.

  /// The conversations the store holds (those with a header row), in id order.
  [[nodiscard]] expected<std::vector<protocol::conv_id>> held_conversations() const;
  /// The next index of `conv` as its header row says; nullopt when the store does not hold it.
  [[nodiscard]] expected<std::optional<uint64_t>> next_index(const protocol::conv_id& conv) const;
  /// The mirror identity the store is bound to (meta `identity`); nullopt before its first load.
  [[nodiscard]] expected<std::optional<identity_binding>> bound_identity() const;
  /// Binds a store that has no identity yet to `b` (what its first `load` would write).
  [[nodiscard]] expected<void> bind_identity(const identity_binding& b);
  /// Copies every row of `conv` from `from` into this store: its D history first (synced batches
  /// of at most `copy_batch_rows` rows), then its conversation rows, its channels (opened with
  /// `from`'s key, sealed again with this store's) and its answers in one synced batch, which is
  /// the moment this store holds the conversation. Copying again rewrites the same rows.
  /// Returns the rows copied.
  [[nodiscard]] expected<uint64_t> copy_conversation(const mirror_store& from,
                                                     const protocol::conv_id& conv);
  /// Deletes every row of `conv` (conversation, channels, D history, answers) in one synced batch
  /// of range deletions.
  [[nodiscard]] expected<void> drop_conversation(const protocol::conv_id& conv);
  static constexpr size_t copy_batch_rows = 4096;

private:
  void conv_rows(const protocol::mirror_conv& mc, write_batch& b);

  std::unique_ptr<store> s_;
  sealer sealer_;
  crypto::rng& rng_;
  std::mutex mu_;
  std::unique_ptr<detail::row_cache> cache_;
  std::unique_ptr<detail::task_thread> reader_;  // last: stopped first
};

}  // namespace cowpi::storage

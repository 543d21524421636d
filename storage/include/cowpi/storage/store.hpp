// SPDX-License-Identifier: Apache-2.0
// The key-value store under every cowpi store: a handful of virtuals (get, scan, apply a batch)
// implemented by RocksDB, with synced, group-committed batches and a layout check on open.
#pragma once

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/storage/keys.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi::storage {

/// Writes that belong together: applied atomically (all or none) by `store::apply`. A value
/// type; cheap to move.
class write_batch {
public:
  enum class op_kind : uint8_t { put, del, del_range };
  struct op {
    op_kind kind = op_kind::put;
    column col = column::meta;
    std::string key;
    /// put: the value; del_range: the exclusive end key.
    bytes value;
  };

  void put(column c, std::string key, bytes value) {
    bytes_ += key.size() + value.size();
    ops_.push_back(op{op_kind::put, c, std::move(key), std::move(value)});
  }
  void del(column c, std::string key) {
    bytes_ += key.size();
    ops_.push_back(op{op_kind::del, c, std::move(key), {}});
  }
  /// Deletes every key in [begin, end).
  void del_range(column c, std::string begin, std::string end) {
    bytes_ += begin.size() + end.size();
    ops_.push_back(op{op_kind::del_range, c, std::move(begin), bytes(end.begin(), end.end())});
  }
  /// Appends `other`'s operations after this batch's.
  void append(write_batch&& other) {
    lazy_ = lazy_ && other.lazy_;
    for (auto& o : other.ops_)
      ops_.push_back(std::move(o));
    bytes_ += other.bytes_;
    other.ops_.clear();
    other.bytes_ = 0;
  }

  /// Marks the batch as one that needs no sync of its own: it is written to the WAL with the
  /// group it joins, durable across a process crash at once and across a power loss with the
  /// store's next synced write (WAL records are synced in order). Only for rows whose loss at a
  /// power failure costs nothing but repeated work, never for anything acknowledged to a peer
  /// (docs/storage.md §6). A group is synced when any batch in it is not lazy.
  void set_lazy() noexcept { lazy_ = true; }
  bool lazy() const noexcept { return lazy_; }

  const std::vector<op>& ops() const noexcept { return ops_; }
  bool empty() const noexcept { return ops_.empty(); }
  size_t size() const noexcept { return ops_.size(); }
  /// Key and value bytes of every operation.
  size_t byte_size() const noexcept { return bytes_; }

private:
  std::vector<op> ops_;
  size_t bytes_ = 0;
  bool lazy_ = false;
};

/// How a store is opened.
enum class open_mode : uint8_t {
  /// The owning process: reads and writes; creates the store if missing.
  read_write = 1,
  /// A read-only snapshot of the store as of open (not while another process writes to it
  /// unless it was closed cleanly).
  read_only,
  /// A RocksDB secondary instance: reads while the primary runs, catching up on `refresh`.
  secondary,
};

struct open_options {
  open_mode mode = open_mode::read_write;
  /// For `secondary`: a private directory for the secondary's own info log and state.
  std::filesystem::path secondary_dir;
  /// Most batches merged into one synced write by the group-commit writer.
  size_t max_group = 256;
  /// Stop merging once a group holds this many bytes (the batch that crosses it is included).
  size_t max_group_bytes = 16u << 20;
};

/// Upper bounds (seconds) of `write_stats::sync_buckets`.
inline constexpr std::array<double, 12> sync_latency_bounds{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0};
/// Upper bounds (batches) of `write_stats::group_buckets`.
inline constexpr std::array<double, 9> group_size_bounds{1, 2, 4, 8, 16, 32, 64, 128, 256};

/// Counters of the group-commit writer (benchmarks, tests and the provider's metrics).
struct write_stats {
  /// Synced RocksDB writes issued.
  uint64_t syncs = 0;
  /// Batches applied, through synced writes and through unsynced writes of lazy batches only.
  uint64_t batches = 0;
  /// Operations (puts, deletes, range deletes) and key + value bytes in them.
  uint64_t ops = 0;
  uint64_t bytes = 0;
  /// Wall time of each synced write (the RocksDB write and its fsync): counts per bucket of
  /// `sync_latency_bounds` (not cumulative; the last is above every bound), and their sum.
  std::array<uint64_t, sync_latency_bounds.size() + 1> sync_buckets{};
  double sync_seconds = 0;
  /// Batches merged into each synced write: counts per bucket of `group_size_bounds`.
  std::array<uint64_t, group_size_bounds.size() + 1> group_buckets{};
};

/// A key-value store with column families. Thread-safe: reads may run concurrently with each
/// other and with writes; writes from all threads are serialised by one group-commit writer.
class store {
public:
  virtual ~store() = default;

  /// The role recorded in the store's layout record.
  virtual role kind() const noexcept = 0;
  virtual open_mode mode() const noexcept = 0;

  /// Returns the value at `key`, or nullopt. Fails with `errc::storage`.
  [[nodiscard]] virtual expected<std::optional<bytes>> get(column c,
                                                           std::string_view key) const = 0;

  /// What `get_in_memory` found.
  struct memory_read {
    /// False when answering would have read the disk (the row is not in RocksDB's memtables or
    /// block cache): `value` is then empty and says nothing.
    bool in_memory = false;
    std::optional<bytes> value;
  };
  /// `get` without touching the disk, for callers that must not block (actor threads).
  [[nodiscard]] virtual expected<memory_read> get_in_memory(column c,
                                                            std::string_view key) const = 0;

  /// The visitor of `scan`: returns false to stop early.
  using visitor = std::function<bool(std::string_view key, byte_view value)>;
  /// Visits every row with `begin <= key < end` in key order (`end` empty: no upper bound).
  /// Fails with `errc::storage`.
  [[nodiscard]] virtual expected<void> scan(column c, std::string_view begin, std::string_view end,
                                            const visitor& f) const = 0;
  /// Visits the same rows in reverse key order.
  [[nodiscard]] virtual expected<void> scan_reverse(column c, std::string_view begin,
                                                    std::string_view end,
                                                    const visitor& f) const = 0;
  /// Visits every row whose key starts with `prefix`.
  [[nodiscard]] expected<void> scan_prefix(column c, std::string_view prefix,
                                           const visitor& f) const {
    return scan(c, prefix, keys::prefix_end(prefix), f);
  }

  /// Callback of `apply_async`; runs on the writer thread, so it must be quick.
  using done_fn = std::function<void(expected<void>)>;
  /// Queues `b` for the group-commit writer, which merges it with other queued batches into one
  /// atomic write, synced unless every batch in it is lazy, and then calls `done` for each
  /// (with the same result). Batches are
  /// applied in submission order. Fails (through `done`) with `errc::bad_state` on a read-only
  /// store or one that failed before, and `errc::storage` when the write fails; a failed write
  /// applied none of the merged batches, and the store refuses every later write (reopen it).
  virtual void apply_async(write_batch b, done_fn done) = 0;
  /// `apply_async` and wait: returns once `b` is durable (synced) or failed.
  [[nodiscard]] virtual expected<void> apply(write_batch b) = 0;

  /// Secondary instances: catch up with the primary's latest writes. A no-op otherwise.
  [[nodiscard]] virtual expected<void> refresh() = 0;
  /// True once a write failed; every later write is refused until the store is reopened.
  virtual bool failed() const noexcept = 0;
  virtual write_stats stats() const noexcept = 0;
  /// Flushes memtables and compacts every column (benchmarks measuring bytes on disk).
  [[nodiscard]] virtual expected<void> compact() = 0;
  /// Approximate bytes of live SST files over all columns (after `compact`).
  [[nodiscard]] virtual expected<uint64_t> live_bytes() const = 0;
};

/// Opens (read_write: creating if missing) the RocksDB store of role `r` at `path`.
///
/// A new store gets the layout record (`layout_version`, `r`). An existing one must carry
/// exactly this build's layout version and role: a newer, older or unknown version, a missing
/// record, a different role or a column family this build does not know fails with
/// `errc::unsupported_layout` and a message saying what was found; nothing is written then.
/// Other failures (permissions, a locked or damaged store) are `errc::storage`.
[[nodiscard]] expected<std::unique_ptr<store>> open_store(const std::filesystem::path& path, role r,
                                                          const open_options& o = {});

/// Opens an existing store read-only or as a secondary (`o.mode`), whatever its role; the role
/// is read from its layout record (admin tools). Same layout checks as `open_store`.
[[nodiscard]] expected<std::unique_ptr<store>> open_existing(const std::filesystem::path& path,
                                                             const open_options& o);

}  // namespace cowpi::storage

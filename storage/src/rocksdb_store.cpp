// SPDX-License-Identifier: Apache-2.0
// The RocksDB implementation of `store`: column families per role, the layout check on open,
// and the group-commit writer. The only file of cowpi that includes <rocksdb/...>.
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/store.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace cowpi::storage {

namespace {

// RocksDB's status text names the failing file and the OS error; it never holds row contents.
error storage_error(const char* what, const rocksdb::Status& s) {
  return error{errc::storage, std::string(what) + ": " + s.ToString()};
}

// The bucket of `v` among `bounds` (upper bounds, inclusive); bounds.size() when above all.
template <size_t N>
size_t bucket_of(const std::array<double, N>& bounds, double v) {
  return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
}

rocksdb::Slice slice(std::string_view s) {
  return {s.data(), s.size()};
}
rocksdb::Slice slice(const bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

class rocksdb_store final : public store {
public:
  rocksdb_store(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> handles,
                std::vector<std::optional<column>> handle_columns, role r, const open_options& o)
      : db_(std::move(db)), handles_(std::move(handles)), role_(r), opts_(o) {
    for (size_t i = 0; i < handles_.size(); ++i)
      if (handle_columns[i])
        by_column_[static_cast<size_t>(*handle_columns[i])] = handles_[i];
    sync_.sync = true;
    if (opts_.mode == open_mode::read_write)
      writer_ = std::thread([this] { write_loop(); });
  }

  rocksdb_store(const rocksdb_store&) = delete;
  rocksdb_store& operator=(const rocksdb_store&) = delete;

  ~rocksdb_store() override {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable())
      writer_.join();
    // RocksDB: destroy column family handles before closing the database.
    for (auto* h : handles_)
      (void)db_->DestroyColumnFamilyHandle(h);
    (void)db_->Close();
  }

  role kind() const noexcept override { return role_; }
  open_mode mode() const noexcept override { return opts_.mode; }

  expected<std::optional<bytes>> get(column c, std::string_view key) const override {
    note_blocking(blocking_op::get);
    auto* h = handle(c);
    if (h == nullptr)
      return std::optional<bytes>{};
    rocksdb::PinnableSlice v;
    auto s = db_->Get(rocksdb::ReadOptions(), h, slice(key), &v);
    if (s.IsNotFound())
      return std::optional<bytes>{};
    if (!s.ok())
      return unexpected{storage_error("read failed", s)};
    return std::optional<bytes>(bytes(v.data(), v.data() + v.size()));
  }

  expected<memory_read> get_in_memory(column c, std::string_view key) const override {
    auto* h = handle(c);
    if (h == nullptr)
      return memory_read{true, std::nullopt};
    rocksdb::ReadOptions ro;
    ro.read_tier = rocksdb::kBlockCacheTier;  // memtables and block cache only: no I/O
    rocksdb::PinnableSlice v;
    auto s = db_->Get(ro, h, slice(key), &v);
    if (s.IsIncomplete())
      return memory_read{false, std::nullopt};
    if (s.IsNotFound())
      return memory_read{true, std::nullopt};
    if (!s.ok())
      return unexpected{storage_error("read failed", s)};
    return memory_read{true, bytes(v.data(), v.data() + v.size())};
  }

  expected<void> scan(column c, std::string_view begin, std::string_view end,
                      const visitor& f) const override {
    note_blocking(blocking_op::scan);
    return iterate(c, begin, end, false, f);
  }

  expected<void> scan_reverse(column c, std::string_view begin, std::string_view end,
                              const visitor& f) const override {
    note_blocking(blocking_op::scan);
    return iterate(c, begin, end, true, f);
  }

  void apply_async(write_batch b, done_fn done) override {
    if (opts_.mode != open_mode::read_write) {
      done(fail(errc::bad_state, "the store is open read-only"));
      return;
    }
    if (failed_.load()) {
      done(fail(errc::bad_state, "the store failed a write before; reopen it"));
      return;
    }
    for (const auto& op : b.ops()) {
      if (handle(op.col) == nullptr) {
        done(fail(errc::internal, "a write to a column this store does not hold"));
        return;
      }
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_.push_back(queued{std::move(b), std::move(done)});
    }
    cv_.notify_one();
  }

  expected<void> apply(write_batch b) override {
    note_blocking(blocking_op::apply);
    std::promise<expected<void>> p;
    auto f = p.get_future();
    apply_async(std::move(b), [&p](expected<void> r) { p.set_value(std::move(r)); });
    return f.get();
  }

  expected<void> refresh() override {
    if (opts_.mode != open_mode::secondary)
      return {};
    auto s = db_->TryCatchUpWithPrimary();
    if (!s.ok())
      return unexpected{storage_error("catching up with the primary failed", s)};
    return {};
  }

  bool failed() const noexcept override { return failed_.load(); }

  write_stats stats() const noexcept override {
    write_stats w{syncs_.load(), batches_.load(), ops_.load(), bytes_.load()};
    for (size_t i = 0; i < w.sync_buckets.size(); ++i)
      w.sync_buckets[i] = sync_buckets_[i].load(std::memory_order_relaxed);
    for (size_t i = 0; i < w.group_buckets.size(); ++i)
      w.group_buckets[i] = group_buckets_[i].load(std::memory_order_relaxed);
    w.sync_seconds = static_cast<double>(sync_ns_.load(std::memory_order_relaxed)) * 1e-9;
    return w;
  }

  expected<void> compact() override {
    if (opts_.mode != open_mode::read_write)
      return fail(errc::bad_state, "read-only store");
    for (auto* h : handles_) {
      auto s = db_->Flush(rocksdb::FlushOptions(), h);
      if (!s.ok())
        return unexpected{storage_error("flush failed", s)};
      s = db_->CompactRange(rocksdb::CompactRangeOptions(), h, nullptr, nullptr);
      if (!s.ok())
        return unexpected{storage_error("compaction failed", s)};
    }
    return {};
  }

  expected<uint64_t> live_bytes() const override {
    std::vector<rocksdb::LiveFileMetaData> files;
    db_->GetLiveFilesMetaData(&files);
    uint64_t n = 0;
    for (const auto& f : files)
      n += f.size;
    return n;
  }

private:
  struct queued {
    write_batch b;
    done_fn done;
  };

  rocksdb::ColumnFamilyHandle* handle(column c) const noexcept {
    return by_column_[static_cast<size_t>(c)];
  }

  expected<void> iterate(column c, std::string_view begin, std::string_view end, bool reverse,
                         const visitor& f) const {
    auto* h = handle(c);
    if (h == nullptr)
      return {};
    rocksdb::ReadOptions ro;
    // The bounds' Slices must outlive the iterator (deps-probe §9, pitfall 6).
    const std::string lo(begin);
    const std::string hi(end);
    rocksdb::Slice lo_s(lo);
    rocksdb::Slice hi_s(hi);
    ro.iterate_lower_bound = &lo_s;
    if (!hi.empty())
      ro.iterate_upper_bound = &hi_s;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, h));
    if (reverse) {
      hi.empty() ? it->SeekToLast() : it->SeekForPrev(hi_s);
      // SeekForPrev lands on `hi` itself when it exists; the bound is exclusive.
      if (it->Valid() && !hi.empty() && it->key().compare(hi_s) >= 0)
        it->Prev();
    } else {
      it->Seek(lo_s);
    }
    for (; it->Valid(); reverse ? it->Prev() : it->Next()) {
      const auto k = it->key();
      const auto v = it->value();
      if (!f(std::string_view(k.data(), k.size()),
             byte_view(reinterpret_cast<const uint8_t*>(v.data()), v.size())))
        break;
    }
    if (!it->status().ok())
      return unexpected{storage_error("scan failed", it->status())};
    return {};
  }

  void write_loop() {
    for (;;) {
      std::vector<queued> group;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty())
          return;  // stopping and drained
        size_t bytes = 0;
        while (!queue_.empty() && group.size() < opts_.max_group && bytes < opts_.max_group_bytes) {
          bytes += queue_.front().b.byte_size();
          group.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      expected<void> result = write_group(group);
      for (auto& q : group)
        q.done(result);
    }
  }

  // One atomic, synced write of every batch of the group, in submission order.
  expected<void> write_group(const std::vector<queued>& group) {
    if (failed_.load())
      return fail(errc::bad_state, "the store failed a write before; reopen it");
    rocksdb::WriteBatch wb;
    for (const auto& q : group) {
      for (const auto& op : q.b.ops()) {
        auto* h = handle(op.col);
        rocksdb::Status s;
        switch (op.kind) {
          case write_batch::op_kind::put:
            s = wb.Put(h, slice(op.key), slice(op.value));
            break;
          case write_batch::op_kind::del:
            s = wb.Delete(h, slice(op.key));
            break;
          case write_batch::op_kind::del_range:
            s = wb.DeleteRange(h, slice(op.key), slice(op.value));
            break;
        }
        if (!s.ok())
          return unexpected{storage_error("building a write batch failed", s)};
      }
    }
    // A group of lazy batches only (router cursor acks) is written without a sync; the next
    // synced write covers it, since RocksDB syncs its WAL in order.
    rocksdb::WriteOptions wo = sync_;
    if (std::all_of(group.begin(), group.end(), [](const queued& q) { return q.b.lazy(); }))
      wo.sync = false;
    const auto t0 = std::chrono::steady_clock::now();
    auto s = db_->Write(wo, &wb);
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (wo.sync) {
      sync_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
      sync_buckets_[bucket_of(sync_latency_bounds, static_cast<double>(ns) * 1e-9)].fetch_add(
          1, std::memory_order_relaxed);
      group_buckets_[bucket_of(group_size_bounds, static_cast<double>(group.size()))].fetch_add(
          1, std::memory_order_relaxed);
      syncs_.fetch_add(1);
    }
    batches_.fetch_add(group.size());
    for (const auto& q : group) {
      ops_.fetch_add(q.b.size());
      bytes_.fetch_add(q.b.byte_size());
    }
    if (!s.ok()) {
      // RocksDB may have entered its read-only error mode; either way nothing of this group is
      // acknowledged, and the caches of the stores above may be ahead of disk: refuse the rest.
      failed_.store(true);
      return unexpected{storage_error("synced write failed", s)};
    }
    return {};
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::array<rocksdb::ColumnFamilyHandle*, 32> by_column_{};
  role role_;
  open_options opts_;
  rocksdb::WriteOptions sync_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<queued> queue_;
  bool stop_ = false;
  std::thread writer_;
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> ops_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> sync_ns_{0};
  std::array<std::atomic<uint64_t>, sync_latency_bounds.size() + 1> sync_buckets_{};
  std::array<std::atomic<uint64_t>, group_size_bounds.size() + 1> group_buckets_{};
};

// Everything `open_impl` needs to know about an opened database before wrapping it.
struct opened {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::vector<std::optional<column>> columns;
};

void close_opened(opened& o) {
  for (auto* h : o.handles)
    (void)o.db->DestroyColumnFamilyHandle(h);
  o.handles.clear();
  if (o.db)
    (void)o.db->Close();
  o.db.reset();
}

// RocksDB's diagnostics, warnings and errors only, to stderr (the daemon's log). Not the default
// LOG file in the data directory: on a full disk RocksDB's own file logger trips an assertion
// (Debian builds it with assertions on) and aborts the process instead of returning the error.
class stderr_logger final : public rocksdb::Logger {
public:
  stderr_logger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    std::fputs("rocksdb: ", stderr);
    std::vfprintf(stderr, format, ap);
    std::fputc('\n', stderr);
  }
};

rocksdb::Options base_options(const open_options& o) {
  rocksdb::Options opts;
  opts.info_log = std::make_shared<stderr_logger>();
  opts.create_if_missing = o.mode == open_mode::read_write;
  opts.create_missing_column_families = o.mode == open_mode::read_write;
  // Secondary instances require every file open (RocksDB's documented precondition).
  opts.max_open_files = -1;
  opts.paranoid_checks = true;
  // The bottommost level holds nearly all data once compacted: ZSTD there (RocksDB's default,
  // Snappy, above). Block ciphertexts do not compress, but their row keys, sequence numbers,
  // member names and lengths do: a 100-member chain-mode message takes 10.7 KB on a router's
  // disk instead of 12.5 KB (docs/benchmarks.md, Storage). Skipped where RocksDB was built
  // without ZSTD.
  const auto supported = rocksdb::GetSupportedCompressions();
  if (std::find(supported.begin(), supported.end(), rocksdb::kZSTD) != supported.end())
    opts.bottommost_compression = rocksdb::kZSTD;
  return opts;
}

expected<opened> open_db(const std::filesystem::path& path, const std::vector<std::string>& names,
                         const open_options& o, bool client) {
  auto opts = base_options(o);
  // RocksDB opens each column's table files with up to 16 new threads (max_file_opening_threads),
  // 8 columns x 16 threads for every open: ~100 ms of a CLI command that opens its user's store
  // holding a few small files. A client store opens them on the calling thread. Providers keep
  // the default: their stores may hold many files, opened once at start.
  if (client)
    opts.max_file_opening_threads = 1;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  opened out;
  for (const auto& n : names) {
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions(opts));
    out.columns.push_back(column_by_name(n));
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  switch (o.mode) {
    case open_mode::read_write:
      s = rocksdb::DB::Open(rocksdb::DBOptions(opts), path.string(), descs, &out.handles, &raw);
      break;
    case open_mode::read_only:
      s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(opts), path.string(), descs, &out.handles,
                                       &raw);
      break;
    case open_mode::secondary:
      if (o.secondary_dir.empty())
        return fail(errc::invalid_argument, "a secondary instance needs its own directory");
      s = rocksdb::DB::OpenAsSecondary(rocksdb::DBOptions(opts), path.string(),
                                       o.secondary_dir.string(), descs, &out.handles, &raw);
      break;
  }
  if (!s.ok())
    return unexpected{storage_error("cannot open the store", s)};
  out.db.reset(raw);
  return out;
}

// Layout check: the role's columns, the layout record, and every column known to this build.
// `want` is the role to open as (nullopt: take it from the record).
expected<std::unique_ptr<store>> open_impl(const std::filesystem::path& path,
                                           std::optional<role> want, const open_options& o) {
  std::vector<std::string> existing;
  auto ls = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path.string(), &existing);
  const bool fresh = !ls.ok();
  if (fresh) {
    if (o.mode != open_mode::read_write || !want)
      return fail(errc::not_found, "no store at the given path (" + ls.ToString() + ")");
    existing.clear();
  }
  for (const auto& n : existing)
    if (!column_by_name(n))
      return fail(errc::unsupported_layout,
                  "the store has a column family this build does not know ('" + n
                      + "'): it was written by a newer layout; refusing to open it");

  // Open with every existing column (RocksDB requires it); a new store gets its role's columns.
  // Columns an existing store lacks are created only after its layout record checks out.
  std::vector<std::string> names = existing;
  if (fresh) {
    for (column c : columns_of(*want))
      names.emplace_back(column_name(c));
    std::error_code ec;  // RocksDB creates it too, but logs an error first when it is missing
    std::filesystem::create_directories(path, ec);
  }
  COWPI_TRY(opened db, open_db(path, names, o, want == role::client));

  auto fail_closed = [&db](error e) -> expected<std::unique_ptr<store>> {
    close_opened(db);
    return unexpected{std::move(e)};
  };
  auto meta = [&]() -> rocksdb::ColumnFamilyHandle* {
    for (size_t i = 0; i < db.handles.size(); ++i)
      if (db.columns[i] == column::meta)
        return db.handles[i];
    return nullptr;
  }();
  if (meta == nullptr)
    return fail_closed(error{errc::unsupported_layout, "no meta column"});

  std::string raw;
  auto s = db.db->Get(rocksdb::ReadOptions(), meta, keys::meta_layout(), &raw);
  layout_record rec;
  if (s.IsNotFound()) {
    // Missing: only a store that holds nothing at all (a creation cut short) may get one now.
    bool empty = true;
    for (auto* h : db.handles) {
      std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator(rocksdb::ReadOptions(), h));
      it->SeekToFirst();
      if (it->Valid())
        empty = false;
    }
    if (!empty || !want || o.mode != open_mode::read_write)
      return fail_closed(error{errc::unsupported_layout,
                               "the store has no layout record: not a cowpi store, or damaged"});
    rec = layout_record{layout_version, *want};
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const bytes enc = encode_layout(rec);
    s = db.db->Put(wo, meta, keys::meta_layout(), slice(enc));
    if (!s.ok())
      return fail_closed(storage_error("cannot write the layout record", s));
  } else if (!s.ok()) {
    return fail_closed(storage_error("cannot read the layout record", s));
  } else {
    auto l = decode_layout(as_bytes(raw));
    if (!l)
      return fail_closed(l.error());
    rec = *l;
    if (rec.version > layout_version)
      return fail_closed(error{errc::unsupported_layout,
                               "the store's layout version " + std::to_string(rec.version)
                                   + " is newer than this build's ("
                                   + std::to_string(layout_version)
                                   + "); refusing to open it: upgrade cowpi"});
    if (rec.version != layout_version)
      return fail_closed(error{errc::unsupported_layout,
                               "unknown store layout version " + std::to_string(rec.version)
                                   + " (this build reads version " + std::to_string(layout_version)
                                   + " only)"});
    if (want && rec.r != *want)
      return fail_closed(
          error{errc::unsupported_layout, "the store belongs to a " + std::string(to_string(rec.r))
                                              + ", not a " + std::string(to_string(*want))});
  }
  for (const auto& c : db.columns) {
    const auto own = columns_of(rec.r);
    if (!c || std::find(own.begin(), own.end(), *c) == own.end())
      return fail_closed(
          error{errc::unsupported_layout, "the store has a column family its role does not use"});
  }
  if (o.mode == open_mode::read_write) {
    for (column c : columns_of(rec.r)) {
      if (std::find(db.columns.begin(), db.columns.end(), c) != db.columns.end())
        continue;
      rocksdb::ColumnFamilyHandle* h = nullptr;
      s = db.db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(base_options(o)),
                                    std::string(column_name(c)), &h);
      if (!s.ok())
        return fail_closed(storage_error("cannot create a column family", s));
      db.handles.push_back(h);
      db.columns.emplace_back(c);
    }
  }
  return std::unique_ptr<store>(std::make_unique<rocksdb_store>(
      std::move(db.db), std::move(db.handles), std::move(db.columns), rec.r, o));
}

}  // namespace

expected<std::unique_ptr<store>> open_store(const std::filesystem::path& path, role r,
                                            const open_options& o) {
  return open_impl(path, r, o);
}

expected<std::unique_ptr<store>> open_existing(const std::filesystem::path& path,
                                               const open_options& o) {
  if (o.mode == open_mode::read_write)
    return fail(errc::invalid_argument, "open_existing opens read-only or as a secondary");
  return open_impl(path, std::nullopt, o);
}

}  // namespace cowpi::storage

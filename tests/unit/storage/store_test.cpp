// SPDX-License-Identifier: Apache-2.0
// Conformance of the RocksDB store on temp dirs: ordering, prefix isolation, reopening with every
// column family, the layout check, atomic batches and group commit.
#include "cowpi/storage/store.hpp"

#include "cowpi/storage/records.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include "temp_dir.hpp"
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <random>
#include <thread>
#include <vector>

namespace cowpi::storage {
namespace {

using testing::temp_dir;

std::unique_ptr<store> open_ok(const temp_dir& d, role r, const open_options& o = {}) {
  auto s = open_store(d.path() / "db", r, o);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

protocol::conv_id conv_with_last(uint8_t last) {
  protocol::conv_id c{};
  c.fill(0x5a);
  c[15] = last;
  return c;
}

std::vector<uint64_t> scan_indices(const store& s, column c, const protocol::conv_id& conv,
                                   bool reverse = false) {
  std::vector<uint64_t> out;
  const std::string p = keys::conv_prefix(conv);
  auto f = [&](std::string_view k, byte_view) {
    out.push_back(*keys::be64_at(k, 16));
    return true;
  };
  auto r = reverse ? s.scan_reverse(c, p, keys::prefix_end(p), f) : s.scan_prefix(c, p, f);
  EXPECT_TRUE(r.has_value());
  return out;
}

TEST(storage_store, rows_come_back_in_index_order_across_8_16_and_32_bit_boundaries) {
  temp_dir d("store");
  auto s = open_ok(d, role::router);
  const auto conv = conv_with_last(1);
  std::vector<uint64_t> idx = {
      0,     1,     254,        255,        256,         257,         65534,          65535,
      65536, 65537, 0xfffffffe, 0xffffffff, 0x100000000, 0x100000001, UINT64_MAX - 1, UINT64_MAX};
  std::vector<uint64_t> shuffled = idx;
  std::mt19937 g(7);
  std::shuffle(shuffled.begin(), shuffled.end(), g);
  for (uint64_t i : shuffled) {
    write_batch b;
    b.put(column::log, keys::indexed(conv, i), encode_u64(i));
    ASSERT_TRUE(s->apply(std::move(b)).has_value());
  }
  EXPECT_EQ(scan_indices(*s, column::log, conv), idx);
  std::vector<uint64_t> rev(idx.rbegin(), idx.rend());
  EXPECT_EQ(scan_indices(*s, column::log, conv, true), rev);
  // A bounded range: [256, 2^32) holds exactly the indices in it.
  std::vector<uint64_t> mid;
  ASSERT_TRUE(s->scan(column::log, keys::indexed(conv, 256), keys::indexed(conv, 0x100000000),
                      [&](std::string_view k, byte_view) {
                        mid.push_back(*keys::be64_at(k, 16));
                        return true;
                      })
                  .has_value());
  EXPECT_EQ(mid,
            (std::vector<uint64_t>{256, 257, 65534, 65535, 65536, 65537, 0xfffffffe, 0xffffffff}));
}

TEST(storage_store, calls_that_may_block_are_counted_only_on_a_thread_marked_nonblocking) {
  temp_dir d("store");
  auto s = open_ok(d, role::router);
  auto total = [] {
    auto c = blocking_calls_on_nonblocking_threads();
    return std::array<uint64_t, 3>{c[0], c[1], c[2]};
  };
  const auto start = total();
  // Unmarked (like a store's own reader and writer threads): nothing counts.
  write_batch b;
  b.put(column::meta, "k", bytes{1, 2, 3});
  ASSERT_TRUE(s->apply(std::move(b)).has_value());
  ASSERT_TRUE(s->get(column::meta, "k").has_value());
  EXPECT_EQ(total(), start);

  mark_nonblocking_thread(true);
  EXPECT_TRUE(on_nonblocking_thread());
  ASSERT_TRUE(s->get_in_memory(column::meta, "k").has_value());  // never blocks
  std::promise<expected<void>> queued;
  write_batch lazy;
  lazy.put(column::meta, "l", bytes{4});
  s->apply_async(std::move(lazy), [&](expected<void> r) { queued.set_value(std::move(r)); });
  EXPECT_EQ(total(), start);
  ASSERT_TRUE(s->get(column::meta, "k").has_value());
  ASSERT_TRUE(s->scan(column::meta, "", "", [](std::string_view, byte_view) { return true; }));
  write_batch w;
  w.put(column::meta, "m", bytes{5});
  ASSERT_TRUE(s->apply(std::move(w)).has_value());
  mark_nonblocking_thread(false);
  ASSERT_TRUE(queued.get_future().get().has_value());
  const auto marked = total();
  EXPECT_EQ(marked[static_cast<size_t>(blocking_op::get)], start[0] + 1);
  EXPECT_EQ(marked[static_cast<size_t>(blocking_op::scan)], start[1] + 1);
  EXPECT_EQ(marked[static_cast<size_t>(blocking_op::apply)], start[2] + 1);

  // The mark belongs to the thread that set it.
  mark_nonblocking_thread(true);
  std::thread([&] {
    EXPECT_FALSE(on_nonblocking_thread());
    ASSERT_TRUE(s->get(column::meta, "k").has_value());
  }).join();
  mark_nonblocking_thread(false);
  EXPECT_EQ(total(), marked);
}

TEST(storage_store, a_conversations_prefix_scan_never_sees_its_neighbours) {
  temp_dir d("store");
  auto s = open_ok(d, role::router);
  const auto a = conv_with_last(0x41);
  const auto b = conv_with_last(0x42);
  auto ff = conv_with_last(0xff);
  write_batch w;
  for (uint64_t i : {uint64_t{0}, uint64_t{1}, UINT64_MAX}) {
    w.put(column::log, keys::indexed(a, i), encode_u64(i));
    w.put(column::log, keys::indexed(b, i), encode_u64(i + 100));
    w.put(column::log, keys::indexed(ff, i), encode_u64(i + 200));
  }
  ASSERT_TRUE(s->apply(std::move(w)).has_value());
  EXPECT_EQ(scan_indices(*s, column::log, a), (std::vector<uint64_t>{0, 1, UINT64_MAX}));
  EXPECT_EQ(scan_indices(*s, column::log, ff), (std::vector<uint64_t>{0, 1, UINT64_MAX}));
  // Same keys in another column are a different space.
  EXPECT_TRUE(scan_indices(*s, column::pending, a).empty());
  auto v = s->get(column::log, keys::indexed(b, 1));
  ASSERT_TRUE(v.has_value() && v->has_value());
  EXPECT_EQ(decode_u64(**v).value(), 101u);
}

TEST(storage_store, every_column_family_of_every_role_survives_a_reopen) {
  for (role r : {role::router, role::mirror, role::client}) {
    temp_dir d("store");
    {
      auto s = open_ok(d, r);
      write_batch b;
      for (column c : columns_of(r))
        b.put(c, "row-of-" + std::string(column_name(c)), encode_u64(7));
      ASSERT_TRUE(s->apply(std::move(b)).has_value());
    }
    auto s = open_ok(d, r);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->kind(), r);
    for (column c : columns_of(r)) {
      auto v = s->get(c, "row-of-" + std::string(column_name(c)));
      ASSERT_TRUE(v.has_value());
      EXPECT_TRUE(v->has_value()) << column_name(c);
    }
  }
}

TEST(storage_store, a_batch_applies_all_or_nothing_and_range_deletes_stay_in_their_range) {
  temp_dir d("store");
  auto s = open_ok(d, role::router);
  const auto conv = conv_with_last(2);
  write_batch b;
  for (uint64_t i = 0; i < 10; ++i)
    b.put(column::blocks, keys::author_block(conv, i, 3), encode_u64(i));
  b.put(column::log, keys::indexed(conv, 0), encode_u64(0));
  ASSERT_TRUE(s->apply(std::move(b)).has_value());
  write_batch del;
  del.del_range(column::blocks, keys::indexed(conv, 2), keys::indexed(conv, 5));
  del.del(column::log, keys::indexed(conv, 0));
  ASSERT_TRUE(s->apply(std::move(del)).has_value());
  EXPECT_EQ(scan_indices(*s, column::blocks, conv), (std::vector<uint64_t>{0, 1, 5, 6, 7, 8, 9}));
  EXPECT_FALSE(s->get(column::log, keys::indexed(conv, 0))->has_value());
}

TEST(storage_store, a_newer_layout_version_is_refused_with_a_clear_error) {
  temp_dir d("store");
  {
    auto s = open_ok(d, role::router);
    write_batch b;
    b.put(column::meta, keys::meta_layout(), encode_layout({layout_version + 1, role::router}));
    ASSERT_TRUE(s->apply(std::move(b)).has_value());
  }
  auto s = open_store(d.path() / "db", role::router);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, errc::unsupported_layout);
  EXPECT_NE(s.error().context.find("newer"), std::string::npos) << s.error().context;
  // Read-only and secondary opens refuse it too.
  open_options ro;
  ro.mode = open_mode::read_only;
  auto r = open_existing(d.path() / "db", ro);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unsupported_layout);
}

TEST(storage_store, an_unknown_layout_version_or_record_format_is_refused) {
  for (bytes rec : {encode_layout({0, role::router}), encode_layout({layout_version, role::router}),
                    bytes{9, 0, 0, 0, 1, 1}, bytes{1, 2}}) {
    temp_dir d("store");
    {
      auto s = open_ok(d, role::router);
      write_batch b;
      b.put(column::meta, keys::meta_layout(), rec);
      ASSERT_TRUE(s->apply(std::move(b)).has_value());
    }
    auto s = open_store(d.path() / "db", role::router);
    if (rec == encode_layout({layout_version, role::router})) {
      EXPECT_TRUE(s.has_value());  // the control: the current version opens
      continue;
    }
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().code, errc::unsupported_layout) << s.error().message();
  }
}

TEST(storage_store, a_store_of_another_role_is_refused_and_left_untouched) {
  temp_dir d("store");
  {
    auto s = open_ok(d, role::mirror);
    write_batch b;
    b.put(column::dhist, "x", encode_u64(1));
    ASSERT_TRUE(s->apply(std::move(b)).has_value());
  }
  auto s = open_store(d.path() / "db", role::router);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, errc::unsupported_layout);
  EXPECT_NE(s.error().context.find("mirror"), std::string::npos);
  // No router column was created in it: it still opens as the mirror it is.
  auto m = open_ok(d, role::mirror);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->get(column::dhist, "x")->has_value());
}

TEST(storage_store, opening_a_missing_store_read_only_fails_and_creates_nothing) {
  temp_dir d("store");
  open_options o;
  o.mode = open_mode::read_only;
  auto s = open_existing(d.path() / "none", o);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, errc::not_found);
  EXPECT_FALSE(std::filesystem::exists(d.path() / "none" / "CURRENT"));
}

TEST(storage_store, a_read_only_instance_reads_and_refuses_writes) {
  temp_dir d("store");
  {
    auto s = open_ok(d, role::client);
    write_batch b;
    b.put(column::outbox, "k", encode_u64(5));
    ASSERT_TRUE(s->apply(std::move(b)).has_value());
  }
  open_options o;
  o.mode = open_mode::read_only;
  auto s = open_existing(d.path() / "db", o);
  ASSERT_TRUE(s.has_value()) << s.error().message();
  EXPECT_EQ((*s)->kind(), role::client);
  EXPECT_TRUE((*s)->get(column::outbox, "k")->has_value());
  write_batch b;
  b.put(column::outbox, "k2", encode_u64(6));
  auto w = (*s)->apply(std::move(b));
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, errc::bad_state);
}

TEST(storage_store, concurrent_writers_are_group_committed_and_every_write_is_durable) {
  temp_dir d("store");
  constexpr int threads = 8;
  constexpr int per_thread = 150;
  {
    auto s = open_ok(d, role::router);
    std::vector<std::thread> ts;
    std::atomic<int> failures{0};
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        const auto conv = conv_with_last(static_cast<uint8_t>(t));
        for (int i = 0; i < per_thread; ++i) {
          write_batch b;
          b.put(column::log, keys::indexed(conv, static_cast<uint64_t>(i)), encode_u64(1));
          if (!s->apply(std::move(b)))
            ++failures;
        }
      });
    }
    for (auto& t : ts)
      t.join();
    EXPECT_EQ(failures.load(), 0);
    const auto st = s->stats();
    EXPECT_EQ(st.batches, uint64_t{threads * per_thread});
    EXPECT_LT(st.syncs, st.batches) << "no batches were merged into shared synced writes";
  }
  auto s = open_ok(d, role::router);
  for (int t = 0; t < threads; ++t)
    EXPECT_EQ(scan_indices(*s, column::log, conv_with_last(static_cast<uint8_t>(t))).size(),
              size_t{per_thread});
}

TEST(storage_store, queued_batches_apply_in_submission_order) {
  temp_dir d("store");
  auto s = open_ok(d, role::router);
  std::atomic<int> done{0};
  for (uint64_t v = 1; v <= 50; ++v) {
    write_batch b;
    b.put(column::users, "same", encode_u64(v));
    s->apply_async(std::move(b), [&](expected<void> r) {
      EXPECT_TRUE(r.has_value());
      ++done;
    });
  }
  write_batch last;
  last.put(column::users, "other", encode_u64(0));
  ASSERT_TRUE(s->apply(std::move(last)).has_value());
  EXPECT_EQ(done.load(), 50);
  EXPECT_EQ(decode_u64(*s->get(column::users, "same").value()).value(), 50u);
}

TEST(storage_store, lazy_batches_alone_are_written_unsynced_and_a_mixed_group_is_synced) {
  temp_dir d("store");
  {
    auto s = open_ok(d, role::router);
    write_batch lazy;
    lazy.put(column::cursors, "a", encode_u64(1));
    lazy.set_lazy();
    EXPECT_TRUE(lazy.lazy());
    ASSERT_TRUE(s->apply(std::move(lazy)).has_value());
    auto st = s->stats();
    EXPECT_EQ(st.batches, 1u);
    EXPECT_EQ(st.syncs, 0u) << "a group of lazy batches only needs no fsync";
    EXPECT_EQ(decode_u64(*s->get(column::cursors, "a").value()).value(), 1u);

    write_batch synced;
    synced.put(column::cursors, "b", encode_u64(2));
    write_batch lazy2;
    lazy2.put(column::cursors, "c", encode_u64(3));
    lazy2.set_lazy();
    synced.append(std::move(lazy2));
    EXPECT_FALSE(synced.lazy()) << "merging a lazy batch into a synced one keeps it synced";
    ASSERT_TRUE(s->apply(std::move(synced)).has_value());
    st = s->stats();
    EXPECT_EQ(st.batches, 2u);
    EXPECT_EQ(st.syncs, 1u);
  }
  // A process that ends (here: closes) keeps lazy writes; only a power loss before the next
  // synced write can lose them.
  auto s = open_ok(d, role::router);
  EXPECT_EQ(decode_u64(*s->get(column::cursors, "a").value()).value(), 1u);
  EXPECT_EQ(decode_u64(*s->get(column::cursors, "c").value()).value(), 3u);
}

}  // namespace
}  // namespace cowpi::storage

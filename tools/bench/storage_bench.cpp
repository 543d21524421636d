// SPDX-License-Identifier: Apache-2.0
// Benchmarks of storage/ on real RocksDB (temp dirs under $TMPDIR): synced router appends with
// 1, 16 and 128 entries per group commit and with 8 concurrent writers, the fsync floor, the CPU
// cost of building an append, bytes on disk per message for 10 and 100 members, and the
// retention collector's runs (docs/benchmarks.md, "Storage").
#include "cowpi/crypto/primitives.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/storage/router_store.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace cowpi::bench {
namespace {

namespace fs = std::filesystem;
using protocol::log_entry;

[[noreturn]] void die(const char* what, const error& e) {
  (void)std::fprintf(stderr, "storage benchmark: %s: %s\n", what, e.message().c_str());
  std::abort();
}

// A directory removed when the benchmark ends.
class scratch_dir {
public:
  scratch_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/cowpi-bench-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr)
      std::abort();
    path_ = buf.data();
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const fs::path& path() const noexcept { return path_; }

private:
  fs::path path_;
};

std::unique_ptr<storage::router_store> open_router(const fs::path& p) {
  auto s = storage::router_store::open(p);
  if (!s)
    die("open", s.error());
  return std::move(*s);
}

// A conversation of `n` members whose entries carry random bytes where ciphertexts go (storage
// does not look inside them): MESSAGEs with a 296-byte body (the smallest padded one), one
// author block per recipient, one amb per mirror, two mirrors.
class conversation {
public:
  /// `chain`: a chain-mode conversation (docs/protocol.md §4.8) in its steady state: every
  /// author block a 56-byte chain block carrying the seed, every amb and mirror block a 24-byte
  /// tag-only chain block (SETUP's slots are DH steps).
  conversation(uint64_t seed, size_t n, bool chain = false)
      : rng_(seed), rc_(conv_id(seed), mirror_set(seed), protocol::intake_limits{}), chain_(chain) {
    conv_ = conv_id(seed);
    ms_ = mirror_set(seed);
    for (size_t k = 0; k < n; ++k)
      members_.push_back(protocol::member{"user" + std::to_string(1000 + k), rng_.array<32>()});
    protocol::common c;
    c.conv = conv_;
    c.type = protocol::msg_type::setup;
    c.version = chain ? protocol::protocol_version_chain : 1;
    c.author = members_.front().id;
    c.ms = ms_;
    c.members = members_;
    setup_ = order(std::move(c), nullptr);
  }

  const log_entry& setup() const noexcept { return setup_; }
  const protocol::router_conv& rc() const noexcept { return rc_; }

  log_entry message() {
    const auto& author = members_[next_author_++ % members_.size()].id;
    const protocol::conv_state* st = rc_.state();
    protocol::common c;
    c.conv = conv_;
    c.type = protocol::msg_type::message;
    c.version = chain_ ? protocol::protocol_version_chain : 1;
    c.author = author;
    c.parent = st->next - 1;
    c.parent_hash = *st->t_at(c.parent);
    bytes body(296);
    rng_.fill(body);
    c.body_len = body.size();
    c.body_hash = crypto::sha256(body);
    c.body_commit = rng_.array<32>();
    return order(std::move(c), &body);
  }

  protocol::mirror_answers answers(const log_entry& e) {
    protocol::mirror_answers a;
    for (size_t k = 0; k < ms_.size(); ++k) {
      std::vector<protocol::slot_block> v;
      for (size_t s = 0; s < e.slots.size(); ++s)
        v.push_back(random_slot(e.c.type, false));
      a.emplace_back(std::move(v));
    }
    return a;
  }

private:
  static protocol::conv_id conv_id(uint64_t seed) {
    crypto::deterministic_rng r(seed + 77);
    return r.array<16>();
  }
  static protocol::member_list mirror_set(uint64_t seed) {
    crypto::deterministic_rng r(seed + 78);
    return {{"mirror-a", r.array<32>()}, {"mirror-b", r.array<32>()}};
  }

  protocol::block random_block() {
    protocol::block b;
    rng_.fill(b.x);
    b.ref = protocol::key_ref{protocol::key_kind::ratchet, 1, {}};
    rng_.fill(b.nonce);
    rng_.fill(b.ct);
    return b;
  }

  // A slot of this conversation's mode: `seeded` for an author block of a MESSAGE.
  protocol::slot_block random_slot(protocol::msg_type type, bool seeded) {
    if (!chain_)
      return random_block();
    if (type == protocol::msg_type::setup)
      return protocol::dh_step{1, random_block()};
    bytes ct(seeded ? 48 : 16);
    rng_.fill(ct);
    return protocol::chain_block{1, chain_n_++, std::move(ct)};
  }

  log_entry order(protocol::common c, const bytes* body) {
    const protocol::conv_state* st = rc_.state();
    const uint64_t i = st == nullptr ? 0 : st->next;
    c.aseq = (st == nullptr ? 0 : st->aseq_last.at(c.author).value) + 1;
    log_entry e;
    e.index = i;
    e.slots = protocol::slots(st, c);
    for (const auto& r : protocol::recipients(st, c))
      e.blocks.push_back(
          protocol::recipient_block{r, random_slot(c.type, c.type == protocol::msg_type::message)});
    for (size_t k = 0; k < ms_.size(); ++k)
      e.ambs.push_back(random_slot(c.type, false));
    if (c.type == protocol::msg_type::setup)
      for (const auto& m : c.members)
        e.joiners.push_back(m.id);
    if (body != nullptr)
      e.body = *body;
    e.blocks_root = rng_.array<32>();
    e.d = rng_.array<32>();
    e.t_prev = st == nullptr ? protocol::t_genesis : *st->t_at(i - 1);
    protocol::conv_state next = protocol::advance(st, c, i, e.d);
    e.t = *next.t_at(i);
    e.c = std::move(c);
    last_ordered_[e.c.author] = {i, e.d};
    rc_.restore(std::move(next), false, "", last_ordered_, {});
    return e;
  }

  crypto::deterministic_rng rng_;
  protocol::conv_id conv_{};
  protocol::member_list ms_;
  protocol::member_list members_;
  protocol::router_conv rc_;
  std::map<std::string, std::pair<uint64_t, hash32>> last_ordered_;
  log_entry setup_;
  size_t next_author_ = 0;
  bool chain_ = false;
  uint32_t chain_n_ = 0;
};

// Pre-built append batches (10 members) over 16 conversations, so that building them is not
// timed; the timed loop cycles through them (a repeated batch overwrites its own rows).
std::vector<storage::write_batch> prebuilt_appends(const storage::router_store& rs, size_t count) {
  std::vector<conversation> convs;
  for (uint64_t c = 0; c < 16; ++c)
    convs.emplace_back(100 + c, 10);
  std::vector<storage::write_batch> out;
  out.reserve(count);
  for (size_t k = 0; k < count; ++k) {
    conversation& cv = convs[k % convs.size()];
    const log_entry e = cv.message();
    out.push_back(rs.append_batch(cv.rc(), e, 1000));
  }
  return out;
}

// Synced appends, `group` entries per group commit: the writer merges the queued batches of one
// round into one synced write (group 1: one fsync per append).
void bm_storage_append_synced(benchmark::State& state) {
  const auto group = static_cast<size_t>(state.range(0));
  scratch_dir dir;
  auto rs = open_router(dir.path() / "router");
  auto batches = prebuilt_appends(*rs, 4096);
  size_t next = 0;
  uint64_t appends = 0;
  const auto before = rs->raw().stats();
  for (auto _ : state) {
    std::vector<std::future<expected<void>>> done;
    done.reserve(group);
    for (size_t g = 0; g < group; ++g) {
      auto p = std::make_shared<std::promise<expected<void>>>();
      done.push_back(p->get_future());
      rs->raw().apply_async(batches[next++ % batches.size()],
                            [p](expected<void> r) { p->set_value(std::move(r)); });
    }
    for (auto& f : done) {
      auto r = f.get();
      if (!r)
        die("append", r.error());
    }
    appends += group;
  }
  const auto after = rs->raw().stats();
  state.counters["appends/s"] =
      benchmark::Counter(static_cast<double>(appends), benchmark::Counter::kIsRate);
  state.counters["appends/sync"] = static_cast<double>(after.batches - before.batches)
                                   / static_cast<double>(after.syncs - before.syncs);
}
BENCHMARK(bm_storage_append_synced)->Arg(1)->Arg(16)->Arg(128)->UseRealTime();

// 8 threads, each appending one entry at a time and waiting for its sync (conversation actors
// on a busy router): the group-commit writer merges whatever is queued.
void bm_storage_append_8_writers(benchmark::State& state) {
  scratch_dir dir;
  auto rs = open_router(dir.path() / "router");
  auto batches = prebuilt_appends(*rs, 4096);
  constexpr size_t writers = 8;
  constexpr size_t per_writer = 64;
  uint64_t appends = 0;
  const auto before = rs->raw().stats();
  for (auto _ : state) {
    std::vector<std::thread> ts;
    for (size_t w = 0; w < writers; ++w) {
      ts.emplace_back([&, w] {
        for (size_t k = 0; k < per_writer; ++k) {
          auto r = rs->raw().apply(batches[(w * per_writer + k) % batches.size()]);
          if (!r)
            die("append", r.error());
        }
      });
    }
    for (auto& t : ts)
      t.join();
    appends += writers * per_writer;
  }
  const auto after = rs->raw().stats();
  state.counters["appends/s"] =
      benchmark::Counter(static_cast<double>(appends), benchmark::Counter::kIsRate);
  state.counters["appends/sync"] = static_cast<double>(after.batches - before.batches)
                                   / static_cast<double>(after.syncs - before.syncs);
}
BENCHMARK(bm_storage_append_8_writers)->UseRealTime()->Unit(benchmark::kMillisecond);

// The floor: a synced write of one 8-byte row (the WAL fsync alone).
void bm_storage_synced_write_floor(benchmark::State& state) {
  scratch_dir dir;
  auto rs = open_router(dir.path() / "router");
  uint64_t k = 0;
  for (auto _ : state) {
    storage::write_batch b;
    b.put(storage::column::users, "k" + std::to_string(k % 64), storage::encode_u64(k));
    ++k;
    auto r = rs->raw().apply(std::move(b));
    if (!r)
      die("write", r.error());
  }
  state.counters["writes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(bm_storage_synced_write_floor)->UseRealTime();

// The same group commit with a 100-byte row per batch instead of a 10-member append (~3.5 KB):
// what the writer costs when the payload does not dominate (the machine anchor's setting).
void bm_storage_small_synced(benchmark::State& state) {
  const auto group = static_cast<size_t>(state.range(0));
  scratch_dir dir;
  auto rs = open_router(dir.path() / "router");
  uint64_t k = 0;
  for (auto _ : state) {
    std::vector<std::future<expected<void>>> done;
    for (size_t g = 0; g < group; ++g) {
      storage::write_batch b;
      b.put(storage::column::users, "k" + std::to_string(k++ % 4096), bytes(100, 7));
      auto p = std::make_shared<std::promise<expected<void>>>();
      done.push_back(p->get_future());
      rs->raw().apply_async(std::move(b), [p](expected<void> r) { p->set_value(std::move(r)); });
    }
    for (auto& f : done) {
      auto r = f.get();
      if (!r)
        die("write", r.error());
    }
  }
  state.counters["writes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(group),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(bm_storage_small_synced)->Arg(1)->Arg(16)->UseRealTime();

// CPU: building one append's batch (encoding the entry, its blocks and record rows).
void bm_storage_append_batch_build(benchmark::State& state) {
  scratch_dir dir;
  auto rs = open_router(dir.path() / "router");
  conversation cv(7, static_cast<size_t>(state.range(0)));
  const log_entry e = cv.message();
  for (auto _ : state)
    benchmark::DoNotOptimize(rs->append_batch(cv.rc(), e, 1000));
}
BENCHMARK(bm_storage_append_batch_build)->Arg(10)->Arg(100);

// Bytes on disk per message for `n` members: 1000 MESSAGEs logged and answered by both mirrors
// (every byte the router keeps until retention), then flushed and compacted. mode:1 public-key,
// mode:2 chain (docs/protocol.md §4.8).
void bm_storage_bytes_per_message(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const bool chain = state.range(1) == 2;
  constexpr uint64_t messages = 1000;
  double on_disk = 0;
  double written = 0;
  for (auto _ : state) {
    scratch_dir dir;
    auto rs = open_router(dir.path() / "router");
    conversation cv(42, n, chain);
    auto ok = rs->append(cv.rc(), cv.setup(), 1000);
    if (!ok)
      die("append", ok.error());
    ok = rs->persist_answers(cv.setup(), cv.answers(cv.setup()));
    if (!ok)
      die("answers", ok.error());
    const auto before = rs->raw().stats();
    auto base = rs->raw().compact();
    if (!base)
      die("compact", base.error());
    const uint64_t base_bytes = rs->raw().live_bytes().value();
    for (uint64_t m = 0; m < messages; ++m) {
      const log_entry e = cv.message();
      ok = rs->append(cv.rc(), e, 1000);
      if (!ok)
        die("append", ok.error());
      ok = rs->persist_answers(e, cv.answers(e));
      if (!ok)
        die("answers", ok.error());
    }
    const auto after = rs->raw().stats();
    auto c = rs->raw().compact();
    if (!c)
      die("compact", c.error());
    on_disk = static_cast<double>(rs->raw().live_bytes().value() - base_bytes) / messages;
    written = static_cast<double>(after.bytes - before.bytes) / messages;
  }
  state.counters["disk_bytes/msg"] = on_disk;
  state.counters["written_bytes/msg"] = written;
}
BENCHMARK(bm_storage_bytes_per_message)
    ->ArgNames({"n", "mode"})
    ->ArgsProduct({{10, 100}, {1, 2}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// The retention collector's work (actors/src/router/collector.cpp): `convs` conversations of
// 10 members with `entries` MESSAGEs each, logged, answered and acknowledged by every member;
// then one run of `router_store::collect` over every conversation (it deletes every entry) and a
// second run (nothing left: what an idle conversation costs a run).
void bm_storage_collect(benchmark::State& state) {
  const auto convs = static_cast<size_t>(state.range(0));
  const auto entries = static_cast<size_t>(state.range(1));
  double deleting_us = 0;
  double idle_us = 0;
  uint64_t deleted = 0;
  for (auto _ : state) {
    state.PauseTiming();
    scratch_dir dir;
    auto rs = open_router(dir.path() / "router");
    std::vector<protocol::conv_id> ids;
    std::vector<std::future<expected<void>>> pending;
    auto queue = [&](auto&& call) {
      auto p = std::make_shared<std::promise<expected<void>>>();
      pending.push_back(p->get_future());
      call([p](expected<void> r) { p->set_value(std::move(r)); });
    };
    for (size_t k = 0; k < convs; ++k) {
      conversation cv(1000 + k, 10, true);
      // (append_async checks the record's state against the entry: each entry is appended
      // right after the conversation produced it)
      std::vector<log_entry> log{cv.setup()};
      queue([&](auto done) { rs->append_async(cv.rc(), log.back(), 1000, done); });
      queue(
          [&](auto done) { rs->persist_answers_async(log.back(), cv.answers(log.back()), done); });
      for (size_t m = 0; m < entries; ++m) {
        log.push_back(cv.message());
        queue([&](auto done) { rs->append_async(cv.rc(), log.back(), 1000, done); });
        queue([&](auto done) {
          rs->persist_answers_async(log.back(), cv.answers(log.back()), done);
        });
      }
      for (auto& f : pending)
        if (auto r = f.get(); !r)
          die("log", r.error());
      pending.clear();
      for (const auto& m : cv.setup().slots)
        queue([&](auto done) { rs->ack_async(m, cv.setup().c.conv, log.back().index, done); });
      ids.push_back(cv.setup().c.conv);
    }
    for (auto& f : pending)
      if (auto r = f.get(); !r)
        die("ack", r.error());
    state.ResumeTiming();
    auto run = [&] {
      const auto t0 = std::chrono::steady_clock::now();
      uint64_t n = 0;
      for (const auto& conv : ids) {
        auto got = rs->collect(conv, 2000, 30 * 24 * 3600);
        if (!got)
          die("collect", got.error());
        n += got->deleted;
      }
      return std::make_pair(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count(),
          n);
    };
    auto [first_us, n] = run();
    auto [second_us, none] = run();
    if (none != 0)
      die("collect", error{errc::corruption, "a second run found entries to delete"});
    deleting_us = first_us;
    idle_us = second_us;
    deleted = n;
  }
  state.counters["deleted"] = static_cast<double>(deleted);
  state.counters["us/conv(deleting)"] = deleting_us / static_cast<double>(convs);
  state.counters["us/entry(deleting)"] = deleting_us / static_cast<double>(deleted);
  state.counters["us/conv(idle)"] = idle_us / static_cast<double>(convs);
}
BENCHMARK(bm_storage_collect)
    ->ArgNames({"convs", "entries"})
    ->Args({1000, 20})
    ->Args({10, 2000})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cowpi::bench

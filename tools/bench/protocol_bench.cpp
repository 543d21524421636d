// SPDX-License-Identifier: Apache-2.0
// Benchmarks of the protocol state machines for n members and 2 mirrors: the author's CPU
// and upload per MESSAGE, a recipient's CPU, a mirror's CPU per message, SETUP and UPDATE.
// The MESSAGE benchmarks run in both block modes (`mode:1` public-key, `mode:2` chain,
// docs/protocol.md §4.8), in the steady state: every earlier entry ordered.
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/wire.hpp"
#include "cowpi/sim/world.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cowpi::bench {
namespace {

using namespace cowpi::sim;  // NOLINT(google-build-using-namespace): benchmark harness

std::string user_name(size_t k) {
  char b[32];
  std::snprintf(b, sizeof b, "u%04zu", k);
  return b;
}

template <class T>
T must(expected<T> r) {
  if (!r) {
    std::fprintf(stderr, "benchmark setup failed: %s\n", r.error().message().c_str());
    std::abort();
  }
  return std::move(r).value();
}

// What a benchmark's `mode` argument selects: 1 public-key; 2 chain mode where no recipient
// has sent anything yet, so every chain block still carries the sender's announced key (+40
// bytes); 3 chain mode once every member has sent an entry referencing the keys announced to
// it, as any member's first RECEIPT does (docs/protocol.md §4.8 "When to step"), so chain
// blocks carry no announcement until the next rotation.
enum class variant { pk = 1, chain_silent = 2, chain_replied = 3 };

protocol::block_mode mode_of(variant v) {
  return v == variant::pk ? protocol::block_mode::pk : protocol::block_mode::chain;
}

// A conversation of n members where only the author (u0000) and one recipient (u0001) are
// online, so building the deployment costs O(n) rather than O(n^2).
struct deployment {
  std::unique_ptr<world> w;
  conv_id conv{};
  explicit deployment(size_t n, variant v = variant::pk) {
    const protocol::block_mode mode = mode_of(v);
    world_options o;
    o.seed = 42 + n + 1000 * static_cast<size_t>(mode);
    w = std::make_unique<world>(o);
    std::vector<std::string> others;
    for (size_t k = 0; k < n; ++k) {
      w->add_user(user_name(k));
      if (k > 0)
        others.push_back(user_name(k));
      if (k > 1)
        w->set_online(user_name(k), false);
    }
    conv = must(w->create(user_name(0), others, mode));
    w->run();
    w->add_user("zz-joiner");  // for the UPDATE benchmark
    w->set_online("zz-joiner", false);
    if (v == variant::chain_replied) {
      // The offline members cannot send here, so their references are marked as their DH
      // steps would mark them (`apply_effects`): on every sender's channels that the
      // benchmarks measure (the author's, the recipient's and the mirrors').
      for (const char* u : {"u0000", "u0001"})
        for (auto& [peer, ch] : w->user(u).mutable_convs()[conv].channels)
          ch.announced_referenced = ch.announced != 0;
      for (size_t k = 0; k < w->ms().size(); ++k)
        for (auto& [peer, ch] : w->mirror_at(k).m.mutable_convs()[conv].channels)
          ch.announced_referenced = ch.announced != 0;
    }
  }
  client& author() { return w->user(user_name(0)); }
};

// One deployment per size and mode, built on first use and reused by every benchmark of it.
deployment& shared(size_t n, variant v = variant::pk) {
  static std::map<std::pair<size_t, variant>, std::unique_ptr<deployment>> cache;
  auto& d = cache[{n, v}];
  if (!d)
    d = std::make_unique<deployment>(n, v);
  return *d;
}

variant mode_arg(const benchmark::State& state) {
  return static_cast<variant>(state.range(1));
}

const std::string kText(200, 'x');

void author_message(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  auto& d = shared(n, mode_arg(state));
  // A copy: the entries sent here are never ordered in the world, which the recording
  // benchmarks below still use.
  client c = d.author().clone();
  crypto::system_rng r;
  size_t upload = 0;
  size_t slot_bytes = 0;
  for (auto _ : state) {
    auto out = must(c.send_message(d.conv, as_bytes(kText), d.w->now(), r));
    state.PauseTiming();
    upload += protocol::wire::encode(protocol::client_frame{1, out.submit}).size();
    for (const auto& rb : out.submit.blocks)
      slot_bytes += protocol::enc_slot(rb.blk).size();
    auto& cc = c.mutable_convs()[d.conv];
    // The steady state: the entry is ordered (its echo accepted), so in chain mode the next
    // one chains on its steps.
    // As the client does when its echo is accepted: each channel learns what the ordered
    // version carried on it, so its acknowledged counter moves with the chain.
    const hash32 dv = cc.outbox.back().versions.back().d;
    std::map<std::string_view, const protocol::slot_block*> sent;
    for (const auto& rb : out.submit.blocks)
      sent.emplace(rb.recipient, &rb.blk);
    const auto& ms = cc.st.ms;
    for (size_t k = 0; k < out.submit.ambs.size() && k < ms.size(); ++k)
      sent.emplace(ms[k].id, &out.submit.ambs[k]);
    for (auto& [peer, ch] : cc.channels) {
      auto f = sent.find(peer);
      protocol::on_ordered(ch.out, out.aseq, dv, f == sent.end() ? nullptr : f->second);
    }
    cc.outbox.clear();  // keep memory flat
    state.ResumeTiming();
    benchmark::DoNotOptimize(out);
  }
  // Means over every MESSAGE sent, so the DH steps a long run makes (every DH_EVERY entries
  // per channel) are counted at their share.
  const double sent =
      static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
  state.counters["upload_bytes"] = static_cast<double>(upload) / sent;
  state.counters["upload_per_recipient"] =
      static_cast<double>(upload) / sent / static_cast<double>(n - 1);
  state.counters["slot_bytes_per_recipient"] =
      static_cast<double>(slot_bytes) / sent / static_cast<double>(n - 1);
}

// K MESSAGEs from u0000, recorded as the envelopes u0001 receives and the log entries the
// mirrors commit, replayed against copies of the states before them.
struct recording {
  std::unique_ptr<client> recipient_before;
  std::vector<envelope> envelopes;
  std::unique_ptr<mirror> mirror_before;
  std::unique_ptr<crypto::deterministic_rng> mirror_rng;
  std::map<conv_id, std::map<uint64_t, hash32>> d_before;
  std::vector<log_entry> entries;
};

recording& recorded(size_t n, size_t k, variant v) {
  static std::map<std::pair<size_t, variant>, std::unique_ptr<recording>> cache;
  auto& rec = cache[{n, v}];
  if (rec)
    return *rec;
  rec = std::make_unique<recording>();
  auto& d = shared(n, v);
  world& w = *d.w;
  rec->recipient_before = std::make_unique<client>(w.user(user_name(1)).clone());
  rec->mirror_before = std::make_unique<mirror>(w.mirror_at(0).m.clone());
  rec->mirror_rng = std::make_unique<crypto::deterministic_rng>(w.mirror_at(0).rng);
  rec->d_before = w.mirror_at(0).d;
  const uint64_t first = w.log(d.conv).rbegin()->first + 1;
  w.set_interceptor([&](in_flight& m) {
    if (auto* e = std::get_if<to_client_envelope>(&m); e && e->user == user_name(1)) {
      rec->envelopes.push_back(e->env);
      return false;  // the live recipient stays behind; the recording is replayed
    }
    return true;
  });
  for (size_t i = 0; i < k; ++i) {
    (void)w.send(user_name(0), d.conv, kText);
    w.run();
  }
  w.set_interceptor(nullptr);
  for (uint64_t i = first; i < first + k; ++i)
    rec->entries.push_back(w.log(d.conv).at(i).e);
  return *rec;
}

constexpr size_t kRecorded = 16;

void recipient_message(benchmark::State& state) {
  auto& rec = recorded(static_cast<size_t>(state.range(0)), kRecorded, mode_arg(state));
  crypto::system_rng r;
  std::unique_ptr<client> c;
  size_t next = rec.envelopes.size();
  for (auto _ : state) {
    if (next == rec.envelopes.size()) {
      state.PauseTiming();
      c = std::make_unique<client>(rec.recipient_before->clone());
      next = 0;
      state.ResumeTiming();
    }
    auto res = c->receive(rec.envelopes[next++], 0, r);
    if (res.accepted.size() != 1)
      state.SkipWithError("envelope not accepted");
    benchmark::DoNotOptimize(res);
  }
}

struct history : mirror_history {
  std::map<conv_id, std::map<uint64_t, hash32>> d;
  std::optional<hash32> d_at(const conv_id& conv, uint64_t i) const override {
    auto c = d.find(conv);
    if (c == d.end())
      return std::nullopt;
    auto x = c->second.find(i);
    return x == c->second.end() ? std::nullopt : std::optional<hash32>(x->second);
  }
};

void mirror_message(benchmark::State& state) {
  auto& rec = recorded(static_cast<size_t>(state.range(0)), kRecorded, mode_arg(state));
  std::unique_ptr<mirror> m;
  std::unique_ptr<crypto::deterministic_rng> r;
  history h;
  size_t next = rec.entries.size();
  for (auto _ : state) {
    if (next == rec.entries.size()) {
      state.PauseTiming();
      m = std::make_unique<mirror>(rec.mirror_before->clone());
      // The same randomness as the live mirror, so it announces the same keys the
      // recorded author blocks reference.
      r = std::make_unique<crypto::deterministic_rng>(*rec.mirror_rng);
      h.d = rec.d_before;
      next = 0;
      state.ResumeTiming();
    }
    const log_entry& e = rec.entries[next++];
    // The payload (with the block digests) is the router's work: not timed.
    state.PauseTiming();
    auto payload = e.prepare_for(0);
    state.ResumeTiming();
    auto p = m->prepare(payload, 0);
    auto out = m->commit(commit_msg{e.index, e.d, std::move(payload)}, h, 0, *r);
    if (!std::holds_alternative<answer>(out.response)) {
      std::string why = "commit failed";
      if (const auto* rj = std::get_if<link_reject>(&out.response))
        why += ": " + rj->reason;
      if (const auto* g = std::get_if<gap>(&out.response))
        why += ": gap " + std::to_string(g->next);
      state.SkipWithError(why.c_str());
      break;
    }
    h.d[e.c.conv][out.index] = out.d;
    benchmark::DoNotOptimize(p);
  }
}

void setup_conversation(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  auto& d = shared(n);
  auto& c = d.author();
  member_list others;
  std::vector<std::string> owners;
  for (size_t k = 1; k < n; ++k) {
    others.push_back(member{user_name(k), d.w->user(user_name(k)).self().lpk()});
    owners.push_back(user_name(k));
  }
  for (const auto& m : d.w->ms())
    owners.push_back(m.id);
  crypto::system_rng r;
  for (auto _ : state) {
    state.PauseTiming();
    auto bundles = d.w->fetch(user_name(0), owners);
    state.ResumeTiming();
    auto out = must(c.create(others, bundles, d.w->now(), r));
    state.PauseTiming();
    c.mutable_convs().erase(out.conv);
    state.ResumeTiming();
  }
}

void update_add_one(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  auto& d = shared(n);
  auto& c = d.author();
  crypto::system_rng r;
  const std::string joiner = "zz-joiner";
  static std::map<size_t, bool> fetched;
  if (!fetched[n]) {
    (void)must(c.add_bundles(d.conv, d.w->fetch(user_name(0), {joiner})));
    fetched[n] = true;
  }
  const member_list adds = {member{joiner, d.w->user(joiner).self().lpk()}};
  for (auto _ : state) {
    auto out = must(c.update(d.conv, adds, {}, d.w->now(), r));
    state.PauseTiming();
    c.mutable_convs()[d.conv].outbox.clear();
    state.ResumeTiming();
    benchmark::DoNotOptimize(out);
  }
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int n : {2, 10, 50, 100, 1000})
    b->Arg(n);
  b->Unit(benchmark::kMicrosecond);
}

// n members in each block mode (`variant`: 1 public-key, 2 chain with silent recipients, 3
// chain once every member has replied).
void sizes_and_modes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "mode"});
  for (int mode : {1, 2, 3})
    for (int n : {2, 10, 50, 100, 1000})
      b->Args({n, mode});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(author_message)->Apply(sizes_and_modes);
BENCHMARK(recipient_message)->Apply(sizes_and_modes);
BENCHMARK(mirror_message)->Apply(sizes_and_modes);
BENCHMARK(setup_conversation)->Apply(sizes);
BENCHMARK(update_add_one)->Apply(sizes);

}  // namespace
}  // namespace cowpi::bench

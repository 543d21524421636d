// SPDX-License-Identifier: Apache-2.0
// Benchmarks of the chain blocks of docs/protocol.md §4.8 against the §4.3 blocks they replace:
// one chain step, one chain block sealed and opened, a DH step, and the block layer of an
// author's MESSAGE, a mirror's COMMIT and a recipient's acceptance for n members and 2 mirrors
// in both modes (the per-recipient blocks, their AD and hashes, blocks_root; not C, the body or
// the SUBMIT encoding, which the protocol benchmarks include).
#include "cowpi/crypto/primitives.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/chain.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/keys.hpp"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::bench {
namespace {

using crypto::public_key;
using crypto::secret;
using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): benchmark harness

template <class T>
T must(expected<T> r) {
  if (!r.has_value()) {
    (void)std::fprintf(stderr, "benchmark setup failed: %s\n", r.error().message().c_str());
    std::abort();
  }
  return std::move(r).value();
}

std::string member_name(size_t k) {
  std::string n = std::to_string(k);
  return "u" + std::string(n.size() < 4 ? 4 - n.size() : 0, '0') + n;
}

secret<32> random_key(crypto::rng& r) {
  return r.secret_bytes<32>();
}

// Google Benchmark's `for (auto _ : state)` loop variable is unused by design.
// NOLINTBEGIN(clang-analyzer-deadcode.DeadStores)

void bm_chain_step(benchmark::State& state) {
  crypto::system_rng rng;
  auto ck = random_key(rng);
  for (auto _ : state) {
    auto k = chain_step(ck);
    ck = std::move(k.next_ck);
    benchmark::DoNotOptimize(k.mk);
  }
}
BENCHMARK(bm_chain_step);

// A MESSAGE author block: a seed, the §5.4 AD.
void bm_seal_chain_block(benchmark::State& state) {
  crypto::system_rng rng;
  send_chain sc(1, random_key(rng), 0);
  chain_plaintext pt;
  pt.seed = random_key(rng);
  const bytes ad = ad_block(rng.array<32>(), "alice", "bob");
  for (auto _ : state) {
    auto b = sc.seal(pt, ad);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(bm_seal_chain_block);

void bm_open_chain_block(benchmark::State& state) {
  crypto::system_rng rng;
  auto ck = random_key(rng);
  send_chain sc(1, ck.clone(), 0);
  recv_chain rc;
  rc.epoch = 1;
  rc.ck = std::move(ck);
  chain_plaintext pt;
  pt.seed = random_key(rng);
  const bytes ad = ad_block(rng.array<32>(), "alice", "bob");
  const auto b = must(sc.seal(pt, ad));
  for (auto _ : state) {
    auto o = open_chain_block(&rc, b, ad);  // changes nothing: opens again each time
    benchmark::DoNotOptimize(o);
  }
}
BENCHMARK(bm_open_chain_block);

void bm_seal_dh_step(benchmark::State& state) {
  crypto::system_rng rng;
  const identity alice = identity::generate("alice", rng);
  const identity bob = identity::generate("bob", rng);
  auto e = random_key(rng);
  crypto::clamp(e.expose());
  const key_ref ref{key_kind::prekey, 1, crypto::x25519_base(e)};
  const conv_id conv = rng.array<16>();
  block_plaintext pt;
  pt.announced_id = 1;
  pt.announced_pub = ref.pub;
  const bytes ad = ad_block(rng.array<32>(), "alice", "bob");
  uint32_t epoch = 1;
  for (auto _ : state) {
    auto s = seal_dh_step(alice, "bob", bob.lpk(), conv, ref, ref.pub, pt, epoch++, ad, rng);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(bm_seal_dh_step);

// n members (the author u0000 and n - 1 recipients) and two mirrors, with every channel's keys
// in place: for the public-key mode each recipient's RATCHET key, for chain mode an epoch per
// channel in both directions.
struct group {
  crypto::system_rng rng;
  std::vector<identity> members;
  std::vector<secret<32>> ratchet;  // each recipient's receive key (scalar)
  std::vector<public_key> ratchet_pub;
  std::vector<send_chain> author_chains;  // author -> recipient k (index k - 1)
  std::vector<recv_chain> recipient_chains;
  std::vector<send_chain> mirror_chains;  // one mirror -> member k
  recv_chain mirror_recv[2];              // at u0001, from each mirror
  conv_id conv{};

  explicit group(size_t n) {
    conv = rng.array<16>();
    for (size_t k = 0; k < n; ++k)
      members.push_back(identity::generate(member_name(k), rng));
    for (size_t k = 1; k < n; ++k) {
      auto e = random_key(rng);
      crypto::clamp(e.expose());
      ratchet_pub.push_back(crypto::x25519_base(e));
      ratchet.push_back(std::move(e));
      auto ck = random_key(rng);
      recv_chain rc;
      rc.epoch = 1;
      rc.ck = ck.clone();
      recipient_chains.push_back(std::move(rc));
      author_chains.emplace_back(1, std::move(ck), 0);
    }
    for (size_t k = 0; k < n; ++k)
      mirror_chains.emplace_back(1, random_key(rng), 0);
    for (auto& m : mirror_recv) {
      auto ck = random_key(rng);
      m.epoch = 1;
      m.ck = std::move(ck);
    }
  }
};

group& shared_group(size_t n) {
  static std::map<size_t, std::unique_ptr<group>> cache;
  auto& g = cache[n];
  if (!g)
    g = std::make_unique<group>(n);
  return *g;
}

// The author's block layer: one block per recipient under the §5.4 AD, H(block) per recipient
// and blocks_root; chain mode (range(1) == 1) or public-key mode.
void author_blocks(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const bool chain_mode = state.range(1) == 1;
  auto& g = shared_group(n);
  const hash32 h_c = g.rng.array<32>();
  size_t bytes_per_recipient = 0;
  for (auto _ : state) {
    const secret<32> seed = random_key(g.rng);
    std::vector<block_digest> digests;
    digests.reserve(n - 1);
    for (size_t k = 1; k < n; ++k) {
      const std::string& to = g.members[k].id();
      const bytes ad = ad_block(h_c, g.members[0].id(), to);
      if (chain_mode) {
        chain_plaintext pt;
        pt.seed = seed.clone();
        const auto b = must(g.author_chains[k - 1].seal(pt, ad));
        const bytes e = enc_chain_block(b);
        bytes_per_recipient = e.size();
        digests.push_back({to, crypto::sha256(e)});
      } else {
        block_plaintext pt;
        pt.seed = seed.clone();
        pt.announced_id = 1;
        pt.announced_pub = g.ratchet_pub[k - 1];
        const key_ref ref{key_kind::ratchet, 1, public_key{}};
        const auto b = must(seal_block(g.members[0], to, g.members[k].lpk(), g.conv, ref,
                                       g.ratchet_pub[k - 1], pt, ad, g.rng));
        bytes_per_recipient = block_size;
        digests.push_back({to, block_hash(b)});
      }
    }
    auto root = blocks_root(digests);
    benchmark::DoNotOptimize(root);
  }
  state.counters["block_bytes_per_recipient"] = static_cast<double>(bytes_per_recipient);
}

// A mirror's COMMIT block layer: one tag-only block per slot (the author and every recipient)
// under the mirror-block AD.
void mirror_blocks(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const bool chain_mode = state.range(1) == 1;
  auto& g = shared_group(n);
  const hash32 t_i = g.rng.array<32>();
  const identity mirror = identity::generate("mirror-a", g.rng);
  uint64_t index = 1;
  for (auto _ : state) {
    for (size_t k = 0; k < n; ++k) {
      const std::string& to = g.members[k].id();
      const bytes ad = ad_mirror_block(g.conv, index, t_i, "mirror-a", to, t_i);
      if (chain_mode) {
        auto b = must(g.mirror_chains[k].seal({}, ad));
        benchmark::DoNotOptimize(b);
      } else {
        block_plaintext pt;
        pt.announced_id = 1;
        pt.announced_pub = t_i;
        const key_ref ref{key_kind::ratchet, 1, public_key{}};
        const public_key& e = k == 0 ? g.ratchet_pub[0] : g.ratchet_pub[k - 1];
        auto b = must(seal_block(mirror, to, g.members[k].lpk(), g.conv, ref, e, pt, ad, g.rng));
        benchmark::DoNotOptimize(b);
      }
    }
    ++index;
  }
}

// A recipient's block work for one MESSAGE in chain mode: its author block (with a seed) and one
// tag-only block from each of two mirrors, opened in order.
void recipient_chain_blocks(benchmark::State& state) {
  auto& g = shared_group(2);
  const hash32 h_c = g.rng.array<32>();
  chain_plaintext pt;
  pt.seed = random_key(g.rng);
  const bytes ad = ad_block(h_c, g.members[0].id(), g.members[1].id());
  send_chain from_author(1, g.recipient_chains[0].ck.clone(), g.recipient_chains[0].next);
  send_chain from_mirror[2] = {send_chain(1, g.mirror_recv[0].ck.clone(), g.mirror_recv[0].next),
                               send_chain(1, g.mirror_recv[1].ck.clone(), g.mirror_recv[1].next)};
  const auto b = must(from_author.seal(pt, ad));
  const auto m0 = must(from_mirror[0].seal({}, ad));
  const auto m1 = must(from_mirror[1].seal({}, ad));
  for (auto _ : state) {
    auto o = open_chain_block(&g.recipient_chains[0], b, ad);
    auto p = open_chain_block(&g.mirror_recv[0], m0, ad);
    auto q = open_chain_block(&g.mirror_recv[1], m1, ad);
    if (!o || !p || !q)
      state.SkipWithError("a chain block did not open");
    benchmark::DoNotOptimize(o);
  }
}
BENCHMARK(recipient_chain_blocks)->Unit(benchmark::kMicrosecond);

void modes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"members", "chain"});
  for (int n : {10, 100, 1000})
    for (int chain : {0, 1})
      b->Args({n, chain});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(author_blocks)->Apply(modes);
BENCHMARK(mirror_blocks)->Apply(modes);

// NOLINTEND(clang-analyzer-deadcode.DeadStores)

}  // namespace
}  // namespace cowpi::bench

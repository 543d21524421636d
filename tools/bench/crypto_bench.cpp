// SPDX-License-Identifier: Apache-2.0
// Benchmarks of the crypto core: X25519, NAXOS, pairwise keys and blocks, AEAD, HKDF, SHA-256 and
// the transport frame cipher (the baseline docs/design.md §2's later MAC-chain step is measured
// against).
#include "cowpi/crypto/primitives.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/transport_crypto.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace cowpi::bench {
namespace {

using crypto::public_key;
using crypto::secret;
using protocol::identity;

// Benchmark inputs are built once per benchmark; a failure there is a bug in cowpi itself.
template <class T>
T must(expected<T> r) {
  if (!r.has_value()) {
    (void)std::fprintf(stderr, "benchmark setup failed: %s\n", r.error().message().c_str());
    std::abort();
  }
  return std::move(r).value();
}

secret<32> scalar(crypto::rng& r) {
  auto s = r.secret_bytes<32>();
  crypto::clamp(s.expose());
  return s;
}

// A sender, a receiver with a PREKEY, and everything a block between them needs.
struct pair_setup {
  crypto::system_rng rng;
  identity alice = identity::generate("alice", rng);
  identity bob = identity::generate("bob", rng);
  secret<32> e_r = scalar(rng);
  public_key e_pub = crypto::x25519_base(e_r);
  protocol::conv_id conv = rng.array<16>();
  protocol::key_ref ref{protocol::key_kind::prekey, 1, e_pub};
  protocol::naxos_keypair x = protocol::naxos_fresh(alice, rng);
  bytes ad = bytes(32, 0xad);

  protocol::pair_context ctx() const { return {"alice", "bob", conv, ref, x.pub}; }
  protocol::block_plaintext plaintext() {
    protocol::block_plaintext pt;
    pt.seed = rng.secret_bytes<32>();
    pt.announced_id = 2;
    pt.announced_pub = crypto::x25519_base(scalar(rng));
    return pt;
  }
};

// Google Benchmark's `for (auto _ : state)` loop variable is unused by design.
// NOLINTBEGIN(clang-analyzer-deadcode.DeadStores)

void bm_x25519_scalarmult(benchmark::State& state) {
  crypto::system_rng rng;
  auto sk = scalar(rng);
  const public_key pk = crypto::x25519_base(scalar(rng));
  for (auto _ : state) {
    auto k = crypto::x25519(sk, pk);
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(bm_x25519_scalarmult);

void bm_x25519_base(benchmark::State& state) {
  crypto::system_rng rng;
  auto sk = scalar(rng);
  for (auto _ : state) {
    auto pk = crypto::x25519_base(sk);
    benchmark::DoNotOptimize(pk);
  }
}
BENCHMARK(bm_x25519_base);

void bm_naxos_derive(benchmark::State& state) {
  crypto::system_rng rng;
  auto owner = identity::generate("alice", rng);
  auto esk = rng.secret_bytes<32>();
  for (auto _ : state) {
    auto kp = protocol::naxos_derive(esk, owner);
    benchmark::DoNotOptimize(kp);
  }
}
BENCHMARK(bm_naxos_derive);

void bm_pair_key_send(benchmark::State& state) {
  pair_setup s;
  const auto ctx = s.ctx();
  for (auto _ : state) {
    auto k = protocol::pair_key_send(s.alice, s.x.x, s.bob.lpk(), s.e_pub, ctx);
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(bm_pair_key_send);

void bm_pair_key_recv(benchmark::State& state) {
  pair_setup s;
  const auto ctx = s.ctx();
  for (auto _ : state) {
    auto k = protocol::pair_key_recv(s.bob, s.e_r, s.alice.lpk(), ctx);
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(bm_pair_key_recv);

void bm_seal_block(benchmark::State& state) {
  pair_setup s;
  const auto pt = s.plaintext();
  for (auto _ : state) {
    auto b =
        protocol::seal_block(s.alice, "bob", s.bob.lpk(), s.conv, s.ref, s.e_pub, pt, s.ad, s.rng);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(bm_seal_block);

void bm_open_block(benchmark::State& state) {
  pair_setup s;
  const auto b = must(protocol::seal_block(s.alice, "bob", s.bob.lpk(), s.conv, s.ref, s.e_pub,
                                           s.plaintext(), s.ad, s.rng));
  for (auto _ : state) {
    auto pt = protocol::open_block(s.bob, s.e_r, "alice", s.alice.lpk(), s.conv, b, s.ad);
    benchmark::DoNotOptimize(pt);
  }
}
BENCHMARK(bm_open_block);

// AEAD over 72 B (a block plaintext), 1 KiB and 64 KiB (the largest padded body).
void bm_aead_seal(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const bytes key(crypto::aead_key_size, 0x42);
  const bytes nonce(crypto::aead_nonce_size, 0x24);
  const bytes pt(n, 0x61);
  const bytes ad(32, 0xad);
  bytes out(n + crypto::aead_tag_size);
  for (auto _ : state) {
    auto r = crypto::aead_seal_into(out, key, nonce, pt, ad);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(bm_aead_seal)->Arg(72)->Arg(1024)->Arg(65536);

void bm_aead_open(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const bytes key(crypto::aead_key_size, 0x42);
  const bytes nonce(crypto::aead_nonce_size, 0x24);
  const bytes ad(32, 0xad);
  const bytes ct = must(crypto::aead_seal(key, nonce, bytes(n, 0x61), ad));
  bytes out(n);
  for (auto _ : state) {
    auto r = crypto::aead_open_into(out, key, nonce, ct, ad);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(bm_aead_open)->Arg(72)->Arg(1024)->Arg(65536);

// One 32-byte HKDF with a 96-byte ikm, as every pairwise and session key is made.
void bm_hkdf32(benchmark::State& state) {
  const bytes salt(15, 0x73);
  const bytes ikm(96, 0x69);
  const bytes info(150, 0x6e);
  for (auto _ : state) {
    auto k = crypto::hkdf32(salt, ikm, info);
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(bm_hkdf32);

void bm_sha256_1k(benchmark::State& state) {
  const bytes m(1024, 0x6d);
  for (auto _ : state) {
    auto h = crypto::sha256(m);
    benchmark::DoNotOptimize(h);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 1024);
}
BENCHMARK(bm_sha256_1k);

void bm_frame_cipher_seal_1k(benchmark::State& state) {
  crypto::system_rng rng;
  protocol::frame_cipher tx(rng.secret_bytes<32>());
  const bytes pt(1024, 0x66);
  for (auto _ : state) {
    auto ct = tx.seal(pt);
    benchmark::DoNotOptimize(ct);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 1024);
}
BENCHMARK(bm_frame_cipher_seal_1k);

// NOLINTEND(clang-analyzer-deadcode.DeadStores)

}  // namespace
}  // namespace cowpi::bench

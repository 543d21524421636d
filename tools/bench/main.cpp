// SPDX-License-Identifier: Apache-2.0
// Entry point of cowpi-bench: initialises libsodium, then runs either the end-to-end load
// generator (`cowpi-bench load ...`) or Google Benchmark as its own main does.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdio>
#include <cstring>

#if COWPI_BENCH_LOAD
#include "load.hpp"
#include "mirror_bench.hpp"
#endif

namespace {

void print_usage() {
  (void)std::fputs(
      "cowpi-bench: cowpi's benchmarks.\n"
      "  cowpi-bench [--benchmark_filter=REGEX] [other --benchmark_* flags]\n"
      "      the crypto, protocol and storage micro-benchmarks (Google Benchmark; see\n"
      "      --benchmark_list_tests and Google Benchmark's own flags)\n"
      "  cowpi-bench load [options]\n"
      "      the end-to-end load generator against a router and two mirrors on loopback\n"
      "      (`cowpi-bench load --help` for its options)\n"
      "  cowpi-bench mirror [options]\n"
      "      one mirror node in process fed many conversations at once\n"
      "      (`cowpi-bench mirror --help` for its options)\n",
      stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // STYLE.md §2.5: sodium_init() once from each main(), before any benchmark touches libsodium.
  if (sodium_init() < 0) {
    (void)std::fputs("sodium_init failed\n", stderr);
    return 1;
  }
  if (argc > 1 && std::strcmp(argv[1], "load") == 0) {
#if COWPI_BENCH_LOAD
    return cowpi::bench::run_load(argc - 1, argv + 1);
#else
    (void)std::fputs("cowpi-bench load: this build has no CAF runtime (COWPI_WITH_ACTORS=OFF)\n",
                     stderr);
    return 2;
#endif
  }
  if (argc > 1 && std::strcmp(argv[1], "mirror") == 0) {
#if COWPI_BENCH_LOAD
    return cowpi::bench::run_mirror(argc - 1, argv + 1);
#else
    (void)std::fputs("cowpi-bench mirror: this build has no CAF runtime (COWPI_WITH_ACTORS=OFF)\n",
                     stderr);
    return 2;
#endif
  }
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    print_usage();
    // Google Benchmark's own flags follow.
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

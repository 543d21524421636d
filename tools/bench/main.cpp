// SPDX-License-Identifier: Apache-2.0
// Entry point of cowpi-bench: initialises libsodium, then runs Google Benchmark as its own main
// does.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdio>

int main(int argc, char** argv) {
  // STYLE.md §2.5: sodium_init() once from each main(), before any benchmark touches libsodium.
  if (sodium_init() < 0) {
    (void)std::fputs("sodium_init failed\n", stderr);
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

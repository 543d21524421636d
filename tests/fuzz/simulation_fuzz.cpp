// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the simulation: the input bytes choose the run's shape and every action
// (send, deliver, drop, reorder, duplicate, fork, tamper, crash-and-restore, ...); a broken
// invariant aborts with the driver's report.
#include "sim_driver.hpp"
#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
// The input's length bounds a run too; this keeps one input below a few seconds.
constexpr size_t max_fuzz_actions = 160;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  if (sodium_init() < 0)
    std::abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cowpi::sim::byte_source src({data, size});
  cowpi::sim::sim_config cfg = cowpi::sim::config_from(src);
  cfg.max_actions = max_fuzz_actions;
  // Reproducing a crash: COWPI_SIM_TRACE=<n> reports the last n actions instead of 60.
  if (const char* t = std::getenv("COWPI_SIM_TRACE"))
    cfg.trace_lines = std::strtoull(t, nullptr, 10);
  auto v = cowpi::sim::run_simulation(cfg, src);
  if (v) {
    std::fprintf(stderr, "%s\n", v->to_string().c_str());
    std::abort();
  }
  return 0;
}

// SPDX-License-Identifier: Apache-2.0
// Fault points: read COWPI_FAULT once, SIGKILL at the named point.
#include "cowpi/actors/fault.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace cowpi::actors {

namespace {
struct fault_config {
  std::string point;
  long skip = 0;
  fault_config() {
    if (const char* p = std::getenv("COWPI_FAULT"))
      point = p;
    if (const char* s = std::getenv("COWPI_FAULT_SKIP"))
      skip = std::strtol(s, nullptr, 10);
  }
};
const fault_config& config() {
  static const fault_config c;
  return c;
}
std::atomic<long> passes{0};
}  // namespace

void fault_point(std::string_view point) {
  const auto& c = config();
  if (c.point.empty() || c.point != point)
    return;
  if (passes.fetch_add(1) < c.skip)
    return;
  // Say where, so a test log shows the kill was deliberate, then die without cleanup.
  (void)std::fprintf(stderr, "cowpi: fault point %s: SIGKILL\n", c.point.c_str());
  (void)std::fflush(stderr);
  ::kill(::getpid(), SIGKILL);
  std::abort();  // not reached
}

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// Private to actors: the wall clock in whole seconds since the Unix epoch, the one time unit
// the protocol and the stores use (registration times, rate windows, retention, rotation).
#pragma once

#include <chrono>
#include <cstdint>

namespace cowpi::actors {

inline uint64_t unix_seconds() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace cowpi::actors

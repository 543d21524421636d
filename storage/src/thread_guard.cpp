// SPDX-License-Identifier: Apache-2.0
#include "cowpi/storage/thread_guard.hpp"

#include <atomic>

namespace cowpi::storage {

namespace {

thread_local bool marked = false;
std::array<std::atomic<uint64_t>, blocking_op_count> counts{};

}  // namespace

std::string_view to_string(blocking_op op) noexcept {
  switch (op) {
    case blocking_op::get:
      return "get";
    case blocking_op::scan:
      return "scan";
    case blocking_op::apply:
      return "apply";
  }
  return "unknown";
}

void mark_nonblocking_thread(bool on) noexcept {
  marked = on;
}

bool on_nonblocking_thread() noexcept {
  return marked;
}

void note_blocking(blocking_op op) noexcept {
  if (marked)
    counts[static_cast<size_t>(op)].fetch_add(1, std::memory_order_relaxed);
}

std::array<uint64_t, blocking_op_count> blocking_calls_on_nonblocking_threads() noexcept {
  std::array<uint64_t, blocking_op_count> out{};
  for (size_t i = 0; i < blocking_op_count; ++i)
    out[i] = counts[i].load(std::memory_order_relaxed);
  return out;
}

}  // namespace cowpi::storage

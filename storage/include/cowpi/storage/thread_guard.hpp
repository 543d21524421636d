// SPDX-License-Identifier: Apache-2.0
// Threads that must never wait for the disk. An actor runtime marks its scheduler and I/O
// threads; every store call that may read the disk or wait for a sync, made on a marked
// thread, is counted. A provider reports the count (docs/admin.md): it stays 0, because every
// such call runs on a store's reader or writer thread or in a detached actor.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace cowpi::storage {

/// The store calls that may block: a point read (`get`), a scan (`scan`, `scan_reverse`) and
/// a synced write waited for (`apply`). `get_in_memory` and `apply_async` never block.
enum class blocking_op : uint8_t { get = 0, scan, apply };
inline constexpr size_t blocking_op_count = 3;
std::string_view to_string(blocking_op op) noexcept;

/// Marks (or unmarks) the calling thread as one that must not block.
void mark_nonblocking_thread(bool on) noexcept;
/// Whether the calling thread is marked.
bool on_nonblocking_thread() noexcept;
/// Called by the store before each call that may block: counts it when the thread is marked.
void note_blocking(blocking_op op) noexcept;
/// Calls counted since the process started, per `blocking_op`.
std::array<uint64_t, blocking_op_count> blocking_calls_on_nonblocking_threads() noexcept;

}  // namespace cowpi::storage

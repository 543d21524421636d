// SPDX-License-Identifier: Apache-2.0
// A byte buffer for the plaintext of sealed records: sodium_malloc'ed (guard pages, canary),
// wiped on destruction and its block recycled (secure_bytes.cpp), move-only, never resized.
#pragma once

#include "cowpi/crypto/bytes.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace cowpi::storage {

/// `size()` bytes of secret-bearing plaintext (an encoded channel, key slot, outbox entry or
/// transcript entry) in libsodium-guarded memory. The capacity is a power of two (up to 1 MiB)
/// so the data is aligned for Cap'n Proto's word reader. Move-only; a move empties the
/// source. Not thread-safe (a plain value; the block pool is). Never put one in a log.
class secure_bytes {
public:
  secure_bytes() = default;
  /// Allocates `n` zeroed bytes. Aborts on allocation failure (out of memory is fatal).
  explicit secure_bytes(size_t n);
  ~secure_bytes();
  secure_bytes(const secure_bytes&) = delete;
  secure_bytes& operator=(const secure_bytes&) = delete;
  secure_bytes(secure_bytes&& o) noexcept;
  secure_bytes& operator=(secure_bytes&& o) noexcept;

  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  uint8_t* data() noexcept { return ptr_; }
  const uint8_t* data() const noexcept { return ptr_; }
  std::span<uint8_t> span() noexcept { return {ptr_, size_}; }
  byte_view view() const noexcept { return {ptr_, size_}; }
  /// Shrinks the visible size (the memory stays allocated and is wiped on destruction).
  /// REQUIRES: `n <= size()`.
  void shrink(size_t n) noexcept;

private:
  uint8_t* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// Guarded plaintext buffers for sealed records.
#include "cowpi/storage/secure_bytes.hpp"

#include "cowpi/protocol/expected.hpp"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

namespace cowpi::storage {

secure_bytes::secure_bytes(size_t n) : size_(n) {
  // A multiple of 16 keeps sodium_malloc's pointer (placed against the trailing guard page)
  // aligned for Cap'n Proto words.
  const size_t cap = n == 0 ? 16 : (n + 15) / 16 * 16;
  ptr_ = static_cast<uint8_t*>(sodium_malloc(cap));
  if (ptr_ == nullptr)
    std::abort();  // out of memory is fatal
  std::memset(ptr_, 0, cap);
}

secure_bytes::~secure_bytes() {
  if (ptr_ != nullptr)
    sodium_free(ptr_);  // zeroes the memory first
}

secure_bytes::secure_bytes(secure_bytes&& o) noexcept : ptr_(o.ptr_), size_(o.size_) {
  o.ptr_ = nullptr;
  o.size_ = 0;
}

secure_bytes& secure_bytes::operator=(secure_bytes&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr)
      sodium_free(ptr_);
    ptr_ = o.ptr_;
    size_ = o.size_;
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

void secure_bytes::shrink(size_t n) noexcept {
  COWPI_ASSERT(n <= size_);
  sodium_memzero(ptr_ + n, size_ - n);
  size_ = n;
}

}  // namespace cowpi::storage

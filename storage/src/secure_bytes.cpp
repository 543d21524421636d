// SPDX-License-Identifier: Apache-2.0
// Guarded plaintext buffers for sealed records, recycled through a small pool of
// sodium_malloc'ed blocks so that a steady stream of record writes makes no system calls.
#include "cowpi/storage/secure_bytes.hpp"

#include "cowpi/protocol/expected.hpp"

#include <sodium.h>

#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace cowpi::storage {

namespace {

// Every buffer of up to kMaxPooled bytes is allocated with a power-of-two capacity of at least
// 16 bytes (class c holds capacity 2^c). A released buffer is wiped and kept for reuse, up to
// kKeepPerClass per class; sodium_malloc's guard pages, canary and mlock stay in place while it
// waits. Without the pool every encoded channel or outbox entry cost an mmap, three mprotect, an
// mlock, an munlock and an munmap (with TLB shootdowns on every core): a quarter of all CPU in the
// 10-member load bench (docs/benchmarks.md).
constexpr unsigned kMinClass = 4;   // 16 B
constexpr unsigned kMaxClass = 20;  // 1 MiB
constexpr size_t kMaxPooled = size_t{1} << kMaxClass;
constexpr size_t kKeepPerClass = 32;
constexpr size_t kKeepBytesPerClass = size_t{1} << 21;  // 2 MiB of mlocked memory at most

// The class whose capacity is the smallest power of two >= n (n <= kMaxPooled).
unsigned class_of(size_t n) {
  const unsigned c = static_cast<unsigned>(std::bit_width(n <= 1 ? size_t{0} : n - 1));
  return c < kMinClass ? kMinClass : c;
}

// Invariant: every pooled buffer is entirely zero.
class pool {
public:
  uint8_t* take(unsigned c) {
    {
      std::lock_guard<std::mutex> g(mu_);
      auto& v = free_[c];
      if (!v.empty()) {
        uint8_t* p = v.back();
        v.pop_back();
        return p;
      }
    }
    return allocate(size_t{1} << c);
  }

  // `p` has a capacity of at least 2^c and is already wiped.
  void give(unsigned c, uint8_t* p) {
    {
      std::lock_guard<std::mutex> g(mu_);
      auto& v = free_[c];
      if (v.size() < kKeepPerClass && (v.size() + 1) << c <= kKeepBytesPerClass) {
        v.push_back(p);
        return;
      }
    }
    sodium_free(p);
  }

  static uint8_t* allocate(size_t cap) {
    auto* p = static_cast<uint8_t*>(sodium_malloc(cap));
    if (p == nullptr)
      std::abort();  // out of memory is fatal
    std::memset(p, 0, cap);
    return p;
  }

private:
  std::mutex mu_;
  std::array<std::vector<uint8_t*>, kMaxClass + 1> free_;
};

// Never destroyed: buffers in static objects may be released during static destruction. The
// pooled blocks stay reachable from it, and their pages are returned at exit.
pool& the_pool() {
  static pool* p = new pool;
  return *p;
}

}  // namespace

secure_bytes::secure_bytes(size_t n) : size_(n) {
  // A power-of-two capacity (a multiple of 16 beyond the pool) keeps sodium_malloc's pointer,
  // placed against the trailing guard page, aligned for Cap'n Proto words.
  if (n <= kMaxPooled)
    ptr_ = the_pool().take(class_of(n));
  else
    ptr_ = pool::allocate((n + 15) / 16 * 16);
}

// Bytes past `size_` are always zero (zeroed at allocation, wiped by `shrink`), so wiping
// `size_` bytes wipes the whole buffer. A buffer shrunk below kMaxPooled returns to the class
// of its current size, whose capacity is at most its real one.
static void release(uint8_t* p, size_t size) {
  sodium_memzero(p, size);
  if (size <= kMaxPooled)
    the_pool().give(class_of(size), p);
  else
    sodium_free(p);
}

secure_bytes::~secure_bytes() {
  if (ptr_ != nullptr)
    release(ptr_, size_);
}

secure_bytes::secure_bytes(secure_bytes&& o) noexcept : ptr_(o.ptr_), size_(o.size_) {
  o.ptr_ = nullptr;
  o.size_ = 0;
}

secure_bytes& secure_bytes::operator=(secure_bytes&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr)
      release(ptr_, size_);
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

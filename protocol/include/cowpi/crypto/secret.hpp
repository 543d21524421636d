// SPDX-License-Identifier: Apache-2.0
// Secret holders: fixed-size, move-only, zeroed on move and destruction, never printable.
#pragma once

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/protocol/expected.hpp"

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <span>

namespace cowpi::crypto {

/// Compares two byte strings in constant time (for equal lengths). Returns
/// false when the lengths differ. The only way cowpi compares MACs, tags,
/// keys and anything derived from a secret.
[[nodiscard]] inline bool ct_equal(byte_view a, byte_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

/// Returns true iff every byte of `b` is zero, in time independent of the contents.
[[nodiscard]] inline bool is_zero(byte_view b) noexcept {
  return sodium_is_zero(b.data(), b.size()) == 1;
}

/// `N` secret bytes in ordinary memory, for short-lived keys (message keys,
/// DH outputs, KDF inputs). Move-only: a move zeroes the source. The
/// destructor wipes the bytes with `sodium_memzero`. There is no `==`, no
/// stream operator and no CAF `inspect`: the bytes leave only via the
/// grep-able `expose()`. Not thread-safe (a plain value).
template <size_t N>
class secret {
public:
  static constexpr size_t size = N;

  /// All-zero bytes.
  secret() noexcept { std::memset(bytes_, 0, N); }
  ~secret() { sodium_memzero(bytes_, N); }
  secret(const secret&) = delete;
  secret& operator=(const secret&) = delete;
  secret(secret&& other) noexcept {
    std::memcpy(bytes_, other.bytes_, N);
    sodium_memzero(other.bytes_, N);
  }
  secret& operator=(secret&& other) noexcept {
    if (this != &other) {
      std::memcpy(bytes_, other.bytes_, N);
      sodium_memzero(other.bytes_, N);
    }
    return *this;
  }

  /// Copies `b` in. REQUIRES: `b.size() == N` (asserted: a wrong size is a bug).
  static secret from(byte_view b) noexcept {
    COWPI_ASSERT(b.size() == N);
    secret s;
    std::memcpy(s.bytes_, b.data(), N);
    return s;
  }

  /// Returns an explicit copy. Named so that every copy of a secret is visible.
  secret clone() const noexcept {
    secret s;
    std::memcpy(s.bytes_, bytes_, N);
    return s;
  }

  /// Returns the bytes. Grep for `expose()` to audit every use.
  std::span<uint8_t, N> expose() noexcept { return std::span<uint8_t, N>(bytes_, N); }
  std::span<const uint8_t, N> expose() const noexcept {
    return std::span<const uint8_t, N>(bytes_, N);
  }

  /// Constant-time comparison.
  [[nodiscard]] bool ct_equals(const secret& other) const noexcept {
    return sodium_memcmp(bytes_, other.bytes_, N) == 0;
  }
  bool operator==(const secret&) const = delete;

  /// Wipes the bytes now.
  void wipe() noexcept { sodium_memzero(bytes_, N); }

private:
  alignas(8) uint8_t bytes_[N];
};

/// `N` secret bytes in `sodium_malloc` memory (guard pages, canary, mlock)
/// that is `PROT_NONE` while no `reader` is alive. For long-lived identity
/// keys. Move-only. Thread-safe: readers may be taken from several threads.
template <size_t N>
class locked_secret {
  // Declared before `reader`, whose member declarations name it (clang requires this).
  struct shared;

public:
  /// Allocates zeroed, locked memory. Aborts on allocation failure (OOM is fatal).
  locked_secret() : state_(new shared) {
    state_->ptr = static_cast<uint8_t*>(sodium_malloc(N));
    if (state_->ptr == nullptr) {
      std::abort();  // out of memory is fatal
    }
    std::memset(state_->ptr, 0, N);
    sodium_mprotect_noaccess(state_->ptr);
  }
  explicit locked_secret(const secret<N>& s) : locked_secret() {
    std::lock_guard<std::mutex> g(state_->mu);
    sodium_mprotect_readwrite(state_->ptr);
    std::memcpy(state_->ptr, s.expose().data(), N);
    sodium_mprotect_noaccess(state_->ptr);
  }
  ~locked_secret() {
    if (state_ != nullptr) {
      sodium_free(state_->ptr);  // zeroes the memory first
      delete state_;
    }
  }
  locked_secret(const locked_secret&) = delete;
  locked_secret& operator=(const locked_secret&) = delete;
  locked_secret(locked_secret&& o) noexcept : state_(o.state_) { o.state_ = nullptr; }
  locked_secret& operator=(locked_secret&& o) noexcept {
    if (this != &o) {
      this->~locked_secret();
      state_ = o.state_;
      o.state_ = nullptr;
    }
    return *this;
  }

  /// Read access for the lifetime of the reader. While any reader is alive
  /// the memory is read-only; after the last one it is `PROT_NONE` again.
  class reader {
  public:
    explicit reader(const locked_secret& s) : st_(s.state_) {
      std::lock_guard<std::mutex> g(st_->mu);
      if (st_->readers++ == 0) {
        sodium_mprotect_readonly(st_->ptr);
      }
    }
    ~reader() {
      std::lock_guard<std::mutex> g(st_->mu);
      if (--st_->readers == 0) {
        sodium_mprotect_noaccess(st_->ptr);
      }
    }
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;
    std::span<const uint8_t, N> expose() const noexcept {
      return std::span<const uint8_t, N>(st_->ptr, N);
    }

  private:
    typename locked_secret::shared* st_;
  };

  /// Returns a reader; see `reader`.
  reader read() const { return reader(*this); }
  /// Returns an ordinary `secret` copy (for serialising into sealed storage).
  secret<N> clone() const {
    auto r = read();
    return secret<N>::from(r.expose());
  }

private:
  struct shared {
    uint8_t* ptr = nullptr;
    std::mutex mu;
    int readers = 0;
  };
  shared* state_ = nullptr;
};

}  // namespace cowpi::crypto

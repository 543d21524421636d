// SPDX-License-Identifier: Apache-2.0
// The injectable randomness source: libsodium's CSPRNG, or a seeded one for tests and vectors.
#pragma once

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/secret.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace cowpi::crypto {

/// Where every random byte in cowpi comes from. Protocol code takes an `rng&`
/// and never calls a global source, so a seeded `deterministic_rng` makes
/// every run (and every test vector) reproducible.
class rng {
public:
  virtual ~rng() = default;
  /// Fills `out` with random bytes.
  virtual void fill(std::span<uint8_t> out) = 0;

  /// Returns `N` fresh random secret bytes.
  template <size_t N>
  secret<N> secret_bytes() {
    secret<N> s;
    fill(s.expose());
    return s;
  }
  /// Returns `N` fresh random public bytes (nonces, conversation ids).
  template <size_t N>
  byte_array<N> array() {
    byte_array<N> a{};
    fill(a);
    return a;
  }
};

/// libsodium's `randombytes_buf`. REQUIRES: `sodium_init()` has run.
class system_rng final : public rng {
public:
  void fill(std::span<uint8_t> out) override { randombytes_buf(out.data(), out.size()); }
};

/// A reproducible stream from a 32-byte seed: call k fills its output with
/// `randombytes_buf_deterministic` under the seed SHA-256("cowpi/v1/test-rng"
/// || seed || be64(k)). For tests and vectors only: never for real keys.
class deterministic_rng final : public rng {
public:
  explicit deterministic_rng(const byte_array<32>& seed) noexcept : seed_(seed) {}
  /// Seeds from a small integer (seed bytes = be64(n) || 24 zero bytes).
  explicit deterministic_rng(uint64_t n) noexcept;
  void fill(std::span<uint8_t> out) override;
  /// Returns how many fills have been made.
  uint64_t calls() const noexcept { return counter_; }

private:
  byte_array<32> seed_;
  uint64_t counter_ = 0;
};

}  // namespace cowpi::crypto

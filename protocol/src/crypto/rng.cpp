// SPDX-License-Identifier: Apache-2.0
// The seeded test/vector RNG.
#include "cowpi/crypto/rng.hpp"

#include "cowpi/crypto/primitives.hpp"

namespace cowpi::crypto {

deterministic_rng::deterministic_rng(uint64_t n) noexcept : seed_{} {
  for (int i = 0; i < 8; ++i)
    seed_[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (56 - 8 * i));
}

void deterministic_rng::fill(std::span<uint8_t> out) {
  if (out.empty()) {
    ++counter_;  // an empty draw still advances the stream (the vectors depend on it)
    return;      // (libsodium's buffer argument must not be null, even for zero bytes)
  }
  byte_writer w(64);
  w.raw("cowpi/v1/test-rng").raw(seed_).be64(counter_++);
  hash32 sub = sha256(w.data());
  randombytes_buf_deterministic(out.data(), out.size(), sub.data());
}

}  // namespace cowpi::crypto

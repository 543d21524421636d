// SPDX-License-Identifier: Apache-2.0
// Hex helpers for tests: parse or abort.
#pragma once

#include "cowpi/crypto/bytes.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace cowpi::testing {

/// Parses hex; a malformed literal is a bug in the test itself.
inline bytes hex(std::string_view s) {
  auto b = from_hex(s);
  if (!b) {
    ADD_FAILURE() << "bad hex literal in test";
    return {};
  }
  return *b;
}

/// Parses exactly N bytes of hex.
template <size_t N>
byte_array<N> hex_array(std::string_view s) {
  byte_array<N> a{};
  auto b = hex(s);
  EXPECT_EQ(b.size(), N);
  for (size_t i = 0; i < N && i < b.size(); ++i)
    a[i] = b[i];
  return a;
}

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// Guarded plaintext buffers: recycled blocks come back wiped, whatever size they were written at
// and however they were shrunk; sizes beyond the pool and across threads work the same.
#include "cowpi/storage/secure_bytes.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace cowpi::storage {
namespace {

bool all_zero(const secure_bytes& b) {
  return std::all_of(b.view().begin(), b.view().end(), [](uint8_t x) { return x == 0; });
}

bool aligned(const secure_bytes& b) {
  return reinterpret_cast<uintptr_t>(b.data()) % 16 == 0;
}

TEST(storage_secure_bytes, a_new_buffer_is_zero_and_aligned_even_when_it_reuses_a_written_one) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{600},
                   size_t{1024}, size_t{5000}, size_t{1} << 20}) {
    for (int round = 0; round < 3; ++round) {
      {
        secure_bytes b(n);
        ASSERT_EQ(b.size(), n);
        EXPECT_TRUE(all_zero(b)) << n;
        EXPECT_TRUE(aligned(b)) << n;
        std::fill(b.span().begin(), b.span().end(), uint8_t{0xA5});
      }
      // The block just released is the one most likely handed out next.
      secure_bytes again(n);
      EXPECT_TRUE(all_zero(again)) << n << " bytes, round " << round;
    }
  }
}

TEST(storage_secure_bytes, a_shrunk_buffer_returns_wiped_and_its_whole_capacity_is_zero_on_reuse) {
  {
    secure_bytes b(1000);
    std::fill(b.span().begin(), b.span().end(), uint8_t{0x5A});
    b.shrink(100);  // now filed under the 128-byte class, with 1024 bytes of room
    EXPECT_EQ(b.size(), 100u);
  }
  for (int i = 0; i < 4; ++i) {
    secure_bytes small(128);
    EXPECT_TRUE(all_zero(small));
    std::fill(small.span().begin(), small.span().end(), uint8_t{0x11});
  }
  secure_bytes big(1000);
  EXPECT_TRUE(all_zero(big));
}

TEST(storage_secure_bytes, buffers_beyond_the_pool_and_moves_keep_their_bytes) {
  secure_bytes big((size_t{1} << 20) + 1);
  big.data()[big.size() - 1] = 7;
  secure_bytes moved(std::move(big));
  EXPECT_TRUE(big.empty());
  EXPECT_EQ(moved.data()[moved.size() - 1], 7);
  moved.shrink(64);
  secure_bytes other(64);
  other.data()[0] = 9;
  other = std::move(moved);  // releases other's block, takes the shrunk big one
  EXPECT_EQ(other.size(), 64u);
  EXPECT_TRUE(all_zero(other));
}

TEST(storage_secure_bytes, threads_taking_and_releasing_at_once_never_share_a_block) {
  std::vector<std::thread> ts;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([t, &bad] {
      for (int i = 0; i < 2000; ++i) {
        secure_bytes b(200 + static_cast<size_t>(i % 3) * 300);
        if (!all_zero(b))
          ++bad[static_cast<size_t>(t)];
        std::fill(b.span().begin(), b.span().end(), static_cast<uint8_t>(t + 1));
        std::this_thread::yield();
        if (!std::all_of(b.view().begin(), b.view().end(),
                         [t](uint8_t x) { return x == static_cast<uint8_t>(t + 1); }))
          ++bad[static_cast<size_t>(t)];
      }
    });
  for (auto& th : ts)
    th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// GoogleTest main for every cowpi test binary: initialises libsodium once.
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdio>

namespace {
class sodium_environment : public ::testing::Environment {
public:
  void SetUp() override {
    if (sodium_init() < 0) {
      std::fprintf(stderr, "sodium_init failed\n");
      std::abort();
    }
  }
};
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new sodium_environment);
  return RUN_ALL_TESTS();
}

// SPDX-License-Identifier: Apache-2.0
// The seeded protocol vectors: the checked-in files verify, and regenerating them from their
// seed gives exactly the checked-in bytes (so a protocol change is a visible diff).
#include "vectors.hpp"
#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace cowpi::vectors {
namespace {

nlohmann::json load(const std::string& file) {
  std::ifstream f(std::string(COWPI_SOURCE_DIR) + "/tests/vectors/data/" + file);
  EXPECT_TRUE(f.good()) << "missing " << file;
  return nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
}

class protocol_vectors : public ::testing::TestWithParam<kind> {};

TEST_P(protocol_vectors, checked_in_file_verifies) {
  const auto v = load(GetParam().file);
  ASSERT_FALSE(v.is_discarded()) << GetParam().file << " is not JSON";
  auto err = GetParam().verify(v);
  EXPECT_FALSE(err.has_value()) << *err;
}

TEST_P(protocol_vectors, regenerating_from_the_seed_gives_the_checked_in_file) {
  const auto v = load(GetParam().file);
  ASSERT_FALSE(v.is_discarded());
  const bool same = GetParam().generate(v.at("seed").get<uint64_t>()) == v;
  EXPECT_TRUE(same) << GetParam().file << " differs from its regeneration: run "
                    << "tools/gen_vectors --out tests/vectors/data and review the diff";
}

TEST_P(protocol_vectors, a_changed_expected_value_is_caught) {
  auto v = load(GetParam().file);
  ASSERT_FALSE(v.is_discarded());
  // Corrupt the last hex digit of the first expected output the file holds.
  bool changed = false;
  for (const char* key : {"key", "block", "t"}) {
    for (const char* list : {"cases", "entries"}) {
      if (!changed && v.contains(list) && v[list][0].contains(key)) {
        std::string s = v[list][0][key];
        s.back() = s.back() == '0' ? '1' : '0';
        v[list][0][key] = s;
        changed = true;
      }
    }
  }
  if (!changed) {
    v["decisions"][0]["acks"] = nlohmann::json::array({42});
    changed = true;
  }
  EXPECT_TRUE(GetParam().verify(v).has_value());
}

INSTANTIATE_TEST_SUITE_P(all, protocol_vectors, ::testing::ValuesIn(all_kinds()),
                         [](const auto& p) {
                           std::string n = p.param.file;
                           return n.substr(0, n.find('.'));
                         });

}  // namespace
}  // namespace cowpi::vectors

// SPDX-License-Identifier: Apache-2.0
// The seeded protocol vectors: the checked-in files verify, and regenerating them from their
// seed gives exactly the checked-in bytes (so a protocol change is a visible diff).
#include "vectors.hpp"
#include <gtest/gtest.h>

#include <fstream>
#include <set>
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

// Flips the last hex digit of the first expected output found depth-first (keys in JSON
// order): a value named like an output of some kind.
bool corrupt_first_output(nlohmann::json& j) {
  static const std::set<std::string> outputs = {"key", "block", "t", "k_c2r", "sealed", "submit"};
  if (j.is_object()) {
    for (auto& [name, value] : j.items()) {
      if (outputs.contains(name) && value.is_string() && !value.get<std::string>().empty()) {
        std::string s = value;
        s.back() = s.back() == '0' ? '1' : '0';
        value = s;
        return true;
      }
      if (corrupt_first_output(value))
        return true;
    }
  } else if (j.is_array()) {
    for (auto& x : j)
      if (corrupt_first_output(x))
        return true;
  }
  return false;
}

TEST_P(protocol_vectors, a_changed_expected_value_is_caught) {
  auto v = load(GetParam().file);
  ASSERT_FALSE(v.is_discarded());
  ASSERT_TRUE(corrupt_first_output(v)) << GetParam().file << " names no expected output";
  EXPECT_TRUE(GetParam().verify(v).has_value());
}

TEST_P(protocol_vectors, every_file_says_what_it_pins) {
  const auto v = load(GetParam().file);
  ASSERT_FALSE(v.is_discarded());
  ASSERT_TRUE(v.contains("description"));
  EXPECT_FALSE(v.at("description").get<std::string>().empty());
}

INSTANTIATE_TEST_SUITE_P(all, protocol_vectors, ::testing::ValuesIn(all_kinds()),
                         [](const auto& p) {
                           std::string n = p.param.file;
                           return n.substr(0, n.find('.'));
                         });

}  // namespace
}  // namespace cowpi::vectors

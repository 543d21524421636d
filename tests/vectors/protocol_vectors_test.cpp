// SPDX-License-Identifier: Apache-2.0
// The seeded protocol vectors: the checked-in files verify, and regenerating them from their
// seed gives exactly the checked-in bytes (so a protocol change is a visible diff).
#include "vectors.hpp"
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <iterator>
#include <ostream>
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

// One value each family pins, changed: a flipped last hex digit, a negated flag, a number plus
// one, another word.
void change(nlohmann::json& v) {
  if (v.is_boolean()) {
    v = !v.get<bool>();
  } else if (v.is_number_integer()) {
    v = v.get<int64_t>() + 1;
  } else if (v.is_null()) {
    v = 0;
  } else if (v.is_string()) {
    std::string s = v;
    if (s.empty() || s.find_first_not_of("0123456789abcdef") != std::string::npos)
      s += "x";
    else
      s.back() = s.back() == '0' ? '1' : '0';
    v = s;
  } else {
    v = nlohmann::json::array({42});
  }
}

struct pinned {
  std::string file;
  std::string pointer;  // JSON pointer into the file
};

void PrintTo(const pinned& p, std::ostream* os) {
  *os << p.file << p.pointer;
}

class pinned_value : public ::testing::TestWithParam<pinned> {};

TEST_P(pinned_value, a_change_is_caught) {
  const kind* k = nullptr;
  for (const auto& x : all_kinds())
    if (x.file == GetParam().file)
      k = &x;
  ASSERT_NE(k, nullptr) << GetParam().file;
  auto v = load(GetParam().file);
  ASSERT_FALSE(v.is_discarded());
  const nlohmann::json::json_pointer ptr(GetParam().pointer);
  ASSERT_TRUE(v.contains(ptr)) << GetParam().file << " has no " << GetParam().pointer;
  change(v[ptr]);
  EXPECT_TRUE(k->verify(v).has_value()) << GetParam().file << GetParam().pointer;
}

// decisions.json scenarios, in generation order.
constexpr const char* commitment = "/scenarios/0/replays";
constexpr const char* block_failures = "/scenarios/1/replays/0";
constexpr const char* ratchet = "/scenarios/2/replays/0";
constexpr const char* receipt_void = "/scenarios/3/replays";
constexpr const char* joiner = "/scenarios/4/replays/0";
constexpr const char* fork = "/scenarios/5/replays/0";
constexpr const char* impersonation = "/scenarios/6/replays/0";

std::string at(const char* base, const std::string& rest) {
  return std::string(base) + rest;
}

INSTANTIATE_TEST_SUITE_P(
    families, pinned_value,
    ::testing::Values(
        // amb: the author->mirror block, the mirror block back, their AD, keys and seeds.
        pinned{"amb.json", "/cases/0/amb/block"}, pinned{"amb.json", "/cases/1/amb/key"},
        pinned{"amb.json", "/cases/2/amb/ad"}, pinned{"amb.json", "/cases/0/mirror_block/block"},
        pinned{"amb.json", "/cases/1/mirror_block/ad"},
        pinned{"amb.json", "/cases/2/mirror_block/info"}, pinned{"amb.json", "/cases/0/t"},
        pinned{"amb.json", "/cases/1/mirror_block/announced_id"},
        pinned{"amb.json", "/cases/0/amb/seed"}, pinned{"amb.json", "/cases/2/mirror_block/seed"},
        // transport: th (version, mode, lpk_R), both keys, frames, the rekey at 2^20.
        pinned{"transport.json", "/cases/0/version"}, pinned{"transport.json", "/cases/1/mode"},
        pinned{"transport.json", "/cases/0/router_lpk"}, pinned{"transport.json", "/cases/1/th"},
        pinned{"transport.json", "/cases/0/k_c2r"}, pinned{"transport.json", "/cases/1/k_r2c"},
        pinned{"transport.json", "/cases/0/frames/1/nonce"},
        pinned{"transport.json", "/cases/1/frames/2/ad"},
        pinned{"transport.json", "/cases/0/session_frames/0"},
        pinned{"transport.json", "/cases/1/hello_ack"},
        pinned{"transport.json", "/cases/0/k_c2r_rekeyed_once"},
        pinned{"transport.json", "/cases/1/rekey_frames/1/sealed"},
        pinned{"transport.json", "/cases/0/rekey_frames/3/nonce"},
        // chain: the step, the chain derivations, a block, the receiver's skipped keys, a refusal.
        pinned{"chain.json", "/epoch"}, pinned{"chain.json", "/ck_0"},
        pinned{"chain.json", "/blocks/1/mk"}, pinned{"chain.json", "/blocks/2/next_ck"},
        pinned{"chain.json", "/blocks/3/nonce"}, pinned{"chain.json", "/blocks/4/ad"},
        pinned{"chain.json", "/blocks/0/block"}, pinned{"chain.json", "/receive/5/skipped/0/mk"},
        pinned{"chain.json", "/receive/4/failure"}, pinned{"chain.json", "/refusals/1/failure"},
        pinned{"chain.json", "/step"},
        // decisions: each scenario's verdicts, alarms and the state they leave.
        pinned{"decisions.json", at(commitment, "/0/decisions/1/alarms/0/kind")},
        pinned{"decisions.json", at(commitment, "/1/decisions/2/accepted/0/void")},
        pinned{"decisions.json", at(block_failures, "/decisions/1/accepted/0/void")},
        pinned{"decisions.json", at(block_failures, "/decisions/2/alarms/0/party")},
        pinned{"decisions.json", at(block_failures, "/decisions/4/accepted/0/plaintext")},
        pinned{"decisions.json", at(block_failures, "/decisions/6/alarms/0/halted")},
        pinned{"decisions.json", at(ratchet, "/decisions/0/last_resort/pub")},
        pinned{"decisions.json", at(ratchet, "/decisions/8/keys/last_resort/0/id")},
        pinned{"decisions.json", at(ratchet, "/decisions/11/alarms/0/kind")},
        pinned{"decisions.json", at(ratchet, "/decisions/15/state/channels/alice/mine/0")},
        pinned{"decisions.json", at(receipt_void, "/1/decisions/2/accepted/0/voids/0")},
        pinned{"decisions.json", at(receipt_void, "/1/decisions/2/state/receipt_floor/bob")},
        pinned{"decisions.json", at(joiner, "/decisions/0/alarms/0/kind")},
        pinned{"decisions.json", at(joiner, "/decisions/2/state/aseq_last/bob")},
        pinned{"decisions.json", at(fork, "/decisions/3/alarms/0/halted")},
        pinned{"decisions.json", at(impersonation, "/decisions/3/alarms/0/kind")}),
    [](const auto& p) {
      std::string n = p.param.file.substr(0, p.param.file.find('.')) + p.param.pointer;
      for (char& c : n)
        if (std::isalnum(static_cast<unsigned char>(c)) == 0)
          c = '_';
      return n;
    });

// The README has a line for each vector file and each decisions.json scenario.
TEST(vectors_readme, names_every_family) {
  std::ifstream f(std::string(COWPI_SOURCE_DIR) + "/tests/vectors/README.md");
  ASSERT_TRUE(f.good());
  const std::string readme((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const auto& k : all_kinds())
    EXPECT_NE(readme.find("| `" + k.file + "`"), std::string::npos) << k.file;
  const auto d = load("decisions.json");
  ASSERT_FALSE(d.is_discarded());
  for (const auto& sc : d.at("scenarios"))
    EXPECT_NE(readme.find("scenario `" + sc.at("name").get<std::string>() + "`"), std::string::npos)
        << sc.at("name");
}

INSTANTIATE_TEST_SUITE_P(all, protocol_vectors, ::testing::ValuesIn(all_kinds()),
                         [](const auto& p) {
                           std::string n = p.param.file;
                           return n.substr(0, n.find('.'));
                         });

}  // namespace
}  // namespace cowpi::vectors

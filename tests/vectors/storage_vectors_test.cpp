// SPDX-License-Identifier: Apache-2.0
// Storage-stability vectors: the checked-in bytes of every key and record still come out of the
// encoders and decode back to themselves, so a layout change is a deliberate, visible diff.
#include "storage_vectors.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace cowpi::vectors::storage {
namespace {

nlohmann::json load() {
  std::ifstream f(std::string(COWPI_SOURCE_DIR) + "/tests/vectors/data/storage.json");
  EXPECT_TRUE(f.good()) << "missing tests/vectors/data/storage.json";
  return nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
}

TEST(storage_vectors, the_checked_in_keys_and_records_are_what_this_build_writes_and_reads) {
  const auto v = load();
  ASSERT_FALSE(v.is_discarded());
  auto err = verify(v);
  EXPECT_FALSE(err.has_value())
      << *err << ": if the change is deliberate, bump the layout "
      << "version if old stores must be refused, then run "
      << "gen_storage_vectors --out tests/vectors/data and review the diff";
}

TEST(storage_vectors, the_file_covers_every_column_family_and_record_kind) {
  const auto v = load();
  ASSERT_FALSE(v.is_discarded());
  EXPECT_GE(v["keys"].size(), 30u);
  EXPECT_GE(v["records"].size(), 25u);
  EXPECT_EQ(v["sealed"].size(), 8u);
  EXPECT_TRUE(v.contains("seal_layout"));
}

TEST(storage_vectors, a_changed_key_byte_is_caught) {
  auto v = load();
  ASSERT_FALSE(v.is_discarded());
  std::string h = v["keys"][4]["hex"];
  h.back() = h.back() == '0' ? '1' : '0';
  v["keys"][4]["hex"] = h;
  EXPECT_TRUE(verify(v).has_value());
}

TEST(storage_vectors, a_changed_record_byte_is_caught) {
  auto v = load();
  ASSERT_FALSE(v.is_discarded());
  std::string h = v["records"][10]["hex"];
  h[h.size() - 3] = h[h.size() - 3] == 'a' ? 'b' : 'a';
  v["records"][10]["hex"] = h;
  EXPECT_TRUE(verify(v).has_value());
}

TEST(storage_vectors, a_tampered_sealed_record_is_caught) {
  auto v = load();
  ASSERT_FALSE(v.is_discarded());
  std::string h = v["sealed"][0]["sealed"];
  h[60] = h[60] == 'f' ? 'e' : 'f';
  v["sealed"][0]["sealed"] = h;
  EXPECT_TRUE(verify(v).has_value());
}

TEST(storage_vectors, a_sealed_record_pinned_under_another_row_or_column_is_caught) {
  auto v = load();
  ASSERT_FALSE(v.is_discarded());
  auto moved = v;
  std::string k = moved["sealed"][0]["row_key"];
  k.back() = k.back() == '0' ? '1' : '0';
  moved["sealed"][0]["row_key"] = k;
  EXPECT_TRUE(verify(moved).has_value());
  auto other_column = v;
  other_column["sealed"][0]["column"] = "outbox";
  EXPECT_TRUE(verify(other_column).has_value());
}

TEST(storage_vectors, a_changed_byte_of_the_sealed_record_layout_is_caught) {
  for (const char* field : {"ad", "nonce", "sealed", "ciphertext_and_tag"}) {
    auto v = load();
    ASSERT_FALSE(v.is_discarded());
    std::string h = v["seal_layout"][field];
    h[2] = h[2] == 'a' ? 'b' : 'a';
    v["seal_layout"][field] = h;
    EXPECT_TRUE(verify(v).has_value()) << field;
  }
}

TEST(storage_vectors, a_different_sealed_record_format_is_caught) {
  auto v = load();
  ASSERT_FALSE(v.is_discarded());
  v["seal_format"] = 1;
  EXPECT_TRUE(verify(v).has_value());
}

TEST(storage_vectors, a_different_layout_version_is_caught) {
  auto v = load();
  ASSERT_FALSE(v.is_discarded());
  v["layout_version"] = v["layout_version"].get<uint32_t>() + 1;
  EXPECT_TRUE(verify(v).has_value());
}

}  // namespace
}  // namespace cowpi::vectors::storage

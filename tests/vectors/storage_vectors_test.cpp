// SPDX-License-Identifier: Apache-2.0
// Storage-stability vectors: the checked-in bytes of every key and record still come out of the
// encoders and decode back to themselves, so a layout change is a deliberate, visible diff.
#include "storage_vectors.hpp"

#include "cowpi/storage/records.hpp"

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

// The `Channel` record gained `brokenEpoch` (@10): a record written before it (the plaintext
// this file pinned until then) still reads, with no broken epoch, and every other field intact.
TEST(storage_vectors, a_channel_record_written_before_broken_epoch_still_reads) {
  const auto before = cowpi::from_hex(
      "0000000033000000000000000200070005000000000000000100000000000000190000002700000080000000"
      "010001009400000002000100ac00000001000000000000000000000000000000000000000000000000000000"
      "08000000010001000400000000000000080000000100020005000000000000002c000000010002000af15365"
      "0000000005000000020100001100000002010000050b963477f1891f90463b944f881dff88a211a7af27be55"
      "3d6349ba4cf59183287b12fc24ec81aa4091d04222920f31359d2d5eb68cc7efbeb9b1f25f1679ad14f15365"
      "000000000500000002010000110000000201000006adb8e84626b62df3459daf35456a5efb1439f3c1096e99"
      "c1f21644b712eeebe1a9fd9e300724244d024affe5be0ba173d4c07b351788716fade66f65618bec08000000"
      "0000000001000000020100004a02abac7e756b0ed9405bc544b63a02d9d41d478dbae5059e1330ff5ededaf9"
      "01000000000000001f00000000000000010000000201000006ed826efcbf4ab719fa5b96bfe723f7a5e16674"
      "5c22d0212286c8c24f451fcc0c00000000000000");
  ASSERT_TRUE(before.has_value());
  auto ch = cowpi::storage::decode_channel(*before);
  ASSERT_TRUE(ch.has_value()) << ch.error().message();
  EXPECT_EQ(ch->broken_epoch, 0u);
  EXPECT_EQ(ch->mine.size(), 2u);
  EXPECT_EQ(ch->announced, 5u);
  EXPECT_TRUE(ch->announced_referenced);
  ASSERT_TRUE(ch->peer_latest.has_value());
  EXPECT_EQ(ch->peer_latest->id, 8u);
  ASSERT_TRUE(ch->first_contact.has_value());
  EXPECT_EQ(ch->first_contact->id, 31u);
  EXPECT_EQ(ch->peer_used_prekey, std::optional<uint64_t>(12));
  EXPECT_FALSE(ch->in.has_value());

  // And the field round-trips.
  ch->broken_epoch = 9;
  const auto encoded = cowpi::storage::encode_channel(*ch);
  auto again = cowpi::storage::decode_channel(encoded.view());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->broken_epoch, 9u);
}

}  // namespace
}  // namespace cowpi::vectors::storage

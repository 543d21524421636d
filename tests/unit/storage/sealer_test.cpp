// SPDX-License-Identifier: Apache-2.0
// Secrets at rest: sealing (each record bound to its row), key files (created 0600, refused when
// loose or the wrong size) and passphrases, and the key check that tells a wrong key at open.
#include "cowpi/storage/sealer.hpp"

#include "cowpi/storage/store.hpp"

#include "temp_dir.hpp"
#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <fstream>

namespace cowpi::storage {
namespace {

using testing::temp_dir;

crypto::secret<32> key_of(uint8_t b) {
  crypto::secret<32> k;
  for (auto& x : k.expose())
    x = b;
  return k;
}

TEST(storage_sealer, a_sealed_record_opens_only_unchanged_and_under_its_key) {
  crypto::deterministic_rng r(1);
  sealer s(key_of(1));
  const bytes pt = {1, 2, 3, 4, 5};
  const bytes a = s.seal(column::channels, "row", pt, r);
  const bytes b = s.seal(column::channels, "row", pt, r);
  EXPECT_EQ(a.size(), pt.size() + sealer::overhead);
  EXPECT_EQ(a[0], seal_format);
  EXPECT_NE(a, b) << "every seal takes a fresh nonce";
  auto opened = s.open(column::channels, "row", a);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(bytes(opened->view().begin(), opened->view().end()), pt);
  for (size_t i = 0; i < a.size(); ++i) {
    bytes t = a;
    t[i] ^= 0x01;
    auto o = s.open(column::channels, "row", t);
    EXPECT_FALSE(o.has_value()) << "byte " << i;
  }
  auto wrong = sealer(key_of(2)).open(column::channels, "row", a);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, errc::decrypt_failed);
  EXPECT_EQ(s.open(column::channels, "row", bytes(10, 1)).error().code, errc::corruption);
}

TEST(storage_sealer, a_sealed_record_opens_only_under_the_column_and_row_key_it_was_sealed_for) {
  crypto::deterministic_rng r(2);
  sealer s(key_of(1));
  const bytes pt = {7, 7, 7};
  const std::string key = keys::indexed(protocol::conv_id{}, 3);
  const bytes sealed = s.seal(column::outbox, key, pt, r);
  ASSERT_TRUE(s.open(column::outbox, key, sealed).has_value());
  struct place {
    column c;
    std::string key;
  };
  const std::vector<place> elsewhere = {
      {column::outbox, keys::indexed(protocol::conv_id{}, 4)},  // another row
      {column::transcript, key},                                // another column, same key
      {column::outbox, key.substr(0, key.size() - 1)},          // a prefix of the key
      {column::outbox, key + std::string(1, '\0')},             // an extension of the key
      {column::outbox, ""},
  };
  for (const auto& p : elsewhere) {
    auto o = s.open(p.c, p.key, sealed);
    ASSERT_FALSE(o.has_value()) << column_name(p.c) << " " << to_hex(as_bytes(p.key));
    EXPECT_EQ(o.error().code, errc::decrypt_failed);
  }
}

TEST(storage_sealer, the_associated_data_is_the_label_the_format_the_column_and_the_row_key) {
  const bytes ad = seal_ad(column::channels, std::string_view("ab\0c", 4));
  const std::string expected = std::string("cowpi/v1/storage-seal") + '\x02'
                               + std::string("\0\0\0\x08", 4) + "channels"
                               + std::string("\0\0\0\x04", 4) + std::string("ab\0c", 4);
  EXPECT_EQ(to_hex(ad), to_hex(as_bytes(expected)));
  // The meta column is RocksDB's default column family, and is named so.
  const bytes meta = seal_ad(column::meta, "seal.check");
  EXPECT_NE(to_hex(meta).find(to_hex(as_bytes(std::string("\0\0\0\x07"
                                                          "default",
                                                          11)))),
            std::string::npos);
}

TEST(storage_sealer, a_record_of_the_earlier_unbound_format_is_never_opened) {
  // Format 1: u8(1) || nonce || crypto_secretbox_easy(pt), under the same key.
  const crypto::secret<32> key = key_of(1);
  const bytes pt = {1, 2, 3};
  bytes old(1 + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + pt.size());
  old[0] = 1;
  randombytes_buf(old.data() + 1, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(old.data() + 1 + crypto_secretbox_NONCEBYTES, pt.data(), pt.size(),
                        old.data() + 1, key.expose().data());
  sealer s(key);
  auto o = s.open(column::channels, "row", old);
  ASSERT_FALSE(o.has_value());
  EXPECT_EQ(o.error().code, errc::unsupported_layout);
  EXPECT_NE(o.error().context.find("format 1"), std::string::npos) << o.error().message();
  old[0] = seal_format;
  EXPECT_EQ(s.open(column::channels, "row", old).error().code, errc::decrypt_failed);
  old[0] = 3;
  EXPECT_EQ(s.open(column::channels, "row", old).error().code, errc::unsupported_layout);
}

TEST(storage_sealer, a_missing_key_file_is_created_0600_and_read_back) {
  temp_dir d("sealer");
  crypto::system_rng r;
  const auto path = d.path() / "storage.key";
  auto first = sealer::from_key_file(path, r);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  auto second = sealer::from_key_file(path, r);
  ASSERT_TRUE(second.has_value());
  auto opened = second->open(column::keys, "k", first->seal(column::keys, "k", bytes{9, 9}, r));
  EXPECT_TRUE(opened.has_value()) << "the reloaded key differs";
}

TEST(storage_sealer, a_key_file_with_loose_permissions_or_the_wrong_size_is_refused) {
  temp_dir d("sealer");
  crypto::system_rng r;
  const auto path = d.path() / "k";
  {
    std::ofstream f(path, std::ios::binary);
    f << std::string(32, 'k');
  }
  ::chmod(path.c_str(), 0640);
  auto loose = sealer::from_key_file(path, r);
  ASSERT_FALSE(loose.has_value());
  EXPECT_EQ(loose.error().code, errc::config);
  EXPECT_EQ(loose.error().context.find("kkkk"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  EXPECT_TRUE(sealer::from_key_file(path, r).has_value());
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << std::string(31, 'k');
  }
  auto short_key = sealer::from_key_file(path, r);
  ASSERT_FALSE(short_key.has_value());
  EXPECT_EQ(short_key.error().code, errc::bad_length);
  auto dir = sealer::from_key_file(d.path(), r);
  ASSERT_FALSE(dir.has_value());
  EXPECT_EQ(dir.error().code, errc::config);
}

TEST(storage_sealer, a_passphrase_unlocks_its_store_and_a_wrong_one_is_told_apart) {
  temp_dir d("sealer");
  crypto::system_rng r;
  passphrase good{"correct horse", 1, 8192};
  {
    auto s = open_store(d.path() / "db", role::client);
    ASSERT_TRUE(s.has_value());
    auto sl = unlock(**s, good, r);
    ASSERT_TRUE(sl.has_value()) << sl.error().message();
  }
  auto s = open_store(d.path() / "db", role::client);
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(unlock(**s, good, r).has_value());
  passphrase bad{"wrong horse", 1, 8192};
  auto w = unlock(**s, bad, r);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, errc::decrypt_failed);
  EXPECT_NE(w.error().context.find("wrong storage key"), std::string::npos);
}

TEST(storage_sealer, a_different_key_file_does_not_unlock_a_store) {
  temp_dir d("sealer");
  crypto::system_rng r;
  auto s = open_store(d.path() / "db", role::mirror);
  ASSERT_TRUE(s.has_value());
  ASSERT_TRUE(unlock(**s, key_file{d.path() / "a.key"}, r).has_value());
  EXPECT_TRUE(unlock(**s, key_file{d.path() / "a.key"}, r).has_value());
  auto other = unlock(**s, key_file{d.path() / "b.key"}, r);
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, errc::decrypt_failed);
}

}  // namespace
}  // namespace cowpi::storage

namespace cowpi::storage {
namespace {

TEST(storage_sealer, seals_inside_and_after_a_batch_open_under_the_same_key) {
  crypto::deterministic_rng r(3);
  sealer s(key_of(3));
  const bytes pt = {9, 8, 7};
  bytes inside, nested;
  {
    const sealer::batch b(s);
    inside = s.seal(column::outbox, "k", pt, r);
    {
      const sealer::batch again(s);
      nested = s.seal(column::outbox, "k", pt, r);
    }
    auto o = s.open(column::outbox, "k", nested);
    ASSERT_TRUE(o.has_value()) << "an inner batch ending leaves the outer one open";
  }
  bytes after = s.seal(column::outbox, "k", pt, r);
  for (const bytes* blob : {&inside, &nested, &after}) {
    auto o = s.open(column::outbox, "k", *blob);
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(bytes(o->view().begin(), o->view().end()), pt);
  }
}

}  // namespace
}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// Secrets at rest: sealing, key files (created 0600, refused when loose or the wrong size) and
// passphrases, and the key check that tells a wrong key at open.
#include "cowpi/storage/sealer.hpp"

#include "cowpi/storage/store.hpp"

#include "temp_dir.hpp"
#include <gtest/gtest.h>
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
  const bytes a = s.seal(pt, r);
  const bytes b = s.seal(pt, r);
  EXPECT_EQ(a.size(), pt.size() + sealer::overhead);
  EXPECT_NE(a, b) << "every seal takes a fresh nonce";
  auto opened = s.open(a);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(bytes(opened->view().begin(), opened->view().end()), pt);
  for (size_t i = 0; i < a.size(); ++i) {
    bytes t = a;
    t[i] ^= 0x01;
    auto o = s.open(t);
    EXPECT_FALSE(o.has_value()) << "byte " << i;
  }
  auto wrong = sealer(key_of(2)).open(a);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, errc::decrypt_failed);
  EXPECT_EQ(s.open(bytes(10, 1)).error().code, errc::corruption);
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
  auto opened = second->open(first->seal(bytes{9, 9}, r));
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

// SPDX-License-Identifier: Apache-2.0
// Failing disks (label crash): a read-only directory and a full one give a clear error, refuse
// further writes, and leave every acknowledged write intact and nothing half-applied.
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/store.hpp"

#include "temp_dir.hpp"
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace cowpi::storage {
namespace {

using testing::temp_dir;

// A small tmpfs mounted for the test's lifetime (root only; CAP_SYS_ADMIN).
class scratch_mount {
public:
  scratch_mount(const std::filesystem::path& at, const std::string& size) : at_(at) {
    std::filesystem::create_directories(at_);
    const std::string opts = "size=" + size;
    ok_ = ::mount("tmpfs", at_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    if (!ok_)
      why_ = std::strerror(errno);
  }
  ~scratch_mount() {
    if (ok_)
      ::umount2(at_.c_str(), MNT_DETACH);
  }
  scratch_mount(const scratch_mount&) = delete;
  scratch_mount& operator=(const scratch_mount&) = delete;
  bool ok() const noexcept { return ok_; }
  const std::string& why() const noexcept { return why_; }
  bool remount(unsigned long flags, const std::string& size) {
    const std::string opts = "size=" + size;
    return ::mount("tmpfs", at_.c_str(), "tmpfs", MS_REMOUNT | flags, opts.c_str()) == 0;
  }

private:
  std::filesystem::path at_;
  bool ok_ = false;
  std::string why_;
};

bytes value_of(uint64_t i, size_t n) {
  bytes v(n, static_cast<uint8_t>(i));
  return v;
}

TEST(storage_durability, a_read_only_directory_gives_a_clear_error_and_keeps_the_data) {
  temp_dir d("durability");
  const auto mnt = d.path() / "mnt";
  std::filesystem::create_directories(mnt);
  std::unique_ptr<scratch_mount> m;
  if (::geteuid() == 0) {
    m = std::make_unique<scratch_mount>(mnt, "64M");
    if (!m->ok())
      GTEST_SKIP() << "running as root but cannot mount a tmpfs: " << m->why();
  }
  const auto db = mnt / "db";
  {
    auto s = open_store(db, role::router);
    ASSERT_TRUE(s.has_value()) << s.error().message();
    write_batch b;
    b.put(column::users, "kept", encode_u64(42));
    ASSERT_TRUE((*s)->apply(std::move(b)).has_value());
  }
  // Root ignores permission bits, so it needs a read-only mount; others a read-only directory.
  if (m) {
    ASSERT_TRUE(m->remount(MS_RDONLY, "64M")) << std::strerror(errno);
  } else {
    ::chmod(db.c_str(), 0555);
  }
  auto s = open_store(db, role::router);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, errc::storage);
  EXPECT_FALSE(s.error().context.empty());
  open_options ro;
  ro.mode = open_mode::read_only;
  auto r = open_existing(db, ro);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(decode_u64(*(*r)->get(column::users, "kept").value()).value(), 42u);
  r->reset();
  if (m) {
    ASSERT_TRUE(m->remount(0, "64M"));
  } else {
    ::chmod(db.c_str(), 0755);
  }
  auto again = open_store(db, role::router);
  ASSERT_TRUE(again.has_value()) << again.error().message();
  EXPECT_TRUE((*again)->get(column::users, "kept")->has_value());
}

TEST(storage_durability, a_full_disk_fails_the_write_and_loses_nothing_acknowledged) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "filling a disk needs a small tmpfs (root)";
  temp_dir d("durability");
  const auto mnt = d.path() / "mnt";
  scratch_mount m(mnt, "4M");
  if (!m.ok())
    GTEST_SKIP() << "cannot mount a tmpfs: " << m.why();
  const auto db = mnt / "db";
  std::vector<uint64_t> acked;
  error failure;
  {
    auto s = open_store(db, role::router);
    ASSERT_TRUE(s.has_value()) << s.error().message();
    for (uint64_t i = 0; i < 100000; ++i) {
      // Two rows per batch: after any failure, both or neither may exist.
      write_batch b;
      b.put(column::log, "a" + std::to_string(i), value_of(i, 8192));
      b.put(column::blocks, "b" + std::to_string(i), value_of(i, 8192));
      auto r = (*s)->apply(std::move(b));
      if (!r) {
        failure = r.error();
        break;
      }
      acked.push_back(i);
    }
    RecordProperty("acknowledged", std::to_string(acked.size()));
    RecordProperty("error", failure.message());
    EXPECT_EQ(failure.code, errc::storage);
    EXPECT_NE(failure.context.find("space"), std::string::npos) << failure.context;
    EXPECT_TRUE((*s)->failed());
    write_batch more;
    more.put(column::users, "after", encode_u64(1));
    auto refused = (*s)->apply(std::move(more));
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, errc::bad_state);
  }
  ASSERT_FALSE(acked.empty());
  ASSERT_TRUE(m.remount(0, "64M"));
  auto s = open_store(db, role::router);
  ASSERT_TRUE(s.has_value()) << s.error().message();
  for (uint64_t i : acked) {
    auto a = (*s)->get(column::log, "a" + std::to_string(i));
    auto b = (*s)->get(column::blocks, "b" + std::to_string(i));
    ASSERT_TRUE(a.has_value() && a->has_value()) << "acknowledged write " << i << " lost";
    ASSERT_TRUE(b.has_value() && b->has_value()) << "acknowledged write " << i << " half-applied";
    EXPECT_EQ(**a, value_of(i, 8192));
  }
  const uint64_t next = acked.back() + 1;
  const bool a_next = (*s)->get(column::log, "a" + std::to_string(next))->has_value();
  const bool b_next = (*s)->get(column::blocks, "b" + std::to_string(next))->has_value();
  EXPECT_EQ(a_next, b_next) << "the failed batch is half-applied";
  // The store works again once there is room.
  write_batch ok;
  ok.put(column::users, "after", encode_u64(1));
  EXPECT_TRUE((*s)->apply(std::move(ok)).has_value());
}

}  // namespace
}  // namespace cowpi::storage

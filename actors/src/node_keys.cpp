// SPDX-License-Identifier: Apache-2.0
// Identity key files for providers.
#include "cowpi/actors/node_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cowpi::actors {

namespace {
expected<void> write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return fail(errc::storage, std::string("write: ") + std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}
}  // namespace

expected<protocol::identity> load_or_create_identity(const std::filesystem::path& path,
                                                     const std::string& id, crypto::rng& r) {
  const std::string where = path.string();
  struct stat st {};
  if (::lstat(where.c_str(), &st) != 0) {
    if (errno != ENOENT)
      return fail(errc::storage, where + ": " + std::strerror(errno));
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    auto lsk = r.secret_bytes<32>();
    crypto::clamp(lsk.expose());
    int fd = ::open(where.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      return fail(errc::storage, where + ": " + std::strerror(errno));
    auto w = write_all(fd, lsk.expose().data(), 32);
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!w)
      return unexpected{std::move(w).error()};
    if (!synced)
      return fail(errc::storage, where + ": fsync failed");
    return protocol::identity::from_secret(id, lsk);
  }
  if (!S_ISREG(st.st_mode))
    return fail(errc::config, where + ": not a regular file");
  if ((st.st_mode & 077) != 0)
    return fail(errc::config, where + ": permissions give access to group or others (chmod 600)");
  if (st.st_size != 32)
    return fail(errc::config, where + ": an identity key file holds 32 bytes");
  int fd = ::open(where.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(errc::storage, where + ": " + std::strerror(errno));
  crypto::secret<32> lsk;
  ssize_t got = ::read(fd, lsk.expose().data(), 32);
  ::close(fd);
  if (got != 32)
    return fail(errc::storage, where + ": short read");
  crypto::secret<32> check = lsk.clone();
  crypto::clamp(check.expose());
  if (!check.ct_equals(lsk))
    return fail(errc::config, where + ": not a clamped X25519 key");
  return protocol::identity::from_secret(id, lsk);
}

}  // namespace cowpi::actors

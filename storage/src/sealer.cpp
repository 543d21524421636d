// SPDX-License-Identifier: Apache-2.0
// The sealer (crypto_secretbox_easy), key files, argon2id passphrases and the key check record.
#include "cowpi/storage/sealer.hpp"

#include "cowpi/storage/records.hpp"
#include "cowpi/storage/store.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cowpi::storage {

static_assert(crypto_secretbox_KEYBYTES == 32);
static_assert(crypto_secretbox_NONCEBYTES == 24);
static_assert(sealer::overhead == 1 + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES);

namespace {

constexpr std::string_view check_plaintext = "cowpi storage key check v1";

expected<void> io_fail(const char* what) {
  return fail(errc::storage, std::string(what) + ": " + std::strerror(errno));
}

// Reads exactly n bytes (retrying on EINTR); false on EOF or error.
bool read_all(int fd, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t k = ::read(fd, out + got, n - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    got += static_cast<size_t>(k);
  }
  return true;
}

bool write_all(int fd, const uint8_t* in, size_t n) {
  size_t put = 0;
  while (put < n) {
    const ssize_t k = ::write(fd, in + put, n - put);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    put += static_cast<size_t>(k);
  }
  return true;
}

// Closes a descriptor on scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

expected<void> create_key_file(const std::filesystem::path& path, crypto::rng& r) {
  fd_guard g{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (g.fd < 0)
    return io_fail("cannot create the storage key file");
  // The umask may only remove bits; make sure nothing beyond 0600 was granted either way.
  if (::fchmod(g.fd, 0600) != 0)
    return io_fail("cannot set the key file's mode");
  auto key = r.secret_bytes<32>();
  if (!write_all(g.fd, key.expose().data(), 32))
    return io_fail("cannot write the key file");
  if (::fsync(g.fd) != 0)
    return io_fail("cannot sync the key file");
  return {};
}

}  // namespace

sealer::sealer(const crypto::secret<32>& key) : key_(key) {}

expected<sealer> sealer::from_key_file(const std::filesystem::path& path, crypto::rng& r) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      COWPI_TRY_VOID(io_fail("cannot inspect the storage key file"));
    }
    COWPI_TRY_VOID(create_key_file(path, r));
    if (::lstat(path.c_str(), &st) != 0)
      COWPI_TRY_VOID(io_fail("cannot inspect the key file"));
  }
  if (!S_ISREG(st.st_mode))
    return fail(errc::config, "the storage key file is not a regular file");
  if ((st.st_mode & 077) != 0)
    return fail(errc::config,
                "the storage key file's permissions are looser than 0600; run chmod 600 on it");
  if (st.st_size != 32)
    return fail(errc::bad_length, "the storage key file must hold exactly 32 bytes, it holds "
                                      + std::to_string(st.st_size));
  fd_guard g{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
  if (g.fd < 0)
    COWPI_TRY_VOID(io_fail("cannot open the storage key file"));
  crypto::secret<32> key;
  if (!read_all(g.fd, key.expose().data(), 32))
    COWPI_TRY_VOID(io_fail("cannot read the key file"));
  return sealer(key);
}

expected<sealer> sealer::from_passphrase(std::string_view pass, const byte_array<16>& salt,
                                         uint64_t opslimit, uint64_t memlimit) {
  static_assert(crypto_pwhash_SALTBYTES == 16);
  if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > crypto_pwhash_OPSLIMIT_MAX
      || memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > crypto_pwhash_MEMLIMIT_MAX)
    return fail(errc::invalid_argument, "passphrase KDF limits out of range");
  crypto::secret<32> key;
  if (crypto_pwhash(key.expose().data(), 32, pass.data(), pass.size(), salt.data(), opslimit,
                    static_cast<size_t>(memlimit), crypto_pwhash_ALG_ARGON2ID13)
      != 0)
    return fail(errc::unavailable, "argon2id ran out of memory");
  return sealer(key);
}

bytes sealer::seal(byte_view plaintext, crypto::rng& r) const {
  bytes out(overhead + plaintext.size());
  out[0] = record_format;
  r.fill(std::span<uint8_t>(out.data() + 1, crypto_secretbox_NONCEBYTES));
  auto k = key_.read();
  crypto_secretbox_easy(out.data() + 1 + crypto_secretbox_NONCEBYTES, plaintext.data(),
                        plaintext.size(), out.data() + 1, k.expose().data());
  return out;
}

expected<secure_bytes> sealer::open(byte_view sealed) const {
  if (sealed.size() < overhead)
    return fail(errc::corruption, "sealed record too short");
  if (sealed[0] != record_format)
    return fail(errc::unsupported_layout, "sealed record of an unknown format");
  secure_bytes out(sealed.size() - overhead);
  auto k = key_.read();
  const uint8_t* nonce = sealed.data() + 1;
  const uint8_t* ct = nonce + crypto_secretbox_NONCEBYTES;
  if (crypto_secretbox_open_easy(out.data(), ct, sealed.size() - 1 - crypto_secretbox_NONCEBYTES,
                                 nonce, k.expose().data())
      != 0)
    return fail(errc::decrypt_failed, "a sealed record does not open: wrong storage key or damage");
  return out;
}

expected<sealer> unlock(store& s, const key_source& src, crypto::rng& r) {
  const bool writable = s.mode() == open_mode::read_write;
  write_batch first_use;
  std::optional<sealer> sl;
  if (const auto* kf = std::get_if<key_file>(&src)) {
    COWPI_TRY(sealer k, sealer::from_key_file(kf->path, r));
    sl.emplace(std::move(k));
  } else {
    const auto& pp = std::get<passphrase>(src);
    COWPI_TRY(auto stored, s.get(column::meta, keys::meta_seal_params()));
    seal_params params;
    if (stored) {
      COWPI_TRY(params, decode_seal_params(*stored));
    } else {
      if (!writable)
        return fail(errc::not_found, "the store has no passphrase parameters");
      params.salt = r.array<16>();
      params.opslimit = pp.opslimit;
      params.memlimit = pp.memlimit;
      first_use.put(column::meta, keys::meta_seal_params(), encode_seal_params(params));
    }
    COWPI_TRY(sealer k,
              sealer::from_passphrase(pp.text, params.salt, params.opslimit, params.memlimit));
    sl.emplace(std::move(k));
  }
  COWPI_TRY(auto check, s.get(column::meta, keys::meta_seal_check()));
  if (check) {
    auto opened = sl->open(*check);
    if (!opened || !crypto::ct_equal(opened->view(), as_bytes(check_plaintext)))
      return fail(errc::decrypt_failed, "wrong storage key: it does not open this store");
  } else {
    if (!writable)
      return fail(errc::not_found, "the store has no key check record");
    first_use.put(column::meta, keys::meta_seal_check(), sl->seal(as_bytes(check_plaintext), r));
    COWPI_TRY_VOID(s.apply(std::move(first_use)));
  }
  return std::move(*sl);
}

}  // namespace cowpi::storage

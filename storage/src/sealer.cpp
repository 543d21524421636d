// SPDX-License-Identifier: Apache-2.0
// The sealer (XChaCha20-Poly1305-IETF, each record bound to its row), key files, argon2id
// passphrases and the key check record.
#include "cowpi/storage/sealer.hpp"

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/store.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cowpi::storage {

static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == 32);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == crypto::aead_nonce_size);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == crypto::aead_tag_size);
static_assert(sealer::overhead == 1 + crypto::aead_nonce_size + crypto::aead_tag_size);

namespace {

constexpr size_t nonce_at = 1;
constexpr size_t ct_at = nonce_at + crypto::aead_nonce_size;

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

bytes seal_ad(column c, std::string_view row_key) {
  // The label is the storage layer's own (no protocol label is "storage-seal"), so a sealed
  // record can never be taken for any other AEAD output of cowpi under the same key.
  byte_writer w(64 + row_key.size());
  w.raw(protocol::label("storage-seal")).u8(seal_format).lp(column_name(c)).lp(row_key);
  return std::move(w).take();
}

bytes sealer::seal(column c, std::string_view row_key, byte_view plaintext, crypto::rng& r) const {
  bytes out(overhead + plaintext.size());
  out[0] = seal_format;
  const std::span<uint8_t> nonce(out.data() + nonce_at, crypto::aead_nonce_size);
  r.fill(nonce);
  const bytes ad = seal_ad(c, row_key);
  auto k = key_.read();
  auto sealed = crypto::aead_seal_into(std::span<uint8_t>(out.data() + ct_at, out.size() - ct_at),
                                       k.expose(), nonce, plaintext, ad);
  COWPI_ASSERT(sealed.has_value());  // sizes are right by construction
  return out;
}

expected<secure_bytes> sealer::open(column c, std::string_view row_key, byte_view sealed) const {
  if (sealed.size() < overhead)
    return fail(errc::corruption, "sealed record too short");
  if (sealed[0] == 1)
    return fail(errc::unsupported_layout,
                "a sealed record in format 1 (not bound to its row); this build reads only format "
                    + std::to_string(seal_format));
  if (sealed[0] != seal_format)
    return fail(errc::unsupported_layout, "sealed record of an unknown format");
  secure_bytes out(sealed.size() - overhead);
  const bytes ad = seal_ad(c, row_key);
  auto k = key_.read();
  if (!crypto::aead_open_into(out.span(), k.expose(),
                              sealed.subspan(nonce_at, crypto::aead_nonce_size),
                              sealed.subspan(ct_at), ad))
    return fail(errc::decrypt_failed,
                "a sealed record does not open: wrong storage key, damage, or a record moved "
                "from another row");
  return out;
}

namespace {

// What to do with a store whose key check record is in another sealed-record format.
error refuse_format(role r, uint8_t format) {
  if (format != 1)
    return error{errc::unsupported_layout,
                 std::string(to_string(r)) + " store uses sealed-record format "
                     + std::to_string(format) + ", which this build does not know (it reads "
                     + std::to_string(seal_format) + "): upgrade cowpi"};
  std::string what = std::string(to_string(r))
                     + " store uses sealed-record format 1 (rows not bound to their keys); this "
                       "version needs format "
                     + std::to_string(seal_format) + " and cannot convert a store: ";
  if (r == role::client)
    what +=
        "re-create the client with `cowpi init` in a new --home (a new identity, registered "
        "under a new id)";
  else
    what += "start it afresh with an empty data directory under a new identity";
  return error{errc::unsupported_layout, std::move(what)};
}

}  // namespace

expected<sealer> unlock(store& s, const key_source& src, crypto::rng& r) {
  const bool writable = s.mode() == open_mode::read_write;
  // The check record is sealed first, in the store's format, before any other sealed row: its
  // format byte is the store's. Looked at before a key file is created or a passphrase derived.
  COWPI_TRY(auto check, s.get(column::meta, keys::meta_seal_check()));
  if (check && !check->empty() && (*check)[0] != seal_format)
    return unexpected{refuse_format(s.kind(), (*check)[0])};
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
  const std::string check_key = keys::meta_seal_check();
  if (check) {
    auto opened = sl->open(column::meta, check_key, *check);
    if (!opened || !crypto::ct_equal(opened->view(), as_bytes(seal_check_plaintext)))
      return fail(errc::decrypt_failed, "wrong storage key: it does not open this store");
  } else {
    if (!writable)
      return fail(errc::not_found, "the store has no key check record");
    first_use.put(column::meta, check_key,
                  sl->seal(column::meta, check_key, as_bytes(seal_check_plaintext), r));
    COWPI_TRY_VOID(s.apply(std::move(first_use)));
  }
  return std::move(*sl);
}

}  // namespace cowpi::storage

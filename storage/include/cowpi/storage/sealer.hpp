// SPDX-License-Identifier: Apache-2.0
// Secrets at rest: the sealer (libsodium XChaCha20-Poly1305-IETF, each record bound to its row)
// and where its key comes from (a key file or a passphrase through argon2id).
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/storage/keys.hpp"
#include "cowpi/storage/secure_bytes.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>

namespace cowpi::storage {

class store;

/// The sealed-record format this build writes and reads: the first byte of every sealed blob.
/// Format 1 (`crypto_secretbox_easy`, no associated data, so rows were not bound to their keys)
/// is refused: a store sealed in it is refused by `unlock`, a single such blob by `open`.
inline constexpr uint8_t seal_format = 2;

/// The plaintext of the `meta seal.check` record.
inline constexpr std::string_view seal_check_plaintext = "cowpi storage key check v1";

/// Returns the associated data that binds a sealed record to the row it is stored under:
/// `"cowpi/v1/storage-seal" || u8(seal_format) || lp(column name) || lp(row key)`, where
/// `lp(x) = be32(len x) || x` and the column name is the RocksDB column family name
/// (`column_name`, "default" for `meta`).
bytes seal_ad(column c, std::string_view row_key);

/// Seals and opens records with one 32-byte key. A sealed blob is
/// `u8(seal_format) || nonce[24] || ciphertext || tag[16]`, the output of
/// `crypto_aead_xchacha20poly1305_ietf_encrypt` under a fresh random nonce with `seal_ad(c, key)`
/// as associated data, (c, key) being the column and row key the blob is written under. A blob
/// therefore opens only under its own row: two rows swapped, or a row copied to another key or
/// column, fail to open. Sealing does not prevent a party who can write the disk from rolling
/// the whole store back (docs/design.md §5: never restore ratchet state from a backup), nor from
/// deleting rows. The key lives in locked memory. Move-only; thread-safe.
class sealer {
public:
  /// Builds a sealer over `key` (copied into locked memory).
  explicit sealer(const crypto::secret<32>& key);

  /// Reads the 32-byte key file at `path`, creating it (mode 0600, 32 bytes from `r`) if it
  /// does not exist. Fails with `errc::config` if it is not a regular file or its permissions
  /// give any access to group or others, `errc::bad_length` if it is not exactly 32 bytes, and
  /// `errc::storage` on an I/O error. The error context never holds key bytes.
  [[nodiscard]] static expected<sealer> from_key_file(const std::filesystem::path& path,
                                                      crypto::rng& r);
  /// Derives the key from `passphrase` with argon2id (crypto_pwhash) under `salt` and the
  /// given limits. Fails with `errc::invalid_argument` for limits libsodium refuses and
  /// `errc::unavailable` when it runs out of memory.
  [[nodiscard]] static expected<sealer> from_passphrase(std::string_view passphrase,
                                                        const byte_array<16>& salt,
                                                        uint64_t opslimit, uint64_t memlimit);

  /// Returns the sealed blob of `plaintext` for the row `row_key` of column `c`, with a nonce
  /// from `r`.
  bytes seal(column c, std::string_view row_key, byte_view plaintext, crypto::rng& r) const;
  /// Opens a blob sealed for the row `row_key` of column `c`. Fails with `errc::decrypt_failed`
  /// (wrong key, damaged bytes, or a blob sealed for another row), `errc::corruption` (too
  /// short to be a sealed blob) or `errc::unsupported_layout` (a format other than
  /// `seal_format`; format 1 is never opened), and returns nothing then.
  [[nodiscard]] expected<secure_bytes> open(column c, std::string_view row_key,
                                            byte_view sealed) const;

  /// Keeps the key's memory readable while it lives, so a batch of `seal` calls costs one
  /// pair of mprotect calls instead of a pair per call. Hold one only across a batch.
  class batch {
  public:
    explicit batch(const sealer& s) : open_(s.key_) {}

  private:
    crypto::locked_secret<32>::reader open_;
  };

  /// Bytes a sealed blob adds to its plaintext (1 + 24 + 16).
  static constexpr size_t overhead = 41;

private:
  crypto::locked_secret<32> key_;
};

/// A key file: 32 random bytes, created 0600 when missing.
struct key_file {
  std::filesystem::path path;
};

/// A user passphrase. The argon2id salt and limits are stored in the store's `meta` column at
/// first use; later opens take them from there. Defaults: libsodium's MODERATE limits.
struct passphrase {
  std::string text;
  uint64_t opslimit = 3;          // crypto_pwhash_OPSLIMIT_MODERATE
  uint64_t memlimit = 268435456;  // crypto_pwhash_MEMLIMIT_MODERATE (256 MiB)
};

/// Where the storage key of a client or mirror store comes from.
using key_source = std::variant<key_file, passphrase>;

/// Builds the sealer of `s` from `src` and checks it against the store's `seal.check` record
/// (writing the record, and for a passphrase its salt and limits, on first use; a read-only
/// store that has none fails with `errc::not_found`). A key that does not open the check
/// record fails with `errc::decrypt_failed` ("wrong storage key"). A check record in another
/// sealed-record format than `seal_format` (a store written by an earlier build, format 1)
/// fails with `errc::unsupported_layout` and says what to do, before the key is read or
/// derived and before anything is written.
[[nodiscard]] expected<sealer> unlock(store& s, const key_source& src, crypto::rng& r);

}  // namespace cowpi::storage

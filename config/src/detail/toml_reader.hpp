// SPDX-License-Identifier: Apache-2.0
// Private helpers that read toml++ tables strictly and turn every failure into `SOURCE:LINE:COL`.
#pragma once

#include "cowpi/config/common.hpp"
#include "cowpi/crypto/primitives.hpp"
#include "cowpi/protocol/expected.hpp"

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi::config::detail {

/// Largest config or deployment file read.
inline constexpr size_t max_file_size = size_t{1} << 20;

/// Returns `s` as a TOML basic string: quoted, with '"', '\\' and control characters escaped.
std::string quote(std::string_view s);

/// Reads the file at `path` whole. Fails with `errc::config` at `PATH:1:1` when it cannot be
/// opened or read, or is larger than `max_file_size`.
expected<std::string> read_file(const std::filesystem::path& path);

/// Formats errors as `SOURCE:LINE:COL: reason`, `SOURCE` being the name the caller gave.
class reporter {
public:
  explicit reporter(std::string_view source) : source_(source) {}

  /// Returns an `errc::config` error at the start of `r` (1:1 when `r` has no position).
  unexpected<error> fail(const toml::source_region& r, std::string_view reason) const;
  unexpected<error> fail(const toml::node& n, std::string_view reason) const {
    return fail(n.source(), reason);
  }
  unexpected<error> fail(const toml::key& k, std::string_view reason) const {
    return fail(k.source(), reason);
  }

  /// Parses `text`, turning a `toml::parse_error` into an error at its position.
  expected<toml::table> parse(std::string_view text) const;

private:
  std::string source_;
};

/// One table being read, under its display name ("limits", "mirrors", "" for the root). The
/// table is borrowed and may be null for an absent optional table: every optional read then
/// yields nothing. Every `value_*` read fails on a wrong type and yields `std::nullopt` when the
/// key is absent.
class table_reader {
public:
  /// `t` and `rep` outlive the reader.
  table_reader(const reporter& rep, const toml::table* t, std::string name)
      : rep_(&rep), t_(t), name_(std::move(name)) {}

  bool present() const noexcept { return t_ != nullptr; }
  const toml::node* find(std::string_view key) const;
  /// Returns "name.key", or "key" for the root.
  std::string qualified(std::string_view key) const;
  /// Returns "[name]", or "the top level" for the root.
  std::string display() const;

  /// Fails at the first key in document order that is in `other_role` ("`name.key` is for
  /// the OTHER only (this is a ROLE config)") or not in `allowed` ("unknown key").
  expected<void> check_keys(std::initializer_list<std::string_view> allowed,
                            std::initializer_list<std::string_view> other_role = {},
                            std::string_view other_role_name = {},
                            std::string_view this_role_name = {}) const;

  /// Fails at `key` when it is present, a key that no longer exists: "`name.key` was removed:
  /// WHY". `why` says what replaced it, so that an old config is refused with a reason rather
  /// than as an unknown key.
  expected<void> check_removed(std::string_view key, std::string_view why) const;

  /// Returns an error at the table (or 1:1 when absent) saying `key` is required.
  unexpected<error> missing(std::string_view key) const;
  /// Returns an error at the value of `key`, which must be present.
  unexpected<error> fail_at(std::string_view key, std::string_view reason) const;

  /// Returns the sub-table at `key`, nullptr when absent; fails when it is not a table.
  expected<const toml::table*> table(std::string_view key) const;
  /// Returns the array at `key`, nullptr when absent; fails when it is not an array.
  expected<const toml::array*> array(std::string_view key) const;

  expected<std::optional<std::string>> value_string(std::string_view key) const;
  expected<std::optional<int64_t>> value_integer(std::string_view key) const;
  expected<std::optional<bool>> value_bool(std::string_view key) const;

  /// A required string.
  expected<std::string> string(std::string_view key) const;
  /// A string from a fixed set, e.g. "router" | "mirror". Returns its index in `choices`.
  expected<std::optional<size_t>> choice(std::string_view key,
                                         std::initializer_list<std::string_view> choices) const;
  /// A required id (`protocol::valid_id`).
  expected<std::string> id(std::string_view key) const;
  /// An integer in [lo, hi], `def` when absent. `lo_why`/`hi_why` explain a bound in errors.
  expected<uint64_t> integer(std::string_view key, uint64_t def, uint64_t lo, uint64_t hi,
                             std::string_view lo_why = {}, std::string_view hi_why = {}) const;
  /// A required integer in [lo, hi].
  expected<uint64_t> required_integer(std::string_view key, uint64_t lo, uint64_t hi,
                                      std::string_view lo_why = {},
                                      std::string_view hi_why = {}) const;
  /// A non-empty path without NUL bytes; `std::nullopt` when absent.
  expected<std::optional<std::filesystem::path>> path(std::string_view key) const;
  /// A required endpoint; port 0 is refused unless `allow_port0`.
  expected<endpoint> endpoint_value(std::string_view key, bool allow_port0) const;
  /// A required 32-byte public key written as 64 hex characters, not all zero.
  expected<crypto::public_key> public_key(std::string_view key) const;

  const reporter& rep() const noexcept { return *rep_; }
  const toml::table* get() const noexcept { return t_; }

private:
  expected<uint64_t> check_range(std::string_view key, int64_t v, uint64_t lo, uint64_t hi,
                                 std::string_view lo_why, std::string_view hi_why) const;

  const reporter* rep_;
  const toml::table* t_;
  std::string name_;
};

/// Reads the top-level `[[mirrors]]` of `top`: 1 to `protocol::max_mirrors` tables with the keys
/// `name`, `public_key` and, when `with_address`, `address` (a peer endpoint, port not 0).
/// Names must be unique and differ from `router_name`, keys unique and differ from
/// `router_key` when given. Returns the list sorted by name (addresses empty without
/// `with_address`). A missing `[[mirrors]]` fails at the top of the document.
expected<std::vector<mirror_peer>> read_mirrors(const table_reader& top,
                                                std::string_view router_name,
                                                const std::optional<crypto::public_key>& router_key,
                                                bool with_address);

/// Returns "a string", "an integer", ... for the type of `n`, for error messages.
std::string_view describe(const toml::node& n);

}  // namespace cowpi::config::detail

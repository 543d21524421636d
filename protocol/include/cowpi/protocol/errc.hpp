// SPDX-License-Identifier: Apache-2.0
// The error codes every cowpi module returns inside `cowpi::error`.
#pragma once

#include <cstdint>
#include <string_view>

namespace cowpi {

/// What went wrong, coarse enough to act on. The `error::context` string says
/// which check failed. `uint8_t` because a CAF 0.17 error code is one byte.
enum class errc : uint8_t {
  /// A caller passed an argument outside the documented domain.
  invalid_argument = 1,
  /// A buffer had the wrong size (key, nonce, tag, fixed-size block).
  bad_length,
  /// X25519 produced the all-zero output (a low-order point).
  low_order_point,
  /// AEAD authentication failed: wrong key, nonce, AD or tampered bytes.
  decrypt_failed,
  /// HKDF was asked for more than 255 * 32 bytes.
  output_too_long,
  /// Untrusted bytes did not decode (truncated, bad pointer, wrong type).
  malformed,
  /// Untrusted input exceeds a protocol or configured limit.
  too_large,
  /// A version field names a version this build does not speak.
  unsupported_version,
  /// A struct is not in canonical form (unsorted or duplicate list entries).
  not_canonical,
  /// A conversation message breaks a rule of `validate` (context: the rule).
  invalid,
  /// A block referenced a key the receiver does not hold.
  unknown_key,
  /// The directory handed out a key its owner never published.
  directory,
  /// A requested record does not exist.
  not_found,
  /// A record that must be unique already exists.
  already_exists,
  /// Two parties disagree on a value that must be unique (e.g. D at an index).
  conflict,
  /// An index or sequence number arrived ahead of the expected one.
  gap,
  /// The operation is not allowed in the current state.
  bad_state,
  /// A storage read or write failed (disk full, permissions, I/O error).
  storage,
  /// Stored bytes are damaged or inconsistent.
  corruption,
  /// The stored layout version is newer than or unknown to this build.
  unsupported_layout,
  /// A peer or service cannot take the request now; retrying may work.
  unavailable,
  /// A request got no answer in time.
  timeout,
  /// The connection or actor is gone.
  closed,
  /// The configuration is invalid.
  config,
  /// A peer answered with an explicit rejection (context: its reason).
  rejected,
  /// A bug: an invariant of cowpi itself was broken.
  internal,
};

/// Returns a stable lower-case name for `e`, e.g. "decrypt_failed".
constexpr std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::bad_length:
      return "bad_length";
    case errc::low_order_point:
      return "low_order_point";
    case errc::decrypt_failed:
      return "decrypt_failed";
    case errc::output_too_long:
      return "output_too_long";
    case errc::malformed:
      return "malformed";
    case errc::too_large:
      return "too_large";
    case errc::unsupported_version:
      return "unsupported_version";
    case errc::not_canonical:
      return "not_canonical";
    case errc::invalid:
      return "invalid";
    case errc::unknown_key:
      return "unknown_key";
    case errc::directory:
      return "directory";
    case errc::not_found:
      return "not_found";
    case errc::already_exists:
      return "already_exists";
    case errc::conflict:
      return "conflict";
    case errc::gap:
      return "gap";
    case errc::bad_state:
      return "bad_state";
    case errc::storage:
      return "storage";
    case errc::corruption:
      return "corruption";
    case errc::unsupported_layout:
      return "unsupported_layout";
    case errc::unavailable:
      return "unavailable";
    case errc::timeout:
      return "timeout";
    case errc::closed:
      return "closed";
    case errc::config:
      return "config";
    case errc::rejected:
      return "rejected";
    case errc::internal:
      return "internal";
  }
  return "unknown";
}

}  // namespace cowpi

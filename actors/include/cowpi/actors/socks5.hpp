// SPDX-License-Identifier: Apache-2.0
// The client side of a SOCKS5 CONNECT without authentication (RFC 1928) as a pure state
// machine over bytes: what to write, how many bytes to read next, and what they mean.
#pragma once

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/protocol/expected.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cowpi::actors {

/// One SOCKS5 CONNECT through a proxy, for a caller that writes what it is given and reads
/// exactly `wanted()` bytes at a time (a CAF broker's `receive_policy::exactly`).
///
/// The exchange (RFC 1928): the client sends the greeting `05 01 00` (one method: no
/// authentication); the proxy answers `05 00`; the client sends the CONNECT request
/// `05 01 00 ATYP DST.ADDR DST.PORT` (ATYP 01 for an IPv4 literal, 04 for an IPv6 literal,
/// 03 for a domain name of 1-255 bytes, sent for the proxy to resolve); the proxy answers
/// `05 REP 00 ATYP BND.ADDR BND.PORT`. `REP = 00` means the tunnel is up and every later
/// byte is the target's. The reply is read in two steps: its first 5 bytes (which hold the
/// domain length when ATYP is 03), then the rest.
///
/// A value type; not thread-safe.
class socks5_handshake {
public:
  /// Prepares a CONNECT to `host:port`. Fails with `errc::invalid_argument` for an empty
  /// host, a domain name over 255 bytes, one holding a NUL, or port 0.
  [[nodiscard]] static expected<socks5_handshake> make(std::string_view host, uint16_t port);

  /// Returns the greeting to write first: `05 01 00`.
  static bytes greeting();

  /// Returns the CONNECT request for the target (written after the method reply).
  const bytes& connect_request() const noexcept { return request_; }

  /// Returns how many bytes to read next: 2 for the method reply, then 5, then the rest of
  /// the CONNECT reply; 0 once done or failed.
  size_t wanted() const noexcept;

  /// Returns true once the CONNECT reply said success: the stream now belongs to the target.
  bool done() const noexcept { return step_ == step::done; }

  /// What the caller does after `on_read`.
  struct outcome {
    /// Bytes to write now (the CONNECT request after the method reply), possibly empty.
    bytes write;
    /// The handshake succeeded: start the tunnelled protocol.
    bool done = false;
  };

  /// Consumes exactly `wanted()` bytes. Fails (and stays failed) with `errc::malformed` when
  /// the proxy does not speak SOCKS5 or sends a bad reply, `errc::rejected` when it refuses
  /// the method (no acceptable method), and `errc::unavailable` when it reports that the
  /// target cannot be reached (REP 01-08, the context naming the reason), and
  /// `errc::bad_state` when called out of turn or with the wrong number of bytes.
  [[nodiscard]] expected<outcome> on_read(byte_view in);

private:
  enum class step : uint8_t { method, reply_head, reply_tail, done, failed };

  socks5_handshake() = default;
  expected<outcome> failed(errc code, std::string context);

  bytes request_;
  step step_ = step::method;
  size_t tail_ = 0;
};

/// Returns the meaning of a SOCKS5 reply code (RFC 1928 §6), e.g. "connection refused".
std::string_view socks5_reply_text(uint8_t rep) noexcept;

}  // namespace cowpi::actors

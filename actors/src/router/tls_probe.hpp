// SPDX-License-Identifier: Apache-2.0
// Why a TLS link to a mirror did not come up: one diagnostic TLS handshake made with the
// link's own files. CAF 0.17 reports a refused TLS handshake only as a connection closed
// during the handshake (its OpenSSL errors go to a log compiled out of Debian's build).
#pragma once

#include "cowpi/config/provider_config.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace cowpi::actors {

/// How a diagnostic handshake ended.
enum class tls_probe_outcome : uint8_t {
  /// The TLS handshake succeeded and the peer did not refuse our certificate within the
  /// deadline: the failure lies beyond TLS.
  accepted,
  /// The peer's certificate is not signed by a CA in our `tls.ca`: we refused it.
  peer_not_trusted,
  /// The peer refused the handshake, typically our certificate (a TLS alert from the peer).
  refused_by_peer,
  /// Our own files could not be loaded, the TCP connection failed, or the handshake timed out.
  failed,
};

/// The outcome and a sentence saying what happened, with OpenSSL's reason (safe to log: no
/// key material, only file names and OpenSSL reason strings).
struct tls_probe_result {
  tls_probe_outcome outcome = tls_probe_outcome::failed;
  std::string detail;
};

/// Makes one TLS handshake with `host:port` as the router's link does: `tls.certificate` and
/// `tls.key` as the client certificate, peer verification against `tls.ca`. After the
/// handshake it waits for the peer's first bytes, because under TLS 1.3 a server refuses the
/// client's certificate only after the client has finished. Blocks the calling thread for at
/// most about `timeout` (plus name resolution); never throws. SIGPIPE is blocked on the calling
/// thread while it runs.
[[nodiscard]] tls_probe_result probe_tls(const std::string& host, uint16_t port,
                                         const config::tls_config& tls,
                                         std::chrono::milliseconds timeout);

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// The client's side of the TCP connection to the router: a CAF broker on the middleman's I/O
// thread that runs the SOCKS5 CONNECT (with a proxy), then cuts the byte stream into frames.
// All crypto stays in the client actor (docs/design.md §4: brokers share the one I/O thread).
#pragma once

#include "cowpi/actors/socks5.hpp"
#include "cowpi/protocol/expected.hpp"

#include "tcp_connect.hpp"
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::actors::client_impl {

/// What the connector hands the client actor: the connected socket of attempt `attempt`, or
/// why there is none. The socket closes when the last copy of this message dies unclaimed.
struct socket_result {
  uint64_t attempt = 0;
  std::shared_ptr<socket_fd> sock;
  std::optional<error> failure;
};

/// Why the connection of one attempt ended.
struct conn_failure {
  error cause;
};

/// Where the connector should connect, and whom to tell.
struct connect_job {
  uint64_t attempt = 0;
  std::string host;
  uint16_t port = 0;
  std::chrono::milliseconds timeout{0};
  /// "router at HOST:PORT" or "SOCKS5 proxy at HOST:PORT", for error messages.
  std::string what;
  std::shared_ptr<std::atomic<bool>> cancelled;
  caf::actor owner;
};

/// A blocking (hence detached) actor that runs `tcp_connect` for `job` and sends
/// `(csock_atom, socket_result)` to `job.owner`.
void connector(caf::blocking_actor* self, connect_job job);

/// What the broker needs.
struct connection_params {
  uint64_t attempt = 0;
  std::shared_ptr<socket_fd> sock;
  /// Set when connecting through a SOCKS5 proxy: the CONNECT to the router.
  std::optional<socks5_handshake> socks;
  size_t max_frame = 0;
  caf::actor owner;
};

/// The broker's state.
struct connection_state {
  caf::io::connection_handle hdl;
  std::optional<socks5_handshake> socks;
  bool await_header = true;
  size_t max_frame = 0;
  uint64_t attempt = 0;
  caf::actor owner;
  static inline const char* name = "cowpi.client.connection";
};

/// The connection broker. It tells `owner`, always tagged with `attempt`:
/// `(connup_atom, attempt)` once the stream reaches the router (after SOCKS5 if any);
/// `(frame_atom, attempt, std::vector<uint8_t> payload)` per frame (prefix stripped);
/// `(conndown_atom, attempt, conn_failure)` when the connection ends on its own (peer close, a bad
/// length prefix, a SOCKS5 failure), after which it quits. It takes
/// `(write_atom, std::vector<uint8_t>)` (bytes to write, already framed) and
/// `(caf::close_atom)` (close after writing what is buffered, then quit). It quits when
/// `owner` goes down.
caf::behavior connection_broker(caf::io::stateful_broker<connection_state>* self,
                                connection_params p);

}  // namespace cowpi::actors::client_impl

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::client_impl::socket_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::client_impl::conn_failure)

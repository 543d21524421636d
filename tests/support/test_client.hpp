// SPDX-License-Identifier: Apache-2.0
// A blocking TCP test client for the router's client port: raw frames for hostile input, and
// protocol::client_session for the handshake and encrypted requests. Free of GoogleTest.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/session.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::testing {

/// One TCP connection to 127.0.0.1:port with blocking reads bounded by timeouts. Not
/// thread-safe. Every read that times out or hits EOF returns nullopt / false.
class tcp_conn {
public:
  /// Connects; `rcvbuf` > 0 shrinks the kernel receive buffer (set before connect).
  explicit tcp_conn(uint16_t port, int rcvbuf = 0);
  ~tcp_conn();
  tcp_conn(const tcp_conn&) = delete;
  tcp_conn& operator=(const tcp_conn&) = delete;

  bool ok() const noexcept { return fd_ >= 0; }
  /// Writes every byte; false if the peer is gone.
  bool write_all(byte_view b);
  /// Reads exactly `n` bytes within `timeout`; nullopt on EOF, reset or timeout.
  std::optional<bytes> read_exact(size_t n, std::chrono::milliseconds timeout);
  /// Reads one `be32(len) || payload` frame and returns the payload.
  std::optional<bytes> read_frame(std::chrono::milliseconds timeout);
  /// Returns true once the peer closed (EOF or reset) within `timeout`, discarding whatever
  /// arrives before. `drained`, when given, counts the discarded bytes.
  bool closed_within(std::chrono::milliseconds timeout, size_t* drained = nullptr);
  /// Closes the write direction (FIN) but keeps reading.
  void shutdown_write();

private:
  int fd_ = -1;
};

/// A client speaking the transport protocol over a `tcp_conn` with a `client_session`.
class test_client {
public:
  test_client(uint16_t port, const protocol::identity& user, std::string router_id,
              const protocol::public_key& router_lpk,
              size_t max_frame = protocol::max_frame_protocol, int rcvbuf = 0);

  tcp_conn& conn() noexcept { return conn_; }
  protocol::client_session& session() noexcept { return session_; }

  /// Sends HELLO and waits for HELLO_ACK. Returns false on a refusal (see `last_error`).
  bool start(protocol::hello_mode mode, std::chrono::milliseconds timeout = default_timeout);
  /// `start`, then a ping as the proof of possession, answered with ok.
  bool login(protocol::hello_mode mode, std::chrono::milliseconds timeout = default_timeout);

  /// Seals and sends one request; returns its request id (0 if it could not be sent).
  uint64_t send(protocol::client_request body);
  /// Sends a request and waits for its response; envelopes arriving meanwhile are kept.
  std::optional<protocol::response_body> call(protocol::client_request body,
                                              std::chrono::milliseconds timeout = default_timeout);
  /// Waits for the response to `request_id`.
  std::optional<protocol::response_body> wait_response(
      uint64_t request_id, std::chrono::milliseconds timeout = default_timeout);
  /// Returns the next envelope (kept or newly read) within `timeout`.
  std::optional<protocol::envelope> next_envelope(
      std::chrono::milliseconds timeout = default_timeout);
  /// Returns the next unsolicited response (request id 0) within `timeout`.
  std::optional<protocol::response> next_notice(
      std::chrono::milliseconds timeout = default_timeout);
  /// Reads frames until the router's ERROR (returned) or the connection ends.
  std::optional<protocol::error_frame> wait_error(
      std::chrono::milliseconds timeout = default_timeout);

  /// The last ERROR the router sent, and whether it came encrypted.
  const std::optional<protocol::error_frame>& last_error() const noexcept { return error_; }
  bool last_error_encrypted() const noexcept { return error_encrypted_; }
  bool closed() const noexcept { return closed_; }
  /// Envelopes received and not yet taken.
  const std::deque<protocol::envelope>& pending_envelopes() const noexcept { return envelopes_; }

  static constexpr std::chrono::milliseconds default_timeout{5000};

private:
  /// Reads one frame and feeds it to the session; false on EOF, timeout or close.
  bool pump(std::chrono::steady_clock::time_point deadline);

  tcp_conn conn_;
  protocol::client_session session_;
  crypto::system_rng rng_;
  uint64_t next_id_ = 1;
  bool ready_ = false;
  bool closed_ = false;
  std::optional<protocol::error_frame> error_;
  bool error_encrypted_ = false;
  std::deque<protocol::response> responses_;
  std::deque<protocol::envelope> envelopes_;
};

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// An outgoing TCP connection with a deadline: name resolution, then a non-blocking connect()
// per address, polled until it completes, fails, the deadline passes or the caller cancels.
#pragma once

#include "cowpi/protocol/expected.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace cowpi::actors::client_impl {

/// Owns a socket descriptor; closes it unless released. Move-only.
class socket_fd {
public:
  socket_fd() = default;
  explicit socket_fd(int fd) noexcept : fd_(fd) {}
  socket_fd(socket_fd&& o) noexcept : fd_(o.release()) {}
  socket_fd& operator=(socket_fd&& o) noexcept;
  socket_fd(const socket_fd&) = delete;
  socket_fd& operator=(const socket_fd&) = delete;
  ~socket_fd();

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  /// Gives up ownership; returns the descriptor (-1 if none).
  int release() noexcept;

private:
  int fd_ = -1;
};

/// Connects to `host:port` within `timeout` and returns the connected, non-blocking socket
/// (TCP_NODELAY, close-on-exec). Blocks the calling thread for at most about `timeout` plus
/// the resolver's own time; checks `cancelled` every 100 ms. Fails with `errc::unavailable`
/// (context: `what` and the address, then the reason: "connection refused", "no connection
/// within 5000 ms", a resolver message) or `errc::closed` when cancelled.
[[nodiscard]] expected<socket_fd> tcp_connect(const std::string& host, uint16_t port,
                                              std::chrono::milliseconds timeout,
                                              const std::atomic<bool>& cancelled,
                                              const std::string& what);

}  // namespace cowpi::actors::client_impl

// SPDX-License-Identifier: Apache-2.0
// A minimal SOCKS5 proxy for tests (RFC 1928, no authentication, CONNECT only): a thread that
// accepts one client on 127.0.0.1, answers its handshake, connects to the requested target and
// relays bytes both ways until either side closes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace cowpi::testing {

/// What the client's CONNECT request named.
struct socks5_request {
  /// RFC 1928 address type: 1 (IPv4), 3 (domain name) or 4 (IPv6).
  uint8_t atyp = 0;
  /// The address as text (dotted quad, name, or IPv6 literal).
  std::string host;
  uint16_t port = 0;
  /// The exact greeting and request bytes received.
  std::vector<uint8_t> greeting;
  std::vector<uint8_t> request;
};

/// The proxy. One client per instance.
class socks5_server {
public:
  /// `reply_code` is the REP byte the proxy answers with; anything but 0 means it refuses the
  /// CONNECT without trying (and closes). `require_auth` answers the greeting with 0xFF.
  explicit socks5_server(uint8_t reply_code = 0, bool require_auth = false);
  ~socks5_server();
  socks5_server(const socks5_server&) = delete;
  socks5_server& operator=(const socks5_server&) = delete;

  /// Returns the port the proxy listens on (127.0.0.1).
  uint16_t port() const noexcept { return port_; }
  /// Waits up to `timeout` for a complete CONNECT request and returns it.
  std::optional<socks5_request> wait_request(std::chrono::milliseconds timeout);
  /// Returns how many bytes were relayed from the client to the target so far.
  size_t relayed_up() const noexcept { return up_.load(); }

private:
  void run();
  void serve(int client);
  void relay(int a, int b);

  uint8_t reply_code_;
  bool require_auth_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> up_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<socks5_request> request_;
  std::thread thread_;
};

}  // namespace cowpi::testing

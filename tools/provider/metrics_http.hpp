// SPDX-License-Identifier: Apache-2.0
// The provider's Prometheus scrape endpoint: `GET /metrics` over plain HTTP, served by
// cpp-httplib on one thread of its own.
#pragma once

#include "cowpi/config/common.hpp"
#include "cowpi/protocol/expected.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace cowpi::tools {

/// Serves `GET /metrics` (and `HEAD`) with the text `render` returns, content type
/// `metrics::content_type`; every other path is 404, every other method 405 or 404. One
/// connection is served at a time, each with 5 s read and write timeouts.
class metrics_server {
public:
  /// Binds `where` (port 0: the OS picks one) and starts serving. Fails with
  /// `errc::unavailable` when the address cannot be bound (in use, not local, not resolvable).
  [[nodiscard]] static expected<std::unique_ptr<metrics_server>> start(
      const config::endpoint& where, std::function<std::string()> render);

  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;
  /// Stops serving (as `stop`).
  ~metrics_server();

  /// The bound port.
  uint16_t port() const noexcept { return port_; }
  /// Stops accepting, ends the connection being served and joins the thread. Idempotent.
  void stop();

  struct impl;

private:
  metrics_server(std::unique_ptr<impl> p, uint16_t port);
  std::unique_ptr<impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace cowpi::tools

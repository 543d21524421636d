// SPDX-License-Identifier: Apache-2.0
// A provider node (router or mirror) running in this process: CAF-free handle for the daemon
// main and for tests.
#pragma once

#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/types.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cowpi::actors {

/// Where a started node listens.
struct provider_ports {
  /// Router: the client port actually bound (0 for a mirror).
  uint16_t clients = 0;
  /// Mirror: the TLS link port actually bound (0 for a router).
  uint16_t links = 0;
  /// Router cluster: the port the other nodes reach this one on (0 otherwise).
  uint16_t internal = 0;
  /// The admin Unix socket.
  std::string admin_socket;
};

/// Rewrites what a router's queue actor is about to send to `user` (`env` and what follows it
/// in place of it, in order). Called on any scheduler thread: must be thread-safe.
using delivery_filter =
    std::function<std::vector<protocol::envelope>(const std::string& user, protocol::envelope env)>;

/// What a node runs with besides its config. The daemon passes none; a test daemon may pass a
/// `deliver` filter to play a lying router in a real deployment (docs/architecture.md, "Lying
/// routers in tests").
struct provider_hooks {
  /// Empty: every envelope is sent as it is (the honest router).
  delivery_filter deliver;
};

/// A running router or mirror: its actor system, stores and listeners. Thread-safe to stop.
class provider_node {
public:
  /// Opens the node's stores under `cfg.data_dir` (creating them and the identity key on
  /// first start), checks the persisted shard map, spawns the role's actors and binds its
  /// listeners. Fails with a clear error (bad key file, store locked or of an unknown layout,
  /// port in use, TLS files unreadable) and leaves nothing running then.
  [[nodiscard]] static expected<std::unique_ptr<provider_node>> start(
      const config::provider_config& cfg, provider_hooks hooks = {});

  ~provider_node();
  provider_node(const provider_node&) = delete;
  provider_node& operator=(const provider_node&) = delete;

  const provider_ports& ports() const noexcept;
  /// The node's long-term public key, hex.
  const std::string& public_key_hex() const noexcept;
  /// The node's metrics in the Prometheus text exposition format (docs/admin.md lists
  /// them); empty once stopped. Thread-safe, but not concurrently with `stop`.
  std::string metrics_text() const;
  /// Stops the listeners and actors and closes the stores (idempotent).
  void stop();

  struct impl;

private:
  explicit provider_node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// Private spawn functions and shared dependencies of the router's client-facing actors:
// acceptor and connection brokers, session workers, directory, queue registry and queues.
#pragma once

#include "cowpi/actors/provider.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/storage/router_store.hpp"

#include "../node_metrics.hpp"
#include "../unix_time.hpp"
#include "cluster.hpp"
#include <caf/all.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace cowpi::actors {

/// What every connection (broker and session worker) needs. Shared, immutable once built.
struct connection_deps {
  std::shared_ptr<const protocol::identity> router;
  caf::actor directory;
  caf::actor registry;
  caf::actor queues;
  /// Which node of the router holds what (a view of one node when the router is not a
  /// cluster), and this node's cluster actor (null then).
  std::shared_ptr<cluster_view> cluster;
  caf::actor cluster_actor;
  std::string host;
  uint16_t port = 0;
  size_t max_frame = 0;
  size_t max_connections = 0;
  size_t max_unsent_bytes = 0;
  size_t max_inflight_requests = 0;
  std::chrono::milliseconds handshake_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds frame_timeout{0};
  std::chrono::milliseconds request_timeout{0};
  std::shared_ptr<const client_metrics> metrics = client_metrics::make(nullptr);
};

using connection_deps_ptr = std::shared_ptr<const connection_deps>;

/// Spawns the acceptor broker, binds it to `d->host:d->port` and returns it with the bound
/// port, or the bind error. Blocks the caller (a non-actor thread) for at most `timeout`.
[[nodiscard]] expected<std::pair<caf::actor, uint16_t>> spawn_acceptor(
    caf::actor_system& sys, connection_deps_ptr d, std::chrono::milliseconds timeout);

/// Spawns the session worker of the connection broker `broker` (called by the broker).
caf::actor spawn_session_worker(caf::actor_system& sys, caf::actor broker, connection_deps_ptr d);

/// What the directory actor needs.
struct directory_deps {
  storage::router_store* store = nullptr;
  protocol::directory_policy policy;
  /// Provider ids (the router's own, every mirror's and every mirror node's): never
  /// registrable.
  std::set<std::string> providers;
  /// Each mirror's node ids ({its id} for a mirror of one node): a clustered mirror's keys
  /// are kept in one pool per node, named by the node id.
  std::map<std::string, std::vector<std::string>> mirror_nodes;
  /// A clustered mirror's pool (node id) -> the mirror's id.
  std::map<std::string, std::string> pool_owner;
};

/// Spawns the directory (detached: its store calls block on synced writes).
caf::actor spawn_directory(caf::actor_system& sys, directory_deps d);

/// What the queue registry and its queue actors need.
struct queue_deps {
  storage::router_store* store = nullptr;
  size_t window_envelopes = 0;
  size_t window_bytes = 0;
  std::shared_ptr<const client_metrics> metrics = client_metrics::make(nullptr);
  /// Applied to every envelope just before it is sent; empty: sent as it is.
  delivery_filter deliver;
};

/// Spawns the queue registry (contracts.md "queues").
caf::actor spawn_queue_registry(caf::actor_system& sys, queue_deps d);

/// Returns an estimate of the encoded size of `e` (bytes counted against the delivery
/// window; within a few hundred bytes of `wire::encode`).
size_t estimated_size(const protocol::envelope& e);

}  // namespace cowpi::actors

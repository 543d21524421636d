// SPDX-License-Identifier: Apache-2.0
// The wiring entry point of the router's client-facing side: the acceptor, the directory and
// the delivery queues, spawned together from the provider config (docs/architecture.md).
#pragma once

#include "cowpi/actors/provider.hpp"
#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/storage/router_store.hpp"

#include "../node_metrics.hpp"
#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::actors {

class cluster_view;

/// Knobs of the client-facing side that the provider config does not carry. The defaults are
/// the production values (docs/architecture.md, "Client-facing side"); tests shrink them.
struct client_side_options {
  /// Most envelopes a user may have delivered but not acknowledged (the delivery window).
  size_t window_envelopes = 256;
  /// Most (estimated) envelope bytes a user may have delivered but not acknowledged; one
  /// envelope is always allowed, whatever its size.
  size_t window_bytes = size_t{2} << 20;
  /// Bytes written to a connection but not yet taken by the kernel past which the reader is
  /// cut off (connection reset, no ERROR frame). 0 means `window_bytes + 4 * max_frame`.
  size_t max_unsent_bytes = 0;
  /// Timeout of every request a session worker or queue actor sends to another actor; an
  /// expired request is answered with rejection{unavailable} (or closes a handshake as BUSY).
  std::chrono::milliseconds request_timeout{10000};
  /// A frame whose length prefix has arrived must arrive whole within this time.
  std::chrono::milliseconds frame_timeout{30000};
  /// Requests of one connection in progress (sent to other actors, or decoded and waiting)
  /// past which the connection broker stops reading from the socket until half are answered.
  size_t max_inflight_requests = 64;
  /// One-time pre-key hand-out policy per requester (kept in memory: reset on restart).
  protocol::directory_policy fetch_policy{};
  /// Where connections, sessions and queues count (a registry nobody renders by default).
  std::shared_ptr<const client_metrics> metrics = client_metrics::make(nullptr);
  /// The queues' last step before sending (provider_hooks::deliver); empty: none.
  delivery_filter deliver;
  /// The router cluster (null: this node alone) and this node's cluster actor (null then),
  /// wired to the directory, registry and queues here.
  std::shared_ptr<cluster_view> cluster;
  caf::actor cluster_actor;
};

/// The handles of the client-facing side. Every actor answers `(stats_atom)` with a JSON
/// object (see `admin_sections`).
struct client_side {
  /// Directory actor (detached): the directory contract of contracts.md.
  caf::actor directory;
  /// Queue registry: attach, detach, cack, poke (contracts.md).
  caf::actor queues;
  /// Acceptor broker bound to `listen.clients`.
  caf::actor acceptor;
  /// The TCP port the acceptor is bound to (the configured one, or the one the OS picked).
  uint16_t port = 0;

  /// Returns the admin endpoint sections of this side: "connections" (acceptor), "queues"
  /// and "directory".
  std::vector<std::pair<std::string, caf::actor>> admin_sections() const;
};

/// Spawns the client-facing side of a router: records every configured mirror as a directory
/// owner (`router_store::register_provider`, idempotent), spawns the directory, the cursor
/// writers and the queue registry, tells `registry` (when valid) where the queues are with
/// `(attach_atom, queues)`, and binds the acceptor to `cfg.clients` (port 0: the OS picks).
/// `store` must outlive every actor of the system. Blocks until the acceptor is bound. Fails
/// with `errc::conflict` when a mirror id is registered as a user or under another key,
/// `errc::storage` on a storage error and `errc::unavailable` when the port cannot be bound.
[[nodiscard]] expected<client_side> spawn_client_side(caf::actor_system& sys,
                                                      const config::provider_config& cfg,
                                                      storage::router_store& store,
                                                      caf::actor registry,
                                                      protocol::identity router_identity,
                                                      const client_side_options& options = {});

/// Ends the client-facing side: the acceptor stops listening and closes every connection
/// (each session detaches from its queue); once the acceptor is gone (at most `timeout`), the
/// queues, directory and writers are told to stop. Blocks: call it from a non-actor thread.
void stop_client_side(const client_side& side,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

}  // namespace cowpi::actors

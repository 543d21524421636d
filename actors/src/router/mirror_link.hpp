// SPDX-License-Identifier: Apache-2.0
// The router's link to one mirror: TLS middleman connection, HELLO, timed requests, reconnect.
#pragma once

#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/messages.hpp"

#include "../node_metrics.hpp"
#include <caf/all.hpp>

#include <chrono>

namespace cowpi::actors {

struct mirror_link_deps {
  size_t index = 0;          // the mirror's position in MS (sorted by name)
  config::mirror_peer peer;  // name, long-term key, and this node's address
  /// The mirror node this link reaches (the mirror's name when it is one node) and its
  /// position in the mirror's node list. The node id names its pre-key pool in the directory.
  std::string node;
  size_t node_index = 0;
  protocol::link_hello own_hello;  // the router's id, lpk, version
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds connect_timeout{5000};
  config::tls_config tls;  // the router's TLS files, for the diagnostic handshake
  /// Bound of that handshake (it runs on its own thread after a refused TLS handshake).
  std::chrono::milliseconds probe_timeout{2000};
  uint32_t prekey_target = 512;  // one-time pre-keys kept in the directory for this mirror
  /// Whether this link keeps the node's pool (TOPUP, upload, retire). In a router cluster only
  /// the link on the router node holding the pool (the pool id's home node) does.
  bool manage_keys = true;
  std::shared_ptr<const link_metrics> metrics = link_metrics::make(nullptr, "unnamed");
};

/// Spawns the link; it connects once `(attach_atom, caf::actor registry, caf::actor
/// directory)` names who is told `(linkup_atom, index, node_index)` after every HELLO and who
/// keeps the node's pre-key pool (owner: the node id): the link replaces the pool after every
/// HELLO and daily (upload, then retire the older keys) and tops it up when a check of its
/// level (`status_atom`) finds it under half of `prekey_target` (docs/architecture.md). It answers
/// `(link_atom, protocol::link_request)` with the mirror's `protocol::link_response`, or an error
/// when the link is down or the mirror did not answer in time (callers treat both as "no answer");
/// and `(stats_atom)` with a JSON object. A failed connect is logged (warn) when its reason differs
/// from the last one logged, and shown as `last_error` in the stats. When the TCP connection was
/// made but the link did not come up (CAF reports a TLS refusal by either side only as a closed
/// connection or a timeout), the link makes one diagnostic TLS handshake (`probe_tls`) and reports
/// what it found: which side refused whose certificate.
caf::actor spawn_mirror_link(caf::actor_system& sys, mirror_link_deps deps);

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// The mirror process's published endpoint: checks the router's HELLO, then runs every link
// request through the single owner of the mirror state, writing through group commit.
#pragma once

#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/storage/mirror_store.hpp"

#include "../node_metrics.hpp"
#include <caf/all.hpp>

#include <memory>

namespace cowpi::actors {

/// What the endpoint owns: the mirror state machine and its store (the store outlives it).
struct mirror_endpoint_deps {
  std::unique_ptr<protocol::mirror> mirror;
  storage::mirror_store* store = nullptr;
  config::peer router;  // the one router allowed to connect
  /// The mirror cluster's node ids and this node's: a request about a conversation another
  /// node owns (`protocol::conv_owner`) is refused with `wrong_node`. One node owns all.
  std::vector<std::string> nodes;
  std::string self_node;
  std::shared_ptr<const mirror_metrics> metrics = mirror_metrics::make(nullptr);
};

/// Spawns the endpoint (a scheduled actor). It answers `(link_atom, link_frame)` requests with
/// a `link_frame`. COMMIT and ACK writes go to the store's group-commit writer without blocking
/// the actor; each answer leaves after its own write's sync and after every earlier answer.
caf::actor spawn_mirror_endpoint(caf::actor_system& sys, mirror_endpoint_deps deps);

}  // namespace cowpi::actors

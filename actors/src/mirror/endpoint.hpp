// SPDX-License-Identifier: Apache-2.0
// The mirror process's published endpoint: checks the router's HELLO, answers TOPUP, and hands
// every request about a conversation to that conversation's actor (one writer per conversation,
// writing through group commit).
#pragma once

#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/storage/mirror_store.hpp"

#include "../node_metrics.hpp"
#include "conversation.hpp"
#include <caf/all.hpp>

#include <chrono>
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
  /// How long a conversation actor stays without a request before it stops.
  std::chrono::milliseconds idle{std::chrono::seconds(60)};
  /// The clock (Unix seconds) and each conversation actor's randomness; null: the wall clock
  /// and libsodium's. Tests inject deterministic ones.
  mirror_clock clock;
  mirror_rng_factory rng_for;
};

/// Spawns the endpoint (a scheduled actor). It answers `(link_atom, link_frame)` requests with
/// a `link_frame`: HELLO and TOPUP itself, a request about a conversation through the
/// conversation's actor (`mirror/conversation.hpp`), spawned on demand and stopped when idle.
/// COMMIT and ACK writes go to the store's group-commit writer without blocking an actor; each
/// answer leaves after its own write's sync and after every earlier answer of its conversation.
caf::actor spawn_mirror_endpoint(caf::actor_system& sys, mirror_endpoint_deps deps);

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// The router's cross-provider audit (docs/design.md §6): each mirror's stored D_i, fetched with
// AUDIT over its link, compared with the router's log and with the other mirrors'.
#pragma once

#include "cowpi/storage/router_store.hpp"

#include "mirror_route.hpp"
#include <caf/all.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::actors {

struct auditor_deps {
  /// The router's store; outlives the actor.
  storage::router_store* store = nullptr;
  /// Every mirror's nodes and links, in MS order: a conversation is audited at the node of
  /// each mirror that owns it.
  std::vector<mirror_route> mirrors;
  /// Bound on one AUDIT round trip (one batch of at most `protocol::max_audit_batch` D values).
  std::chrono::milliseconds batch_timeout{4000};
  /// Bound on a whole audit; mirrors not done by then report an error. Keep it below the
  /// admin endpoint's command timeout.
  std::chrono::milliseconds deadline{8000};
  /// Most conversations one audit of "all conversations" covers.
  size_t max_conversations = 64;
  /// Most indices listed per mismatch/missing list (the counts stay exact).
  size_t max_listed = 100;
};

/// Spawns the auditor (detached: it reads the router's log from RocksDB). It answers
/// `(command_atom, std::string request_line)`, the admin endpoint's command contract, with a
/// `std::string` holding one JSON object; the request is `{"do":"audit","conv":"<hex>"}` (one
/// conversation) or `{"do":"audit"}` (every conversation, capped). The answer format is in
/// docs/admin.md. It always answers before `deadline` plus one batch timeout.
caf::actor spawn_auditor(caf::actor_system& sys, auditor_deps deps);

}  // namespace cowpi::actors

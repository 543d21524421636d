// SPDX-License-Identifier: Apache-2.0
// Offline resharding of a mirror cluster (docs/admin.md, `reshard`): every conversation moves to
// the node that owns it under the new node list (protocol::conv_owner), and every node persists
// the new list. Conversation state moves; key stores do not (each node keeps the pre-keys it made,
// docs/architecture.md "Mirror clusters").
#pragma once

#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/types.hpp"
#include "cowpi/storage/mirror_store.hpp"

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace cowpi::storage {

/// One node of the cluster as it will run: its id and its store (open, not loaded, no daemon on
/// it).
struct reshard_node {
  std::string id;
  mirror_store* store = nullptr;
};

class router_store;

/// The router of the resharded mirror, stopped: what it logged, to check the plan against.
struct reshard_router {
  const router_store* store = nullptr;
  /// The router's configured mirror set (its `[[mirrors]]`).
  protocol::member_list configured_ms;
  /// The resharded mirror's provider id.
  std::string mirror;
};

/// One conversation that changes node.
struct reshard_move {
  protocol::conv_id conv{};
  std::string from;
  std::string to;
  /// The conversation's next index (its length).
  uint64_t next = 0;
  /// The new owner already held a full copy (an earlier run stopped between copy and drop): only
  /// the old node's copy is dropped.
  bool resumed = false;
};

struct reshard_report {
  /// The node list the nodes persisted before (empty when none had one).
  std::vector<std::string> old_nodes;
  std::vector<std::string> new_nodes;
  std::vector<reshard_move> moves;
  /// Conversations per node afterwards (in `new_nodes` order).
  std::vector<uint64_t> held;
  /// Rows copied in all.
  uint64_t rows_copied = 0;
  bool dry_run = false;
};

/// Moves every conversation of the cluster `nodes` (the new node list, every node of it, each
/// with its store) to its owner under that list, then persists the list on every node. With
/// `dry_run`, plans and checks only and writes nothing.
///
/// Refused (`errc::config`, nothing written) when: `nodes` is empty or names a node twice; the
/// stores persisted different lists, other than the new one (a resumed run); a node of the old
/// list is missing from the new one (removing a node is not supported); the stores are bound to
/// different mirror identities; two nodes hold one conversation at different lengths; or, with
/// `router`, the router logged an entry of a moving conversation that its old node has not
/// committed and whose block to the mirror names a PREKEY or LAST_RESORT key: those keys stay on
/// the old node, so the new one would refuse that COMMIT and the router would stop the
/// conversation (an entry whose block names a RATCHET key, or a chain block, moves safely with
/// the conversation's channels). A run that stops part way (crash, disk full) can be run again: a
/// conversation is dropped from its old node only after its copy is synced on the new one.
[[nodiscard]] expected<reshard_report> reshard_mirror(const std::vector<reshard_node>& nodes,
                                                      const reshard_router* router, bool dry_run);

/// One node of a router cluster as it will run: its id and its store (no daemon on it).
struct router_reshard_node {
  std::string id;
  router_store* store = nullptr;
};

struct router_reshard_report {
  /// The node list the nodes persisted before (empty when none had one).
  std::vector<std::string> old_nodes;
  std::vector<std::string> new_nodes;
  /// Conversations that change node (`next` unused).
  std::vector<reshard_move> moves;
  /// Users (directory entry and pre-key pool) that change node: (id, from, to).
  std::vector<std::tuple<std::string, std::string, std::string>> users;
  /// Conversations and users per node afterwards (in `new_nodes` order).
  std::vector<uint64_t> held;
  std::vector<uint64_t> homed;
  uint64_t rows_copied = 0;
  bool dry_run = false;
};

/// Moves every conversation of the router cluster `nodes` (the new node list, every node of it)
/// to its owner under that list (`protocol::conv_owner`: its record, log, blocks, pending rows
/// and its members' cursors) and every user to its home node (`protocol::user_owner`: its
/// registration, directory entry and one-time pre-key pool), then persists the list on every
/// node. Providers' rows stay where they are (every node registers them at start); a mirror
/// node's pool stays with the node that kept it, and the pool id's new home node makes a new
/// one when its link comes up. With `dry_run`, plans and checks only.
///
/// Refused (`errc::config`, nothing written) when `nodes` is empty or names a node twice, the
/// stores persisted different lists (other than the new one: a resumed run), or a node of the
/// old list is missing from the new one. A run that stops part way can be run again: rows are
/// dropped from their old node only after their copy is synced on the new one.
[[nodiscard]] expected<router_reshard_report> reshard_router_cluster(
    const std::vector<router_reshard_node>& nodes, bool dry_run);

}  // namespace cowpi::storage

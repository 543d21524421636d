// SPDX-License-Identifier: Apache-2.0
// The conversation registry (every conversation of this router) and one conversation actor per
// conversation: intake, PREPARE, index, synced append, COMMIT, answers, delivery pokes.
#pragma once

#include "cowpi/protocol/router.hpp"
#include "cowpi/storage/router_store.hpp"

#include "../node_metrics.hpp"
#include "cluster.hpp"
#include "mirror_route.hpp"
#include <caf/all.hpp>

#include <chrono>
#include <vector>

namespace cowpi::actors {

struct conversation_deps {
  storage::router_store* store = nullptr;
  protocol::member_list ms;  // the configured mirror set, sorted by name
  protocol::intake_limits limits;
  /// Every mirror's nodes and links, in MS order.
  std::vector<mirror_route> mirrors;
  /// For one conversation (filled by the registry): the link of the node owning it in each
  /// mirror, and that node's position in the mirror's node list, in MS order.
  std::vector<caf::actor> links;
  std::vector<size_t> link_nodes;
  std::vector<std::shared_ptr<const link_metrics>> link_stats;
  std::chrono::milliseconds prepare_timeout{5000};
  std::chrono::milliseconds commit_timeout{5000};
  /// A conversation actor with nothing pending stops after this long without a SUBMIT.
  std::chrono::milliseconds idle{std::chrono::seconds(60)};
  std::chrono::seconds retention{30LL * 24 * 3600};
  /// Most SETUPs one user may submit in an hour (the registry's LIMIT(setup_rate)); 0: no limit.
  uint64_t max_setups_per_hour = 600;
  std::shared_ptr<const conversation_metrics> metrics = conversation_metrics::make(nullptr);
  /// The router cluster: the directory entries of users homed on other nodes are read there.
  /// Null: every user is this node's.
  std::shared_ptr<const cluster_view> cluster;
};

/// Spawns the registry. It answers `(submit_atom, submit_request)` by delegating to the
/// conversation's actor (spawned on demand, loading its record and resuming entries still
/// missing mirror answers), forwards `(linkup_atom, size_t mirror, size_t node)` to every live
/// conversation (one whose owner node in that mirror is `node` resends its COMMITs), and
/// answers `(stats_atom)` with JSON. At start it reads the records of `resume` (every
/// conversation the store holds) and resumes those with entries in flight, so that their COMMITs
/// are resent. Records are read on the store's reader thread, never on the registry's; SUBMITs
/// for a conversation being read wait for it. `(attach_atom, caf::actor queues)` names the
/// queue registry that receives `(poke_atom, conv, index, members)` for deliverable entries.
caf::actor spawn_conversation_registry(caf::actor_system& sys, conversation_deps deps,
                                       std::vector<protocol::conv_id> resume);

}  // namespace cowpi::actors

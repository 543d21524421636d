// SPDX-License-Identifier: Apache-2.0
// The router cluster (docs/architecture.md "Router clusters"): which node holds what, the
// handles of the other nodes, and the cluster actor that links this node to them.
#pragma once

#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/types.hpp"
#include "cowpi/storage/router_store.hpp"

#include "../type_ids.hpp"
#include <caf/all.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::actors {

/// The router cluster as one node sees it: the node ids, this node's position, where each id
/// and conversation lives, and the cluster actors of the other nodes (null while no link is
/// up). Shared by the session workers, the conversation actors and the cluster actor;
/// thread-safe. A router of one node has a view of one node: everything is local.
class cluster_view {
public:
  /// `mirror_nodes`: each mirror's node ids (a clustered mirror keeps a pool per node).
  cluster_view(std::vector<std::string> nodes, const std::string& self,
               std::map<std::string, std::vector<std::string>> mirror_nodes);

  bool clustered() const noexcept { return nodes_.size() > 1; }
  size_t size() const noexcept { return nodes_.size(); }
  size_t self() const noexcept { return self_; }
  const std::vector<std::string>& nodes() const noexcept { return nodes_; }
  /// The node holding `id`'s directory entry, pre-key pool, fetch budget and registration.
  size_t home_of(const std::string& id) const;
  /// The node holding `conv`'s record, log and its members' cursors.
  size_t owner_of(const protocol::conv_id& conv) const;
  /// The node whose directory answers a fetch naming `owner` (a user, or a mirror: then the
  /// pool of the mirror node owning `conv`).
  size_t pool_home(const std::string& owner, const std::optional<protocol::conv_id>& conv) const;
  /// The cluster actor of node `i`, or null (this node, or no link up).
  caf::actor peer(size_t i) const;
  void set_peer(size_t i, caf::actor a);
  /// How many other nodes have a link up.
  size_t peers_up() const;

private:
  std::vector<std::string> nodes_;
  size_t self_ = 0;
  std::map<std::string, std::vector<std::string>> mirror_nodes_;
  mutable std::mutex mu_;
  std::vector<caf::actor> peers_;
};

using cluster_ptr = std::shared_ptr<cluster_view>;

/// What the cluster actor needs.
struct cluster_deps {
  cluster_ptr view;
  std::shared_ptr<const protocol::identity> identity;
  /// Every node's addresses, in the order of `view->nodes()`.
  std::vector<config::router_node_addresses> addresses;
  storage::router_store* store = nullptr;
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds connect_timeout{5000};
};

/// Spawns the cluster actor. Once `(attach_atom, directory, registry, queues)` wires it, it
/// keeps a link to every other node: this node connects (CAF middleman over mutual TLS) to
/// every node after it in the list and greets it (`node_kind::hello`, proved with
/// `protocol::cluster_hello_tag`); the nodes before it connect here. It answers the other
/// nodes' requests for this node's shards (lookups, registrations, client requests, directory
/// entries) and hands their users' sessions this node's deliveries through a local stub per
/// remote session. Session workers of this node tell it `(attach_atom, user, session)` and
/// `(detach_atom, user, session)`: it attaches the session on every node whose link is up, and
/// on every node whose link comes up later. A message from a node that did not greet it is
/// dropped and logged. `(stats_atom)`: JSON for the admin section "cluster".
caf::actor spawn_cluster(caf::actor_system& sys, cluster_deps deps);

/// Answers `body` of `user` (request `request_id`) with this node's actors: the directory for
/// pre-keys, users and status, the registry for SUBMIT (late rejections go to `session`).
/// `k` gets the answer, or rejection{unavailable} when an actor failed to answer in time.
/// Used by session workers for their own node's shards and by the cluster actor for a peer's.
void answer_locally(caf::event_based_actor* self, const caf::actor& directory,
                    const caf::actor& registry, std::chrono::milliseconds timeout,
                    const std::string& user, uint64_t request_id, const caf::actor& session,
                    protocol::client_request body, std::function<void(protocol::response_body)> k);

/// Sends `m` to node `node`'s cluster actor as a request and hands `k` its answer, or
/// nullopt when the node is not linked or did not answer in time.
void ask_node(caf::event_based_actor* self, const cluster_view& view, size_t node,
              std::chrono::milliseconds timeout, node_msg m,
              std::function<void(std::optional<node_msg>)> k);

}  // namespace cowpi::actors

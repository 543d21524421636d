// SPDX-License-Identifier: Apache-2.0
// The node-list checks both reshards (a mirror cluster's, a router cluster's) make before they
// plan anything.
#pragma once

#include "cowpi/protocol/expected.hpp"
#include "cowpi/storage/shard_map.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::storage::detail {

/// The new node list: the ids of `nodes` (each with a store), none twice.
template <class Node>
expected<std::vector<std::string>> new_node_list(const std::vector<Node>& nodes) {
  if (nodes.empty())
    return fail(errc::config, "no nodes to reshard");
  std::vector<std::string> ids;
  for (const auto& n : nodes) {
    if (n.store == nullptr)
      return fail(errc::invalid_argument, "node " + n.id + " has no store");
    if (std::count_if(nodes.begin(), nodes.end(), [&](const Node& m) { return m.id == n.id; }) > 1)
      return fail(errc::config, "node " + n.id + " is listed twice");
    ids.push_back(n.id);
  }
  return ids;
}

/// The list the nodes persisted before (`maps[k]`: node `ids[k]`'s; a node that persisted the
/// new list already, in a resumed run, does not count): empty when none did. Refused
/// (`errc::config`) when two nodes persisted different lists, or when a node of it is missing
/// from `new_nodes` (removing a node is not supported).
inline expected<std::vector<std::string>> old_node_list(
    const std::vector<std::string>& ids,
    const std::vector<std::optional<std::vector<std::string>>>& maps,
    const std::vector<std::string>& new_nodes) {
  std::vector<std::string> old;
  for (size_t k = 0; k < maps.size(); ++k) {
    const auto& map = maps[k];
    if (!map || *map == new_nodes)
      continue;
    if (!old.empty() && old != *map)
      return fail(errc::config, "the nodes persisted different node lists (" + describe_nodes(old)
                                    + " and " + describe_nodes(*map) + ", node " + ids[k]
                                    + "); nothing was changed");
    old = *map;
  }
  for (const auto& o : old)
    if (std::find(new_nodes.begin(), new_nodes.end(), o) == new_nodes.end())
      return fail(errc::config, "node " + o + " of the persisted list (" + describe_nodes(old)
                                    + ") is not in the new one: removing a node is not "
                                      "supported; nothing was changed");
  return old;
}

}  // namespace cowpi::storage::detail

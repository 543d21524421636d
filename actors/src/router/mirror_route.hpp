// SPDX-License-Identifier: Apache-2.0
// One mirror as the router's actors reach it: its node ids and one link actor per node. A
// mirror of one node has one of each; a mirror cluster owns each conversation on one node
// (`protocol::conv_owner`), and everything about that conversation goes to that node's link.
#pragma once

#include "cowpi/protocol/shard.hpp"
#include "cowpi/protocol/types.hpp"

#include "../node_metrics.hpp"
#include <caf/all.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cowpi::actors {

struct mirror_route {
  std::string id;                  // the mirror's id (its position in MS is its index)
  std::vector<std::string> nodes;  // node ids; {id} for a mirror of one node
  std::vector<caf::actor> links;   // one per node, in `nodes` order
  /// Each link's metrics, in `nodes` order: a conversation actor whose requests the link
  /// forwards observes their answers (round trip, failures) itself.
  std::vector<std::shared_ptr<const link_metrics>> metrics;

  /// The position in `nodes` of the node owning `conv`.
  [[nodiscard]] size_t owner(const protocol::conv_id& conv) const noexcept {
    return nodes.size() <= 1 ? 0 : protocol::conv_owner(nodes, conv);
  }
  [[nodiscard]] const caf::actor& link_for(const protocol::conv_id& conv) const {
    return links[owner(conv)];
  }
};

}  // namespace cowpi::actors

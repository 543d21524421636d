// SPDX-License-Identifier: Apache-2.0
// A provider node's cluster node list as it persisted it (meta `shard.map`, docs/storage.md §4):
// written at first start, compared at every start, rewritten only by the offline resharding
// (docs/admin.md, `reshard`).
#pragma once

#include "cowpi/protocol/expected.hpp"
#include "cowpi/storage/store.hpp"

#include <optional>
#include <string>
#include <vector>

namespace cowpi::storage {

/// The node list `s` persisted, in the order it was written; nullopt when it has none. A row
/// that is not a list of ids each ended by `\n` fails with `errc::corruption`.
[[nodiscard]] expected<std::optional<std::vector<std::string>>> read_shard_map(const store& s);

/// Persists `nodes` as the node list (one synced batch). Ids must not contain `\n` (no valid id
/// does, docs/design.md §Notation).
[[nodiscard]] expected<void> write_shard_map(store& s, const std::vector<std::string>& nodes);

/// At start: persists `nodes` when `s` has no list or holds no data (`holds_data` false), and
/// otherwise fails with `errc::config`, naming both lists, when the persisted list differs.
[[nodiscard]] expected<void> check_shard_map(store& s, const std::vector<std::string>& nodes,
                                             bool holds_data);

/// "a, b, c": a node list for messages.
std::string describe_nodes(const std::vector<std::string>& nodes);

}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// Rendezvous (highest random weight) hashing: which node of a provider cluster owns a
// conversation (docs/design.md §4 "Cluster", docs/architecture.md "Mirror clusters").
#pragma once

#include "cowpi/protocol/types.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cowpi::protocol {

/// The weight of `node` for `key`: the first 8 bytes, big-endian, of
/// SHA-256(L("shard") || u8(#node) || node || key).
[[nodiscard]] uint64_t shard_weight(const std::string& node, byte_view key) noexcept;

/// The position in `nodes` of the node owning `key`: the greatest `shard_weight`, a tie going
/// to the smaller id. The answer does not depend on the order of `nodes`, and adding a node
/// moves only the keys the new node wins. REQUIRES: `nodes` is not empty, ids are at most
/// 255 bytes (every valid id is).
[[nodiscard]] size_t shard_owner(const std::vector<std::string>& nodes, byte_view key) noexcept;

/// `shard_owner` for a conversation: the key is the conversation id.
[[nodiscard]] size_t conv_owner(const std::vector<std::string>& nodes,
                                const conv_id& conv) noexcept;

}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// Rendezvous (highest random weight) hashing: which node of a provider cluster owns a
// conversation (docs/design.md §4 "Cluster", docs/architecture.md "Mirror clusters").
#pragma once

#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/keys.hpp"
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

/// `shard_owner` for a user id (or a mirror node's pool id) in a router cluster: the key is the
/// id's bytes. The node it names holds the id's directory entry, its pre-key pool and the
/// fetch budget of its requests.
[[nodiscard]] size_t user_owner(const std::vector<std::string>& nodes,
                                const std::string& id) noexcept;

/// Router cluster: the proof a node gives in its HELLO to another node of the same provider.
/// Every node holds the provider's long-term secret (one identity); nobody else does, so a
/// peer holding a certificate of the CA the nodes trust (a mirror's, say) cannot pass for a
/// node. `HMAC-SHA256(HKDF(L("cluster"), lsk, L("node hello")), L("node") || u8(#node) ||
/// node)`. Compare with `crypto::ct_equal`.
[[nodiscard]] crypto::secret<32> cluster_hello_tag(const identity& me, const std::string& node);

}  // namespace cowpi::protocol

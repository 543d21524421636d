// SPDX-License-Identifier: Apache-2.0
// Value types shared by the provider config and the client deployment file: endpoints and peers.
#pragma once

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/types.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi::config {

/// A TCP endpoint, written `host:port` in TOML (`[v6-address]:port` for an IPv6 literal).
/// `host` is stored without brackets, as CAF's `publish` and `remote_actor` take it. Port 0
/// means "let the OS pick" and is accepted only where the config listens.
struct endpoint {
  std::string host;
  uint16_t port = 0;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// Returns `host:port`, bracketing a host that contains ':' (an IPv6 literal).
[[nodiscard]] std::string to_string(const endpoint& e);

/// Parses `host:port` or `[v6]:port`. The host must be non-empty and hold no whitespace,
/// control characters, brackets (outside the IPv6 form) or ':' (outside it); the port is 0-65535
/// in decimal digits. Fails with `errc::config`; the context names the rule broken, without
/// position (the TOML readers add `FILE:LINE:COL`).
[[nodiscard]] expected<endpoint> parse_endpoint(std::string_view text);

/// A provider pinned by name and long-term X25519 public key (docs/design.md §1): the router as a
/// mirror sees it, or one mirror of a client's pinned mirror set.
struct peer {
  std::string name;
  crypto::public_key public_key{};
  friend bool operator==(const peer&, const peer&) = default;
};

/// One node of a mirror cluster as the router knows it: the node's id (its own
/// `cluster.self`) and where to connect.
struct mirror_node {
  std::string id;
  endpoint address;
  friend bool operator==(const mirror_node&, const mirror_node&) = default;
};

/// The most nodes one mirror cluster may list.
inline constexpr size_t max_mirror_nodes = 64;

/// One mirror as the router knows it: its name and key, and where to connect: one `address`,
/// or, for a mirror cluster, its `nodes` (then `address` is empty).
struct mirror_peer {
  std::string name;
  endpoint address;
  crypto::public_key public_key{};
  /// A mirror cluster's nodes, in config order; empty for a mirror of one node.
  std::vector<mirror_node> nodes;
  friend bool operator==(const mirror_peer&, const mirror_peer&) = default;
};

/// The nodes the router connects to for `p`: `p.nodes`, or one node named `p.name` at
/// `p.address` when the mirror is one node.
[[nodiscard]] std::vector<mirror_node> nodes_of(const mirror_peer& p);
/// The ids of `nodes_of(p)`, the list a conversation's owner node is chosen from.
[[nodiscard]] std::vector<std::string> node_ids_of(const mirror_peer& p);

/// Returns the (id, lpk) list `peers` names, sorted by id (bytewise) as protocol/ wants a
/// mirror set MS. REQUIRES: names are unique (every parsed config guarantees it).
[[nodiscard]] protocol::member_list to_member_list(const std::vector<peer>& peers);
/// As above, dropping the addresses.
[[nodiscard]] protocol::member_list to_member_list(const std::vector<mirror_peer>& peers);

}  // namespace cowpi::config

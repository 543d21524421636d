// SPDX-License-Identifier: Apache-2.0
// The client deployment file (docs/design.md §1): the router to connect to and the pinned mirror
// set.
#pragma once

#include "cowpi/config/common.hpp"
#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/expected.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi::config {

/// One node of a router cluster as clients see it.
struct deployment_router_node {
  std::string id;
  endpoint address;
  friend bool operator==(const deployment_router_node&, const deployment_router_node&) = default;
};

/// `[router]` of a deployment file.
struct deployment_router {
  /// The router's id.
  std::string name;
  /// Where clients connect; the port is never 0. For a router cluster, the first node's
  /// address (clients use `nodes`).
  endpoint address;
  /// A router cluster's nodes, in its config order: each node's id and client address (ids
  /// valid and unique, addresses unique, ports never 0; at most `max_cluster_nodes`). Empty
  /// for a router of one node. A client connects to its home node (`protocol::user_owner` over
  /// the ids) and, when that fails, to the others in turn.
  std::vector<deployment_router_node> nodes;
  /// The router's long-term X25519 public key (lpk).
  crypto::public_key public_key{};
  /// The router's retention cap (`retention_s`): entries older than this may be gone.
  std::chrono::seconds retention{0};
  friend bool operator==(const deployment_router&, const deployment_router&) = default;
};

/// What a client is given out of band (`cowpi init --deployment FILE`). `mirrors` is the
/// client's pinned mirror set: 1 to `protocol::max_mirrors` entries with unique names and keys,
/// none named like the router, sorted by name in a parsed file. A value type.
struct deployment_file {
  deployment_router router;
  std::vector<peer> mirrors;
  friend bool operator==(const deployment_file&, const deployment_file&) = default;
};

/// Parses a deployment file. Fails with `errc::config` and the context
/// `SOURCE:LINE:COL: reason`, by the same rules as `parse_provider_config`. Never throws.
[[nodiscard]] expected<deployment_file> parse_deployment_file(std::string_view text,
                                                              std::string_view source_name);

/// Reads (at most 1 MiB) and parses the file at `path`; a file that cannot be read fails at
/// `PATH:1:1`.
[[nodiscard]] expected<deployment_file> load_deployment_file(const std::filesystem::path& path);

/// Returns `d` as TOML that `parse_deployment_file` reads back into an equal struct whenever `d`
/// is itself a parsed file.
[[nodiscard]] std::string to_toml(const deployment_file& d);

/// Returns the deployment file of the router configured by `router_config`, whose long-term
/// public key is `router_key`: its name, its client endpoint, its retention cap and its mirror
/// set without addresses. For a router cluster (`cluster.addresses` not empty) `nodes` lists
/// every node with its `clients` address and `address` is the first node's; otherwise
/// `address` is `router_config.clients`. The caller replaces a wildcard host or port 0 with the
/// address clients really reach. REQUIRES: `router_config.role == role::router`.
[[nodiscard]] deployment_file deployment_for(const provider_config& router_config,
                                             const crypto::public_key& router_key);

}  // namespace cowpi::config

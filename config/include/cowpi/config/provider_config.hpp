// SPDX-License-Identifier: Apache-2.0
// The `cowpi-provider` daemon's configuration (role router or mirror): plain structs with
// defaults, parsed from TOML and rendered back to it. docs/configuration.md lists every key.
#pragma once

#include "cowpi/config/common.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/limits.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi::config {

/// Which provider a `cowpi-provider` process is (docs/design.md §1).
enum class role : uint8_t { router = 1, mirror = 2 };

/// Returns "router" or "mirror", the spelling of `provider.role` in TOML.
[[nodiscard]] std::string_view to_string(role r) noexcept;

/// Verbosity of the daemon's log, lowest first.
enum class log_level : uint8_t { trace, debug, info, warn, error, off };

/// Returns "trace", "debug", "info", "warn", "error" or "off", the spelling in TOML.
[[nodiscard]] std::string_view to_string(log_level l) noexcept;

/// How the daemon writes its log: text lines, or one JSON object per line.
enum class log_format : uint8_t { text, json };

/// Returns "text" or "json", the spelling in TOML and on the command line.
[[nodiscard]] std::string_view to_string(log_format f) noexcept;

/// The smallest `max_body` the config accepts: one padded block (40 + 256), the smallest body a
/// MESSAGE can have, so a router never refuses every message.
inline constexpr uint64_t min_config_body = 40 + protocol::pad_block;
/// The largest `max_frame` the config accepts (64 MiB): frames buffer whole in memory.
inline constexpr size_t max_config_frame = size_t{64} << 20;

/// `[limits]`: router-intake limits (docs/design.md §3.3). They may only be stricter than the
/// protocol constants; `validate` never sees them and mirrors apply none at COMMIT. Only
/// `max_frame` applies to a mirror too.
struct limits_config {
  /// Largest transport frame accepted, in bytes; at least `protocol::max_frame_protocol`.
  size_t max_frame = protocol::max_frame_protocol;
  /// Most members of a conversation the router takes in; 2 to `protocol::max_members`.
  size_t max_members = protocol::max_members;
  /// Largest MESSAGE `body_len` the router takes in; `min_config_body` to `protocol::max_body`.
  uint64_t max_body = protocol::max_body;
  /// Most SUBMITs queued per (conversation, author) before the router answers LIMIT.
  size_t max_pending_per_author = 64;
  /// Most SUBMITs queued per conversation; at least `max_pending_per_author`.
  size_t max_pending_per_conv = 1024;
  /// Most simultaneous client connections.
  size_t max_connections = 10000;
  /// Least time between two UPDATEs by one author in one conversation; 0 means no limit.
  std::chrono::seconds min_update_interval{5};
  /// Most SETUPs (new conversations) one user may submit in an hour; 0 means no limit.
  uint64_t max_setups_per_hour = 600;
  friend bool operator==(const limits_config&, const limits_config&) = default;
};

/// `[timeouts]`, all in milliseconds in TOML, each 1 ms to 24 h.
struct timeouts_config {
  /// Router: how long it waits for every mirror's PREPARE answer.
  std::chrono::milliseconds prepare{5000};
  /// Router: how long it waits for every mirror's COMMIT answer before resending.
  std::chrono::milliseconds commit{5000};
  /// Router: how long a client has to finish the transport handshake.
  std::chrono::milliseconds handshake{10000};
  /// Router: a client connection silent this long is closed.
  std::chrono::milliseconds idle{300000};
  /// Both roles: CAF middleman `heartbeat-interval` on the router<->mirror link.
  std::chrono::milliseconds heartbeat{1000};
  /// Both roles: CAF middleman `connection-timeout`; must exceed `heartbeat`.
  std::chrono::milliseconds connection{5000};
  /// Both roles: a conversation actor with nothing pending that has had no request for this long
  /// stops (its conversation stays on disk; the next request starts a new one).
  std::chrono::milliseconds conversation_idle{60000};
  friend bool operator==(const timeouts_config&, const timeouts_config&) = default;
};

/// `[tls]`: the mutual-TLS files of the router<->mirror link (CAF `openssl.certificate`,
/// `openssl.key`, `openssl.cafile`). All three are required in both roles.
struct tls_config {
  std::filesystem::path certificate;
  std::filesystem::path key;
  std::filesystem::path ca;
  friend bool operator==(const tls_config&, const tls_config&) = default;
};

/// The addresses of one node of a router cluster.
struct router_node_addresses {
  /// Where this node's clients connect (what the deployment file lists); the port is never 0.
  endpoint clients;
  /// Where the other nodes of the cluster reach this node (CAF BASP over mutual TLS, the
  /// `[tls]` files); this node listens there. The port is never 0.
  endpoint internal;
  friend bool operator==(const router_node_addresses&, const router_node_addresses&) = default;
};

/// The most nodes one cluster (router or mirror) may list.
inline constexpr size_t max_cluster_nodes = 64;

/// `[cluster]`: the provider's node list, 1 to `max_cluster_nodes` nodes. Conversations are
/// sharded over the nodes by rendezvous hashing (`protocol::conv_owner`), and, in a router
/// cluster, users by the same hashing of their ids (`protocol::user_owner`). In TOML, a mirror
/// lists node ids (strings; a table is refused); a router lists either one node id, or every
/// node as a table `{ id = ..., clients = ..., internal = ... }` (never both forms). Parsing
/// fills the default, one node named after the provider. The list is persisted at first start
/// and a node holding data refuses to start with a different one (`provider_node::start`).
struct cluster_config {
  /// Node names (ids), unique, in config order (the owner of a key does not depend on it).
  std::vector<std::string> nodes;
  /// This process's node: one entry of `nodes`; may be left out of the TOML only when `nodes`
  /// has one entry.
  std::string self;
  /// A router's nodes written as tables: each node's addresses, in the order of `nodes` (the
  /// same size). No two nodes share a `clients` or an `internal` endpoint. Empty for a mirror
  /// and for a router that lists its one node by id; `to_toml` writes the table form exactly
  /// when this is not empty.
  std::vector<router_node_addresses> addresses;
  friend bool operator==(const cluster_config&, const cluster_config&) = default;
};

/// `[logging]`.
struct logging_config {
  log_level level = log_level::info;
  /// Log file; empty means stderr.
  std::filesystem::path file;
  log_format format = log_format::text;
  /// Whether log lines name conversations (their short ids); off by default.
  bool ids = false;
  friend bool operator==(const logging_config&, const logging_config&) = default;
};

/// `[metrics]`: the Prometheus scrape endpoint (docs/operations.md). Off when the table is
/// absent.
struct metrics_config {
  /// Where `GET /metrics` is served over plain HTTP; port 0 picks a free port. Bind it to a
  /// loopback or management address: the metrics carry no user data, but they are not
  /// authenticated.
  std::optional<endpoint> listen;
  friend bool operator==(const metrics_config&, const metrics_config&) = default;
};

/// How CAF's scheduler hands ready actors to its threads.
enum class scheduler_policy : uint8_t {
  /// One shared queue; idle threads sleep on a condition variable until work arrives.
  sharing,
  /// A queue per thread; idle threads poll and steal, then sleep in growing steps.
  stealing,
};

/// `[runtime]`: the actor system's threads (docs/configuration.md, docs/benchmarks.md).
struct runtime_config {
  /// Scheduler threads; 0 means one per core.
  uint64_t threads = 0;
  scheduler_policy scheduler = scheduler_policy::sharing;
  friend bool operator==(const runtime_config&, const runtime_config&) = default;
};

/// The whole configuration of one `cowpi-provider` process. Fields that belong to the other
/// role stay at their defaults (empty) and are neither parsed nor rendered. In a parsed config
/// every path except `data_dir` has been resolved against `data_dir`, and `data_dir` against
/// the directory of the config file. A value type; not synchronised.
struct provider_config {
  // [provider]
  config::role role = role::router;
  /// The provider id (docs/design.md §1, `protocol::valid_id`), unique in the deployment.
  std::string name;
  /// Where the provider keeps its RocksDB, keys and admin socket.
  std::filesystem::path data_dir;
  /// The file holding the 32-byte long-term X25519 secret (mode 0600).
  std::filesystem::path identity_key_file = "identity.key";
  /// The key sealing secrets at rest (docs/storage.md §8). A mirror always has one (default
  /// "storage.key"); a router has one only when its config names it.
  std::optional<std::filesystem::path> storage_key_file;

  // [listen]
  /// Router: where clients connect. Port 0 picks a free port.
  endpoint clients;
  /// Mirror: the router<->mirror TLS (CAF BASP) port. Port 0 picks a free port.
  endpoint links;
  /// Both roles: the Unix socket answering JSON admin requests (at most 107 bytes).
  std::filesystem::path admin_socket = "admin.sock";

  tls_config tls;

  /// Router: the deployment's mirror set, 1 to `protocol::max_mirrors` entries with unique
  /// names and keys; sorted by name in a parsed config.
  std::vector<mirror_peer> mirrors;
  /// Mirror: the only router allowed to connect.
  peer router;

  limits_config limits;
  timeouts_config timeouts;
  /// Router: `[retention] max_age_s`, the retention cap. Entries older than this are deleted
  /// even when undelivered.
  std::chrono::seconds retention{2592000};
  /// Router: `[retention] collect_interval_s`, how often the retention collector runs over
  /// every conversation's log (it also runs at start).
  std::chrono::seconds collect_interval{600};
  cluster_config cluster;
  logging_config logging;
  metrics_config metrics;
  runtime_config runtime;

  friend bool operator==(const provider_config&, const provider_config&) = default;
};

/// Returns the defaults for `r`: every key that has a default set to it, and the required ones
/// (`name`, `data_dir`, the listen endpoint, `[tls]`, the peers) left empty for the caller to
/// fill. For a mirror, `storage_key_file` is "storage.key".
[[nodiscard]] provider_config defaults_for(role r);

/// Settings from outside the file (`cowpi-provider --data-dir`) that take precedence over it.
struct provider_overrides {
  /// When not empty, the data directory in place of `provider.data_dir`: the file may then
  /// leave that key out (when written it must still be a valid path, and is ignored), and every
  /// relative path in the file is resolved against this directory. Used as given, normalised
  /// lexically; the caller makes it absolute.
  std::filesystem::path data_dir;
};

/// Parses the provider config in `text`. `source_name` names it in error messages (usually the
/// file path); a relative `data_dir` is resolved against `base_dir` (left relative when
/// `base_dir` is empty). `overrides` replace the file's values (see `provider_overrides`).
/// Fails with `errc::config` and the context `SOURCE:LINE:COL: reason` for a TOML syntax error,
/// an unknown table or key, a removed key (`limits.queue_depth`), a key of the other role, a
/// wrong type, a value out of range, a `[cluster]` that breaks its rules (`cluster_config`:
/// a router listing several node ids, mixed or mirror node tables, a duplicate id or
/// endpoint, port 0 in a node table, `self` not listed), or a missing required key (the
/// position is then the table's). Never throws.
[[nodiscard]] expected<provider_config> parse_provider_config(
    std::string_view text, std::string_view source_name, const std::filesystem::path& base_dir = {},
    const provider_overrides& overrides = {});

/// Reads and parses the file at `path` (at most 1 MiB), resolving a relative `data_dir` against
/// the file's directory. Errors as `parse_provider_config`; a file that cannot be read fails at
/// `PATH:1:1`.
[[nodiscard]] expected<provider_config> load_provider_config(
    const std::filesystem::path& path, const provider_overrides& overrides = {});

/// Returns `c` as TOML that `parse_provider_config` reads back into an equal struct whenever
/// `c` is itself a parsed config. Writes every key of `c.role` (defaults included, so it shows
/// the effective configuration) and none of the other role's.
[[nodiscard]] std::string to_toml(const provider_config& c);

}  // namespace cowpi::config

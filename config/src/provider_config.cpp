// SPDX-License-Identifier: Apache-2.0
// Parses and renders the `cowpi-provider` TOML: strict keys, role checks, protocol-bounded limits.
#include "cowpi/config/provider_config.hpp"

#include "cowpi/protocol/types.hpp"

#include "detail/toml_reader.hpp"

#include <algorithm>
#include <system_error>

namespace cowpi::config {

namespace fs = std::filesystem;
using detail::quote;
using detail::reporter;
using detail::table_reader;

std::string_view to_string(role r) noexcept {
  switch (r) {
    case role::router:
      return "router";
    case role::mirror:
      return "mirror";
  }
  return "unknown";
}

std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
    case log_level::off:
      return "off";
  }
  return "unknown";
}

std::string_view to_string(log_format f) noexcept {
  switch (f) {
    case log_format::text:
      return "text";
    case log_format::json:
      return "json";
  }
  return "unknown";
}

provider_config defaults_for(role r) {
  provider_config c;
  c.role = r;
  if (r == role::mirror) {
    c.storage_key_file = "storage.key";
  }
  return c;
}

namespace {

// Bounds that are ours, not the protocol's (docs/configuration.md lists them).
constexpr uint64_t max_timeout_ms = 86'400'000;         // 24 h
constexpr uint64_t max_retention_s = 3'155'760'000;     // 100 years
constexpr uint64_t max_update_interval_s = 31'536'000;  // 1 year
constexpr uint64_t max_pending = 1'000'000;
constexpr uint64_t max_connections_cap = 1'000'000;
constexpr uint64_t max_setups_per_hour_cap = 1'000'000;
// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
constexpr size_t max_socket_path = 107;

fs::path resolve(const fs::path& base, const fs::path& p) {
  if (base.empty() || p.is_absolute()) {
    return p.lexically_normal();
  }
  return (base / p).lexically_normal();
}

unexpected<error> missing_table(const reporter& rep, const toml::table& root,
                                std::string_view name) {
  return rep.fail(root, "missing the required table [" + std::string(name) + "]");
}

// Reads a required table of the top level.
expected<const toml::table*> required_table(const table_reader& top, const toml::table& root,
                                            std::string_view name) {
  COWPI_TRY(const toml::table* t, top.table(name));
  if (t == nullptr) {
    return missing_table(top.rep(), root, name);
  }
  return t;
}

// Reads a required path and resolves it against `base`.
expected<fs::path> required_path(const table_reader& r, std::string_view key,
                                 const fs::path& base) {
  COWPI_TRY(auto p, r.path(key));
  if (!p) {
    return r.missing(key);
  }
  return resolve(base, *p);
}

expected<std::chrono::milliseconds> timeout(const table_reader& r, std::string_view key,
                                            std::chrono::milliseconds def) {
  COWPI_TRY(uint64_t v,
            r.integer(key, static_cast<uint64_t>(def.count()), 1, max_timeout_ms, {}, "24 hours"));
  return std::chrono::milliseconds(static_cast<int64_t>(v));
}

expected<void> read_provider_section(const table_reader& prov, const fs::path& base_dir,
                                     const provider_overrides& over, provider_config& c) {
  COWPI_TRY_VOID(
      prov.check_keys({"role", "name", "data_dir", "identity_key_file", "storage_key_file"}));
  COWPI_TRY(c.name, prov.id("name"));
  if (over.data_dir.empty()) {
    COWPI_TRY(c.data_dir, required_path(prov, "data_dir", base_dir));
  } else {
    // The file's value is still checked, so that a typo there is not hidden by the override.
    COWPI_TRY_VOID(prov.path("data_dir"));
    c.data_dir = over.data_dir.lexically_normal();
  }
  COWPI_TRY(auto identity, prov.path("identity_key_file"));
  if (identity) {
    c.identity_key_file = *identity;
  }
  c.identity_key_file = resolve(c.data_dir, c.identity_key_file);
  COWPI_TRY(auto storage, prov.path("storage_key_file"));
  if (storage) {
    c.storage_key_file = *storage;
  }
  if (c.storage_key_file) {
    c.storage_key_file = resolve(c.data_dir, *c.storage_key_file);
  }
  return {};
}

expected<void> read_listen(const table_reader& listen, const table_reader& prov,
                           provider_config& c) {
  const bool router = c.role == role::router;
  if (router) {
    COWPI_TRY_VOID(listen.check_keys({"clients", "admin_socket"}, {"links"}, "mirror", "router"));
    COWPI_TRY(c.clients, listen.endpoint_value("clients", true));
  } else {
    COWPI_TRY_VOID(listen.check_keys({"links", "admin_socket"}, {"clients"}, "router", "mirror"));
    COWPI_TRY(c.links, listen.endpoint_value("links", true));
  }
  COWPI_TRY(auto sock, listen.path("admin_socket"));
  if (sock) {
    c.admin_socket = *sock;
  }
  c.admin_socket = resolve(c.data_dir, c.admin_socket);
  const size_t len = c.admin_socket.native().size();
  if (len > max_socket_path) {
    const std::string reason = "the admin socket path " + quote(c.admin_socket.string()) + " is "
                               + std::to_string(len)
                               + " bytes; a Unix socket path holds at most 107";
    // Blame the key that made it long: the socket when written, else the data directory (the
    // [provider] table when --data-dir replaced it and the file has no data_dir).
    if (listen.find("admin_socket") != nullptr) {
      return listen.fail_at("admin_socket", reason);
    }
    if (prov.find("data_dir") == nullptr) {
      return prov.rep().fail(*prov.get(), reason);
    }
    return prov.fail_at("data_dir", reason);
  }
  return {};
}

expected<void> read_tls(const table_reader& tls, provider_config& c) {
  COWPI_TRY_VOID(tls.check_keys({"certificate", "key", "ca"}));
  COWPI_TRY(c.tls.certificate, required_path(tls, "certificate", c.data_dir));
  COWPI_TRY(c.tls.key, required_path(tls, "key", c.data_dir));
  COWPI_TRY(c.tls.ca, required_path(tls, "ca", c.data_dir));
  return {};
}

expected<void> read_router_peer(const table_reader& r, provider_config& c) {
  COWPI_TRY_VOID(r.check_keys({"name", "public_key"}));
  COWPI_TRY(c.router.name, r.id("name"));
  COWPI_TRY(c.router.public_key, r.public_key("public_key"));
  if (c.router.name == c.name) {
    return r.fail_at("name", "router.name " + quote(c.name) + " is this mirror's own name");
  }
  return {};
}

expected<void> read_limits(const table_reader& lim, provider_config& c) {
  auto& l = c.limits;
  // Delivery is a cursor per (user, conversation) into the conversation's log, which all its
  // members share: there is no per-user queue whose depth could be capped, and capping a
  // user's backlog would free nothing while another member still needs the same entries.
  COWPI_TRY_VOID(lim.check_removed(
      "queue_depth",
      "the router keeps no queue per user (each member has a cursor into the conversation's "
      "log, shared by all members), so there was nothing for it to bound; what the log keeps "
      "is bounded by [retention] max_age_s"));
  if (c.role == role::router) {
    COWPI_TRY_VOID(lim.check_keys({"max_frame", "max_members", "max_body", "max_pending_per_author",
                                   "max_pending_per_conv", "max_connections",
                                   "min_update_interval_s", "max_setups_per_hour"}));
  } else {
    COWPI_TRY_VOID(
        lim.check_keys({"max_frame"},
                       {"max_members", "max_body", "max_pending_per_author", "max_pending_per_conv",
                        "max_connections", "min_update_interval_s", "max_setups_per_hour"},
                       "router", "mirror"));
  }
  COWPI_TRY(l.max_frame,
            lim.integer("max_frame", l.max_frame, protocol::max_frame_protocol, max_config_frame,
                        "protocol::max_frame_protocol, the largest frame the "
                        "protocol limits allow",
                        "64 MiB"));
  if (c.role != role::router) {
    return {};
  }
  COWPI_TRY(l.max_members, lim.integer("max_members", l.max_members, 2, protocol::max_members,
                                       "a conversation has at least 2 members",
                                       "protocol::max_members; config may only be stricter"));
  COWPI_TRY(l.max_body, lim.integer("max_body", l.max_body, min_config_body, protocol::max_body,
                                    "one padded block, the smallest body",
                                    "protocol::max_body; config may only be stricter"));
  COWPI_TRY(l.max_pending_per_author,
            lim.integer("max_pending_per_author", l.max_pending_per_author, 1, max_pending));
  COWPI_TRY(l.max_pending_per_conv,
            lim.integer("max_pending_per_conv", l.max_pending_per_conv, 1, max_pending));
  if (l.max_pending_per_author > l.max_pending_per_conv) {
    const std::string reason =
        "limits.max_pending_per_author (" + std::to_string(l.max_pending_per_author)
        + ") exceeds limits.max_pending_per_conv (" + std::to_string(l.max_pending_per_conv) + ")";
    if (lim.find("max_pending_per_author") != nullptr) {
      return lim.fail_at("max_pending_per_author", reason);
    }
    return lim.fail_at("max_pending_per_conv", reason);
  }
  COWPI_TRY(l.max_connections,
            lim.integer("max_connections", l.max_connections, 1, max_connections_cap));
  COWPI_TRY(uint64_t interval, lim.integer("min_update_interval_s",
                                           static_cast<uint64_t>(l.min_update_interval.count()), 0,
                                           max_update_interval_s, {}, "one year"));
  l.min_update_interval = std::chrono::seconds(static_cast<int64_t>(interval));
  COWPI_TRY(l.max_setups_per_hour,
            lim.integer("max_setups_per_hour", l.max_setups_per_hour, 0, max_setups_per_hour_cap));
  return {};
}

expected<void> read_timeouts(const table_reader& to, provider_config& c) {
  auto& t = c.timeouts;
  if (c.role == role::router) {
    COWPI_TRY_VOID(to.check_keys({"prepare", "commit", "handshake", "idle", "heartbeat",
                                  "connection", "conversation_idle"}));
    COWPI_TRY(t.prepare, timeout(to, "prepare", t.prepare));
    COWPI_TRY(t.commit, timeout(to, "commit", t.commit));
    COWPI_TRY(t.handshake, timeout(to, "handshake", t.handshake));
    COWPI_TRY(t.idle, timeout(to, "idle", t.idle));
  } else {
    COWPI_TRY_VOID(to.check_keys({"heartbeat", "connection", "conversation_idle"},
                                 {"prepare", "commit", "handshake", "idle"}, "router", "mirror"));
  }
  COWPI_TRY(t.heartbeat, timeout(to, "heartbeat", t.heartbeat));
  COWPI_TRY(t.connection, timeout(to, "connection", t.connection));
  COWPI_TRY(t.conversation_idle, timeout(to, "conversation_idle", t.conversation_idle));
  if (t.connection <= t.heartbeat) {
    // CAF would drop a healthy link whose heartbeats cannot arrive within the timeout.
    const std::string reason = "timeouts.connection (" + std::to_string(t.connection.count())
                               + " ms) must exceed timeouts.heartbeat ("
                               + std::to_string(t.heartbeat.count()) + " ms)";
    if (to.find("connection") != nullptr) {
      return to.fail_at("connection", reason);
    }
    return to.fail_at("heartbeat", reason);
  }
  return {};
}

expected<void> read_retention(const table_reader& r, provider_config& c) {
  COWPI_TRY_VOID(r.check_keys({"max_age_s", "collect_interval_s"}));
  COWPI_TRY(uint64_t s, r.integer("max_age_s", static_cast<uint64_t>(c.retention.count()), 1,
                                  max_retention_s, {}, "100 years"));
  c.retention = std::chrono::seconds(static_cast<int64_t>(s));
  COWPI_TRY(uint64_t every,
            r.integer("collect_interval_s", static_cast<uint64_t>(c.collect_interval.count()), 1,
                      86400, {}, "1 day"));
  c.collect_interval = std::chrono::seconds(static_cast<int64_t>(every));
  return {};
}

// One entry `{ id = "...", clients = "host:port", internal = "host:port" }` of a router
// cluster's `cluster.nodes`, checked against the entries before it and appended to `cl`.
expected<void> read_router_node(const reporter& rep, const toml::node& n, cluster_config& cl) {
  const table_reader t(rep, n.as_table(), "cluster.nodes");
  COWPI_TRY_VOID(t.check_keys({"id", "clients", "internal"}));
  COWPI_TRY(std::string id, t.id("id"));
  if (std::find(cl.nodes.begin(), cl.nodes.end(), id) != cl.nodes.end()) {
    return t.fail_at("id", "cluster.nodes lists " + quote(id) + " twice");
  }
  router_node_addresses a;
  COWPI_TRY(a.clients, t.endpoint_value("clients", true));
  if (a.clients.port == 0) {
    return t.fail_at("clients", "cluster.nodes.clients of node " + quote(id)
                                    + " has port 0; write its real port: the deployment file "
                                      "and the other nodes must know where to reach it");
  }
  COWPI_TRY(a.internal, t.endpoint_value("internal", true));
  if (a.internal.port == 0) {
    return t.fail_at("internal", "cluster.nodes.internal of node " + quote(id)
                                     + " has port 0; write its real port: the other nodes must "
                                       "know where to reach it");
  }
  for (size_t i = 0; i < cl.addresses.size(); ++i) {
    if (cl.addresses[i].clients == a.clients) {
      return t.fail_at("clients", "router nodes " + quote(cl.nodes[i]) + " and " + quote(id)
                                      + " have the same clients address " + to_string(a.clients));
    }
    if (cl.addresses[i].internal == a.internal) {
      return t.fail_at("internal", "router nodes " + quote(cl.nodes[i]) + " and " + quote(id)
                                       + " have the same internal address "
                                       + to_string(a.internal));
    }
  }
  cl.nodes.push_back(std::move(id));
  cl.addresses.push_back(std::move(a));
  return {};
}

// One id entry of `cluster.nodes`, checked against the entries before it and appended to `cl`.
expected<void> read_node_id(const reporter& rep, const toml::node& n, cluster_config& cl) {
  const std::string& id = n.as_string()->get();
  if (!protocol::valid_id(id)) {
    return rep.fail(n, "cluster.nodes entry " + quote(id) + " is not a valid id");
  }
  if (std::find(cl.nodes.begin(), cl.nodes.end(), id) != cl.nodes.end()) {
    return rep.fail(n, "cluster.nodes lists " + quote(id) + " twice");
  }
  cl.nodes.push_back(id);
  return {};
}

// A mirror lists node ids (the router's [[mirrors]] nodes holds their addresses). A router
// lists one node id, or every node as a table with its addresses (a router cluster).
expected<void> read_cluster(const table_reader& cl, provider_config& c) {
  if (!cl.present()) {
    c.cluster.nodes = {c.name};
    c.cluster.self = c.name;
    return {};
  }
  COWPI_TRY_VOID(cl.check_keys({"nodes", "self"}));
  COWPI_TRY(const toml::array* nodes, cl.array("nodes"));
  if (nodes == nullptr) {
    return cl.missing("nodes");
  }
  if (nodes->empty()) {
    return cl.fail_at("nodes", "cluster.nodes is empty; list this node");
  }
  const reporter& rep = cl.rep();
  if (nodes->size() > max_cluster_nodes) {
    return rep.fail(*nodes->get(max_cluster_nodes),
                    "more than " + std::to_string(max_cluster_nodes) + " nodes in one cluster");
  }
  const bool router = c.role == role::router;
  // A router's first entry decides the form of the whole list.
  const bool tables = router && nodes->get(0)->is_table();
  c.cluster.nodes.clear();
  c.cluster.addresses.clear();
  for (const toml::node& n : *nodes) {
    if (!router && n.is_table()) {
      return rep.fail(n,
                      "a mirror's cluster.nodes lists node ids (strings), not tables: mirror "
                      "nodes are listed by id, and the router's [[mirrors]] nodes holds their "
                      "addresses");
    }
    if (!n.is_string() && !n.is_table()) {
      return rep.fail(
          n, std::string("cluster.nodes entries must be strings")
                 + (router ? " or tables ({ id = ..., clients = ..., internal = ... })" : "")
                 + ", not " + std::string(detail::describe(n)));
    }
    if (n.is_table() != tables) {
      return rep.fail(n,
                      "cluster.nodes mixes node ids and node tables: a router lists either "
                      "one node id, or every node as { id = ..., clients = ..., internal = ... }");
    }
    if (tables) {
      COWPI_TRY_VOID(read_router_node(rep, n, c.cluster));
      continue;
    }
    if (router && !c.cluster.nodes.empty()) {
      return rep.fail(n,
                      "a router cluster lists every node as { id = ..., clients = ..., "
                      "internal = ... }: the other nodes must know where to reach each one (a "
                      "router listing node ids may list only this node)");
    }
    COWPI_TRY_VOID(read_node_id(rep, n, c.cluster));
  }
  if (cl.find("self") == nullptr) {
    if (c.cluster.nodes.size() > 1) {
      return cl.missing("self");
    }
    c.cluster.self = c.cluster.nodes.front();
    return {};
  }
  COWPI_TRY(c.cluster.self, cl.id("self"));
  if (std::find(c.cluster.nodes.begin(), c.cluster.nodes.end(), c.cluster.self)
      == c.cluster.nodes.end()) {
    return cl.fail_at("self", "cluster.self " + quote(c.cluster.self)
                                  + " is not in cluster.nodes: it names this node");
  }
  return {};
}

expected<void> read_logging(const table_reader& lg, provider_config& c) {
  COWPI_TRY_VOID(lg.check_keys({"level", "file", "format", "ids"}));
  COWPI_TRY(auto level, lg.choice("level", {"trace", "debug", "info", "warn", "error", "off"}));
  if (level) {
    c.logging.level = static_cast<log_level>(*level);
  }
  COWPI_TRY(auto format, lg.choice("format", {"text", "json"}));
  if (format) {
    c.logging.format = static_cast<log_format>(*format);
  }
  COWPI_TRY(auto ids, lg.value_bool("ids"));
  if (ids) {
    c.logging.ids = *ids;
  }
  COWPI_TRY(auto file, lg.value_string("file"));
  if (file && !file->empty()) {
    if (file->find('\0') != std::string::npos) {
      return lg.fail_at("file", "logging.file must not hold a NUL character");
    }
    c.logging.file = resolve(c.data_dir, fs::path(*file));
  }
  return {};
}

expected<void> read_metrics(const table_reader& mt, provider_config& c) {
  if (!mt.present()) {
    return {};
  }
  COWPI_TRY_VOID(mt.check_keys({"listen"}));
  if (mt.find("listen") == nullptr) {
    return mt.missing("listen");
  }
  COWPI_TRY(c.metrics.listen, mt.endpoint_value("listen", true));
  return {};
}

expected<void> read_runtime(const table_reader& rt, provider_config& c) {
  if (!rt.present()) {
    return {};
  }
  COWPI_TRY_VOID(rt.check_keys({"threads", "scheduler"}));
  COWPI_TRY(c.runtime.threads, rt.integer("threads", 0, 0, 256, "0 (one per core)", "256"));
  COWPI_TRY(auto policy, rt.choice("scheduler", {"sharing", "stealing"}));
  if (policy) {
    c.runtime.scheduler = static_cast<scheduler_policy>(*policy);
  }
  return {};
}

expected<provider_config> read_provider(const toml::table& root, const reporter& rep,
                                        const fs::path& base_dir, const provider_overrides& over) {
  const table_reader top(rep, &root, "");
  COWPI_TRY(const toml::table* prov_t, required_table(top, root, "provider"));
  const table_reader prov(rep, prov_t, "provider");
  COWPI_TRY(auto which, prov.choice("role", {"router", "mirror"}));
  if (!which) {
    return prov.missing("role");
  }
  provider_config c = defaults_for(*which == 0 ? role::router : role::mirror);
  const bool router = c.role == role::router;

  if (router) {
    COWPI_TRY_VOID(top.check_keys({"provider", "listen", "tls", "mirrors", "limits", "timeouts",
                                   "retention", "cluster", "logging", "metrics", "runtime"},
                                  {"router"}, "mirror", "router"));
  } else {
    COWPI_TRY_VOID(top.check_keys({"provider", "listen", "tls", "router", "limits", "timeouts",
                                   "cluster", "logging", "metrics", "runtime"},
                                  {"mirrors", "retention"}, "router", "mirror"));
  }
  COWPI_TRY_VOID(read_provider_section(prov, base_dir, over, c));

  COWPI_TRY(const toml::table* listen_t, required_table(top, root, "listen"));
  COWPI_TRY_VOID(read_listen(table_reader(rep, listen_t, "listen"), prov, c));

  COWPI_TRY(const toml::table* tls_t, required_table(top, root, "tls"));
  COWPI_TRY_VOID(read_tls(table_reader(rep, tls_t, "tls"), c));

  if (router) {
    COWPI_TRY(c.mirrors, detail::read_mirrors(top, c.name, std::nullopt, true));
  } else {
    COWPI_TRY(const toml::table* router_t, required_table(top, root, "router"));
    COWPI_TRY_VOID(read_router_peer(table_reader(rep, router_t, "router"), c));
  }

  COWPI_TRY(const toml::table* limits_t, top.table("limits"));
  COWPI_TRY_VOID(read_limits(table_reader(rep, limits_t, "limits"), c));
  COWPI_TRY(const toml::table* timeouts_t, top.table("timeouts"));
  COWPI_TRY_VOID(read_timeouts(table_reader(rep, timeouts_t, "timeouts"), c));
  if (router) {
    COWPI_TRY(const toml::table* retention_t, top.table("retention"));
    COWPI_TRY_VOID(read_retention(table_reader(rep, retention_t, "retention"), c));
  }
  COWPI_TRY(const toml::table* cluster_t, top.table("cluster"));
  COWPI_TRY_VOID(read_cluster(table_reader(rep, cluster_t, "cluster"), c));
  COWPI_TRY(const toml::table* logging_t, top.table("logging"));
  COWPI_TRY_VOID(read_logging(table_reader(rep, logging_t, "logging"), c));
  COWPI_TRY(const toml::table* metrics_t, top.table("metrics"));
  COWPI_TRY_VOID(read_metrics(table_reader(rep, metrics_t, "metrics"), c));
  COWPI_TRY(const toml::table* runtime_t, top.table("runtime"));
  COWPI_TRY_VOID(read_runtime(table_reader(rep, runtime_t, "runtime"), c));
  return c;
}

// TOML output helpers: one `key = value` line each.
void put(std::string& out, std::string_view key, std::string_view value) {
  out += key;
  out += " = ";
  out += quote(value);
  out += '\n';
}

void put_int(std::string& out, std::string_view key, uint64_t value) {
  out += key;
  out += " = ";
  out += std::to_string(value);
  out += '\n';
}

}  // namespace

expected<provider_config> parse_provider_config(std::string_view text, std::string_view source_name,
                                                const fs::path& base_dir,
                                                const provider_overrides& overrides) {
  const reporter rep(source_name);
  COWPI_TRY(const toml::table root, rep.parse(text));
  return read_provider(root, rep, base_dir, overrides);
}

expected<provider_config> load_provider_config(const fs::path& path,
                                               const provider_overrides& overrides) {
  COWPI_TRY(const std::string text, detail::read_file(path));
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  const fs::path base = ec ? path.parent_path() : absolute.parent_path();
  return parse_provider_config(text, path.string(), base, overrides);
}

std::string to_toml(const provider_config& c) {
  const bool router = c.role == role::router;
  std::string out;
  out += "# cowpi-provider configuration (role ";
  out += to_string(c.role);
  out += "); docs/configuration.md describes every key.\n";

  out += "\n[provider]\n";
  put(out, "role", to_string(c.role));
  put(out, "name", c.name);
  put(out, "data_dir", c.data_dir.string());
  put(out, "identity_key_file", c.identity_key_file.string());
  if (c.storage_key_file) {
    put(out, "storage_key_file", c.storage_key_file->string());
  }

  out += "\n[listen]\n";
  if (router) {
    put(out, "clients", to_string(c.clients));
  } else {
    put(out, "links", to_string(c.links));
  }
  put(out, "admin_socket", c.admin_socket.string());

  out += "\n[tls]\n";
  put(out, "certificate", c.tls.certificate.string());
  put(out, "key", c.tls.key.string());
  put(out, "ca", c.tls.ca.string());

  if (router) {
    for (const auto& m : c.mirrors) {
      out += "\n[[mirrors]]\n";
      put(out, "name", m.name);
      if (m.nodes.empty()) {
        put(out, "address", to_string(m.address));
      } else {
        out += "nodes = [";
        for (size_t i = 0; i < m.nodes.size(); ++i) {
          out += (i == 0 ? "" : ", ");
          out += "{ id = " + quote(m.nodes[i].id)
                 + ", address = " + quote(to_string(m.nodes[i].address)) + " }";
        }
        out += "]\n";
      }
      put(out, "public_key", to_hex(m.public_key));
    }
  } else {
    out += "\n[router]\n";
    put(out, "name", c.router.name);
    put(out, "public_key", to_hex(c.router.public_key));
  }

  out += "\n[limits]\n";
  put_int(out, "max_frame", c.limits.max_frame);
  if (router) {
    put_int(out, "max_members", c.limits.max_members);
    put_int(out, "max_body", c.limits.max_body);
    put_int(out, "max_pending_per_author", c.limits.max_pending_per_author);
    put_int(out, "max_pending_per_conv", c.limits.max_pending_per_conv);
    put_int(out, "max_connections", c.limits.max_connections);
    put_int(out, "min_update_interval_s",
            static_cast<uint64_t>(c.limits.min_update_interval.count()));
    put_int(out, "max_setups_per_hour", c.limits.max_setups_per_hour);
  }

  out += "\n[timeouts]\n";
  if (router) {
    put_int(out, "prepare", static_cast<uint64_t>(c.timeouts.prepare.count()));
    put_int(out, "commit", static_cast<uint64_t>(c.timeouts.commit.count()));
    put_int(out, "handshake", static_cast<uint64_t>(c.timeouts.handshake.count()));
    put_int(out, "idle", static_cast<uint64_t>(c.timeouts.idle.count()));
  }
  put_int(out, "heartbeat", static_cast<uint64_t>(c.timeouts.heartbeat.count()));
  put_int(out, "connection", static_cast<uint64_t>(c.timeouts.connection.count()));
  put_int(out, "conversation_idle", static_cast<uint64_t>(c.timeouts.conversation_idle.count()));

  if (router) {
    out += "\n[retention]\n";
    put_int(out, "max_age_s", static_cast<uint64_t>(c.retention.count()));
    put_int(out, "collect_interval_s", static_cast<uint64_t>(c.collect_interval.count()));
  }

  // An empty node list means "the default": parsing fills in the single node itself.
  if (!c.cluster.nodes.empty()) {
    out += "\n[cluster]\nnodes = [";
    if (c.cluster.addresses.empty()) {
      for (size_t i = 0; i < c.cluster.nodes.size(); ++i) {
        if (i > 0) {
          out += ", ";
        }
        out += quote(c.cluster.nodes[i]);
      }
    } else {
      // A router cluster: every node with its addresses, one node a line.
      COWPI_ASSERT(c.cluster.addresses.size() == c.cluster.nodes.size());
      for (size_t i = 0; i < c.cluster.nodes.size(); ++i) {
        out += i == 0 ? "\n" : ",\n";
        out += "  { id = " + quote(c.cluster.nodes[i])
               + ", clients = " + quote(to_string(c.cluster.addresses[i].clients))
               + ", internal = " + quote(to_string(c.cluster.addresses[i].internal)) + " }";
      }
      out += "\n";
    }
    out += "]\n";
    put(out, "self", c.cluster.self);
  }

  out += "\n[logging]\n";
  put(out, "level", to_string(c.logging.level));
  put(out, "file", c.logging.file.string());
  put(out, "format", to_string(c.logging.format));
  out += "ids = ";
  out += c.logging.ids ? "true" : "false";
  out += '\n';

  if (c.metrics.listen) {
    out += "\n[metrics]\n";
    put(out, "listen", to_string(*c.metrics.listen));
  }

  out += "\n[runtime]\n";
  put_int(out, "threads", c.runtime.threads);
  put(out, "scheduler", c.runtime.scheduler == scheduler_policy::sharing ? "sharing" : "stealing");
  return out;
}

}  // namespace cowpi::config

// SPDX-License-Identifier: Apache-2.0
// Parses and renders the client deployment file: the router and the pinned mirror set.
#include "cowpi/config/deployment_file.hpp"

#include "detail/toml_reader.hpp"

#include <algorithm>

namespace cowpi::config {

namespace {

using detail::quote;
using detail::reporter;
using detail::table_reader;

// The same bound as the router's `[retention] max_age_s`.
constexpr uint64_t max_retention_s = 3'155'760'000;  // 100 years

// `[router] nodes = [{ id = "...", address = "host:port" }, ...]`: a router cluster's nodes.
expected<std::vector<deployment_router_node>> read_router_nodes(const table_reader& r) {
  const reporter& rep = r.rep();
  COWPI_TRY(const toml::array* arr, r.array("nodes"));
  if (arr == nullptr) {
    return std::vector<deployment_router_node>{};
  }
  if (arr->empty()) {
    return r.fail_at("nodes",
                     "router.nodes is empty; list the router cluster's nodes, or leave it out "
                     "for a router of one node");
  }
  if (arr->size() > max_cluster_nodes) {
    return rep.fail(*arr->get(max_cluster_nodes), "more than " + std::to_string(max_cluster_nodes)
                                                      + " nodes in one router cluster");
  }
  std::vector<deployment_router_node> out;
  for (const toml::node& e : *arr) {
    if (!e.is_table()) {
      return rep.fail(e,
                      "each router.nodes entry must be a table ({ id = ..., address = ... }), not "
                          + std::string(detail::describe(e)));
    }
    const table_reader t(rep, e.as_table(), "router.nodes");
    COWPI_TRY_VOID(t.check_keys({"id", "address"}));
    deployment_router_node node;
    COWPI_TRY(node.id, t.id("id"));
    COWPI_TRY(node.address, t.endpoint_value("address", false));
    for (const auto& seen : out) {
      if (seen.id == node.id) {
        return t.fail_at("id", "router node " + quote(node.id) + " appears twice");
      }
      if (seen.address == node.address) {
        return t.fail_at("address", "router nodes " + quote(seen.id) + " and " + quote(node.id)
                                        + " have the same address");
      }
    }
    out.push_back(std::move(node));
  }
  return out;
}

expected<deployment_file> read_deployment(const toml::table& root, const reporter& rep) {
  const table_reader top(rep, &root, "");
  COWPI_TRY_VOID(top.check_keys({"router", "mirrors"}));
  COWPI_TRY(const toml::table* router_t, top.table("router"));
  if (router_t == nullptr) {
    return rep.fail(root, "missing the required table [router]");
  }
  const table_reader r(rep, router_t, "router");
  COWPI_TRY_VOID(r.check_keys({"name", "address", "nodes", "public_key", "retention_s"}));

  deployment_file d;
  COWPI_TRY(d.router.name, r.id("name"));
  COWPI_TRY(d.router.address, r.endpoint_value("address", false));
  COWPI_TRY(d.router.nodes, read_router_nodes(r));
  COWPI_TRY(d.router.public_key, r.public_key("public_key"));
  COWPI_TRY(uint64_t retention,
            r.required_integer("retention_s", 1, max_retention_s, {}, "100 years"));
  d.router.retention = std::chrono::seconds(static_cast<int64_t>(retention));

  COWPI_TRY(auto mirrors, detail::read_mirrors(top, d.router.name, d.router.public_key, false));
  d.mirrors.reserve(mirrors.size());
  for (auto& m : mirrors) {
    d.mirrors.push_back({std::move(m.name), m.public_key});
  }
  return d;
}

void put(std::string& out, std::string_view key, std::string_view value) {
  out += key;
  out += " = ";
  out += quote(value);
  out += '\n';
}

}  // namespace

expected<deployment_file> parse_deployment_file(std::string_view text,
                                                std::string_view source_name) {
  const reporter rep(source_name);
  COWPI_TRY(const toml::table root, rep.parse(text));
  return read_deployment(root, rep);
}

expected<deployment_file> load_deployment_file(const std::filesystem::path& path) {
  COWPI_TRY(const std::string text, detail::read_file(path));
  return parse_deployment_file(text, path.string());
}

std::string to_toml(const deployment_file& d) {
  std::string out =
      "# cowpi client deployment file: the router and the pinned mirror set.\n"
      "# Read by `cowpi init --deployment FILE`; docs/configuration.md describes it.\n";
  out += "\n[router]\n";
  put(out, "name", d.router.name);
  put(out, "address", to_string(d.router.address));
  if (!d.router.nodes.empty()) {
    out += "nodes = [";
    for (size_t i = 0; i < d.router.nodes.size(); ++i) {
      out += i == 0 ? "\n" : ",\n";
      out += "  { id = " + quote(d.router.nodes[i].id)
             + ", address = " + quote(to_string(d.router.nodes[i].address)) + " }";
    }
    out += "\n]\n";
  }
  put(out, "public_key", to_hex(d.router.public_key));
  out += "retention_s = " + std::to_string(d.router.retention.count()) + "\n";
  for (const auto& m : d.mirrors) {
    out += "\n[[mirrors]]\n";
    put(out, "name", m.name);
    put(out, "public_key", to_hex(m.public_key));
  }
  return out;
}

deployment_file deployment_for(const provider_config& router_config,
                               const crypto::public_key& router_key) {
  COWPI_ASSERT(router_config.role == role::router);
  deployment_file d;
  d.router.name = router_config.name;
  d.router.address = router_config.clients;
  const auto& cluster = router_config.cluster;
  if (!cluster.addresses.empty()) {
    COWPI_ASSERT(cluster.addresses.size() == cluster.nodes.size());
    for (size_t i = 0; i < cluster.nodes.size(); ++i) {
      d.router.nodes.push_back({cluster.nodes[i], cluster.addresses[i].clients});
    }
    d.router.address = d.router.nodes.front().address;
  }
  d.router.public_key = router_key;
  d.router.retention = router_config.retention;
  d.mirrors.reserve(router_config.mirrors.size());
  for (const auto& m : router_config.mirrors) {
    d.mirrors.push_back({m.name, m.public_key});
  }
  std::sort(d.mirrors.begin(), d.mirrors.end(),
            [](const peer& a, const peer& b) { return a.name < b.name; });
  return d;
}

}  // namespace cowpi::config

// SPDX-License-Identifier: Apache-2.0
// `cowpi-admin reshard`: loads every node's config, opens every node's store (so every daemon
// must be stopped: RocksDB's lock refuses a store in use) and runs storage::reshard_mirror.
#include "reshard.hpp"

#include "cowpi/config/provider_config.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/storage/reshard.hpp"
#include "cowpi/storage/router_store.hpp"
#include "cowpi/storage/shard_map.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

namespace cowpi::tools {

namespace {

using json = nlohmann::json;

struct refused {
  std::string why;
};

config::provider_config load_any(const std::filesystem::path& path,
                                 const std::filesystem::path& data_dir) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw refused{"no such config file: " + path.string()};
  config::provider_overrides o;
  if (!data_dir.empty())
    o.data_dir = std::filesystem::absolute(data_dir, ec);
  auto c = config::load_provider_config(path, o);
  if (!c)
    throw refused{path.string() + ": " + c.error().message()};
  return std::move(*c);
}

config::provider_config load(const std::filesystem::path& path,
                             const std::filesystem::path& data_dir) {
  auto c = load_any(path, data_dir);
  if (c.role != config::role::mirror)
    throw refused{path.string() + ": reshard moves a mirror cluster's conversations; " + c.name
                  + " is a router (router clusters do not exist yet)"};
  if (!c.storage_key_file)
    throw refused{path.string() + ": a mirror needs provider.storage_key_file"};
  return c;
}

// Every node of one cluster, in the order of its node list.
std::vector<config::provider_config> cluster_of(const reshard_args& a) {
  std::vector<config::provider_config> cfgs;
  cfgs.push_back(load(a.config, a.data_dir));
  for (const auto& p : a.others)
    cfgs.push_back(load(p, {}));
  const auto& first = cfgs.front();
  for (const auto& c : cfgs) {
    if (c.name != first.name)
      throw refused{"the configs name two providers (" + first.name + ", " + c.name + ")"};
    if (c.cluster.nodes != first.cluster.nodes)
      throw refused{"node " + c.cluster.self + " lists the nodes "
                    + storage::describe_nodes(c.cluster.nodes) + ", node " + first.cluster.self
                    + " lists " + storage::describe_nodes(first.cluster.nodes)
                    + ": every node's [cluster] nodes must be the new list"};
  }
  std::vector<config::provider_config> ordered;
  for (const auto& id : first.cluster.nodes) {
    auto it = std::find_if(cfgs.begin(), cfgs.end(),
                           [&](const config::provider_config& c) { return c.cluster.self == id; });
    if (it == cfgs.end())
      throw refused{"no config for node " + id + " of the new list ("
                    + storage::describe_nodes(first.cluster.nodes)
                    + "): give every node's config, new nodes too"};
    ordered.push_back(*it);
  }
  if (ordered.size() != cfgs.size())
    throw refused{"a node is given twice"};
  return ordered;
}

std::string hex(const protocol::conv_id& c) {
  return to_hex(byte_view(c.data(), c.size()));
}

void print(const std::string& provider, const storage::reshard_report& r, bool json_out) {
  if (json_out) {
    json moves = json::array();
    for (const auto& m : r.moves)
      moves.push_back(json{{"conv", hex(m.conv)},
                           {"from", m.from},
                           {"to", m.to},
                           {"length", m.next},
                           {"resumed", m.resumed}});
    json held = json::object();
    for (size_t k = 0; k < r.new_nodes.size(); ++k)
      held[r.new_nodes[k]] = r.held[k];
    std::cout << json{{"provider", provider},
                      {"dry_run", r.dry_run},
                      {"old_nodes", r.old_nodes},
                      {"new_nodes", r.new_nodes},
                      {"moves", moves},
                      {"rows_copied", r.rows_copied},
                      {"held", held}}
                     .dump(2)
              << '\n';
    return;
  }
  std::cout << provider << ": "
            << (r.old_nodes.empty() ? std::string("(no node persisted another list)")
                                    : storage::describe_nodes(r.old_nodes))
            << " -> " << storage::describe_nodes(r.new_nodes) << '\n';
  std::cout << (r.dry_run ? "would move " : "moved ") << r.moves.size()
            << (r.moves.size() == 1 ? " conversation" : " conversations");
  if (!r.dry_run)
    std::cout << " (" << r.rows_copied << " rows copied)";
  std::cout << '\n';
  for (const auto& m : r.moves)
    std::cout << "  " << hex(m.conv) << "  " << m.from << " -> " << m.to << "  length " << m.next
              << (m.resumed ? "  (copied by an earlier run; dropped from " + m.from + ")" : "")
              << '\n';
  std::cout << "conversations per node" << (r.dry_run ? " afterwards" : "") << ":\n";
  for (size_t k = 0; k < r.new_nodes.size(); ++k)
    std::cout << "  " << r.new_nodes[k] << "  " << r.held[k] << '\n';
  if (!r.dry_run)
    std::cout << "next: set the router's [[mirrors]] nodes of " << provider
              << " to the same list, then start every node and the router\n";
}

}  // namespace

int run_reshard(const reshard_args& a) {
  // STYLE.md §2.5: sodium_init() before anything touches libsodium (the stores' sealers). Only
  // this command of the tool needs it.
  if (sodium_init() < 0) {
    std::cerr << "cowpi-admin reshard: libsodium failed to initialise\n";
    return 1;
  }
  try {
    const auto cfgs = cluster_of(a);
    crypto::system_rng rng;
    std::vector<std::unique_ptr<storage::mirror_store>> stores;
    std::vector<storage::reshard_node> nodes;
    for (const auto& c : cfgs) {
      std::error_code ec;
      std::filesystem::create_directories(c.data_dir, ec);
      if (ec)
        throw refused{c.data_dir.string() + ": " + ec.message()};
      const auto path = c.data_dir / "mirror.db";
      auto s = storage::mirror_store::open(path, storage::key_file{*c.storage_key_file}, rng);
      if (!s)
        throw refused{"node " + c.cluster.self + ": cannot open " + path.string() + ": "
                      + s.error().message()
                      + " (every node's daemon must be stopped before resharding)"};
      stores.push_back(std::move(*s));
      nodes.push_back(storage::reshard_node{c.cluster.self, stores.back().get()});
    }
    // The router, stopped: its in-flight entries are checked against the plan.
    const auto rcfg = load_any(a.router, {});
    if (rcfg.role != config::role::router)
      throw refused{"--router " + a.router.string() + ": " + rcfg.name + " is not a router"};
    if (std::none_of(rcfg.mirrors.begin(), rcfg.mirrors.end(),
                     [&](const config::mirror_peer& m) { return m.name == cfgs.front().name; }))
      throw refused{"the router " + rcfg.name + " does not list the mirror " + cfgs.front().name};
    const auto rpath = rcfg.data_dir / "router.db";
    auto router = storage::router_store::open(rpath);
    if (!router)
      throw refused{"cannot open the router's store " + rpath.string() + ": "
                    + router.error().message() + " (the router must be stopped before resharding)"};
    const storage::reshard_router rt{router->get(), config::to_member_list(rcfg.mirrors),
                                     cfgs.front().name};
    auto r = storage::reshard_mirror(nodes, &rt, a.dry_run);
    if (!r)
      throw refused{r.error().message()};
    print(cfgs.front().name, *r, a.json_out);
    return 0;
  } catch (const refused& e) {
    std::cerr << "cowpi-admin reshard: " << e.why << '\n';
    return 1;
  }
}

}  // namespace cowpi::tools

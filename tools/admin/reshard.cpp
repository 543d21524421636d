// SPDX-License-Identifier: Apache-2.0
// `cowpi-admin reshard`: loads every node's config, opens every node's store (so every daemon
// must be stopped: RocksDB's lock refuses a store in use) and runs storage::reshard_mirror, or
// for a router cluster storage::reshard_router_cluster.
#include "reshard.hpp"

#include "cowpi/config/provider_config.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/storage/reshard.hpp"
#include "cowpi/storage/router_store.hpp"
#include "cowpi/storage/shard_map.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>
#include <stdlib.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <set>
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
                             const std::filesystem::path& data_dir, config::role role) {
  auto c = load_any(path, data_dir);
  if (c.role != role)
    throw refused{path.string() + ": " + c.name + " is a " + std::string(config::to_string(c.role))
                  + ", the other configs are a " + std::string(config::to_string(role))
                  + "'s: give the nodes of one cluster"};
  if (role == config::role::mirror && !c.storage_key_file)
    throw refused{path.string() + ": a mirror needs provider.storage_key_file"};
  return c;
}

// Every node of one cluster, in the order of its node list.
std::vector<config::provider_config> cluster_of(const reshard_args& a, config::role role) {
  std::vector<config::provider_config> cfgs;
  cfgs.push_back(load(a.config, a.data_dir, role));
  for (const auto& p : a.others)
    cfgs.push_back(load(p, {}, role));
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

std::unique_ptr<storage::mirror_store> open_store(const config::provider_config& c,
                                                  const std::filesystem::path& path,
                                                  crypto::rng& rng,
                                                  std::filesystem::path key = {}) {
  auto s = storage::mirror_store::open(
      path, storage::key_file{key.empty() ? *c.storage_key_file : key}, rng);
  if (!s)
    throw refused{"node " + c.cluster.self + ": cannot open " + path.string() + ": "
                  + s.error().message()
                  + " (every node's daemon must be stopped before resharding)"};
  return std::move(*s);
}

// Temporary directories, removed when this goes.
class temp_dirs {
public:
  temp_dirs() = default;
  temp_dirs(const temp_dirs&) = delete;
  temp_dirs& operator=(const temp_dirs&) = delete;
  ~temp_dirs() {
    for (const auto& d : dirs_) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  }
  std::filesystem::path make() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cowpi-reshard-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw refused{"cannot create a temporary directory"};
    dirs_.emplace_back(tmpl);
    return dirs_.back();
  }

private:
  std::vector<std::filesystem::path> dirs_;
};

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

namespace {

void print_router(const std::string& provider, const storage::router_reshard_report& r,
                  bool json_out) {
  json held = json::object();
  json homed = json::object();
  for (size_t k = 0; k < r.new_nodes.size(); ++k) {
    held[r.new_nodes[k]] = r.held[k];
    homed[r.new_nodes[k]] = r.homed[k];
  }
  if (json_out) {
    json moves = json::array();
    for (const auto& m : r.moves)
      moves.push_back(json{{"conv", hex(m.conv)}, {"from", m.from}, {"to", m.to}});
    json users = json::array();
    for (const auto& [id, from, to] : r.users)
      users.push_back(json{{"user", id}, {"from", from}, {"to", to}});
    std::cout
        << json{{"provider", provider},         {"dry_run", r.dry_run}, {"old_nodes", r.old_nodes},
                {"new_nodes", r.new_nodes},     {"moves", moves},       {"users", users},
                {"rows_copied", r.rows_copied}, {"held", held},         {"homed", homed}}
               .dump(2)
        << '\n';
    return;
  }
  std::cout << provider << ": "
            << (r.old_nodes.empty() ? std::string("(no node persisted another list)")
                                    : storage::describe_nodes(r.old_nodes))
            << " -> " << storage::describe_nodes(r.new_nodes) << '\n';
  std::cout << (r.dry_run ? "would move " : "moved ") << r.moves.size()
            << (r.moves.size() == 1 ? " conversation and " : " conversations and ")
            << r.users.size() << (r.users.size() == 1 ? " user" : " users");
  if (!r.dry_run)
    std::cout << " (" << r.rows_copied << " rows copied)";
  std::cout << '\n';
  for (const auto& m : r.moves)
    std::cout << "  " << hex(m.conv) << "  " << m.from << " -> " << m.to << '\n';
  for (const auto& [id, from, to] : r.users)
    std::cout << "  user " << id << "  " << from << " -> " << to << '\n';
  std::cout << "conversations and users per node" << (r.dry_run ? " afterwards" : "") << ":\n";
  for (size_t k = 0; k < r.new_nodes.size(); ++k)
    std::cout << "  " << r.new_nodes[k] << "  " << r.held[k] << " conversations, " << r.homed[k]
              << " users\n";
}

// A router cluster: no storage key (router rows are not sealed), no router to check against.
int run_router_reshard(const reshard_args& a) {
  const auto cfgs = cluster_of(a, config::role::router);
  temp_dirs scratch;
  std::vector<std::unique_ptr<storage::router_store>> stores(cfgs.size());
  std::set<std::string> persisted;
  auto open = [](const config::provider_config& c, const std::filesystem::path& path) {
    auto s = storage::router_store::open(path);
    if (!s)
      throw refused{"node " + c.cluster.self + ": cannot open " + path.string() + ": "
                    + s.error().message()
                    + " (every node's daemon must be stopped before resharding)"};
    return std::move(*s);
  };
  for (size_t k = 0; k < cfgs.size(); ++k) {
    const auto path = cfgs[k].data_dir / "router.db";
    std::error_code ec;
    if (!std::filesystem::exists(path / "CURRENT", ec))
      continue;
    stores[k] = open(cfgs[k], path);
    auto map = storage::read_shard_map(stores[k]->raw());
    if (!map)
      throw refused{"node " + cfgs[k].cluster.self + ": " + map.error().message()};
    if (*map)
      persisted.insert((*map)->begin(), (*map)->end());
  }
  if (std::none_of(stores.begin(), stores.end(), [](const auto& s) { return s != nullptr; }))
    throw refused{"no node has a store (each config's data_dir must be the node's data directory)"};
  for (size_t k = 0; k < cfgs.size(); ++k) {
    if (stores[k])
      continue;
    const auto& c = cfgs[k];
    if (persisted.count(c.cluster.self) > 0)
      throw refused{"node " + c.cluster.self + " is in the persisted node list but has no store at "
                    + (c.data_dir / "router.db").string()};
    std::filesystem::path dir = a.dry_run ? scratch.make() : c.data_dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      throw refused{dir.string() + ": " + ec.message()};
    stores[k] = open(c, dir / "router.db");
  }
  std::vector<storage::router_reshard_node> nodes;
  for (size_t k = 0; k < cfgs.size(); ++k)
    nodes.push_back(storage::router_reshard_node{cfgs[k].cluster.self, stores[k].get()});
  auto r = storage::reshard_router_cluster(nodes, a.dry_run);
  if (!r)
    throw refused{r.error().message()};
  print_router(cfgs.front().name, *r, a.json_out);
  return 0;
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
    if (load_any(a.config, a.data_dir).role == config::role::router)
      return run_router_reshard(a);
    if (a.router.empty())
      throw refused{
          "a mirror cluster's reshard needs --router (the router's config: its store "
          "is checked for entries in flight that cannot move)"};
    const auto cfgs = cluster_of(a, config::role::mirror);
    crypto::system_rng rng;
    // Throwaway stores of new nodes in a dry run; declared first, so removed after they close.
    temp_dirs scratch;
    // Existing stores first: the node lists they persisted tell which nodes are new.
    std::vector<std::unique_ptr<storage::mirror_store>> stores(cfgs.size());
    std::set<std::string> persisted;
    for (size_t k = 0; k < cfgs.size(); ++k) {
      const auto& c = cfgs[k];
      const auto path = c.data_dir / "mirror.db";
      std::error_code ec;
      if (!std::filesystem::exists(path / "CURRENT", ec))
        continue;
      stores[k] = open_store(c, path, rng);
      auto map = storage::read_shard_map(stores[k]->raw());
      if (!map)
        throw refused{"node " + c.cluster.self + ": " + map.error().message()};
      if (*map)
        persisted.insert((*map)->begin(), (*map)->end());
    }
    if (std::none_of(stores.begin(), stores.end(), [](const auto& s) { return s != nullptr; }))
      throw refused{
          "no node has a store (each config's data_dir must be the node's data "
          "directory)"};
    // A node without a store is a new one; a node of a persisted list must have its store.
    for (size_t k = 0; k < cfgs.size(); ++k) {
      if (stores[k])
        continue;
      const auto& c = cfgs[k];
      if (persisted.count(c.cluster.self) > 0)
        throw refused{"node " + c.cluster.self + " is in the persisted node list but has no store "
                      "at " + (c.data_dir / "mirror.db").string() +
                      " (each config's data_dir must be the node's data directory)"};
      if (a.dry_run) {
        // Changes nothing: the new node's empty store is a throwaway one.
        const auto dir = scratch.make();
        stores[k] = open_store(c, dir / "mirror.db", rng, dir / "storage.key");
        continue;
      }
      std::error_code ec;
      std::filesystem::create_directories(c.data_dir, ec);
      if (ec)
        throw refused{c.data_dir.string() + ": " + ec.message()};
      stores[k] = open_store(c, c.data_dir / "mirror.db", rng);
    }
    std::vector<storage::reshard_node> nodes;
    for (size_t k = 0; k < cfgs.size(); ++k)
      nodes.push_back(storage::reshard_node{cfgs[k].cluster.self, stores[k].get()});
    // The router, stopped: its in-flight entries are checked against the plan.
    const auto rcfg = load_any(a.router, {});
    if (rcfg.role != config::role::router)
      throw refused{"--router " + a.router.string() + ": " + rcfg.name + " is not a router"};
    if (std::none_of(rcfg.mirrors.begin(), rcfg.mirrors.end(),
                     [&](const config::mirror_peer& m) { return m.name == cfgs.front().name; }))
      throw refused{"the router " + rcfg.name + " does not list the mirror " + cfgs.front().name};
    const auto rpath = rcfg.data_dir / "router.db";
    std::error_code ec;
    if (!std::filesystem::exists(rpath / "CURRENT", ec))
      throw refused{"no router store at " + rpath.string()
                    + " (the router config's data_dir must be its data directory)"};
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

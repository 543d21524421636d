// SPDX-License-Identifier: Apache-2.0
// A router and its mirrors as real cowpi-provider processes on one machine: configuration,
// identity keys and TLS files under one folder, processes started with readiness read from
// their stdout. Used by the local launcher (cowpi-local) and the integration tests.
#pragma once

#include "cowpi/config/deployment_file.hpp"
#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/expected.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::tools {

/// One provider process.
class provider_process {
public:
  provider_process() = default;
  provider_process(const provider_process&) = delete;
  provider_process& operator=(const provider_process&) = delete;
  provider_process(provider_process&& o) noexcept;
  provider_process& operator=(provider_process&& o) noexcept;
  /// Kills (SIGKILL) a process still running and reaps it.
  ~provider_process();

  /// Starts `binary --config config` with `env` added to the environment, and waits up to
  /// `ready_timeout` for its readiness line. stderr goes to `log` (appended). Fails with
  /// `errc::unavailable` (and the log's tail in the context) if it exits or stays silent.
  [[nodiscard]] static expected<provider_process> start(
      const std::filesystem::path& binary, const std::filesystem::path& config,
      const std::filesystem::path& log, const std::map<std::string, std::string>& env = {},
      std::chrono::milliseconds ready_timeout = std::chrono::seconds(30));

  pid_t pid() const noexcept { return pid_; }
  /// A value from the readiness line, e.g. "clients" -> "127.0.0.1:40123".
  std::string value(const std::string& key) const;
  /// The port part of value(key), 0 if absent.
  uint16_t port(const std::string& key) const;
  /// Sends `sig`.
  void signal(int sig) const;
  /// Waits for the process to exit; returns its exit status (or -signal), or nullopt after
  /// `timeout` (or when it was never started or released).
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// Lets the process run on after this object dies (the launcher's detached deployment).
  void release() noexcept { pid_ = -1; }
  /// True while the process runs; reaps it (keeping its status for `wait`) once it exited.
  bool running() const;

private:
  // Mutable: `running` reaps a child that has exited (a zombie is not running).
  mutable pid_t pid_ = -1;
  mutable std::optional<int> exit_status_;
  std::map<std::string, std::string> ready_;
};

/// The layout of a local deployment under `dir`.
struct local_deployment {
  std::filesystem::path dir;
  std::string router = "router";
  std::vector<std::string> mirrors = {"mirror-a", "mirror-b"};
  /// Nodes per mirror: 1 runs each mirror as one process named after it; N > 1 runs each as
  /// a mirror cluster of N processes named `<mirror>-1` ... `<mirror>-N` (one identity key,
  /// conversations sharded over the nodes).
  size_t mirror_nodes = 1;
  /// Nodes of the router: 1 runs it as one process named after it; N > 1 runs it as a router
  /// cluster of N processes named `<router>-1` ... `<router>-N` (one identity key and one set
  /// of TLS files; each node's config lists every node's clients and internal address).
  size_t router_nodes = 1;
  std::string host = "127.0.0.1";
  /// Fixed ports (0: the OS picks). Router clients (of node 1 in a router cluster; the other
  /// nodes' ports, and every internal port, are picked free before any node starts), then one
  /// per mirror node.
  uint16_t router_port = 0;
  std::vector<uint16_t> mirror_ports;
  config::log_level log_level = config::log_level::info;
  config::log_format log_format = config::log_format::text;
  /// Each provider serves its metrics on `host`, port picked by the OS (readiness line
  /// `metrics=HOST:PORT`).
  bool metrics = false;
  /// The router's `[retention] max_age_s` and `collect_interval_s`, when not the defaults.
  std::optional<std::chrono::seconds> retention;
  std::optional<std::chrono::seconds> collect_interval;
  /// The router's `[limits] max_setups_per_hour`, when not the default.
  std::optional<uint64_t> max_setups_per_hour;
  /// Every provider's `[timeouts] conversation_idle`, when not the default.
  std::optional<std::chrono::milliseconds> conversation_idle;

  /// The node (process) names of `mirror`.
  std::vector<std::string> nodes_of(const std::string& mirror) const {
    if (mirror_nodes <= 1)
      return {mirror};
    std::vector<std::string> out;
    for (size_t j = 1; j <= mirror_nodes; ++j)
      out.push_back(mirror + "-" + std::to_string(j));
    return out;
  }
  /// The router's node (process) names, node 1 first.
  std::vector<std::string> router_processes() const {
    if (router_nodes <= 1)
      return {router};
    std::vector<std::string> out;
    for (size_t k = 1; k <= router_nodes; ++k)
      out.push_back(router + "-" + std::to_string(k));
    return out;
  }
  /// Every mirror process, mirror by mirror, each mirror's nodes in order.
  std::vector<std::string> mirror_processes() const {
    std::vector<std::string> out;
    for (const auto& m : mirrors)
      for (auto& n : nodes_of(m))
        out.push_back(std::move(n));
    return out;
  }
  std::filesystem::path config_path(const std::string& provider) const {
    return dir / provider / "provider.toml";
  }
  std::filesystem::path log_path(const std::string& provider) const {
    return dir / provider / "provider.log";
  }
  std::filesystem::path deployment_path() const { return dir / "deployment.toml"; }
};

/// Running providers of a local deployment.
struct running_deployment {
  /// The router, or node 1 of a router cluster.
  provider_process router;
  /// Nodes 2 ... N of a router cluster, in order; empty for a router of one node.
  std::vector<provider_process> router_nodes;
  std::vector<provider_process> mirrors;  // in the order of local_deployment::mirror_processes
  config::deployment_file deployment;     // what clients get (also written to disk)
};

/// Writes every file of `d` (keys, TLS material, mirror configs), starts the mirrors, writes
/// the router config (each node's, in a router cluster) with their bound ports, starts the
/// router (node 1 first, then the others) and writes the client deployment file. Ports picked
/// by the OS are written back into each config, so a provider restarted later comes back on
/// the same address. `binary` is cowpi-provider; `env` adds environment variables per process
/// name (e.g. COWPI_FAULT).
[[nodiscard]] expected<running_deployment> start_local_deployment(
    const local_deployment& d, const std::filesystem::path& binary,
    const std::map<std::string, std::map<std::string, std::string>>& env = {});

/// True once every router process of `d` answers on its admin socket with every mirror link
/// up, each mirror node's keys in the directory of the router node that manages that node's
/// pool (`protocol::user_owner` over the router's node ids), and, in a router cluster, its
/// links to the N - 1 other nodes up: from then on clients can set conversations up.
bool router_ready(const local_deployment& d);

/// Waits up to `timeout` for `router_ready(d)`.
bool wait_router_ready(const local_deployment& d, std::chrono::milliseconds timeout);

/// Restarts one provider of `d` from its existing config (after a kill).
[[nodiscard]] expected<provider_process> restart_provider(
    const local_deployment& d, const std::string& provider, const std::filesystem::path& binary,
    const std::map<std::string, std::string>& env = {});

}  // namespace cowpi::tools

// SPDX-License-Identifier: Apache-2.0
// cowpi-provider: the provider daemon, a router or a mirror, configured by TOML. Its whole
// main, so that a test daemon can run it with hooks (daemon.hpp).
#include "daemon.hpp"

#include "cowpi/actors/node_keys.hpp"
#include "cowpi/actors/provider.hpp"
#include "cowpi/config/provider_config.hpp"
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/rng.hpp"

#include "log_lines.hpp"
#include "metrics_http.hpp"
#include <CLI/CLI.hpp>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace {

void disable_core_dumps() {
  // Secrets live in this process's memory: never write them to a core file.
  rlimit none{0, 0};
  (void)setrlimit(RLIMIT_CORE, &none);
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// Prints the provider's long-term public key, creating its identity key file on first use: how
// an operator learns the key to write into the peers' configs before the first start.
int print_public_key(const cowpi::config::provider_config& cfg) {
  if (sodium_init() < 0) {
    std::cerr << "cowpi-provider: libsodium failed to initialise\n";
    return 1;
  }
  cowpi::crypto::system_rng rng;
  auto id = cowpi::actors::load_or_create_identity(cfg.identity_key_file, cfg.name, rng);
  if (!id) {
    std::cerr << "cowpi-provider: " << id.error().message() << "\n";
    return 1;
  }
  std::cout << cowpi::to_hex(id->lpk()) << "\n";
  return 0;
}

}  // namespace

namespace cowpi::tools {

int run_provider(int argc, char** argv, actors::provider_hooks hooks) {
  CLI::App app{
      "cowpi-provider: a Mobile CoWPI provider daemon. With role = \"router\" in its TOML it\n"
      "terminates client connections, keeps the directory and orders every conversation;\n"
      "with role = \"mirror\" it commits each ordered message once and attests it.\n"
      "Stops cleanly on SIGTERM or SIGINT. docs/configuration.md describes the file and\n"
      "docs/install.md running it under systemd (installed: /usr/share/doc/cowpi-provider/)."};
  std::string config_path;
  std::string data_dir;
  bool check_only = false;
  bool print_config = false;
  bool public_key = false;
  std::string log_format;
  app.add_option("-c,--config", config_path, "the provider's TOML configuration file")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--data-dir", data_dir,
                 "the data directory, replacing provider.data_dir (which may then be left out); "
                 "relative paths in the file resolve against it");
  app.add_option("--log-format", log_format, "the log's format, replacing logging.format")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--check", check_only, "validate the configuration and exit (0 if valid)");
  app.add_flag("--print-config", print_config,
               "print the effective configuration (defaults filled in) and exit");
  app.add_flag("--public-key", public_key,
               "print the provider's long-term public key (hex) and exit; creates "
               "identity_key_file when it does not exist");
  CLI11_PARSE(app, argc, argv);

  cowpi::config::provider_overrides overrides;
  if (!data_dir.empty()) {
    std::error_code ec;
    overrides.data_dir = std::filesystem::absolute(data_dir, ec);
    if (ec) {
      std::cerr << "cowpi-provider: --data-dir " << data_dir << ": " << ec.message() << "\n";
      return 2;
    }
  }
  auto cfg = cowpi::config::load_provider_config(config_path, overrides);
  if (!cfg) {
    std::cerr << "cowpi-provider: " << cfg.error().context << "\n";
    return 2;
  }
  if (!overrides.data_dir.empty()) {
    // cowpi-admin finds a node through its file: say so when the file points elsewhere.
    auto as_written = cowpi::config::load_provider_config(config_path);
    if (as_written && as_written->data_dir != cfg->data_dir) {
      std::cerr << "cowpi-provider: note: --data-dir " << cfg->data_dir.string()
                << " replaces provider.data_dir " << as_written->data_dir.string()
                << " (give cowpi-admin the same --data-dir)\n";
    }
  }
  if (log_format == "json")
    cfg->logging.format = cowpi::config::log_format::json;
  else if (log_format == "text")
    cfg->logging.format = cowpi::config::log_format::text;
  if (public_key) {
    return print_public_key(*cfg);
  }
  if (print_config) {
    std::cout << cowpi::config::to_toml(*cfg);
    return 0;
  }
  if (check_only) {
    std::cout << config_path << ": ok (" << cowpi::config::to_string(cfg->role) << " " << cfg->name
              << ")\n";
    return 0;
  }
  disable_core_dumps();
  if (sodium_init() < 0) {
    std::cerr << "cowpi-provider: libsodium failed to initialise\n";
    return 1;
  }
  cowpi::tools::install_provider_logger(*cfg);

  // Block the shutdown signals before any thread starts, so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto node = cowpi::actors::provider_node::start(*cfg, std::move(hooks));
  if (!node) {
    std::cerr << "cowpi-provider: cannot start " << cfg->name << ": " << node.error().message()
              << "\n";
    return 1;
  }
  std::unique_ptr<cowpi::tools::metrics_server> metrics;
  if (cfg->metrics.listen) {
    auto* n = node->get();
    auto m = cowpi::tools::metrics_server::start(*cfg->metrics.listen,
                                                 [n] { return n->metrics_text(); });
    if (!m) {
      std::cerr << "cowpi-provider: cannot start " << cfg->name << ": " << m.error().message()
                << "\n";
      (*node)->stop();
      return 1;
    }
    metrics = std::move(m).value();
  }
  const auto& p = (*node)->ports();
  // The readiness line (tests and the launcher read the bound ports from it).
  std::printf("cowpi-provider ready role=%s name=%s",
              std::string(cowpi::config::to_string(cfg->role)).c_str(), cfg->name.c_str());
  if (p.clients != 0)
    std::printf(" clients=%s:%u", cfg->clients.host.c_str(), p.clients);
  if (p.links != 0)
    std::printf(" links=%s:%u", cfg->links.host.c_str(), p.links);
  if (p.internal != 0)
    std::printf(" node=%s internal=%u", cfg->cluster.self.c_str(), p.internal);
  if (metrics)
    std::printf(" metrics=%s:%u", cfg->metrics.listen->host.c_str(), metrics->port());
  std::printf(" admin=%s lpk=%s\n", p.admin_socket.c_str(), (*node)->public_key_hex().c_str());
  std::fflush(stdout);
  spdlog::info("ready");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("shutting down on signal {}", sig);
  // The scrape endpoint first: it reads the node's state.
  if (metrics)
    metrics->stop();
  (*node)->stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace cowpi::tools

// SPDX-License-Identifier: Apache-2.0
// The end-to-end load generator behind `cowpi-bench load`: n users on one client_system (one
// client_runtime each, sharing scheduler threads) in one conversation against a router and two
// mirrors, measuring latency from send until every member accepted and sustained messages/s.
#include "load.hpp"

#include "cowpi/actors/client_runtime.hpp"
#include "cowpi/config/deployment_file.hpp"
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/rng.hpp"

#include "admin_socket.hpp"
#include "load_run.hpp"
#include "local_deployment.hpp"
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cowpi::bench {

namespace load {
std::atomic<bool> g_interrupted{false};
}  // namespace load

namespace {

using namespace load;

extern "C" void on_interrupt(int /*sig*/) {
  g_interrupted.store(true);
}

void run_size(const load_options& o, size_t n, protocol::block_mode mode, const fs::path& root,
              const fs::path& clients, json& all, bool& problem) {
  run_context c(o);
  c.n = n;
  c.mode = mode;
  const std::string mode_name(protocol::to_string(mode));
  c.root = root / ("n" + std::to_string(n) + "-" + mode_name);
  c.clients_root = clients / ("n" + std::to_string(n) + "-" + mode_name + "-clients");
  std::error_code ec;
  fs::create_directories(c.root, ec);
  fs::create_directories(c.clients_root, ec);
  c.text_pad.assign(o.size > 16 ? o.size - 16 : 0, 'x');
  std::printf("\n== %zu members, %s mode, 2 mirrors, loopback (load %s)\n", n, mode_name.c_str(),
              load_average().c_str());
  std::fflush(stdout);
  c.out["members"] = n;
  c.out["mode"] = mode_name;
  c.out["load_average_before"] = load_average();
  auto started = start_providers(c);
  if (!started) {
    std::printf("  cannot start: %s\n", started.error().message().c_str());
    problem = true;
    c.out["error"] = started.error().message();
    all.push_back(c.out);
    return;
  }
  const auto t_setup = steady::now();
  auto ready = set_up_users(c);
  std::printf("  set-up (register %zu users, SETUP, 2 warm-up rounds): %.1f s\n", n,
              std::chrono::duration<double>(steady::now() - t_setup).count());
  std::fflush(stdout);
  if (!ready) {
    std::printf("  set-up failed: %s\n", ready.error().message().c_str());
    c.problem = true;
    c.out["error"] = ready.error().message();
  } else {
    if (o.phases != "throughput")
      latency_phase(c);
    std::fflush(stdout);
    if (o.phases != "latency" && !g_interrupted.load())
      throughput_phase(c);
  }
  std::fflush(stdout);
  if (c.tr)
    c.out["receipts_accepted"] = c.tr->receipts();
  c.users.clear();
  c.sys.reset();
  if (c.spawned)
    stop_providers(c);
  if (c.tr) {
    const auto notes = c.tr->notes();
    for (const auto& s : notes)
      std::printf("  problem: %s\n", s.c_str());
    if (!notes.empty())
      c.problem = true;
    c.out["problems"] = notes;
  }
  problem = problem || c.problem;
  all.push_back(c.out);
}

}  // namespace

int run_load(int argc, char** argv) {
  load_options o;
  CLI::App app{
      "cowpi-bench load: the end-to-end load generator. For each conversation size it starts\n"
      "(with --spawn, the default) a router and two mirrors as cowpi-provider processes on\n"
      "loopback, runs that many users as client runtimes in this process (one shared actor\n"
      "system), registers them, creates one conversation with all of them (once per block\n"
      "mode), warms every pairwise channel up, then measures:\n"
      "  latency     from the send call until every member, the author's echo included, has\n"
      "              accepted the message (persisted): closed loop, one message in flight,\n"
      "              authors in turn; or paced open loop with --rate;\n"
      "  throughput  --senders members each keep --window messages in flight; ordered\n"
      "              messages/s accepted by the last member, the router's and mirrors' counters\n"
      "              (admin sockets) and CPU per message per process.\n"
      "Every message must reach every member exactly once; anything else is reported as a\n"
      "problem (exit status 1).",
      "cowpi-bench load"};
  app.add_option("--members", o.members, "conversation sizes, comma-separated (each >= 2)")
      ->delimiter(',')
      ->check(CLI::Range(size_t{2}, size_t{1000}))
      ->capture_default_str();
  app.add_option("--modes", o.modes,
                 "block modes of the conversation, comma-separated; each size runs in each "
                 "(docs/protocol.md §5.2)")
      ->delimiter(',')
      ->check(CLI::IsMember({"public-key", "chain"}))
      ->capture_default_str();
  app.add_option("--messages", o.messages, "messages in the latency phase")
      ->check(CLI::Range(size_t{1}, size_t{1000000}))
      ->capture_default_str();
  app.add_option("--rate", o.rate,
                 "latency phase: paced open loop at this many messages/s (0: closed loop)")
      ->check(CLI::Range(0.0, 100000.0))
      ->capture_default_str();
  app.add_option("--senders", o.senders, "throughput phase: members sending concurrently")
      ->check(CLI::Range(size_t{1}, size_t{1000}))
      ->capture_default_str();
  app.add_option("--window", o.window,
                 "throughput phase: messages in flight per sender (sent, not yet echoed)")
      ->check(CLI::Range(size_t{1}, size_t{64}))
      ->capture_default_str();
  app.add_option("--duration", o.duration_s, "throughput phase: seconds measured")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "throughput phase: seconds sent before measuring")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--size", o.size, "plaintext bytes per message")
      ->check(CLI::Range(size_t{16}, size_t{60000}))
      ->capture_default_str();
  app.add_option("--threads", o.threads,
                 "scheduler threads of the clients' actor system (client store writes are "
                 "synced and block a thread)")
      ->check(CLI::Range(size_t{1}, size_t{256}))
      ->capture_default_str();
  app.add_option("--mirror-nodes", o.mirror_nodes,
                 "nodes per spawned mirror: > 1 runs each mirror as a cluster (the CPU line "
                 "then lists every node; one conversation lives on one node of each)")
      ->check(CLI::Range(size_t{1}, size_t{16}))
      ->capture_default_str();
  app.add_option("--router-nodes", o.router_nodes,
                 "nodes of the spawned router: > 1 runs it as a cluster (the CPU line then "
                 "lists every node; the latency phase splits members homed on the "
                 "conversation's node from the others)")
      ->check(CLI::Range(size_t{1}, size_t{16}))
      ->capture_default_str();
  app.add_option("--phases", o.phases, "latency, throughput or both")
      ->check(CLI::IsMember({"latency", "throughput", "both"}))
      ->capture_default_str();
  auto* spawn =
      app.add_flag("--spawn", o.spawn, "start a router and two mirrors per size (the default)");
  app.add_option("--deployment", o.deployment,
                 "use the running deployment of this client deployment file instead; users get "
                 "fresh random ids")
      ->check(CLI::ExistingFile)
      ->excludes(spawn);
  app.add_option("--admin", o.admin,
                 "with --deployment: the router's admin socket, for its counters");
  app.add_option("--provider", o.provider,
                 "the cowpi-provider binary (default: next to this executable)");
  app.add_option("--dir", o.dir,
                 "where the spawned providers' data goes: a fresh cowpi-load-XXXXXX directory is "
                 "made under it (default: $TMPDIR or /tmp)");
  app.add_option("--clients-dir", o.clients_dir,
                 "where the client stores go, likewise (default: with the providers); a tmpfs "
                 "such as /dev/shm takes the clients' fsyncs out of the measurement");
  app.add_flag("--keep", o.keep, "keep the data directories");
  app.add_flag("--smoke", o.smoke,
               "a tiny run: 3 members, 20 messages, 2 s of throughput after 0.5 s");
  app.add_option("--json", o.json_path, "also write the results as JSON to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.spawn = o.deployment.empty();
  if (o.smoke) {
    o.members = {3};
    o.messages = 20;
    o.duration_s = 2;
    o.warmup_s = 0.5;
  }

  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto root = make_run_dir(o.dir);
  if (!root) {
    std::fprintf(stderr, "cowpi-bench load: %s\n", root.error().message().c_str());
    return 2;
  }
  fs::path clients = *root;
  if (!o.clients_dir.empty()) {
    auto cr = make_run_dir(o.clients_dir);
    if (!cr) {
      std::fprintf(stderr, "cowpi-bench load: %s\n", cr.error().message().c_str());
      return 2;
    }
    clients = *cr;
  }
  std::printf(
      "cowpi-bench load: providers in %s, clients in %s, %zu client threads, "
      "%ld cores, load %s\n",
      root->c_str(), clients.c_str(), o.threads, ::sysconf(_SC_NPROCESSORS_ONLN),
      load_average().c_str());
  json all = json::array();
  bool problem = false;
  for (size_t n : o.members)
    for (const auto& m : o.modes) {
      if (g_interrupted.load())
        break;
      run_size(o, n, m == "chain" ? protocol::block_mode::chain : protocol::block_mode::pk, *root,
               clients, all, problem);
    }
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path, std::ios::trunc);
    f << json{{"runs", all}}.dump(2) << "\n";
  }
  if (!o.keep) {
    std::error_code ec;
    fs::remove_all(*root, ec);
    if (clients != *root)
      fs::remove_all(clients, ec);
  } else {
    std::printf("\nkept %s%s%s\n", root->c_str(), clients != *root ? " and " : "",
                clients != *root ? clients.c_str() : "");
  }
  if (g_interrupted.load())
    return 130;
  return problem ? 1 : 0;
}

}  // namespace cowpi::bench

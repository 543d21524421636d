// SPDX-License-Identifier: Apache-2.0
// cowpi-local: a Mobile CoWPI deployment (a router and two mirrors, real cowpi-provider
// processes) on this machine, and the demo that drives the real `cowpi` client against it
// (docs/cli.md).
#include "cowpi/config/provider_config.hpp"
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/protocol/shard.hpp"

#include "admin_socket.hpp"
#include "local_deployment.hpp"
#include "process.hpp"
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

namespace {

namespace fs = std::filesystem;
using cowpi::local::run;
using nlohmann::json;

// -- locating binaries and the layout -----------------------------------------------------

// The first existing candidate, or the first one (for the error message).
fs::path find_binary(const std::string& env, const std::vector<fs::path>& candidates) {
  if (const char* e = std::getenv(env.c_str()); e != nullptr && *e != '\0')
    return e;
  std::error_code ec;
  for (const auto& c : candidates)
    if (fs::exists(c, ec))
      return fs::weakly_canonical(c, ec);
  return candidates.front();
}

// Next to cowpi-local (an install), or where the build tree puts it.
fs::path provider_binary() {
  const fs::path d = cowpi::local::self_dir();
  return find_binary("COWPI_PROVIDER", {d / "cowpi-provider", d / ".." / "cowpi-provider"});
}

fs::path cowpi_binary() {
  const fs::path d = cowpi::local::self_dir();
  return find_binary("COWPI_CLI", {d / "cowpi", d / ".." / "cli" / "cowpi"});
}

cowpi::tools::local_deployment layout(const fs::path& dir) {
  cowpi::tools::local_deployment d;
  std::error_code ec;
  d.dir = fs::absolute(dir, ec);
  return d;
}

// The node count of an existing deployment's router (from the router config in `<router>/`,
// or in `<router>-1/` for a router cluster), or nothing.
std::optional<size_t> existing_router_nodes(const cowpi::tools::local_deployment& d) {
  std::error_code ec;
  if (fs::exists(d.config_path(d.router), ec))
    return 1;
  const std::string first = d.router + "-1";
  if (!fs::exists(d.config_path(first), ec))
    return std::nullopt;
  auto c = cowpi::config::load_provider_config(d.config_path(first));
  if (!c)
    return std::nullopt;
  return std::max<size_t>(c->cluster.nodes.size(), 1);
}

// The node count of an existing deployment's mirrors (from its router config), or nothing.
// REQUIRES: `d.router_nodes` is the existing deployment's.
std::optional<size_t> existing_mirror_nodes(const cowpi::tools::local_deployment& d) {
  const fs::path config = d.config_path(d.router_processes().front());
  std::error_code ec;
  if (!fs::exists(config, ec))
    return std::nullopt;
  auto c = cowpi::config::load_provider_config(config);
  if (!c || c->mirrors.empty())
    return std::nullopt;
  return std::max<size_t>(c->mirrors.front().nodes.size(), 1);
}

// Every process, mirrors (node by node) first, the router's nodes last (node 1 first).
std::vector<std::string> providers(const cowpi::tools::local_deployment& d) {
  std::vector<std::string> all = d.mirror_processes();
  for (auto& r : d.router_processes())
    all.push_back(std::move(r));
  return all;
}

// "router", or "router (3 nodes)" for a router cluster.
std::string router_label(const cowpi::tools::local_deployment& d) {
  return d.router_nodes > 1 ? d.router + " (" + std::to_string(d.router_nodes) + " nodes)"
                            : d.router;
}

fs::path pid_file(const cowpi::tools::local_deployment& d) {
  return d.dir / "pids";
}

// True once the router's links to every mirror are up and their keys are in its directory.
bool links_up(const cowpi::tools::local_deployment& d) {
  return cowpi::tools::router_ready(d);
}

bool wait_links(const cowpi::tools::local_deployment& d, std::chrono::seconds timeout) {
  return cowpi::tools::wait_router_ready(d, timeout);
}

bool any_running(const cowpi::tools::local_deployment& d) {
  for (const auto& [name, pid] : cowpi::local::read_pids(pid_file(d)))
    if (cowpi::local::provider_alive(pid))
      return true;
  return false;
}

// -- up / down / status -------------------------------------------------------------------

void print_layout(const cowpi::tools::local_deployment& d) {
  std::cout << "  deployment file (give it to `cowpi init --deployment`): "
            << d.deployment_path().string() << "\n";
  for (const auto& p : providers(d)) {
    auto c = cowpi::config::load_provider_config(d.config_path(p));
    std::cout << "  " << p << ": config " << d.config_path(p).string() << "\n"
              << "    log " << d.log_path(p).string() << "\n";
    if (c)
      std::cout << "    data dir " << c->data_dir.string() << ", admin socket "
                << c->admin_socket.string() << "\n";
  }
}

// Starts the deployment of `d` (a new one, or the existing files again) and detaches it.
int up(const cowpi::tools::local_deployment& d, bool quiet) {
  if (any_running(d)) {
    std::cerr << "cowpi-local: a deployment is already running in " << d.dir.string()
              << "\n  hint: `cowpi-local status --dir " << d.dir.string()
              << "`, or stop it with `cowpi-local down --dir " << d.dir.string() << "`\n";
    return 1;
  }
  const fs::path bin = provider_binary();
  std::error_code ec;
  if (!fs::exists(bin, ec)) {
    std::cerr << "cowpi-local: cannot find cowpi-provider (looked at " << bin.string()
              << ")\n  hint: build it (scripts/build) or set COWPI_PROVIDER\n";
    return 1;
  }
  fs::create_directories(d.dir, ec);
  std::vector<std::pair<std::string, pid_t>> pids;
  if (fs::exists(d.config_path(d.router_processes().front()), ec)
      && fs::exists(d.deployment_path(), ec)) {
    // Existing files: the same keys, ports and data. Mirrors first, then the router's nodes.
    for (const auto& p : providers(d)) {
      auto proc = cowpi::tools::restart_provider(d, p, bin);
      if (!proc) {
        std::cerr << "cowpi-local: " << p << " did not start: " << proc.error().message() << "\n";
        for (const auto& [name, pid] : pids)
          (void)cowpi::local::stop(pid, std::chrono::seconds(5));
        return 1;
      }
      pids.emplace_back(p, proc->pid());
      proc->release();
    }
  } else {
    auto run_dep = cowpi::tools::start_local_deployment(d, bin);
    if (!run_dep) {
      std::cerr << "cowpi-local: the deployment did not start: " << run_dep.error().message()
                << "\n";
      return 1;
    }
    const auto names = d.mirror_processes();
    for (size_t k = 0; k < names.size(); ++k) {
      pids.emplace_back(names[k], run_dep->mirrors[k].pid());
      run_dep->mirrors[k].release();
    }
    const auto routers = d.router_processes();
    pids.emplace_back(routers.front(), run_dep->router.pid());
    run_dep->router.release();
    for (size_t k = 0; k < run_dep->router_nodes.size(); ++k) {
      pids.emplace_back(routers[k + 1], run_dep->router_nodes[k].pid());
      run_dep->router_nodes[k].release();
    }
  }
  if (!cowpi::local::write_pids(pid_file(d), pids)) {
    std::cerr << "cowpi-local: cannot write " << pid_file(d).string() << "\n";
    return 1;
  }
  const bool linked = wait_links(d, std::chrono::seconds(20));
  if (!quiet) {
    std::cout << "deployment running in " << d.dir.string() << " (" << router_label(d) << " + ";
    for (size_t k = 0; k < d.mirrors.size(); ++k)
      std::cout << (k == 0 ? "" : ", ") << d.mirrors[k];
    if (d.mirror_nodes > 1)
      std::cout << ", " << d.mirror_nodes << " nodes each";
    std::cout << ")"
              << (linked ? ""
                  : d.router_nodes > 1
                      ? " -- WARNING: the router nodes' mirror and cluster links are not "
                        "up yet"
                      : " -- WARNING: the router's mirror links are not up yet")
              << "\n";
    for (const auto& [name, pid] : pids)
      std::cout << "  " << name << " pid " << pid << "\n";
    print_layout(d);
    std::cout << "stop it with: cowpi-local down --dir " << d.dir.string() << "\n";
  }
  return linked ? 0 : 1;
}

int down(const cowpi::tools::local_deployment& d) {
  const auto pids = cowpi::local::read_pids(pid_file(d));
  if (pids.empty()) {
    std::cout << "nothing to stop in " << d.dir.string() << " (no pid file)\n";
    return 0;
  }
  // The router (its nodes, last one first) first: it stops talking to clients and mirrors
  // before they go.
  for (auto it = pids.rbegin(); it != pids.rend(); ++it)
    std::cout << it->first << " (pid " << it->second
              << "): " << cowpi::local::stop(it->second, std::chrono::seconds(10)) << "\n";
  std::error_code ec;
  fs::remove(pid_file(d), ec);
  return 0;
}

int status(const cowpi::tools::local_deployment& d) {
  const auto pids = cowpi::local::read_pids(pid_file(d));
  if (pids.empty()) {
    std::cout << "no deployment running in " << d.dir.string() << "\n";
    return 1;
  }
  bool all = true;
  for (const auto& [name, pid] : pids) {
    const bool alive = cowpi::local::provider_alive(pid);
    all = all && alive;
    std::cout << name << " (pid " << pid << "): " << (alive ? "running" : "NOT running") << "\n";
  }
  if (all)
    std::cout << (d.router_nodes > 1 ? "router links to the mirrors and between its nodes: "
                                     : "router links to the mirrors: ")
              << (links_up(d) ? "up" : "NOT up") << "\n";
  print_layout(d);
  return all ? 0 : 1;
}

// -- demo ---------------------------------------------------------------------------------

class demo {
public:
  demo(cowpi::tools::local_deployment d, fs::path cowpi)
      : d_(std::move(d)), cowpi_(std::move(cowpi)) {}

  int play(bool fresh) {
    std::error_code ec;
    if (!fs::exists(cowpi_, ec)) {
      std::cerr << "cowpi-local: cannot find the cowpi client (looked at " << cowpi_.string()
                << ")\n  hint: build it (scripts/build) or set COWPI_CLI\n";
      return 1;
    }
    std::cout << "== Mobile CoWPI demo in " << d_.dir.string() << "\n"
              << "   every step below runs the real client: " << cowpi_.string() << "\n\n";
    if (fresh) {
      if (any_running(d_))
        (void)down_quiet();
      fs::remove_all(d_.dir, ec);
    }
    const std::string router = d_.router_nodes > 1
                                   ? "a router of " + std::to_string(d_.router_nodes) + " nodes"
                                   : std::string("a router");
    const std::string mirrors =
        d_.mirror_nodes > 1 ? "two mirrors of " + std::to_string(d_.mirror_nodes) + " nodes each"
                            : std::string("two mirrors");
    step("starting " + router + " and " + mirrors + " (cowpi-provider processes)");
    if (up(d_, true) != 0)
      return fail("the deployment did not come up; see the logs under " + d_.dir.string());
    ok(d_.router_nodes > 1 ? "router nodes at " + router_address() + ", linked to each other "
                                 "and to the mirrors"
                           : "router at " + router_address() + ", mirrors linked");

    step("creating users alice, bob and carol: cowpi init + cowpi register");
    for (const std::string u : {"alice", "bob", "carol"}) {
      if (fs::exists(home(u), ec))
        fs::remove_all(home(u), ec);
      cowpi(u, {"init", "--deployment", d_.deployment_path().string(), "--id", u});
      cowpi(u, {"register"});
    }
    ok("3 users registered");

    step("alice creates a conversation with bob: cowpi create bob");
    const json created = cowpi("alice", {"create", "bob"});
    conv_ = created["conv"].get<std::string>();
    ok("conversation " + conv_ + " (members " + join(created["members"]) + ")");

    step("messages both ways: cowpi send, then cowpi sync on the other side");
    say("alice", "hi bob, this is alice");
    sync("bob");
    say("bob", "hi alice! bob here");
    sync("alice");
    sync("bob");

    step("bob goes offline; alice sends three messages he cannot receive yet");
    say("alice", "are you there?");
    say("alice", "I am adding carol soon");
    say("alice", "catch up when you are back");
    std::cout << "   bob comes back and syncs:\n";
    const json caught = sync("bob");
    size_t got = 0;
    for (const auto& e : caught["entries"])
      if (e["type"] == "MESSAGE" && e["author"] == "alice")
        ++got;
    if (got < 3)
      return fail("bob caught up on " + std::to_string(got) + " of alice's 3 messages");
    ok("bob caught up on all " + std::to_string(got) + " messages, in order");

    step("alice adds carol: cowpi add " + conv_.substr(0, 8) + " carol");
    update("alice", "add", {"carol"});
    sync("carol");
    say("carol", "hello both, carol here");
    sync("alice");
    sync("bob");

    step(
        "read receipts: at most one per member and conversation every 10 s (docs/design.md "
        "section 3.7); waiting 10 s, then everyone syncs");
    std::this_thread::sleep_for(std::chrono::milliseconds(10500));
    sync("bob");
    sync("carol");
    sync("alice");
    sync("bob");

    step("alice removes bob: cowpi remove " + conv_.substr(0, 8) + " bob");
    update("alice", "remove", {"bob"});
    sync("bob");
    sync("carol");
    say("carol", "just the two of us now");
    sync("alice");
    sync("carol");
    sync("alice");

    step("each user's verified transcript: cowpi log " + conv_.substr(0, 8));
    std::map<std::string, json> logs;
    for (const std::string u : {"alice", "bob", "carol"}) {
      logs[u] = cowpi(u, {"log", conv_});
      std::cout << "\n   -- " << u << " (" << logs[u]["status"].get<std::string>() << ")\n";
      const auto text = run({cowpi_.string(), "--home", home(u).string(), "log", conv_},
                            std::chrono::seconds(30));
      std::istringstream lines(text.out);
      std::string l;
      std::getline(lines, l);  // the header line, shown above
      while (std::getline(lines, l))
        std::cout << "   " << l << "\n";
    }
    std::cout << "\n";

    step("comparing the transcripts over the indices each pair shares");
    std::string problem;
    for (const std::string a : {"alice", "bob", "carol"})
      for (const std::string b : {"alice", "bob", "carol"})
        if (a < b && !same(logs[a], logs[b], a, b, problem))
          return fail(problem);
    std::cout << "   " << range(logs["alice"], "alice") << ", " << range(logs["bob"], "bob") << ", "
              << range(logs["carol"], "carol") << "\n";
    std::cout << "\ntranscripts identical\n\n";

    print_next_steps();
    return 0;
  }

private:
  fs::path home(const std::string& u) const { return d_.dir / "users" / u; }

  // The router's client address, or every node's for a router cluster.
  std::string router_address() const {
    std::string out;
    for (const auto& node : d_.router_processes()) {
      auto c = cowpi::config::load_provider_config(d_.config_path(node));
      out +=
          (out.empty() ? "" : ", ") + (c ? cowpi::config::to_string(c->clients) : std::string("?"));
    }
    return out;
  }

  void step(const std::string& what) {
    std::cout << "[" << ++step_ << "] " << what << "\n";
    std::cout.flush();
  }
  static void ok(const std::string& what) { std::cout << "   ok: " << what << "\n"; }

  int fail(const std::string& why) {
    std::cout.flush();
    std::cerr << "\ncowpi-local demo FAILED: " << why << "\n  the deployment is left running: "
              << "cowpi-local down --dir " << d_.dir.string() << " stops it\n";
    return 1;
  }

  int down_quiet() {
    for (const auto& [name, pid] : cowpi::local::read_pids(pid_file(d_)))
      (void)cowpi::local::stop(pid, std::chrono::seconds(10));
    std::error_code ec;
    fs::remove(pid_file(d_), ec);
    return 0;
  }

  static std::string join(const json& ids) {
    std::string s;
    for (const auto& id : ids)
      s += (s.empty() ? "" : ", ") + id.get<std::string>();
    return s;
  }

  // Runs `cowpi --home DIR/users/U --json ARGS...` and returns its JSON; exits the demo
  // loudly when it fails.
  json cowpi(const std::string& u, std::vector<std::string> args) {
    std::vector<std::string> argv = {cowpi_.string(), "--home", home(u).string(), "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run(argv, std::chrono::seconds(60));
    auto j = json::parse(r.out, nullptr, false);
    if (r.code != 0 || j.is_discarded() || !j.value("ok", false)) {
      std::string cmd;
      for (const auto& a : argv)
        cmd += (cmd.empty() ? "" : " ") + a;
      std::cerr << "\ncowpi-local demo FAILED running: " << cmd << "\n  exit " << r.code
                << "\n  stdout: " << r.out << "\n  stderr: " << r.err << "\n";
      std::exit(1);
    }
    return j;
  }

  void say(const std::string& u, const std::string& text) {
    const json j = cowpi(u, {"send", conv_, text});
    std::cout << "   " << u << " sends \"" << text << "\"";
    if (j.value("ordered", false))
      std::cout << " -> ordered as #" << j["index"].get<uint64_t>() << "\n";
    else
      std::cout << " -> queued (not ordered yet)\n";
    print_entries(u, j);
  }

  json sync(const std::string& u) {
    const json j = cowpi(u, {"sync"});
    size_t news = 0;
    for (const auto& e : j["entries"])
      news += e.value("own", false) ? 0u : 1u;
    std::cout << "   " << u << " syncs: " << news << " new entr" << (news == 1 ? "y" : "ies")
              << "\n";
    print_entries(u, j);
    return j;
  }

  void update(const std::string& u, const std::string& op, const std::vector<std::string>& ids) {
    std::vector<std::string> args = {op, conv_};
    args.insert(args.end(), ids.begin(), ids.end());
    const json j = cowpi(u, args);
    std::cout << "   " << u << " " << op << "s " << join(json(ids)) << " -> members now "
              << (j["members"].is_array() ? join(j["members"]) : std::string("(pending)")) << "\n";
    print_entries(u, j);
  }

  static void print_entries(const std::string& u, const json& j) {
    if (!j.contains("entries"))
      return;
    for (const auto& e : j["entries"]) {
      if (e.value("own", false))
        continue;
      const std::string type = e.value("type", "");
      std::cout << "      " << u << " got #" << e["index"].get<uint64_t>() << " ";
      if (type == "MESSAGE")
        std::cout << e.value("author", "") << ": " << e.value("text", "(unreadable)");
      else if (type == "RECEIPT")
        std::cout << "receipt from " << e.value("author", "");
      else
        std::cout << type << " by " << e.value("author", "") << " (members " << join(e["members"])
                  << ")";
      std::cout << "\n";
    }
    for (const auto& a : j["alarms"])
      std::cout << "      !! ALARM at " << u << ": " << a.dump() << "\n";
  }

  // The comparable part of a transcript entry: everything but our own view of it.
  // (A RECEIPT's floor_before is where the reader last saw that author's previous RECEIPT:
  // a joiner who never saw it reads -1. Its T covers the entry itself.)
  static json canonical(json e) {
    e.erase("own");
    e.erase("delivery");
    if (e.contains("receipt"))
      e["receipt"].erase("floor_before");
    return e;
  }

  static std::map<uint64_t, json> by_index(const json& log) {
    std::map<uint64_t, json> m;
    for (const auto& e : log["entries"])
      m[e["index"].get<uint64_t>()] = canonical(e);
    return m;
  }

  static std::string range(const json& log, const std::string& u) {
    const auto m = by_index(log);
    if (m.empty())
      return u + " holds nothing";
    return u + " holds #" + std::to_string(m.begin()->first) + "-#"
           + std::to_string(m.rbegin()->first);
  }

  static bool same(const json& la, const json& lb, const std::string& a, const std::string& b,
                   std::string& problem) {
    const auto ma = by_index(la);
    const auto mb = by_index(lb);
    size_t shared = 0;
    for (const auto& [i, ea] : ma) {
      auto it = mb.find(i);
      if (it == mb.end())
        continue;
      ++shared;
      if (ea != it->second) {
        problem = "transcripts differ at #" + std::to_string(i) + ":\n  " + a + ": " + ea.dump()
                  + "\n  " + b + ": " + it->second.dump();
        return false;
      }
    }
    if (shared == 0) {
      problem = a + " and " + b + " share no index";
      return false;
    }
    std::cout << "   " << a << " and " << b << " agree on all " << shared
              << " shared entries (same transcript hash T at each)\n";
    return true;
  }

  void print_next_steps() const {
    const std::string dir = d_.dir.string();
    const std::string alice = home("alice").string();
    std::cout << "The deployment is still running in " << dir << ":\n";
    print_layout(d_);
    std::cout << "\nTry it yourself:\n"
              << "  " << cowpi_.string() << " --home " << alice << " conversations\n"
              << "  " << cowpi_.string() << " --home " << alice << " log " << conv_ << "\n"
              << "  " << cowpi_.string() << " --home " << alice << " chat " << conv_
              << "    (and in another terminal: ... --home " << home("carol").string() << " chat "
              << conv_ << ")\n"
              << "Inspect the providers (cowpi-admin reads a node's data dir and admin socket "
                 "from its config):\n";
    std::error_code ec;
    fs::path admin = cowpi::local::self_dir() / ".." / "admin" / "cowpi-admin";
    admin = fs::exists(admin, ec) ? fs::weakly_canonical(admin, ec) : fs::path("cowpi-admin");
    // A router cluster: the node holding the conversation (the others know nothing of it).
    const auto routers = d_.router_processes();
    size_t holder = 0;
    if (auto raw = cowpi::from_hex(conv_);
        raw && raw->size() == cowpi::protocol::conv_id{}.size()) {
      cowpi::protocol::conv_id c{};
      std::copy(raw->begin(), raw->end(), c.begin());
      holder = cowpi::protocol::conv_owner(routers, c);
    }
    const std::string router_cfg = d_.config_path(routers[holder]).string();
    std::cout << "  " << admin.string() << " --config " << router_cfg << " status\n"
              << "  " << admin.string() << " --config " << router_cfg << " conversation " << conv_
              << "\n";
    for (const auto& p : providers(d_)) {
      auto c = cowpi::config::load_provider_config(d_.config_path(p));
      if (c)
        std::cout << "    " << p << ": --config " << d_.config_path(p).string() << " (data dir "
                  << c->data_dir.string() << ", admin socket " << c->admin_socket.string() << ")\n";
    }
    std::cout << "Stop it:\n  " << (cowpi::local::self_dir() / "cowpi-local").string()
              << " down --dir " << dir << "\n";
  }

  cowpi::tools::local_deployment d_;
  fs::path cowpi_;
  std::string conv_;
  int step_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cowpi-local: a Mobile CoWPI deployment on this machine: a router and two mirrors as\n"
      "real cowpi-provider processes under one folder (each provider one process, or a\n"
      "cluster of several with --router-nodes / --mirror-nodes), left running in the\n"
      "background. See docs/cli.md (installed: /usr/share/doc/cowpi-provider/cli.md)."};
  app.name("cowpi-local");
  app.require_subcommand(1);
  std::string dir;
  bool fresh = false;
  size_t mirror_nodes = 0;
  size_t router_nodes = 0;
  auto add_dir = [&dir](CLI::App* sub) {
    sub->add_option("--dir", dir, "the deployment's folder (configs, keys, data, logs, pids)")
        ->required();
  };
  auto add_nodes = [&mirror_nodes, &router_nodes](CLI::App* sub) {
    sub->add_option("--router-nodes", router_nodes,
                    "run the router as a cluster of this many nodes (processes <router>-1 ... "
                    "<router>-N sharing its identity, conversations and users sharded over "
                    "them); default 1, or what the existing deployment in --dir uses")
        ->check(CLI::Range(1, 16));
    sub->add_option("--mirror-nodes", mirror_nodes,
                    "run each mirror as a cluster of this many nodes (processes <mirror>-1 ... "
                    "<mirror>-N sharing its identity, conversations sharded over them); "
                    "default 1, or what the existing deployment in --dir uses")
        ->check(CLI::Range(1, 16));
  };
  auto* up_cmd = app.add_subcommand(
      "up",
      "start the router and the mirrors in the background (a new deployment, or the "
      "existing one in --dir again); prints where the files are");
  add_dir(up_cmd);
  add_nodes(up_cmd);
  add_dir(app.add_subcommand("down",
                             "stop the deployment's processes (SIGTERM, then SIGKILL after 10 s)"));
  add_dir(app.add_subcommand("status", "show whether the deployment's processes run"));
  auto* demo_cmd = app.add_subcommand(
      "demo",
      "start a deployment and run a scripted conversation between alice, bob and carol "
      "with the real cowpi client; checks that their transcripts are identical and "
      "leaves the deployment running");
  add_dir(demo_cmd);
  add_nodes(demo_cmd);
  demo_cmd->add_flag("--fresh", fresh, "delete --dir first (stopping what runs there)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) {
    std::cerr << "cowpi-local: libsodium failed to initialise\n";
    return 1;
  }
  auto d = layout(dir);
  const std::string command = app.get_subcommands().front()->get_name();
  // The layout of an existing deployment is its own; --router-nodes and --mirror-nodes only
  // shape a new one.
  const bool replaced = command == "demo" && fresh;
  if (auto have = existing_router_nodes(d); have && !replaced) {
    if (router_nodes != 0 && router_nodes != *have) {
      std::cerr << "cowpi-local: the deployment in " << d.dir.string() << " runs its router as "
                << *have << " node(s), not " << router_nodes
                << "\n  hint: leave --router-nodes out, or use another --dir\n";
      return 2;
    }
    d.router_nodes = *have;
  } else if (router_nodes != 0) {
    d.router_nodes = router_nodes;
  }
  if (auto have = existing_mirror_nodes(d); have && !replaced) {
    if (mirror_nodes != 0 && mirror_nodes != *have) {
      std::cerr << "cowpi-local: the deployment in " << d.dir.string() << " runs " << *have
                << " node(s) per mirror, not " << mirror_nodes
                << "\n  hint: leave --mirror-nodes out, or use another --dir\n";
      return 2;
    }
    d.mirror_nodes = *have;
  } else if (mirror_nodes != 0) {
    d.mirror_nodes = mirror_nodes;
  }
  if (command == "up")
    return up(d, false);
  if (command == "down")
    return down(d);
  if (command == "status")
    return status(d);
  return demo(d, cowpi_binary()).play(fresh);
}

// SPDX-License-Identifier: Apache-2.0
// Local deployments: files, processes, readiness lines.
#include "local_deployment.hpp"

#include "cowpi/actors/node_keys.hpp"
#include "cowpi/crypto/rng.hpp"

#include "admin_socket.hpp"
#include "certs.hpp"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

namespace cowpi::tools {

namespace fs = std::filesystem;

// -- provider_process -------------------------------------------------------------------------

provider_process::provider_process(provider_process&& o) noexcept
    : pid_(o.pid_), exit_status_(o.exit_status_), ready_(std::move(o.ready_)) {
  o.pid_ = -1;
}

provider_process& provider_process::operator=(provider_process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)::waitpid(pid_, nullptr, 0);
    }
    pid_ = o.pid_;
    exit_status_ = o.exit_status_;
    ready_ = std::move(o.ready_);
    o.pid_ = -1;
  }
  return *this;
}

provider_process::~provider_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    (void)::waitpid(pid_, nullptr, 0);
  }
}

namespace {

std::string tail_of(const fs::path& log, size_t max = 2000) {
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max ? s.substr(s.size() - max) : s;
}

}  // namespace

expected<provider_process> provider_process::start(const fs::path& binary, const fs::path& config,
                                                   const fs::path& log,
                                                   const std::map<std::string, std::string>& env,
                                                   std::chrono::milliseconds ready_timeout) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return fail(errc::unavailable, "pipe failed");
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return fail(errc::storage, "cannot open " + log.string());
  }
  const std::string bin = binary.string();
  const std::string cfg = config.string();
  const pid_t pid = ::fork();
  if (pid < 0)
    return fail(errc::unavailable, "fork failed");
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    for (const auto& [k, v] : env)
      ::setenv(k.c_str(), v.c_str(), 1);
    ::setsid();  // its own process group: a signal to the test does not reach it
    ::execl(bin.c_str(), bin.c_str(), "--config", cfg.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(out[1]);
  ::close(log_fd);
  provider_process p;
  p.pid_ = pid;
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  bool done = false;
  while (!done) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      break;
    pollfd pfd{out[0], POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    char buf[512];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0)
      break;  // the process closed stdout: it exited
    line.append(buf, static_cast<size_t>(n));
    done = line.find('\n') != std::string::npos;
  }
  ::close(out[0]);
  if (!done || line.rfind("cowpi-provider ready", 0) != 0) {
    return fail(errc::unavailable, config.string() + ": the provider did not become ready; "
                                       + "log tail:\n" + tail_of(log));
  }
  std::istringstream words(line.substr(0, line.find('\n')));
  std::string w;
  while (words >> w) {
    auto eq = w.find('=');
    if (eq != std::string::npos)
      p.ready_[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return p;
}

std::string provider_process::value(const std::string& key) const {
  auto it = ready_.find(key);
  return it == ready_.end() ? std::string() : it->second;
}

uint16_t provider_process::port(const std::string& key) const {
  const std::string v = value(key);
  const auto colon = v.rfind(':');
  if (colon == std::string::npos)
    return 0;
  return static_cast<uint16_t>(std::strtoul(v.c_str() + colon + 1, nullptr, 10));
}

void provider_process::signal(int sig) const {
  if (pid_ > 0)
    ::kill(pid_, sig);
}

std::optional<int> provider_process::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::exchange(exit_status_, std::nullopt);
}

bool provider_process::running() const {
  if (pid_ <= 0)
    return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0)
    return true;
  if (r == pid_)
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  pid_ = -1;  // exited and reaped (or not our child any more)
  return false;
}

// -- files ---------------------------------------------------------------------------------

namespace {

expected<void> write_text(const fs::path& p, const std::string& text) {
  std::ofstream o(p, std::ios::trunc);
  o << text;
  if (!o.good())
    return fail(errc::storage, "cannot write " + p.string());
  return {};
}

struct provider_files {
  fs::path data;
  protocol::public_key lpk{};
  tls_files tls;
};

expected<provider_files> prepare_provider(const local_deployment& d, const std::string& name,
                                          crypto::rng& r) {
  provider_files f;
  f.data = d.dir / name;
  std::error_code ec;
  fs::create_directories(f.data, ec);
  if (ec)
    return fail(errc::storage, f.data.string() + ": " + ec.message());
  COWPI_TRY(auto id, actors::load_or_create_identity(f.data / "identity.key", name, r));
  f.lpk = id.lpk();
  const fs::path tls_dir = d.dir / "tls";
  if (fs::exists(tls_dir / (name + ".key"))) {
    f.tls = tls_files{tls_dir / (name + "-ca.pem"), tls_dir / (name + ".pem"),
                      tls_dir / (name + ".key")};
  } else {
    COWPI_TRY(f.tls, make_provider_tls(tls_dir, name));
  }
  return f;
}

config::provider_config base_config(const local_deployment& d, config::role role,
                                    const std::string& name, const provider_files& f) {
  auto c = config::defaults_for(role);
  c.name = name;
  c.data_dir = f.data;
  c.identity_key_file = f.data / "identity.key";
  c.admin_socket = f.data / "admin.sock";
  c.tls.certificate = f.tls.node_cert;
  c.tls.key = f.tls.node_key;
  c.logging.level = d.log_level;
  c.logging.format = d.log_format;
  if (d.metrics)
    c.metrics.listen = config::endpoint{d.host, 0};
  if (d.conversation_idle)
    c.timeouts.conversation_idle = *d.conversation_idle;
  c.cluster.nodes = {name};
  c.cluster.self = name;
  return c;
}

expected<void> write_config(const fs::path& path, const config::provider_config& c) {
  const std::string text = config::to_toml(c);
  // Parse it back: the file must be one cowpi-provider accepts.
  COWPI_TRY_VOID(config::parse_provider_config(text, path.string(), path.parent_path()));
  return write_text(path, text);
}

}  // namespace

expected<running_deployment> start_local_deployment(
    const local_deployment& d, const fs::path& binary,
    const std::map<std::string, std::map<std::string, std::string>>& env) {
  crypto::system_rng r;
  running_deployment out;
  auto env_of = [&](const std::string& name) {
    auto it = env.find(name);
    return it == env.end() ? std::map<std::string, std::string>{} : it->second;
  };
  COWPI_TRY(auto router_files, prepare_provider(d, d.router, r));
  // A mirror's files (identity, TLS) are made once, in its first node's folder; the other
  // nodes of a mirror cluster get a copy of its identity key and use its TLS files.
  std::vector<provider_files> mirror_files;
  for (const auto& m : d.mirrors) {
    COWPI_TRY(auto f, prepare_provider(d, d.nodes_of(m).front(), r));
    mirror_files.push_back(std::move(f));
  }
  // Trust: the router trusts every mirror's CA; each mirror trusts the router's CA only.
  std::vector<fs::path> mirror_cas;
  for (const auto& f : mirror_files)
    mirror_cas.push_back(f.tls.ca_cert);
  const fs::path router_trust = d.dir / "tls" / (d.router + "-trusts.pem");
  COWPI_TRY_VOID(write_trust_file(router_trust, mirror_cas));

  std::vector<config::mirror_peer> peers;
  size_t port_slot = 0;
  for (size_t k = 0; k < d.mirrors.size(); ++k) {
    const auto nodes = d.nodes_of(d.mirrors[k]);
    config::mirror_peer peer{d.mirrors[k], {}, mirror_files[k].lpk, {}};
    for (size_t j = 0; j < nodes.size(); ++j) {
      provider_files f = mirror_files[k];
      f.data = d.dir / nodes[j];
      if (j > 0) {
        std::error_code ec;
        fs::create_directories(f.data, ec);
        if (!fs::exists(f.data / "identity.key", ec)
            && !fs::copy_file(mirror_files[k].data / "identity.key", f.data / "identity.key", ec))
          return fail(errc::storage, (f.data / "identity.key").string() + ": " + ec.message());
      }
      auto c = base_config(d, config::role::mirror, d.mirrors[k], f);
      if (nodes.size() > 1) {
        c.cluster.nodes = nodes;
        c.cluster.self = nodes[j];
      }
      c.storage_key_file = f.data / "storage.key";
      c.tls.ca = router_files.tls.ca_cert;
      const uint16_t fixed = port_slot < d.mirror_ports.size() ? d.mirror_ports[port_slot] : 0;
      ++port_slot;
      c.links = config::endpoint{d.host, fixed};
      c.router = config::peer{d.router, router_files.lpk};
      const fs::path path = d.config_path(nodes[j]);
      COWPI_TRY_VOID(write_config(path, c));
      COWPI_TRY(auto p,
                provider_process::start(binary, path, d.log_path(nodes[j]), env_of(nodes[j])));
      c.links.port = p.port("links");
      COWPI_TRY_VOID(write_config(path, c));  // a restart comes back on the same port
      if (nodes.size() > 1)
        peer.nodes.push_back(config::mirror_node{nodes[j], c.links});
      else
        peer.address = c.links;
      out.mirrors.push_back(std::move(p));
    }
    peers.push_back(std::move(peer));
  }

  auto rc = base_config(d, config::role::router, d.router, router_files);
  if (d.retention)
    rc.retention = *d.retention;
  if (d.collect_interval)
    rc.collect_interval = *d.collect_interval;
  if (d.max_setups_per_hour)
    rc.limits.max_setups_per_hour = *d.max_setups_per_hour;
  rc.tls.ca = router_trust;
  rc.clients = config::endpoint{d.host, d.router_port};
  rc.mirrors = peers;
  const fs::path router_path = d.config_path(d.router);
  COWPI_TRY_VOID(write_config(router_path, rc));
  COWPI_TRY(out.router,
            provider_process::start(binary, router_path, d.log_path(d.router), env_of(d.router)));
  rc.clients.port = out.router.port("clients");
  COWPI_TRY_VOID(write_config(router_path, rc));
  out.deployment = config::deployment_for(rc, router_files.lpk);
  COWPI_TRY_VOID(write_text(d.deployment_path(), config::to_toml(out.deployment)));
  return out;
}

expected<provider_process> restart_provider(const local_deployment& d, const std::string& provider,
                                            const fs::path& binary,
                                            const std::map<std::string, std::string>& env) {
  return provider_process::start(binary, d.config_path(provider), d.log_path(provider), env);
}

bool router_ready(const local_deployment& d) {
  auto s =
      admin_call(d.dir / d.router / "admin.sock", {{"get", "status"}}, std::chrono::seconds(2));
  if (!s || !s->contains("sections"))
    return false;
  for (const auto& node : d.mirror_processes()) {
    const auto& sec = (*s)["sections"]["link:" + node];
    if (!sec.is_object() || !sec.value("up", false) || !sec.value("keys", false))
      return false;
  }
  return true;
}

bool wait_router_ready(const local_deployment& d, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (router_ready(d))
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return router_ready(d);
}

}  // namespace cowpi::tools

// SPDX-License-Identifier: Apache-2.0
// Local deployments: files, processes, readiness lines.
#include "local_deployment.hpp"

#include "cowpi/actors/node_keys.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/shard.hpp"

#include "admin_socket.hpp"
#include "certs.hpp"
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// Returns `count` distinct TCP ports free on `host` now: each is bound (port 0, the kernel
// picks) and held until all are known, then released for the providers to listen on.
expected<std::vector<uint16_t>> free_ports(const std::string& host, size_t count) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), "0", &hints, &res); rc != 0 || res == nullptr)
    return fail(errc::unavailable, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  std::string problem;
  for (size_t i = 0; i < count && problem.empty(); ++i) {
    const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      problem = std::strerror(errno);
      break;
    }
    fds.push_back(fd);
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0
        || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      problem = std::strerror(errno);
      break;
    }
    const uint16_t port = a.ss_family == AF_INET6
                              ? ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port)
                              : ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
    ports.push_back(port);
  }
  ::freeaddrinfo(res);
  for (const int fd : fds)
    ::close(fd);
  if (!problem.empty())
    return fail(errc::unavailable, "cannot pick a free port on " + host + ": " + problem);
  return ports;
}

// The addresses of every node of the router cluster of `d`: `router_port` (when fixed) for
// node 1's clients, free ports for the rest.
expected<std::vector<config::router_node_addresses>> router_cluster_addresses(
    const local_deployment& d) {
  const size_t n = d.router_nodes;
  // One spare: a free port equal to the fixed one is dropped.
  COWPI_TRY(auto ports, free_ports(d.host, 2 * n + 1));
  ports.erase(std::remove(ports.begin(), ports.end(), d.router_port), ports.end());
  std::vector<config::router_node_addresses> out;
  for (size_t k = 0; k < n; ++k) {
    config::router_node_addresses a;
    a.clients = config::endpoint{d.host, k == 0 && d.router_port != 0 ? d.router_port : ports[k]};
    a.internal = config::endpoint{d.host, ports[n + k]};
    out.push_back(std::move(a));
  }
  return out;
}

// Copies the identity key of the node whose data directory is `first` into `data` (made if
// missing), unless `data` has one: every node of a cluster holds the provider's key.
expected<void> copy_identity(const fs::path& first, const fs::path& data) {
  std::error_code ec;
  fs::create_directories(data, ec);
  if (!fs::exists(data / "identity.key", ec)
      && !fs::copy_file(first / "identity.key", data / "identity.key", ec))
    return fail(errc::storage, (data / "identity.key").string() + ": " + ec.message());
  return {};
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
  // The router's files (identity, TLS) are made once, in node 1's folder; the other nodes of a
  // router cluster get a copy of its identity key and use its TLS files.
  const auto router_nodes = d.router_processes();
  COWPI_TRY(auto router_files, prepare_provider(d, router_nodes.front(), r));
  // A mirror's files (identity, TLS) are made once, in its first node's folder; the other
  // nodes of a mirror cluster get a copy of its identity key and use its TLS files.
  std::vector<provider_files> mirror_files;
  for (const auto& m : d.mirrors) {
    COWPI_TRY(auto f, prepare_provider(d, d.nodes_of(m).front(), r));
    mirror_files.push_back(std::move(f));
  }
  // Trust: the router trusts every mirror's CA, and in a router cluster its own CA too (the
  // nodes link to one another with the router's certificate); each mirror trusts the router's
  // CA only.
  std::vector<fs::path> router_cas;
  for (const auto& f : mirror_files)
    router_cas.push_back(f.tls.ca_cert);
  if (router_nodes.size() > 1)
    router_cas.push_back(router_files.tls.ca_cert);
  const fs::path router_trust = d.dir / "tls" / (d.router + "-trusts.pem");
  COWPI_TRY_VOID(write_trust_file(router_trust, router_cas));

  std::vector<config::mirror_peer> peers;
  size_t port_slot = 0;
  for (size_t k = 0; k < d.mirrors.size(); ++k) {
    const auto nodes = d.nodes_of(d.mirrors[k]);
    config::mirror_peer peer{d.mirrors[k], {}, mirror_files[k].lpk, {}};
    for (size_t j = 0; j < nodes.size(); ++j) {
      provider_files f = mirror_files[k];
      f.data = d.dir / nodes[j];
      if (j > 0)
        COWPI_TRY_VOID(copy_identity(mirror_files[k].data, f.data));
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

  // Every node's config lists every node's addresses: in a router cluster they are all picked
  // before the first node starts.
  std::vector<config::router_node_addresses> addresses;
  if (router_nodes.size() > 1) {
    COWPI_TRY(addresses, router_cluster_addresses(d));
  }
  config::provider_config first_rc;
  for (size_t k = 0; k < router_nodes.size(); ++k) {
    const std::string& node = router_nodes[k];
    provider_files f = router_files;
    f.data = d.dir / node;
    if (k > 0)
      COWPI_TRY_VOID(copy_identity(router_files.data, f.data));
    auto rc = base_config(d, config::role::router, d.router, f);
    if (d.retention)
      rc.retention = *d.retention;
    if (d.collect_interval)
      rc.collect_interval = *d.collect_interval;
    if (d.max_setups_per_hour)
      rc.limits.max_setups_per_hour = *d.max_setups_per_hour;
    rc.tls.ca = router_trust;
    rc.clients = config::endpoint{d.host, d.router_port};
    rc.mirrors = peers;
    if (router_nodes.size() > 1) {
      rc.clients = addresses[k].clients;
      rc.cluster.nodes = router_nodes;
      rc.cluster.self = node;
      rc.cluster.addresses = addresses;
    }
    const fs::path path = d.config_path(node);
    COWPI_TRY_VOID(write_config(path, rc));
    COWPI_TRY(auto p, provider_process::start(binary, path, d.log_path(node), env_of(node)));
    if (router_nodes.size() == 1) {
      rc.clients.port = p.port("clients");
      COWPI_TRY_VOID(write_config(path, rc));  // a restart comes back on the same port
    }
    if (k == 0) {
      out.router = std::move(p);
      first_rc = std::move(rc);
    } else {
      out.router_nodes.push_back(std::move(p));
    }
  }
  out.deployment = config::deployment_for(first_rc, router_files.lpk);
  COWPI_TRY_VOID(write_text(d.deployment_path(), config::to_toml(out.deployment)));
  return out;
}

expected<provider_process> restart_provider(const local_deployment& d, const std::string& provider,
                                            const fs::path& binary,
                                            const std::map<std::string, std::string>& env) {
  return provider_process::start(binary, d.config_path(provider), d.log_path(provider), env);
}

bool router_ready(const local_deployment& d) {
  const auto routers = d.router_processes();
  const auto mirrors = d.mirror_processes();
  for (size_t k = 0; k < routers.size(); ++k) {
    auto s =
        admin_call(d.dir / routers[k] / "admin.sock", {{"get", "status"}}, std::chrono::seconds(2));
    if (!s || !s->contains("sections"))
      return false;
    const auto& sections = (*s)["sections"];
    for (const auto& node : mirrors) {
      const auto it = sections.find("link:" + node);
      if (it == sections.end() || !it->is_object() || !it->value("up", false))
        return false;
      // Only the router node that manages the mirror node's pool uploads its keys.
      if (protocol::user_owner(routers, node) == k && !it->value("keys", false))
        return false;
    }
    if (routers.size() > 1) {
      const auto it = sections.find("cluster");
      if (it == sections.end() || !it->is_object())
        return false;
      const auto up = it->find("peers_up");
      if (up == it->end() || !up->is_number_integer()
          || up->get<int64_t>() != static_cast<int64_t>(routers.size() - 1))
        return false;
    }
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

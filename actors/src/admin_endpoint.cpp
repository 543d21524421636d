// SPDX-License-Identifier: Apache-2.0
// The admin endpoint: a blocking accept loop on a Unix socket in its own thread, asking named
// actors for their state through scoped_actor requests with timeouts.
#include "admin_endpoint.hpp"

#include "type_ids.hpp"
#include <caf/all.hpp>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace cowpi::actors {

namespace {

using namespace std::chrono_literals;

// Each connection must deliver its request line, and take its answer, within this time.
constexpr auto client_deadline = 2000ms;
// A request line longer than this is refused.
constexpr size_t max_request = 4096;

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

/// Reads up to the first '\n' (or EOF) before `deadline`; nullopt on timeout or error.
std::optional<std::string> read_line(int fd, std::chrono::steady_clock::time_point deadline) {
  std::string line;
  std::array<char, 512> buf{};
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r <= 0) {
      return std::nullopt;
    }
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return std::nullopt;
    }
    if (n == 0) {
      return line;
    }
    line.append(buf.data(), static_cast<size_t>(n));
    if (auto nl = line.find('\n'); nl != std::string::npos) {
      line.resize(nl);
      return line;
    }
    if (line.size() > max_request) {
      return std::nullopt;
    }
  }
}

void write_all(int fd, const std::string& s, std::chrono::steady_clock::time_point deadline) {
  size_t off = 0;
  while (off < s.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      return;
    }
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    off += static_cast<size_t>(n);
  }
}

std::string error_json(const std::string& why) {
  return nlohmann::json{{"ok", false}, {"error", why}}.dump();
}

}  // namespace

expected<std::unique_ptr<admin_endpoint>> admin_endpoint::start(
    caf::actor_system& sys, const std::filesystem::path& socket_path,
    std::chrono::milliseconds section_timeout, std::chrono::milliseconds command_timeout) {
  const std::string p = socket_path.string();
  sockaddr_un addr{};
  if (p.empty() || p.size() >= sizeof(addr.sun_path)) {
    return fail(errc::config, "admin socket path empty or too long for a Unix socket");
  }
  std::error_code ec;
  const auto status = std::filesystem::symlink_status(socket_path, ec);
  if (!ec && std::filesystem::exists(status)) {
    if (!std::filesystem::is_socket(status)) {
      return fail(errc::config, "admin socket path exists and is not a socket");
    }
    std::filesystem::remove(socket_path, ec);  // a stale socket of an earlier run
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return fail(errc::unavailable, std::string("admin socket: ") + std::strerror(errno));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0
      || ::chmod(p.c_str(), 0600) != 0 || ::listen(fd, 16) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return fail(errc::unavailable, "admin socket: " + why);
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    std::filesystem::remove(socket_path, ec);
    return fail(errc::unavailable, "admin socket: " + why);
  }
  return std::unique_ptr<admin_endpoint>(
      new admin_endpoint(sys, socket_path, fd, pipe_fds, section_timeout, command_timeout));
}

admin_endpoint::admin_endpoint(caf::actor_system& sys, std::filesystem::path path, int listen_fd,
                               int stop_fd[2], std::chrono::milliseconds section_timeout,
                               std::chrono::milliseconds command_timeout)
    : sys_(sys),
      path_(std::move(path)),
      listen_fd_(listen_fd),
      stop_read_(stop_fd[0]),
      stop_write_(stop_fd[1]),
      section_timeout_(section_timeout),
      command_timeout_(command_timeout),
      started_(std::chrono::steady_clock::now()) {
  thread_ = std::thread([this] { serve(); });
}

admin_endpoint::~admin_endpoint() {
  stop();
}

void admin_endpoint::stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  const char x = 1;
  (void)::write(stop_write_, &x, 1);
  if (thread_.joinable()) {
    thread_.join();
  }
  ::close(listen_fd_);
  ::close(stop_read_);
  ::close(stop_write_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void admin_endpoint::add_section(std::string name, caf::actor source) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& [n, a] : sections_) {
    if (n == name) {
      a = std::move(source);
      return;
    }
  }
  sections_.emplace_back(std::move(name), std::move(source));
}

void admin_endpoint::set_metrics(const metrics::registry* r) {
  std::lock_guard<std::mutex> g(mu_);
  metrics_ = r;
}

void admin_endpoint::add_command(std::string name, caf::actor handler) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& [n, a] : commands_) {
    if (n == name) {
      a = std::move(handler);
      return;
    }
  }
  commands_.emplace_back(std::move(name), std::move(handler));
}

void admin_endpoint::serve() {
  for (;;) {
    std::array<pollfd, 2> p{pollfd{listen_fd_, POLLIN, 0}, pollfd{stop_read_, POLLIN, 0}};
    if (::poll(p.data(), p.size(), -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("admin: poll failed: {}", std::strerror(errno));
      return;
    }
    if ((p[1].revents & POLLIN) != 0) {
      return;
    }
    if ((p[0].revents & POLLIN) == 0) {
      continue;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    serve_one(fd);
    ::close(fd);
  }
}

void admin_endpoint::serve_one(int fd) {
  auto line = read_line(fd, std::chrono::steady_clock::now() + client_deadline);
  const std::string out = line ? answer(*line) : error_json("no request line in time");
  // A command may have run for up to command_timeout_: the client gets a fresh deadline to
  // take the answer.
  write_all(fd, out + "\n", std::chrono::steady_clock::now() + client_deadline);
}

std::string admin_endpoint::section_json(const caf::actor& source) {
  caf::scoped_actor self{sys_};
  std::string out = nlohmann::json{{"error", "no answer"}}.dump();
  self->request(source, section_timeout_, stats_atom_v)
      .receive(
          [&](const std::string& s) {
            if (nlohmann::json::accept(s)) {
              out = s;
            } else {
              out = nlohmann::json{{"error", "not JSON"}}.dump();
            }
          },
          [&](caf::error& err) {
            out = nlohmann::json{{"error", sys_.render(err)}}.dump();
          });
  return out;
}

std::string admin_endpoint::command_json(const caf::actor& handler,
                                         const std::string& request_line) {
  caf::scoped_actor self{sys_};
  std::string out = error_json("the command did not answer");
  self->request(handler, command_timeout_, command_atom_v, request_line)
      .receive(
          [&](const std::string& s) {
            out = nlohmann::json::accept(s) ? s : error_json("the command's answer is not JSON");
          },
          [&](caf::error& err) { out = error_json("command failed: " + sys_.render(err)); });
  return out;
}

std::string admin_endpoint::answer(const std::string& request_line) {
  auto req = nlohmann::json::parse(request_line, nullptr, false);
  std::vector<std::pair<std::string, caf::actor>> sections;
  std::vector<std::pair<std::string, caf::actor>> commands;
  const metrics::registry* reg = nullptr;
  {
    std::lock_guard<std::mutex> g(mu_);
    sections = sections_;
    commands = commands_;
    reg = metrics_;
  }
  if (!req.is_discarded() && req.is_object() && req.contains("do")) {
    if (!req["do"].is_string()) {
      return error_json("\"do\" must be a string");
    }
    const auto name = req["do"].get<std::string>();
    for (const auto& [n, a] : commands) {
      if (n == name) {
        return command_json(a, request_line);
      }
    }
    return error_json("unknown command: " + name.substr(0, 64));
  }
  if (req.is_discarded() || !req.is_object() || !req.contains("get") || !req["get"].is_string()) {
    return error_json(
        "expected {\"get\": \"status\" | \"sections\" | \"metrics\"} or {\"do\": COMMAND}");
  }
  const auto what = req["get"].get<std::string>();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  if (what == "sections") {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& [name, a] : sections) {
      names.push_back(name);
    }
    nlohmann::json cmds = nlohmann::json::array();
    for (const auto& [name, a] : commands) {
      cmds.push_back(name);
    }
    return nlohmann::json{
        {"ok", true}, {"uptime_s", uptime}, {"sections", names}, {"commands", cmds}}
        .dump();
  }
  if (what == "metrics") {
    if (reg == nullptr)
      return error_json("this node keeps no metrics");
    return nlohmann::json{{"ok", true}, {"uptime_s", uptime}, {"metrics", reg->render()}}.dump();
  }
  if (what != "status") {
    return error_json("unknown request: " + what.substr(0, 64));
  }
  std::optional<std::string> only;
  if (req.contains("section")) {
    if (!req["section"].is_string()) {
      return error_json("\"section\" must be a string");
    }
    only = req["section"].get<std::string>();
  }
  nlohmann::json body = nlohmann::json::object();
  for (const auto& [name, a] : sections) {
    if (only && *only != name) {
      continue;
    }
    body[name] = nlohmann::json::parse(section_json(a));
  }
  if (only && body.empty()) {
    return error_json("unknown section: " + only->substr(0, 64));
  }
  return nlohmann::json{{"ok", true}, {"uptime_s", uptime}, {"sections", std::move(body)}}.dump();
}

}  // namespace cowpi::actors

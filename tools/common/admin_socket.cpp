// SPDX-License-Identifier: Apache-2.0
// Admin socket client: blocking POSIX connect/send/poll with one overall deadline.
#include "admin_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace cowpi::tools {

namespace {

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Closes the descriptor on every path.
struct fd_guard {
  explicit fd_guard(int f) : fd(f) {}
  ~fd_guard() { ::close(fd); }
  int fd;
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
};

}  // namespace

expected<nlohmann::json> admin_call(const std::filesystem::path& socket,
                                    const nlohmann::json& request,
                                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string p = socket.string();
  sockaddr_un addr{};
  if (p.empty() || p.size() >= sizeof(addr.sun_path)) {
    return fail(errc::invalid_argument, "admin socket path empty or too long: " + p);
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return fail(errc::unavailable, std::string("socket: ") + std::strerror(errno));
  }
  fd_guard g{fd};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return fail(errc::unavailable, "cannot reach the admin socket " + p + " ("
                                       + std::strerror(errno) + "): is the daemon running?");
  }
  const std::string line = request.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(errc::unavailable, std::string("admin socket send: ") + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  std::string answer;
  std::array<char, 4096> buf{};
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    const int r = ::poll(&pfd, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return fail(errc::unavailable, "the daemon did not answer on " + p + " in time");
    }
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(errc::unavailable, std::string("admin socket recv: ") + std::strerror(errno));
    }
    if (n == 0) {
      break;
    }
    answer.append(buf.data(), static_cast<size_t>(n));
    if (answer.find('\n') != std::string::npos) {
      break;
    }
  }
  if (auto nl = answer.find('\n'); nl != std::string::npos) {
    answer.resize(nl);
  }
  auto j = nlohmann::json::parse(answer, nullptr, false);
  if (j.is_discarded()) {
    return fail(errc::malformed, "the admin socket's answer is not JSON");
  }
  return j;
}

}  // namespace cowpi::tools

// SPDX-License-Identifier: Apache-2.0
// Outgoing TCP with a deadline (POSIX): CAF 0.17's own connect blocks for the kernel's SYN
// timeout (about two minutes on a blackholed address), which would make an unreachable router
// a hang instead of an error.
#include "tcp_connect.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace cowpi::actors::client_impl {

socket_fd& socket_fd::operator=(socket_fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

socket_fd::~socket_fd() {
  if (fd_ >= 0)
    ::close(fd_);
}

int socket_fd::release() noexcept {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

namespace {

using clock = std::chrono::steady_clock;

std::string errno_text(int e) {
  // strerror is not thread-safe; the GNU strerror_r returns the text it chose.
  char buf[128] = {};
  return std::string(strerror_r(e, buf, sizeof buf));
}

struct addrinfo_deleter {
  void operator()(addrinfo* p) const noexcept { freeaddrinfo(p); }
};

// One non-blocking connect() to `ai`, polled until `deadline`. Returns the socket, or sets
// `why` and returns an invalid one.
socket_fd try_address(const addrinfo& ai, clock::time_point deadline,
                      const std::atomic<bool>& cancelled, std::string& why, bool& timed_out) {
  socket_fd s(
      ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (!s.valid()) {
    why = errno_text(errno);
    return {};
  }
  if (::connect(s.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      why = errno_text(errno);
      return {};
    }
    for (;;) {
      if (cancelled.load()) {
        why = "cancelled";
        return {};
      }
      const auto now = clock::now();
      if (now >= deadline) {
        timed_out = true;
        return {};
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
      pollfd p{s.get(), POLLOUT, 0};
      const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
      if (n < 0 && errno != EINTR) {
        why = errno_text(errno);
        return {};
      }
      if (n > 0)
        break;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0) {
      why = errno_text(err);
      return {};
    }
  }
  int one = 1;
  (void)::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

}  // namespace

expected<socket_fd> tcp_connect(const std::string& host, uint16_t port,
                                std::chrono::milliseconds timeout,
                                const std::atomic<bool>& cancelled, const std::string& what) {
  const auto deadline = clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* raw = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &raw); rc != 0)
    return fail(errc::unavailable, what + " unreachable: " + gai_strerror(rc));
  std::unique_ptr<addrinfo, addrinfo_deleter> list(raw);
  std::string why = "no address";
  bool timed_out = false;
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    socket_fd s = try_address(*ai, deadline, cancelled, why, timed_out);
    if (s.valid())
      return s;
    if (cancelled.load())
      return fail(errc::closed, what + ": connect cancelled");
    if (timed_out)
      break;
  }
  if (timed_out) {
    return fail(errc::unavailable, what + " unreachable: no connection within "
                                       + std::to_string(timeout.count()) + " ms");
  }
  return fail(errc::unavailable, what + " unreachable: " + why);
}

}  // namespace cowpi::actors::client_impl

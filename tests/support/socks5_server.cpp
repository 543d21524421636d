// SPDX-License-Identifier: Apache-2.0
// The test SOCKS5 proxy: blocking reads with a poll() deadline, one client, then a relay.
#include "socks5_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <stdexcept>

namespace cowpi::testing {

namespace {

// Reads exactly `n` bytes, polling so that `stop` is honoured. Returns false on EOF, error,
// stop or after 5 s without the bytes.
bool read_exact(int fd, uint8_t* out, size_t n, const std::atomic<bool>& stop) {
  size_t have = 0;
  int waited_ms = 0;
  while (have < n) {
    if (stop || waited_ms > 5000)
      return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 20);
    if (r == 0) {
      waited_ms += 20;
      continue;
    }
    if (r < 0)
      return false;
    ssize_t got = ::recv(fd, out + have, n - have, 0);
    if (got <= 0)
      return false;
    have += static_cast<size_t>(got);
  }
  return true;
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = ::send(fd, p + off, n - off, MSG_NOSIGNAL);
    if (w <= 0)
      return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

int connect_to(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0)
    return -1;
  int fd = -1;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0)
      continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

}  // namespace

socks5_server::socks5_server(uint8_t reply_code, bool require_auth)
    : reply_code_(reply_code), require_auth_(require_auth) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0
      || ::listen(listen_fd_, 4) != 0)
    throw std::runtime_error("socks5_server: cannot listen on 127.0.0.1");
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

socks5_server::~socks5_server() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::optional<socks5_request> socks5_server::wait_request(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> g(mu_);
  cv_.wait_for(g, timeout, [this] { return request_.has_value(); });
  return request_;
}

void socks5_server::run() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0)
      continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0)
      continue;
    serve(client);
    ::close(client);
    return;  // one client per instance
  }
}

void socks5_server::serve(int client) {
  socks5_request req;
  std::array<uint8_t, 2> head{};
  if (!read_exact(client, head.data(), 2, stop_) || head[0] != 5)
    return;
  req.greeting.assign(head.begin(), head.end());
  std::vector<uint8_t> methods(head[1]);
  if (!read_exact(client, methods.data(), methods.size(), stop_))
    return;
  req.greeting.insert(req.greeting.end(), methods.begin(), methods.end());
  const std::array<uint8_t, 2> choice{5, static_cast<uint8_t>(require_auth_ ? 0xff : 0x00)};
  if (!write_all(client, choice.data(), choice.size()) || require_auth_)
    return;

  std::array<uint8_t, 4> rh{};
  if (!read_exact(client, rh.data(), 4, stop_) || rh[0] != 5 || rh[1] != 1)
    return;
  req.request.assign(rh.begin(), rh.end());
  req.atyp = rh[3];
  std::vector<uint8_t> addr;
  if (rh[3] == 1) {
    addr.resize(4);
  } else if (rh[3] == 4) {
    addr.resize(16);
  } else if (rh[3] == 3) {
    uint8_t n = 0;
    if (!read_exact(client, &n, 1, stop_))
      return;
    req.request.push_back(n);
    addr.resize(n);
  } else {
    return;
  }
  std::array<uint8_t, 2> port{};
  if (!read_exact(client, addr.data(), addr.size(), stop_)
      || !read_exact(client, port.data(), 2, stop_))
    return;
  req.request.insert(req.request.end(), addr.begin(), addr.end());
  req.request.insert(req.request.end(), port.begin(), port.end());
  req.port = static_cast<uint16_t>(port[0] << 8 | port[1]);
  if (rh[3] == 3) {
    req.host.assign(addr.begin(), addr.end());
  } else {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(rh[3] == 1 ? AF_INET : AF_INET6, addr.data(), text, sizeof text);
    req.host = text;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    request_ = req;
  }
  cv_.notify_all();

  int target = reply_code_ == 0 ? connect_to(req.host, req.port) : -1;
  // Bound address 0.0.0.0:0 in the reply, as many proxies send.
  std::array<uint8_t, 10> reply{5, reply_code_ != 0 ? reply_code_ : uint8_t{0}, 0, 1, 0, 0, 0, 0, 0,
                                0};
  if (reply_code_ == 0 && target < 0)
    reply[1] = 5;  // connection refused
  if (!write_all(client, reply.data(), reply.size()) || target < 0) {
    if (target >= 0)
      ::close(target);
    return;
  }
  relay(client, target);
  ::close(target);
}

void socks5_server::relay(int a, int b) {
  std::array<uint8_t, 16384> buf{};
  while (!stop_) {
    std::array<pollfd, 2> p{pollfd{a, POLLIN, 0}, pollfd{b, POLLIN, 0}};
    if (::poll(p.data(), p.size(), 20) <= 0)
      continue;
    for (size_t k = 0; k < 2; ++k) {
      if ((p[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
        continue;
      const int from = k == 0 ? a : b;
      const int to = k == 0 ? b : a;
      ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
      if (n <= 0)
        return;
      if (k == 0)
        up_ += static_cast<size_t>(n);
      if (!write_all(to, buf.data(), static_cast<size_t>(n)))
        return;
    }
  }
}

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// A blocking TCP test client for the router's client port (see test_client.hpp).
#include "test_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <variant>

namespace cowpi::testing {

namespace {

using steady = std::chrono::steady_clock;

int ms_left(steady::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

tcp_conn::tcp_conn(uint16_t port, int rcvbuf) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    return;
  }
  if (rcvbuf > 0) {
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

tcp_conn::~tcp_conn() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool tcp_conn::write_all(byte_view b) {
  size_t off = 0;
  while (off < b.size()) {
    const ssize_t n = ::send(fd_, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

std::optional<bytes> tcp_conn::read_exact(size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  bytes out(n);
  size_t off = 0;
  while (off < n) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r <= 0) {
      return std::nullopt;
    }
    const ssize_t got = ::recv(fd_, out.data() + off, n - off, 0);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return std::nullopt;
    }
    off += static_cast<size_t>(got);
  }
  return out;
}

std::optional<bytes> tcp_conn::read_frame(std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  auto h = read_exact(4, timeout);
  if (!h) {
    return std::nullopt;
  }
  const uint32_t len = (uint32_t{(*h)[0]} << 24) | (uint32_t{(*h)[1]} << 16)
                       | (uint32_t{(*h)[2]} << 8) | uint32_t{(*h)[3]};
  return read_exact(len, std::chrono::milliseconds(ms_left(deadline)));
}

bool tcp_conn::closed_within(std::chrono::milliseconds timeout, size_t* drained) {
  const auto deadline = steady::now() + timeout;
  std::vector<uint8_t> buf(64 * 1024);
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r <= 0) {
      return false;
    }
    const ssize_t got = ::recv(fd_, buf.data(), buf.size(), 0);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return true;  // EOF or reset
    }
    if (drained != nullptr) {
      *drained += static_cast<size_t>(got);
    }
  }
}

void tcp_conn::shutdown_write() {
  (void)::shutdown(fd_, SHUT_WR);
}

test_client::test_client(uint16_t port, const protocol::identity& user, std::string router_id,
                         const protocol::public_key& router_lpk, size_t max_frame, int rcvbuf)
    : conn_(port, rcvbuf), session_(user, std::move(router_id), router_lpk, max_frame) {}

bool test_client::pump(steady::time_point deadline) {
  if (closed_) {
    return false;
  }
  auto payload = conn_.read_frame(std::chrono::milliseconds(ms_left(deadline)));
  if (!payload) {
    // Nothing in time, or the connection ended (then `closed_` tells).
    return false;
  }
  for (auto& ev : session_.on_frame(*payload)) {
    if (std::holds_alternative<protocol::session_ready>(ev)) {
      ready_ = true;
    } else if (auto* m = std::get_if<protocol::router_message>(&ev)) {
      if (auto* r = std::get_if<protocol::response>(&m->frame)) {
        responses_.push_back(std::move(*r));
      } else if (auto* e = std::get_if<protocol::envelope>(&m->frame)) {
        envelopes_.push_back(std::move(*e));
      }
    } else if (auto* err = std::get_if<protocol::router_error>(&ev)) {
      error_ = err->frame;
      error_encrypted_ = err->encrypted;
    } else if (std::holds_alternative<protocol::close_connection>(ev)) {
      closed_ = true;
    }
  }
  return true;
}

bool test_client::start(protocol::hello_mode mode, std::chrono::milliseconds timeout) {
  auto hello = session_.start(mode, rng_);
  if (!hello || !conn_.write_all(*hello)) {
    return false;
  }
  const auto deadline = steady::now() + timeout;
  while (!ready_ && !closed_ && pump(deadline)) {
  }
  return ready_ && !closed_;
}

bool test_client::login(protocol::hello_mode mode, std::chrono::milliseconds timeout) {
  if (!start(mode, timeout)) {
    return false;
  }
  auto r = call(protocol::ping{}, timeout);
  return r && std::holds_alternative<protocol::ok_result>(*r);
}

uint64_t test_client::send(protocol::client_request body) {
  const uint64_t id = next_id_++;
  auto sealed = session_.seal(protocol::client_frame{id, std::move(body)});
  if (!sealed || !conn_.write_all(*sealed)) {
    return 0;
  }
  return id;
}

std::optional<protocol::response_body> test_client::wait_response(
    uint64_t request_id, std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (;;) {
    for (auto it = responses_.begin(); it != responses_.end(); ++it) {
      if (it->request_id == request_id) {
        auto body = std::move(it->body);
        responses_.erase(it);
        return body;
      }
    }
    if (!pump(deadline)) {
      return std::nullopt;
    }
  }
}

std::optional<protocol::response_body> test_client::call(protocol::client_request body,
                                                         std::chrono::milliseconds timeout) {
  const uint64_t id = send(std::move(body));
  if (id == 0) {
    return std::nullopt;
  }
  return wait_response(id, timeout);
}

std::optional<protocol::envelope> test_client::next_envelope(std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  while (envelopes_.empty()) {
    if (!pump(deadline)) {
      return std::nullopt;
    }
  }
  auto e = std::move(envelopes_.front());
  envelopes_.pop_front();
  return e;
}

std::optional<protocol::response> test_client::next_notice(std::chrono::milliseconds timeout) {
  auto body = wait_response(0, timeout);
  if (!body) {
    return std::nullopt;
  }
  return protocol::response{0, std::move(*body)};
}

std::optional<protocol::error_frame> test_client::wait_error(std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  while (!error_ && pump(deadline)) {
  }
  return error_;
}

}  // namespace cowpi::testing

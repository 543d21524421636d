// SPDX-License-Identifier: Apache-2.0
// SOCKS5 CONNECT (RFC 1928, no authentication) as a byte-level state machine.
#include "cowpi/actors/socks5.hpp"

#include <arpa/inet.h>

#include <array>
#include <utility>

namespace cowpi::actors {

namespace {
constexpr uint8_t version = 0x05;
constexpr uint8_t method_none = 0x00;
constexpr uint8_t method_refused = 0xff;
constexpr uint8_t cmd_connect = 0x01;
constexpr uint8_t atyp_ipv4 = 0x01;
constexpr uint8_t atyp_domain = 0x03;
constexpr uint8_t atyp_ipv6 = 0x04;
}  // namespace

std::string_view socks5_reply_text(uint8_t rep) noexcept {
  switch (rep) {
    case 0x00:
      return "succeeded";
    case 0x01:
      return "general SOCKS server failure";
    case 0x02:
      return "connection not allowed by ruleset";
    case 0x03:
      return "network unreachable";
    case 0x04:
      return "host unreachable";
    case 0x05:
      return "connection refused";
    case 0x06:
      return "TTL expired";
    case 0x07:
      return "command not supported";
    case 0x08:
      return "address type not supported";
    default:
      return "unknown reply code";
  }
}

expected<socks5_handshake> socks5_handshake::make(std::string_view host, uint16_t port) {
  if (host.empty())
    return fail(errc::invalid_argument, "SOCKS5: empty target host");
  if (port == 0)
    return fail(errc::invalid_argument, "SOCKS5: target port 0");
  socks5_handshake h;
  bytes& r = h.request_;
  r = {version, cmd_connect, 0x00};
  // An address literal goes as an address; anything else as a name the proxy resolves (so a
  // Tor-style proxy never leaks a DNS lookup from here).
  std::string h_str(host);
  std::array<uint8_t, 16> addr{};
  if (inet_pton(AF_INET, h_str.c_str(), addr.data()) == 1) {
    r.push_back(atyp_ipv4);
    r.insert(r.end(), addr.begin(), addr.begin() + 4);
  } else if (inet_pton(AF_INET6, h_str.c_str(), addr.data()) == 1) {
    r.push_back(atyp_ipv6);
    r.insert(r.end(), addr.begin(), addr.end());
  } else {
    if (host.size() > 255)
      return fail(errc::invalid_argument, "SOCKS5: host name over 255 bytes");
    if (host.find('\0') != std::string_view::npos)
      return fail(errc::invalid_argument, "SOCKS5: NUL in host name");
    r.push_back(atyp_domain);
    r.push_back(static_cast<uint8_t>(host.size()));
    r.insert(r.end(), host.begin(), host.end());
  }
  r.push_back(static_cast<uint8_t>(port >> 8));
  r.push_back(static_cast<uint8_t>(port & 0xff));
  return h;
}

bytes socks5_handshake::greeting() {
  return bytes{version, 0x01, method_none};
}

size_t socks5_handshake::wanted() const noexcept {
  switch (step_) {
    case step::method:
      return 2;
    case step::reply_head:
      return 5;
    case step::reply_tail:
      return tail_;
    case step::done:
    case step::failed:
      return 0;
  }
  return 0;
}

expected<socks5_handshake::outcome> socks5_handshake::failed(errc code, std::string context) {
  step_ = step::failed;
  return fail(code, std::move(context));
}

expected<socks5_handshake::outcome> socks5_handshake::on_read(byte_view in) {
  if (step_ == step::done || step_ == step::failed || in.size() != wanted())
    return fail(errc::bad_state, "SOCKS5: read out of turn");
  outcome out;
  switch (step_) {
    case step::method:
      if (in[0] != version)
        return failed(errc::malformed, "SOCKS5: the proxy is not SOCKS5");
      if (in[1] == method_refused)
        return failed(errc::rejected, "SOCKS5: the proxy wants authentication");
      if (in[1] != method_none)
        return failed(errc::malformed, "SOCKS5: the proxy chose a method not offered");
      step_ = step::reply_head;
      out.write = request_;
      return out;
    case step::reply_head: {
      if (in[0] != version || in[2] != 0x00)
        return failed(errc::malformed, "SOCKS5: bad CONNECT reply");
      if (in[1] != 0x00) {
        return failed(errc::unavailable, "SOCKS5: the proxy could not connect: "
                                             + std::string(socks5_reply_text(in[1])));
      }
      // 5 bytes read: VER REP RSV ATYP and the first byte of BND.ADDR.
      switch (in[3]) {
        case atyp_ipv4:
          tail_ = 4 - 1 + 2;
          break;
        case atyp_ipv6:
          tail_ = 16 - 1 + 2;
          break;
        case atyp_domain:
          tail_ = size_t{in[4]} + 2;
          break;
        default:
          return failed(errc::malformed, "SOCKS5: bad address type in the reply");
      }
      step_ = step::reply_tail;
      return out;
    }
    case step::reply_tail:
      step_ = step::done;
      out.done = true;
      return out;
    case step::done:
    case step::failed:
      break;
  }
  return fail(errc::bad_state, "SOCKS5: read out of turn");
}

}  // namespace cowpi::actors

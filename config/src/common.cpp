// SPDX-License-Identifier: Apache-2.0
// Endpoints (`host:port`) and the conversion of configured peers into a protocol mirror set.
#include "cowpi/config/common.hpp"

#include <algorithm>

namespace cowpi::config {

namespace {

bool is_host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
         || c == '-' || c == '_';
}

bool is_v6_char(char c) noexcept {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':'
         || c == '.';
}

expected<uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5
      || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail(errc::config, "the port must be a decimal number from 0 to 65535");
  }
  unsigned v = 0;
  for (char c : s) {
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) {
    return fail(errc::config, "the port must be a decimal number from 0 to 65535");
  }
  return static_cast<uint16_t>(v);
}

}  // namespace

std::string to_string(const endpoint& e) {
  const bool v6 = e.host.find(':') != std::string::npos;
  std::string s = v6 ? "[" + e.host + "]" : e.host;
  s += ':';
  s += std::to_string(e.port);
  return s;
}

expected<endpoint> parse_endpoint(std::string_view text) {
  endpoint e;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return fail(errc::config, "'[' without a closing ']'");
    }
    const std::string_view host = text.substr(1, close - 1);
    if (host.empty()) {
      return fail(errc::config, "the host is empty");
    }
    if (host.find(':') == std::string_view::npos
        || !std::all_of(host.begin(), host.end(), is_v6_char)) {
      return fail(errc::config, "brackets hold an IPv6 address, e.g. [::1]:7400");
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(errc::config, "expected ':port' after ']'");
    }
    e.host = std::string(host);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(errc::config, "there is no ':port'");
    }
    const std::string_view host = text.substr(0, colon);
    if (host.empty()) {
      return fail(errc::config, "the host is empty");
    }
    if (host.find(':') != std::string_view::npos) {
      return fail(errc::config, "an IPv6 host must be in brackets, e.g. [::1]:7400");
    }
    if (!std::all_of(host.begin(), host.end(), is_host_char)) {
      return fail(errc::config,
                  "the host may hold only letters, digits, '.', '-' and '_' (or be [IPv6])");
    }
    e.host = std::string(host);
    port = text.substr(colon + 1);
  }
  COWPI_TRY(e.port, parse_port(port));
  return e;
}

namespace {

/// Names and public keys of `peers`, sorted by name.
template <class Peer>
protocol::member_list sorted_members(const std::vector<Peer>& peers) {
  protocol::member_list l;
  l.reserve(peers.size());
  for (const auto& p : peers) {
    l.push_back({p.name, p.public_key});
  }
  std::sort(l.begin(), l.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return l;
}

}  // namespace

protocol::member_list to_member_list(const std::vector<peer>& peers) {
  return sorted_members(peers);
}

protocol::member_list to_member_list(const std::vector<mirror_peer>& peers) {
  return sorted_members(peers);
}

std::vector<mirror_node> nodes_of(const mirror_peer& p) {
  if (!p.nodes.empty()) {
    return p.nodes;
  }
  return {mirror_node{p.name, p.address}};
}

std::vector<std::string> node_ids_of(const mirror_peer& p) {
  std::vector<std::string> ids;
  for (const auto& n : nodes_of(p)) {
    ids.push_back(n.id);
  }
  return ids;
}

}  // namespace cowpi::config

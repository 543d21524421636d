// SPDX-License-Identifier: Apache-2.0
// A lying router for the integration tests: cowpi-provider's main run with a delivery filter
// (provider_hooks::deliver). For the user named by COWPI_LIE_USER it swaps the
// COWPI_LIE_MESSAGE-th and the next MESSAGE envelope (counted from 1, per conversation; other
// types pass): that user is shown the two messages in the other order, every other member the
// true order (a reordering fork between two clients).
#include "daemon.hpp"

#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace {

using namespace cowpi;

struct lie {
  lie() {
    if (const char* u = std::getenv("COWPI_LIE_USER"))
      victim = u;
    if (const char* n = std::getenv("COWPI_LIE_MESSAGE"))
      nth = std::strtoull(n, nullptr, 10);
  }
  std::string victim;
  size_t nth = 1;
  std::mutex mu;
  struct conv_state {
    std::set<uint64_t> messages;  // indices of the MESSAGE envelopes seen
    std::optional<protocol::envelope> held;
  };
  std::map<protocol::conv_id, conv_state> convs;
};

lie& the_lie() {
  static lie l;
  return l;
}

std::vector<protocol::envelope> lie_to(const std::string& user, protocol::envelope env) {
  auto& l = the_lie();
  std::vector<protocol::envelope> out;
  if (l.victim.empty() || user != l.victim || env.c.type != protocol::msg_type::message) {
    out.push_back(std::move(env));
    return out;
  }
  std::lock_guard<std::mutex> lock(l.mu);
  auto& cs = l.convs[env.conv];
  cs.messages.insert(env.index);
  const auto rank =
      static_cast<size_t>(std::distance(cs.messages.begin(), cs.messages.find(env.index))) + 1;
  if (rank == l.nth) {
    cs.held = std::move(env);  // sent after the next message, under its index
    return out;
  }
  if (rank != l.nth + 1 || !cs.held) {
    out.push_back(std::move(env));
    return out;
  }
  protocol::envelope first = std::move(env);
  protocol::envelope second = std::move(*cs.held);
  cs.held.reset();
  std::swap(first.index, second.index);
  out.push_back(std::move(first));
  out.push_back(std::move(second));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  return cowpi::tools::run_provider(argc, argv, cowpi::actors::provider_hooks{lie_to});
}

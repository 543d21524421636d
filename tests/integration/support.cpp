// SPDX-License-Identifier: Apache-2.0
// Integration-test support functions.
#include "support.hpp"

#include "admin_socket.hpp"
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace cowpi::testing {

nlohmann::json admin_request(const std::filesystem::path& socket, const nlohmann::json& req) {
  auto answer = cowpi::tools::admin_call(socket, req, std::chrono::seconds(2));
  if (!answer)
    return {{"error", answer.error().message()}};
  return *answer;
}

nlohmann::json status_section(const std::filesystem::path& socket, const std::string& section) {
  auto s = admin_request(socket, {{"get", "status"}, {"section", section}});
  if (!s.contains("sections") || !s["sections"].contains(section))
    return nullptr;
  return s["sections"][section];
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace cowpi::testing

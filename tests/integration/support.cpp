// SPDX-License-Identifier: Apache-2.0
// Integration-test support functions.
#include "support.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace cowpi::testing {

nlohmann::json admin_request(const std::filesystem::path& socket, const nlohmann::json& req) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return {{"error", "socket"}};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {{"error", "connect"}};
  }
  const std::string line = req.dump() + "\n";
  (void)::write(fd, line.data(), line.size());
  std::string answer;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0)
      break;
    answer.append(buf, static_cast<size_t>(n));
    if (answer.find('\n') != std::string::npos)
      break;
  }
  ::close(fd);
  auto j = nlohmann::json::parse(answer, nullptr, false);
  if (j.is_discarded())
    return {{"error", "not json"}, {"raw", answer}};
  return j;
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

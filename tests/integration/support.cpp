// SPDX-License-Identifier: Apache-2.0
// Integration-test support functions.
#include "support.hpp"

#include "admin_socket.hpp"
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
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

run_result admin(const std::filesystem::path& config, const std::string& args) {
  const auto err_file = std::filesystem::temp_directory_path()
                        / ("cowpi-admin-test-" + std::to_string(::getpid()) + ".stderr");
  const std::string cmd = std::string(COWPI_ADMIN_BINARY) + " --config '" + config.string() + "' "
                          + args + " 2>'" + err_file.string() + "'";
  run_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr)
    return r;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, n);
  const int st = ::pclose(p);
  r.exit = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  std::error_code ec;
  std::filesystem::remove(err_file, ec);
  return r;
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

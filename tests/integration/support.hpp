// SPDX-License-Identifier: Apache-2.0
// Integration-test support: a local deployment of real provider processes in a temp dir, and
// a client of the admin socket.
#pragma once

#include "local_deployment.hpp"
#include "temp_dir.hpp"
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace cowpi::testing {

/// The cowpi-provider binary of this build.
inline std::filesystem::path provider_binary() {
  return std::filesystem::path(COWPI_BINARY_DIR) / "tools" / "cowpi-provider";
}

/// Sends one JSON request line to a provider's admin socket; returns its answer (or a JSON
/// object {"error": ...} when the socket cannot be reached).
nlohmann::json admin_request(const std::filesystem::path& socket, const nlohmann::json& req);

/// One section of a provider's live status (`{"get":"status","section":NAME}` on its admin
/// socket); null when the socket does not answer or has no such section.
nlohmann::json status_section(const std::filesystem::path& socket, const std::string& section);

/// What a tool run printed and how it ended.
struct run_result {
  int exit = -1;
  std::string out;
  std::string err;
  nlohmann::json j() const { return nlohmann::json::parse(out, nullptr, false); }
};

/// Runs `cowpi-admin --config CONFIG ARGS` (ARGS already shell-safe: temp paths have no spaces
/// or quotes) and waits for it.
run_result admin(const std::filesystem::path& config, const std::string& args);

/// Polls `pred` every 20 ms until it is true or `timeout` passes; returns its last value.
/// (Readiness by condition, never a fixed sleep.)
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// The client side of a provider's admin socket: one JSON request line out, one JSON answer
// line back (docs/admin.md, "Admin socket protocol").
#pragma once

#include "cowpi/protocol/expected.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <string>

namespace cowpi::tools {

/// Sends `request` to the Unix socket at `socket` and returns the parsed answer. Fails with
/// `errc::unavailable` when nothing listens there (the daemon is not running) or the answer
/// does not come within `timeout`, and `errc::malformed` when the answer is not JSON. Never
/// throws.
[[nodiscard]] expected<nlohmann::json> admin_call(const std::filesystem::path& socket,
                                                  const nlohmann::json& request,
                                                  std::chrono::milliseconds timeout);

}  // namespace cowpi::tools

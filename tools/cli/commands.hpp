// SPDX-License-Identifier: Apache-2.0
// The cowpi subcommands. Each one opens the user's store at `--home` (client_runtime::load),
// connects when it needs the router, does its work, syncs briefly so acknowledgements and
// receipts go out, and closes. A command returns one JSON object (what `--json` prints) or a
// `cli_error` that says what went wrong and what to do about it.
#pragma once

#include "cowpi/actors/client_runtime.hpp"
#include "cowpi/protocol/expected.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::cli {

/// The options every subcommand takes.
struct global_options {
  /// The user's folder: deployment.toml, the store and its key.
  std::filesystem::path home;
  bool json = false;
  std::optional<actors::socks5_proxy> proxy;
  /// Bound on connecting, on each request and on a sync.
  std::chrono::milliseconds timeout{10000};
};

/// A failure as the user sees it: what happened, and what to do (may be empty).
struct cli_error {
  std::string message;
  std::string hint;
};

using result = expected<nlohmann::json, cli_error>;

/// Parses `socks5://HOST:PORT` (or `HOST:PORT`).
expected<actors::socks5_proxy, cli_error> parse_proxy(const std::string& text);

result cmd_init(const global_options& g, const std::filesystem::path& deployment,
                const std::string& id);
result cmd_register(const global_options& g);
result cmd_create(const global_options& g, std::vector<std::string> ids,
                  protocol::block_mode mode);
result cmd_send(const global_options& g, const std::string& conv, const std::string& text);
/// `op` is "add", "remove" or "leave" (`ids` empty).
result cmd_update(const global_options& g, const std::string& op, const std::string& conv,
                  std::vector<std::string> ids);
result cmd_sync(const global_options& g);
result cmd_log(const global_options& g, const std::string& conv);
result cmd_conversations(const global_options& g);

/// The interactive chat: prints entries as they arrive and sends each line read from stdin
/// until `/quit` or end of input. Returns the exit code.
int cmd_chat(const global_options& g, const std::string& conv);

/// Prints a command's result for a person.
void print_text(const std::string& command, const nlohmann::json& out);

}  // namespace cowpi::cli

// SPDX-License-Identifier: Apache-2.0
// The provider daemon's log lines: text or JSON (`[logging] format`, `--log-format`), with
// conversation ids only when `logging.ids` allows them (docs/configuration.md).
#pragma once

#include "cowpi/config/provider_config.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace cowpi::tools {

/// A log message split as the daemon writes them: "component[ subject]: event".
struct log_fields {
  /// "link", "queues", "conversation", ...; "provider" when the message has no prefix.
  std::string component;
  /// The second word of the prefix: a peer provider for "link", a conversation for
  /// "conversation"; often empty.
  std::string subject;
  std::string event;
};

/// Splits `message`. A prefix is one or two words of [A-Za-z0-9._-] before the first ": ";
/// anything else is an event of the component "provider".
[[nodiscard]] log_fields split_log_message(std::string_view message);

/// How lines are written.
struct log_style {
  config::log_format format = config::log_format::text;
  /// Whether a conversation's id may appear.
  bool ids = false;
  /// The provider's name.
  std::string node;
};

/// One line, without its newline. `level` is spdlog's name ("info", "warning", ...). Text:
/// "YYYY-MM-DD HH:MM:SS.mmm LEVEL [node] component[ subject]: event" (UTC); JSON: an object
/// with time, level, node, component, event and, where they apply, peer, conv, subject.
[[nodiscard]] std::string render_log_line(const log_style& style,
                                          std::chrono::system_clock::time_point time,
                                          std::string_view level, std::string_view message);

/// Makes spdlog's default logger write `cfg.logging` (its file or stderr, level, format).
void install_provider_logger(const config::provider_config& cfg);

}  // namespace cowpi::tools

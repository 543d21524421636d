// SPDX-License-Identifier: Apache-2.0
#include "log_lines.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <utility>

namespace cowpi::tools {
namespace {

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
         || c == '_' || c == '-';
}

bool is_word(std::string_view w) {
  if (w.empty())
    return false;
  for (char c : w)
    if (!word_char(c))
      return false;
  return true;
}

// "2026-12-05T08:01:02.345Z" (iso) or "2026-12-05 08:01:02.345", UTC.
std::string utc_time(std::chrono::system_clock::time_point t, bool iso) {
  const auto since = t.time_since_epoch();
  const auto secs = std::chrono::floor<std::chrono::seconds>(since);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
  const auto tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf,
                iso ? "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" : "%04d-%02d-%02d %02d:%02d:%02d.%03d",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms));
  return buf;
}

spdlog::level::level_enum level_of(config::log_level l) {
  using L = config::log_level;
  switch (l) {
    case L::trace:
      return spdlog::level::trace;
    case L::debug:
      return spdlog::level::debug;
    case L::info:
      return spdlog::level::info;
    case L::warn:
      return spdlog::level::warn;
    case L::error:
      return spdlog::level::err;
    case L::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

class line_formatter final : public spdlog::formatter {
public:
  explicit line_formatter(log_style style) : style_(std::move(style)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line =
        render_log_line(style_, msg.time, std::string_view(level.data(), level.size()),
                        std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<line_formatter>(style_);
  }

private:
  log_style style_;
};

}  // namespace

log_fields split_log_message(std::string_view message) {
  log_fields f;
  const size_t colon = message.find(": ");
  if (colon != std::string_view::npos) {
    const std::string_view head = message.substr(0, colon);
    const size_t space = head.find(' ');
    const std::string_view first = head.substr(0, space);
    const std::string_view second =
        space == std::string_view::npos ? std::string_view() : head.substr(space + 1);
    if (is_word(first) && (space == std::string_view::npos || is_word(second))) {
      f.component = first;
      f.subject = second;
      f.event = message.substr(colon + 2);
      return f;
    }
  }
  f.component = "provider";
  f.event = message;
  return f;
}

std::string render_log_line(const log_style& style, std::chrono::system_clock::time_point time,
                            std::string_view level, std::string_view message) {
  log_fields f = split_log_message(message);
  // A conversation's id appears only when the operator allows it.
  if (f.component == "conversation" && !style.ids)
    f.subject.clear();
  if (style.format == config::log_format::text) {
    std::string out = utc_time(time, false);
    out += ' ';
    out += level;
    out += " [";
    out += style.node;
    out += "] ";
    out += f.component;
    if (!f.subject.empty()) {
      out += ' ';
      out += f.subject;
    }
    out += ": ";
    out += f.event;
    return out;
  }
  nlohmann::ordered_json j;
  j["time"] = utc_time(time, true);
  j["level"] = level;
  j["node"] = style.node;
  j["component"] = f.component;
  if (!f.subject.empty()) {
    const char* key = f.component == "link"           ? "peer"
                      : f.component == "conversation" ? "conv"
                                                      : "subject";
    j[key] = f.subject;
  }
  j["event"] = f.event;
  // Bytes that are not UTF-8 become U+FFFD rather than an exception.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void install_provider_logger(const config::provider_config& cfg) {
  std::shared_ptr<spdlog::logger> logger;
  if (cfg.logging.file.empty()) {
    logger = spdlog::stderr_logger_mt("cowpi");
  } else {
    logger = spdlog::basic_logger_mt("cowpi", cfg.logging.file.string());
  }
  logger->set_formatter(
      std::make_unique<line_formatter>(log_style{cfg.logging.format, cfg.logging.ids, cfg.name}));
  logger->set_level(level_of(cfg.logging.level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace cowpi::tools

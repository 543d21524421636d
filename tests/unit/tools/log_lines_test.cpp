// SPDX-License-Identifier: Apache-2.0
// The provider's log lines: the split into component and event, the JSON object, and
// conversation ids only when the operator allows them.
#include "log_lines.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace cowpi::tools {
namespace {

// 2026-12-05 08:01:02.345 UTC.
const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796457662345));

log_style json(bool ids = false) {
  return log_style{config::log_format::json, ids, "router"};
}

TEST(log_lines, splits_component_subject_and_event) {
  auto f = split_log_message("link mirror-a: keys in the directory");
  EXPECT_EQ(f.component, "link");
  EXPECT_EQ(f.subject, "mirror-a");
  EXPECT_EQ(f.event, "keys in the directory");
  f = split_log_message("queues: cannot read cursors: io error");
  EXPECT_EQ(f.component, "queues");
  EXPECT_EQ(f.subject, "");
  EXPECT_EQ(f.event, "cannot read cursors: io error");
  // No prefix of one or two plain words: the whole text is the provider's event.
  for (const char* m : {"ready", "shutting down on signal 15", "a b c: d", ": x", "x{y}: z"}) {
    f = split_log_message(m);
    EXPECT_EQ(f.component, "provider") << m;
    EXPECT_EQ(f.event, m);
  }
}

TEST(log_lines, a_json_line_is_one_object_with_the_documented_fields) {
  const std::string line = render_log_line(json(), when, "info", "link mirror-a: up");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("time"), "2026-12-05T08:01:02.345Z");
  EXPECT_EQ(j.at("level"), "info");
  EXPECT_EQ(j.at("node"), "router");
  EXPECT_EQ(j.at("component"), "link");
  EXPECT_EQ(j.at("peer"), "mirror-a");
  EXPECT_EQ(j.at("event"), "up");
  EXPECT_EQ(j.size(), 6u);
  EXPECT_EQ(line.rfind("{\"time\":", 0), 0u) << "time comes first: " << line;
}

TEST(log_lines, quotes_newlines_and_bad_utf8_stay_inside_one_valid_line) {
  const std::string nasty = std::string("mirror: unexpected \"x\"\n{\"level\":\"fake\"} \xff\xfe");
  const std::string line = render_log_line(json(), when, "warning", nasty);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("level"), "warning");
  EXPECT_EQ(j.at("component"), "mirror");
  EXPECT_NE(j.at("event").get<std::string>().find("{\"level\":\"fake\"}"), std::string::npos);
}

TEST(log_lines, a_conversation_id_appears_only_when_ids_are_on) {
  const char* m = "conversation 0a1b2c3d: stopped: mirror-a disagrees (operator alarm)";
  auto off = nlohmann::json::parse(render_log_line(json(false), when, "error", m));
  EXPECT_EQ(off.at("component"), "conversation");
  EXPECT_FALSE(off.contains("conv"));
  EXPECT_EQ(off.dump().find("0a1b2c3d"), std::string::npos);
  auto on = nlohmann::json::parse(render_log_line(json(true), when, "error", m));
  EXPECT_EQ(on.at("conv"), "0a1b2c3d");
  // The text format follows the same rule.
  const log_style text_off{config::log_format::text, false, "router"};
  const log_style text_on{config::log_format::text, true, "router"};
  EXPECT_EQ(render_log_line(text_off, when, "error", m),
            "2026-12-05 08:01:02.345 error [router] conversation: stopped: mirror-a disagrees "
            "(operator alarm)");
  EXPECT_EQ(render_log_line(text_on, when, "error", m),
            "2026-12-05 08:01:02.345 error [router] conversation 0a1b2c3d: stopped: mirror-a "
            "disagrees (operator alarm)");
}

}  // namespace
}  // namespace cowpi::tools

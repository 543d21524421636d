// SPDX-License-Identifier: Apache-2.0
// How the cowpi CLI shows protocol values: as JSON (`--json`, one object per command) and as
// text lines for a person. The JSON names are documented in docs/cli.md.
#pragma once

#include "cowpi/actors/client_runtime.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace cowpi::cli {

/// An accepted entry as JSON: conv, index, type, author, aseq, parent, own, void, t (the
/// transcript hash, hex), and per type text (MESSAGE), members/adds/removes/safety_number
/// (SETUP, UPDATE) or receipt (RECEIPT).
nlohmann::json entry_json(const protocol::accepted_entry& e);
/// A transcript line: `entry_json` plus "delivery" (MESSAGE: [{member, state}]) and
/// "written_before_seeing" ({first, last}) when the author had not seen some entries.
nlohmann::json line_json(const actors::transcript_line& l);
nlohmann::json alarm_json(const protocol::alarm& a);
nlohmann::json conversation_json(const actors::conversation_info& c);

/// One line for a person, e.g. "#4 bob: hello" or "#6 alice added carol (members: ...)".
/// `self` marks our own entries ("alice (you)").
std::string entry_text(const nlohmann::json& entry, const std::string& self);
/// `entry_text` plus the delivery state of a MESSAGE, e.g. "  [bob: read, carol: received]".
std::string line_text(const nlohmann::json& line, const std::string& self);
std::string alarm_text(const nlohmann::json& alarm);

/// The ids of a member list.
nlohmann::json member_ids(const protocol::member_list& l);
/// "a, b, c".
std::string join(const nlohmann::json& ids);

}  // namespace cowpi::cli

// SPDX-License-Identifier: Apache-2.0
// JSON and text views of entries, transcripts, alarms and conversations.
#include "render.hpp"

#include <sstream>

namespace cowpi::cli {

using nlohmann::json;

json member_ids(const protocol::member_list& l) {
  json a = json::array();
  for (const auto& m : l)
    a.push_back(m.id);
  return a;
}

std::string join(const json& ids) {
  std::string s;
  for (const auto& id : ids) {
    if (!s.empty())
      s += ", ";
    s += id.get<std::string>();
  }
  return s;
}

json entry_json(const protocol::accepted_entry& e) {
  json j;
  j["conv"] = actors::conv_to_hex(e.conv);
  j["index"] = e.index;
  j["type"] = std::string(protocol::to_string(e.type));
  j["author"] = e.author;
  j["aseq"] = e.aseq;
  j["parent"] = e.parent ? json(*e.parent) : json(nullptr);
  j["own"] = e.own;
  j["void"] = e.is_void;
  j["t"] = to_hex(e.t);
  switch (e.type) {
    case protocol::msg_type::message:
      if (!e.is_void)
        j["text"] = std::string(e.plaintext.begin(), e.plaintext.end());
      break;
    case protocol::msg_type::setup:
    case protocol::msg_type::update:
      j["members"] = member_ids(e.members);
      j["adds"] = member_ids(e.adds);
      j["removes"] = e.removes;
      j["safety_number"] = e.safety_number;
      break;
    case protocol::msg_type::receipt:
      j["receipt"] = {{"floor_before", e.floor_before},
                      {"upto", e.parent ? json(*e.parent) : json(nullptr)},
                      {"voids", e.voids}};
      break;
  }
  return j;
}

json line_json(const actors::transcript_line& l) {
  json j = entry_json(l.entry);
  if (l.entry.type == protocol::msg_type::message) {
    json d = json::array();
    for (const auto& m : l.delivery.members)
      d.push_back({{"member", m.member}, {"state", std::string(actors::to_string(m.state))}});
    j["delivery"] = d;
  }
  if (l.delivery.written_before_seeing) {
    j["written_before_seeing"] = {{"first", l.delivery.written_before_seeing->first},
                                  {"last", l.delivery.written_before_seeing->last}};
  }
  return j;
}

json alarm_json(const protocol::alarm& a) {
  return {{"kind", std::string(protocol::to_string(a.kind))},
          {"conv", actors::conv_to_hex(a.conv)},
          {"index", a.index},
          {"party", a.party},
          {"evidence", a.evidence},
          {"halted", a.halted}};
}

json conversation_json(const actors::conversation_info& c) {
  return {{"conv", actors::conv_to_hex(c.conv)},
          {"status", std::string(actors::to_string(c.status))},
          {"members", member_ids(c.members)},
          {"safety_number", c.safety_number},
          {"mode", c.status == actors::conversation_status::removed
                       ? json(nullptr)
                       : json(std::string(protocol::to_string(c.mode)))},
          {"next", c.next},
          {"halt_index", c.halt_index},
          {"outbox", c.outbox}};
}

namespace {

std::string who(const json& e, const std::string& self) {
  const std::string a = e.value("author", std::string());
  return a == self ? a + " (you)" : a;
}

}  // namespace

std::string entry_text(const json& e, const std::string& self) {
  std::ostringstream o;
  o << "#" << e.value("index", uint64_t{0}) << " ";
  const std::string type = e.value("type", std::string());
  if (type == "MESSAGE") {
    o << who(e, self) << ": ";
    if (e.value("void", false))
      o << "(could not be read: the author's block to us failed)";
    else
      o << e.value("text", std::string());
  } else if (type == "SETUP") {
    o << who(e, self) << " created the conversation with " << join(e["members"]);
  } else if (type == "UPDATE") {
    o << who(e, self);
    if (!e["adds"].empty())
      o << " added " << join(e["adds"]);
    if (!e["removes"].empty()) {
      const auto& r = e["removes"];
      if (r.size() == 1 && r[0] == e["author"])
        o << (e["adds"].empty() ? "" : ";") << " left";
      else
        o << (e["adds"].empty() ? "" : ";") << " removed " << join(r);
    }
    o << " (members: " << join(e["members"]) << ")";
  } else if (type == "RECEIPT") {
    o << who(e, self) << " read up to #" << e["receipt"].value("upto", uint64_t{0});
    if (!e["receipt"]["voids"].empty())
      o << " (could not read " << e["receipt"]["voids"].dump() << ")";
  } else {
    o << who(e, self) << ": " << type;
  }
  return o.str();
}

std::string line_text(const json& l, const std::string& self) {
  std::string s = entry_text(l, self);
  if (l.contains("delivery") && !l["delivery"].empty()) {
    s += "  [";
    bool first = true;
    for (const auto& d : l["delivery"]) {
      if (!first)
        s += ", ";
      first = false;
      s += d.value("member", std::string()) + ": " + d.value("state", std::string());
    }
    s += "]";
  }
  if (l.contains("written_before_seeing")) {
    const auto& w = l["written_before_seeing"];
    const auto first = w.value("first", uint64_t{0});
    const auto last = w.value("last", uint64_t{0});
    s += "  (written before seeing #" + std::to_string(first)
         + (last == first ? std::string() : "-#" + std::to_string(last)) + ")";
  }
  return s;
}

std::string alarm_text(const json& a) {
  return "ALARM " + a.value("kind", std::string()) + " in " + a.value("conv", std::string())
         + " at #" + std::to_string(a.value("index", uint64_t{0})) + " pointing at "
         + a.value("party", std::string()) + ": " + a.value("evidence", std::string())
         + (a.value("halted", false) ? " (conversation halted)" : "");
}

}  // namespace cowpi::cli

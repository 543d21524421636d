// SPDX-License-Identifier: Apache-2.0
// The JSON spelling of protocol values in the vector files (see json_util.hpp).
#include "json_util.hpp"

namespace cowpi::vectors {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): vector tool

bytes unhex(const json& j) {
  auto b = from_hex(j.get<std::string>());
  return b ? *b : bytes{};
}

std::optional<std::string> mismatch(const std::string& what, const json& want, const json& got) {
  if (want == got)
    return std::nullopt;
  return what + ": expected " + want.dump() + ", got " + got.dump();
}

json members_json(const member_list& l) {
  json a = json::array();
  for (const auto& m : l)
    a.push_back({{"id", m.id}, {"lpk", hex(m.lpk)}});
  return a;
}
member_list members_from(const json& a) {
  member_list l;
  for (const auto& m : a)
    l.push_back(member{m.at("id"), unhex_array<32>(m.at("lpk"))});
  return l;
}

json ref_json(const key_ref& r) {
  return {{"kind", static_cast<int>(r.kind)}, {"id", r.id}, {"pub", hex(r.pub)}};
}
key_ref ref_from(const json& j) {
  return key_ref{static_cast<key_kind>(j.at("kind").get<int>()), j.at("id").get<uint64_t>(),
                 unhex_array<32>(j.at("pub"))};
}

json common_json(const common& c) {
  json j = {{"version", c.version},
            {"conv", hex(c.conv)},
            {"type", static_cast<int>(c.type)},
            {"author", c.author},
            {"aseq", c.aseq}};
  if (c.type != msg_type::setup) {
    j["parent"] = c.parent;
    j["parent_hash"] = hex(c.parent_hash);
  }
  if (c.type == msg_type::message) {
    j["body_len"] = c.body_len;
    j["body_hash"] = hex(c.body_hash);
    j["body_commit"] = hex(c.body_commit);
  }
  if (c.type == msg_type::receipt)
    j["voids"] = c.voids;
  if (c.type == msg_type::setup || c.type == msg_type::update) {
    j["ms"] = members_json(c.ms);
    j["members"] = members_json(c.members);
  }
  if (c.type == msg_type::update) {
    j["adds"] = members_json(c.adds);
    j["removes"] = c.removes;
  }
  return j;
}

common common_from(const json& j) {
  common c;
  c.version = j.at("version").get<uint8_t>();
  c.conv = unhex_array<16>(j.at("conv"));
  c.type = static_cast<msg_type>(j.at("type").get<int>());
  c.author = j.at("author");
  c.aseq = j.at("aseq");
  if (j.contains("parent")) {
    c.parent = j.at("parent");
    c.parent_hash = unhex_array<32>(j.at("parent_hash"));
  }
  if (j.contains("body_len")) {
    c.body_len = j.at("body_len");
    c.body_hash = unhex_array<32>(j.at("body_hash"));
    c.body_commit = unhex_array<32>(j.at("body_commit"));
  }
  if (j.contains("voids"))
    c.voids = j.at("voids").get<std::vector<uint64_t>>();
  if (j.contains("ms"))
    c.ms = members_from(j.at("ms"));
  if (j.contains("members"))
    c.members = members_from(j.at("members"));
  if (j.contains("adds"))
    c.adds = members_from(j.at("adds"));
  if (j.contains("removes"))
    c.removes = j.at("removes").get<std::vector<std::string>>();
  return c;
}

}  // namespace cowpi::vectors

// SPDX-License-Identifier: Apache-2.0
// Conversation state transitions (docs/design.md §3.1, §3.2 Recipients, §3.6).
#include "cowpi/protocol/state.hpp"

#include "cowpi/protocol/encoding.hpp"

#include <algorithm>

namespace cowpi::protocol {

namespace {
std::vector<std::string> ids_of(const member_list& l) {
  std::vector<std::string> out;
  out.reserve(l.size());
  for (const auto& m : l)
    out.push_back(m.id);
  return out;
}

void erase_id(std::vector<std::string>& v, const std::string& id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it != v.end() && *it == id)
    v.erase(it);
}

void insert_id(std::vector<std::string>& v, const std::string& id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it == v.end() || *it != id)
    v.insert(it, id);
}
}  // namespace

std::vector<std::string> recipients(const conv_state* s, const common& c) {
  std::vector<std::string> r;
  switch (c.type) {
    case msg_type::setup:
      r = ids_of(c.members);
      break;
    case msg_type::message:
    case msg_type::receipt:
      if (s != nullptr)
        r = ids_of(s->members);
      break;
    case msg_type::update:
      if (s != nullptr)
        r = ids_of(s->members);
      for (const auto& a : c.adds)
        insert_id(r, a.id);
      break;
  }
  erase_id(r, c.author);
  return r;
}

std::vector<std::string> slots(const conv_state* s, const common& c) {
  auto r = recipients(s, c);
  insert_id(r, c.author);
  return r;
}

member_list apply_ops(const member_list& members, const member_list& adds,
                      const std::vector<std::string>& removes) {
  member_list out;
  out.reserve(members.size() + adds.size());
  for (const auto& m : members)
    if (!std::binary_search(removes.begin(), removes.end(), m.id))
      out.push_back(m);
  for (const auto& a : adds)
    out.push_back(a);
  std::sort(out.begin(), out.end(), [](const member& a, const member& b) { return a.id < b.id; });
  return out;
}

conv_state setup_state(const common& c, uint64_t i, const hash32& d) {
  conv_state n;
  n.conv = c.conv;
  n.version = c.version;
  n.ms = c.ms;
  n.members = c.members;
  n.last_update = i;
  for (const auto& m : c.members) {
    n.aseq_last[m.id] = aseq_value{true, 0};
    n.receipt_floor[m.id] = floor_value{true, -1};
  }
  n.t[i] = transcript_hash(c.conv, i, t_genesis, d);
  n.aseq_last[c.author] = aseq_value{true, c.aseq};
  n.next = i + 1;
  return n;
}

void advance_in_place(conv_state& n, const common& c, uint64_t i, const hash32& d) {
  COWPI_ASSERT(c.type != msg_type::setup);
  const hash32* prev = n.t_at(i - 1);
  COWPI_ASSERT(prev != nullptr);
  const hash32 t_i = transcript_hash(n.conv, i, *prev, d);
  n.t[i] = t_i;
  if (c.type == msg_type::receipt)
    n.receipt_floor[c.author] = floor_value{true, static_cast<int64_t>(c.parent)};
  if (c.type == msg_type::update) {
    n.members = c.members;
    n.last_update = i;
    for (const auto& r : c.removes)
      n.receipt_floor.erase(r);
    for (const auto& a : c.adds) {
      n.receipt_floor[a.id] = floor_value{true, static_cast<int64_t>(i) - 1};
      // A re-added member continues its aseq; a joiner cannot tell a new member from a
      // re-added one it never saw (§3.3 "Unknown values").
      if (n.aseq_last.find(a.id) == n.aseq_last.end())
        n.aseq_last[a.id] = n.joiner ? aseq_value{false, 0} : aseq_value{true, 0};
    }
    // T_j is needed only for j >= last_update.
    n.t.erase(n.t.begin(), n.t.lower_bound(i));
  }
  n.aseq_last[c.author] = aseq_value{true, c.aseq};
  n.next = i + 1;
}

conv_state advance(const conv_state* s, const common& c, uint64_t i, const hash32& d) {
  if (c.type == msg_type::setup)
    return setup_state(c, i, d);
  COWPI_ASSERT(s != nullptr);
  conv_state n = *s;
  advance_in_place(n, c, i, d);
  return n;
}

conv_state join_state(const common& c, uint64_t u, const hash32& t_prev, const hash32& d,
                      const std::string& self, uint64_t own_aseq) {
  conv_state n;
  n.conv = c.conv;
  n.version = c.version;
  n.ms = c.ms;
  n.members = c.members;
  n.last_update = u;
  n.joiner = true;
  for (const auto& m : c.members) {
    n.aseq_last[m.id] = aseq_value{false, 0};
    n.receipt_floor[m.id] = floor_value{false, -1};
  }
  n.aseq_last[self] = aseq_value{true, own_aseq};
  n.aseq_last[c.author] = aseq_value{true, c.aseq};
  for (const auto& a : c.adds)
    n.receipt_floor[a.id] = floor_value{true, static_cast<int64_t>(u) - 1};
  n.t[u] = transcript_hash(c.conv, u, t_prev, d);
  n.next = u + 1;
  return n;
}

}  // namespace cowpi::protocol

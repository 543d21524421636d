// SPDX-License-Identifier: Apache-2.0
// Delivery state per message and member from an accepted transcript (docs/design.md §3.7).
#include "cowpi/actors/delivery.hpp"

#include <algorithm>
#include <map>

namespace cowpi::actors {

std::string_view to_string(delivery_state s) noexcept {
  switch (s) {
    case delivery_state::pending:
      return "pending";
    case delivery_state::received:
      return "received";
    case delivery_state::read:
      return "read";
    case delivery_state::could_not_read:
      return "could not read";
  }
  return "?";
}

namespace {

// One RECEIPT of a member: it acknowledges (floor, parent] and lists the VOIDs in it.
struct receipt_range {
  int64_t floor = -1;
  uint64_t parent = 0;
  const std::vector<uint64_t>* voids = nullptr;
};

// What the transcript says about one member's progress.
struct member_progress {
  // Greatest parent over the member's entries (-1: none).
  int64_t received_upto = -1;
  // The member's RECEIPTs, sorted by parent (ranges are disjoint and increasing).
  std::vector<receipt_range> receipts;
};

delivery_state state_of(const member_progress* p, uint64_t i) {
  if (p == nullptr)
    return delivery_state::pending;
  // The RECEIPT whose range covers i: the first with parent >= i, if its floor is below i.
  auto it = std::lower_bound(p->receipts.begin(), p->receipts.end(), i,
                             [](const receipt_range& r, uint64_t x) { return r.parent < x; });
  if (it != p->receipts.end() && it->floor < static_cast<int64_t>(i)) {
    const bool listed = std::binary_search(it->voids->begin(), it->voids->end(), i);
    return listed ? delivery_state::could_not_read : delivery_state::read;
  }
  if (p->received_upto >= static_cast<int64_t>(i))
    return delivery_state::received;
  return delivery_state::pending;
}

}  // namespace

std::vector<entry_delivery> delivery_states(
    const std::vector<protocol::accepted_entry>& transcript) {
  // Pass 1: every member's progress.
  std::map<std::string, member_progress> progress;
  for (const auto& e : transcript) {
    if (!e.parent)
      continue;  // SETUP acknowledges nothing
    auto& p = progress[e.author];
    p.received_upto = std::max(p.received_upto, static_cast<int64_t>(*e.parent));
    if (e.type == protocol::msg_type::receipt)
      p.receipts.push_back(receipt_range{e.floor_before, *e.parent, &e.voids});
  }
  for (auto& [id, p] : progress) {
    std::stable_sort(
        p.receipts.begin(), p.receipts.end(),
        [](const receipt_range& a, const receipt_range& b) { return a.parent < b.parent; });
  }

  // Pass 2: each MESSAGE against the member list in force at its index.
  std::vector<entry_delivery> out;
  out.reserve(transcript.size());
  const protocol::member_list* members = nullptr;
  for (const auto& e : transcript) {
    if (e.type == protocol::msg_type::setup || e.type == protocol::msg_type::update)
      members = &e.members;
    entry_delivery d;
    d.index = e.index;
    if (e.parent && e.index > *e.parent + 1)
      d.written_before_seeing = index_range{*e.parent + 1, e.index - 1};
    if (e.type == protocol::msg_type::message && members != nullptr) {
      for (const auto& m : *members) {
        if (m.id == e.author)
          continue;
        auto p = progress.find(m.id);
        d.members.push_back(
            member_delivery{m.id, state_of(p == progress.end() ? nullptr : &p->second, e.index)});
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace cowpi::actors

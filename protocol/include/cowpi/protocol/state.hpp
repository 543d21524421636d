// SPDX-License-Identifier: Apache-2.0
// The conversation state every honest member, mirror and the router hold after
// index i (docs/design.md §3.1), and the pure function that advances it by one entry.
#pragma once

#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/types.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::protocol {

/// `aseq_last[m]`: known, or unknown to a joiner until it sees m author.
struct aseq_value {
  bool known = true;
  uint64_t value = 0;
  friend bool operator==(const aseq_value&, const aseq_value&) = default;
};

/// `receipt_floor[m]`: the parent of m's last RECEIPT; -1 before any. Unknown
/// to a joiner for the members of the entry that adds it.
struct floor_value {
  bool known = true;
  int64_t value = -1;
  friend bool operator==(const floor_value&, const floor_value&) = default;
};

/// docs/design.md §3.1. Copyable value; holds no secrets.
struct conv_state {
  conv_id conv{};
  /// C.version of every entry: its SETUP's (1: public-key blocks, 2: chain blocks, §5.2).
  uint8_t version = protocol_version;
  member_list ms;
  member_list members;
  /// Index of the latest SETUP/UPDATE.
  uint64_t last_update = 0;
  /// For every id ever a member (kept across removal: aseq continues on re-add).
  std::map<std::string, aseq_value> aseq_last;
  /// For current members.
  std::map<std::string, floor_value> receipt_floor;
  /// The next index to accept.
  uint64_t next = 0;
  /// T_j for every j >= last_update, j < next.
  std::map<uint64_t, hash32> t;
  /// True for a joiner: its history starts at the UPDATE that added it, so an
  /// id it has no aseq for may be a re-added member (aseq unknown, §3.3).
  bool joiner = false;

  /// Returns T_j if held.
  const hash32* t_at(uint64_t j) const noexcept {
    auto it = t.find(j);
    return it == t.end() ? nullptr : &it->second;
  }
  bool is_member(std::string_view id) const noexcept { return find_member(members, id) != nullptr; }
  block_mode mode() const noexcept {
    return version == protocol_version_chain ? block_mode::chain : block_mode::pk;
  }
  friend bool operator==(const conv_state&, const conv_state&) = default;
};

/// Returns Recipients(C) for `c` given the state before it (nullptr for
/// SETUP): SETUP `C.members - author`; MESSAGE/RECEIPT `members - author`;
/// UPDATE `(members + adds) - author`. Sorted.
std::vector<std::string> recipients(const conv_state* s, const common& c);

/// Returns slots(C) = Recipients(C) + author, sorted.
std::vector<std::string> slots(const conv_state* s, const common& c);

/// Returns the members after applying an UPDATE's ops to `members`.
member_list apply_ops(const member_list& members, const member_list& adds,
                      const std::vector<std::string>& removes);

/// Advances `s` in place by the entry `c` (not a SETUP) at index `i` with digest `d`: O(changes),
/// never a copy of the state. REQUIRES: `validate` accepted `c` at `i` against `s`.
void advance_in_place(conv_state& s, const common& c, uint64_t i, const hash32& d);

/// The state a SETUP `c` at index `i` with digest `d` creates.
conv_state setup_state(const common& c, uint64_t i, const hash32& d);

/// Returns the state after the entry `c` at `i` (`s` is nullptr for SETUP), leaving `s`
/// untouched: a copy plus `advance_in_place`. For tests and tools; the state machines advance
/// in place.
conv_state advance(const conv_state* s, const common& c, uint64_t i, const hash32& d);

/// Builds a joiner's state from the UPDATE at `u` that adds it, with
/// `T_{u-1}` from the envelope (docs/design.md §3.3 "Unknown values", §3.5).
/// `own_aseq` is the joiner's own kept aseq_last (0 if it never authored here).
conv_state join_state(const common& c, uint64_t u, const hash32& t_prev, const hash32& d,
                      const std::string& self, uint64_t own_aseq);

}  // namespace cowpi::protocol

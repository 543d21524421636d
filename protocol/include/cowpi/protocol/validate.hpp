// SPDX-License-Identifier: Apache-2.0
// `validate`: the one pure rule function of docs/design.md §3.3, shared by the
// router, every mirror and every client.
#pragma once

#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/state.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi::protocol {

/// The rule a message broke. The router answers INVALID(rule) with its name,
/// except `stale` (STALE(last_update)) and `aseq` (ASEQ_GAP).
enum class rule : uint8_t {
  not_canonical = 1,  // enc(C) refused: unsorted/duplicate lists, bad ids, shape
  bad_version,        // unknown version, or not the conversation's (its SETUP's)
  setup_index,        // SETUP not at index 0
  conv_exists,        // SETUP for a known or tombstoned conv
  conv_unknown,       // non-SETUP for a conv with no state
  setup_aseq,         // SETUP aseq != 1
  author_not_member,  // author not in members
  too_few_members,    // SETUP with fewer than 2 members
  mirror_count,       // |MS| outside 1..MAX_MIRRORS
  aseq,               // aseq != aseq_last[author] + 1
  parent_not_before,  // parent >= i (or >= next at PREPARE)
  stale,              // parent < last_update
  parent_hash,        // parent_hash != T_parent
  recipients,         // recipient ids are not Recipients(C)
  body_len,           // body_len not 40 + 256n (n >= 1) or over MAX_BODY
  voids,              // voids outside (receipt_floor, parent]
  ms_changed,         // UPDATE changes MS
  add_existing,       // UPDATE adds a member
  remove_missing,     // UPDATE removes a non-member
  add_and_remove,     // an id both added and removed
  no_ops,             // UPDATE without ops
  members_mismatch,   // UPDATE result differs from members + ops
  bad_key,            // a SETUP member, SETUP mirror or UPDATE add with a low-order long-term key
};

/// Returns the rule's name, e.g. "parent_hash".
std::string_view to_string(rule r) noexcept;

/// How the recipient ids are checked: routers and mirrors pass the full list
/// (from the SUBMIT or PREPARE); a receiver other than the author passes only
/// its own id, which must be in Recipients(C); the author passes nothing.
struct recipient_check {
  const std::vector<std::string>* full = nullptr;
  std::optional<std::string_view> self;
};

/// Where the message would be ordered: exactly at `index` (router before
/// logging, mirror at COMMIT, receiver), or at PREPARE time at some index
/// >= state.next, in which case the index-dependent rules become `parent < next`.
struct validate_at {
  std::optional<uint64_t> index;
  static validate_at exactly(uint64_t i) { return {i}; }
  static validate_at prepare() { return {}; }
};

/// Runs the rules of docs/design.md §3.3 for `c` against `s` (nullptr when the
/// conversation is unknown; `tombstoned` when a tombstone exists). Pure;
/// returns the first rule broken.
[[nodiscard]] expected<void, rule> validate(const conv_state* s, bool tombstoned, const common& c,
                                            const recipient_check& rc, validate_at at);

}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// Delivery state of a conversation's messages per member (docs/design.md §3.7), computed from an
// accepted transcript alone: pure, no CAF, no I/O.
#pragma once

#include "cowpi/protocol/events.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi::actors {

/// Where one member stands with one message (docs/design.md §3.7).
enum class delivery_state : uint8_t {
  /// No entry of the member acknowledges the message yet.
  pending = 1,
  /// The member has an ordered entry whose parent is at or after the message.
  received,
  /// A RECEIPT of the member covers the message and does not list it as VOID.
  read,
  /// A RECEIPT of the member covers the message and lists it as VOID: the author's block to
  /// that member failed ("Carol could not read #12").
  could_not_read,
};

/// Returns "pending", "received", "read" or "could not read".
std::string_view to_string(delivery_state s) noexcept;

/// One member's state for one message.
struct member_delivery {
  std::string member;
  delivery_state state = delivery_state::pending;
  friend bool operator==(const member_delivery&, const member_delivery&) = default;
};

/// An inclusive range of indices.
struct index_range {
  uint64_t first = 0;
  uint64_t last = 0;
  friend bool operator==(const index_range&, const index_range&) = default;
};

/// The delivery view of one transcript entry.
struct entry_delivery {
  uint64_t index = 0;
  /// MESSAGE entries only: every member of the conversation at that index except the author,
  /// sorted by id. Empty for SETUP, UPDATE and RECEIPT entries.
  std::vector<member_delivery> members;
  /// Causality (docs/design.md §3.8): for an entry at `i` with `i - parent > 1`, the entries
  /// `parent + 1 .. i - 1` its author had not seen when writing it. Absent otherwise (and for
  /// SETUP, which has no parent).
  std::optional<index_range> written_before_seeing;
  friend bool operator==(const entry_delivery&, const entry_delivery&) = default;
};

/// Returns one `entry_delivery` per entry of `transcript`, in the same order.
///
/// `transcript` is one conversation's accepted entries in index order, as
/// `storage::client_store::transcript` returns them (a joiner's starts at the UPDATE that
/// added it). The audience of a MESSAGE at `i` is the member list of the latest SETUP or
/// UPDATE at or before `i`, minus the author; a MESSAGE before the first such entry (never the
/// case in a stored transcript) has an empty audience. Member `m` has *received* `i` once an
/// entry authored by `m` has `parent >= i`; it has *read* it once a RECEIPT of `m` with
/// `floor_before < i <= parent` does not list `i` in its voids, and *could not read* it when
/// it does. Entries of other conversations are not expected; `transcript` is not checked.
std::vector<entry_delivery> delivery_states(
    const std::vector<protocol::accepted_entry>& transcript);

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// What the client state machine reports to its caller: accepted entries
// (the verified transcript), alarms with local evidence, and hints.
#pragma once

#include "cowpi/protocol/types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::protocol {

/// Alarm kinds (docs/design.md §3.5). Alarms carry local evidence only: nothing
/// in them proves anything to a third party.
enum class alarm_kind : uint8_t {
  /// The router or a mirror misbehaved (bad mirror block, tampered body,
  /// different D at an accepted index, someone else's SETUP under our id).
  provider = 1,
  /// Every mirror attested an entry that breaks `validate`.
  fork,
  /// The author's block to us failed: the author equivocated.
  sender,
  /// A block named a key we never published: the directory substituted it.
  directory,
  /// Our own entry came back with a D we never submitted.
  impersonation,
};

/// Returns "PROVIDER", "FORK", "SENDER", "DIRECTORY" or "IMPERSONATION".
std::string_view to_string(alarm_kind k) noexcept;

struct alarm {
  alarm_kind kind = alarm_kind::provider;
  conv_id conv{};
  uint64_t index = 0;
  /// The party the evidence points at (a mirror id, an author id, "router").
  std::string party;
  /// Which check failed, in words (no key bytes, no plaintext).
  std::string evidence;
  /// True when the conversation halted because of it.
  bool halted = false;
  friend bool operator==(const alarm&, const alarm&) = default;
};

/// One entry the client accepted, in index order: the verified transcript.
struct accepted_entry {
  conv_id conv{};
  uint64_t index = 0;
  msg_type type = msg_type::message;
  std::string author;
  uint64_t aseq = 0;
  /// The last index the author had processed (absent for SETUP).
  std::optional<uint64_t> parent;
  hash32 d{};
  hash32 t{};
  /// Authored by this client.
  bool own = false;
  /// The author block failed: the entry is ordered but unreadable (VOID).
  bool is_void = false;
  /// MESSAGE: the plaintext (readable entries only).
  bytes plaintext;
  /// SETUP/UPDATE: the resulting members, the ops and the new safety number.
  member_list members;
  member_list adds;
  std::vector<std::string> removes;
  std::string safety_number;
  /// RECEIPT: the range (floor_before, parent] it acknowledges and its VOIDs.
  int64_t floor_before = -1;
  std::vector<uint64_t> voids;
  friend bool operator==(const accepted_entry&, const accepted_entry&) = default;
};

}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// The limits of protocol version 1. Constants, never configuration: config may
// only set stricter router-intake limits (docs/design.md §3.3).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cowpi::protocol {

/// The conversation protocol version carried in every C of a public-key conversation.
inline constexpr uint8_t protocol_version = 1;
/// The version carried in every C of a chain-mode conversation (docs/protocol.md §5.2: the
/// version byte is the conversation's block mode, `block_mode` in types.hpp).
inline constexpr uint8_t protocol_version_chain = 2;
/// The transport (client<->router) and router<->mirror link version.
inline constexpr uint8_t transport_version = 1;

/// Most members a conversation may have (SETUP, UPDATE results).
inline constexpr size_t max_members = 1024;
/// Most mirrors in a conversation's mirror set MS.
inline constexpr size_t max_mirrors = 8;
/// Longest id (users, mirrors, router), in bytes.
inline constexpr size_t max_id_len = 64;
/// Largest padded plaintext of a MESSAGE body.
inline constexpr size_t max_plaintext_padded = 64 * 1024;
/// Largest `body_len`: nonce (24) + tag (16) + padded plaintext.
inline constexpr uint64_t max_body = 40 + max_plaintext_padded;
/// Largest unpadded plaintext that fits `max_body` (at least one 0x80 pad byte).
inline constexpr size_t max_plaintext = max_plaintext_padded - 1;
/// Most VOID indices in one RECEIPT.
inline constexpr size_t max_voids = 1024;
/// Most ops (adds + removes) in one UPDATE.
inline constexpr size_t max_ops = 256;
/// Body padding granularity.
inline constexpr size_t pad_block = 256;
/// Transport frames per direction between rekeys.
inline constexpr uint64_t rekey_interval = uint64_t{1} << 20;
/// Most one-time pre-keys in one upload or one fetch answer.
inline constexpr size_t max_prekey_batch = 4096;
/// Most one-time pre-keys one owner's pool in the router's directory holds: an upload that
/// would take it past this is refused as a whole (clients keep 100, mirrors 512).
inline constexpr size_t max_prekey_pool = max_prekey_batch;
/// Most owners named in one pre-key fetch (one SETUP of maximum size plus its mirrors).
inline constexpr size_t max_fetch_owners = max_members + max_mirrors;
/// Most recipients of one entry. |Recipients(C)| <= |state.members| + |adds| - 1 (UPDATE), with
/// |state.members| <= max_members, |adds| + |removes| <= max_ops and |state.members| + |adds| -
/// |removes| <= max_members, so |adds| <= max_ops / 2 when the state is full: 1151.
inline constexpr size_t max_recipients = max_members + max_ops / 2 - 1;
/// Most slots (recipients plus the author) of one entry: the mirror blocks in one ANSWER.
inline constexpr size_t max_slots = max_recipients + 1;
/// Most message keys a receive chain derives past its next counter for one chain block, and most
/// skipped message keys it stores per channel (docs/protocol.md §4.8).
inline constexpr uint32_t chain_max_skip = 256;
/// Most D values in one AUDIT answer; a mirror splits longer ranges.
inline constexpr size_t max_audit_batch = 4096;
/// Longest human-readable text on the wire (ERROR messages, rejection details, mirror reasons).
inline constexpr size_t max_text_len = 1024;
/// Largest transport frame any message within these limits needs (bytes after
/// the 4-byte length). Config refuses a smaller `max_frame`; a test builds the
/// largest SUBMIT and checks it fits.
inline constexpr size_t max_frame_protocol = 1024 * 1024;

}  // namespace cowpi::protocol

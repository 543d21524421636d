// SPDX-License-Identifier: Apache-2.0
// The wire codec: plain structs <-> Cap'n Proto bytes (protocol/schema/*.capnp).
// Decoders take untrusted bytes, never crash and never throw; only
// protocol/src/wire/ sees the generated Cap'n Proto code.
#pragma once

#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/router.hpp"

#include <optional>

namespace cowpi::protocol::wire {

/// The wire version every top-level frame carries (clear, client and router frames, link
/// requests and responses). Decoders refuse any other value with `errc::unsupported_version`.
/// It versions the encoding only; `hello::version` and `link_hello::version` are the protocol
/// versions the handshakes bind and check, and `common::version` is C's (checked on decode).
inline constexpr uint8_t wire_version = 1;

/// Why a client frame was refused, and whether the connection survives it.
struct frame_problem {
  error err;
  /// The request id when the frame was readable far enough to answer it.
  std::optional<uint64_t> request_id;
  /// A rejection to answer instead of closing (e.g. BAD_BLOCK_SIZE).
  std::optional<rejection> answer;
};

// Encoders (trusted input; the structs must satisfy the documented sizes). They write
// standard (unpacked) Cap'n Proto framing and never fail; a C is written with exactly the
// fields of its type (docs/wire.md), so fields that do not belong to `c.type` are dropped.
bytes encode(const clear_frame& f);
bytes encode(const client_frame& f);
bytes encode(const router_frame& f);
bytes encode(const link_request& m);
bytes encode(const link_response& m);
bytes encode_common(const common& c);
bytes encode_envelope(const envelope& e);
/// The named form (every block with its recipient id), as stores keep a SUBMIT; a client frame
/// carries a chain-mode SUBMIT names-free instead (docs/wire.md "The names-free SUBMIT"). A SUBMIT
/// decoded from the names-free form (`names_free_root` set) is written names-free again.
bytes encode_submit(const submit_msg& s);
bytes encode_prekey_bundle(const prekey_bundle& b);
/// Router cluster: directory entries one node reads for another (nullopt: not registered).
/// At most `max_members` entries.
using directory_entries = std::vector<std::pair<std::string, std::optional<directory_entry>>>;
bytes encode_directory_entries(const directory_entries& d);

// Decoders (untrusted input). Fail with `errc::malformed` (not Cap'n Proto,
// truncated, bad pointer, unknown union tag, a field of the wrong size),
// `errc::too_large` (over the byte limit or a protocol list limit) or
// `errc::unsupported_version`.
// The byte limit is `max_frame_protocol`; the list limits are those of limits.hpp; an id may
// have at most `max_id_len` bytes and a text `max_text_len`. A decoded C has been checked for
// shape only: callers run `validate` (ids, order, counts against the state). The error
// context names the field and never holds message bytes or ids.
[[nodiscard]] expected<clear_frame> decode_clear_frame(byte_view b);
/// A client frame; a SUBMIT whose blocks are not 185 B yields a problem
/// with `answer = BAD_BLOCK_SIZE` and the request id, the connection survives.
[[nodiscard]] expected<client_frame, frame_problem> decode_client_frame(byte_view b);
[[nodiscard]] expected<router_frame> decode_router_frame(byte_view b);
[[nodiscard]] expected<link_request> decode_link_request(byte_view b);
[[nodiscard]] expected<link_response> decode_link_response(byte_view b);
[[nodiscard]] expected<common> decode_common(byte_view b);
[[nodiscard]] expected<envelope> decode_envelope(byte_view b);
[[nodiscard]] expected<submit_msg> decode_submit(byte_view b);
[[nodiscard]] expected<prekey_bundle> decode_prekey_bundle(byte_view b);
[[nodiscard]] expected<directory_entries> decode_directory_entries(byte_view b);

}  // namespace cowpi::protocol::wire

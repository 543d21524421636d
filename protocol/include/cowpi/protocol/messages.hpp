// SPDX-License-Identifier: Apache-2.0
// Plain structs for every frame on the client<->router channel and every
// router<->mirror link message (docs/design.md §2, §3.10). The wire codec
// (`wire.hpp`) maps them to and from Cap'n Proto bytes.
#pragma once

#include "cowpi/protocol/transport_crypto.hpp"
#include "cowpi/protocol/types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cowpi::protocol {

// ---------------------------------------------------------------------------
// Typed rejections (router -> client answers to a SUBMIT or request).

/// The router's answers to clients (docs/design.md §3.10). All are unauthenticated
/// hints: a client never changes conversation state because of one.
enum class rejection_kind : uint8_t {
  stale = 1,        // value: u, the UPDATE the message must be rebuilt after
  aseq_gap,         // value: the aseq the router expected
  already_ordered,  // value: the index that aseq was ordered at
  not_member,
  limit,  // detail: which limit
  bad_block_size,
  bad_body,
  unknown_mirror,
  mirror_reject,  // detail: the mirror's reason
  invalid,        // detail: the `validate` rule
  unavailable,    // retryable
  stopped,
  history_expired,
  unknown_user,  // detail: the id (sent only to the session's own user)
};

/// Returns "STALE", "ASEQ_GAP", ...
std::string_view to_string(rejection_kind k) noexcept;

struct rejection {
  rejection_kind kind = rejection_kind::invalid;
  uint64_t value = 0;
  std::string detail;
  friend bool operator==(const rejection&, const rejection&) = default;
};

/// The details of a LIMIT that is flow control, not a verdict on the entry (docs/wire.md):
/// too many of the author's entries wait in the intake; an UPDATE too soon after the last
/// (value: the wait in seconds); more SETUPs this hour than allowed (value: the wait).
inline constexpr std::string_view limit_pending = "pending";
inline constexpr std::string_view limit_update_rate = "update_rate";
inline constexpr std::string_view limit_setup_rate = "setup_rate";

// ---------------------------------------------------------------------------
// Pre-keys and the directory.

/// A published key: (id, pub). Its kind is given by where it appears.
struct published_key {
  uint64_t id = 0;
  public_key pub{};
  friend bool operator==(const published_key&, const published_key&) = default;
};

/// One directory answer: the owner's long-term key and one receiver key,
/// a one-time PREKEY or, when the pool is empty or the requester is over its
/// rate limit, the owner's LAST_RESORT key.
struct prekey_bundle {
  std::string owner;
  public_key lpk{};
  key_ref key;
  friend bool operator==(const prekey_bundle&, const prekey_bundle&) = default;
};

// ---------------------------------------------------------------------------
// Transport handshake (clear frames).

struct hello {
  uint8_t version = transport_version;
  hello_mode mode = hello_mode::login;
  std::string id;
  public_key lpk{};
  public_key x{};
  friend bool operator==(const hello&, const hello&) = default;
};

struct hello_ack {
  uint8_t version = transport_version;
  public_key x{};
  friend bool operator==(const hello_ack&, const hello_ack&) = default;
};

/// Error codes of the clear and encrypted ERROR frame.
enum class frame_error_code : uint8_t {
  malformed = 1,
  too_large,
  unsupported_version,
  unknown_user,
  id_taken,
  bad_handshake,
  busy,
  internal,
  protocol_violation,
};

std::string_view to_string(frame_error_code c) noexcept;

/// Sent before the server closes a connection. `message` is for humans.
struct error_frame {
  frame_error_code code = frame_error_code::internal;
  std::string message;
  friend bool operator==(const error_frame&, const error_frame&) = default;
};

/// A clear (pre-session) frame in either direction.
using clear_frame = std::variant<hello, hello_ack, error_frame>;

// ---------------------------------------------------------------------------
// Client -> router (encrypted frames).

/// Acknowledges that U accepted (conv, index); advances U's cursor.
struct ack_msg {
  conv_id conv{};
  uint64_t index = 0;
  friend bool operator==(const ack_msg&, const ack_msg&) = default;
};

/// Adds one-time pre-keys and/or replaces the LAST_RESORT key.
struct upload_prekeys {
  std::vector<published_key> one_time;
  std::optional<published_key> last_resort;
  friend bool operator==(const upload_prekeys&, const upload_prekeys&) = default;
};

/// Tells the directory that the caller retired (deleted) every one-time pre-key of its own with
/// an id below `below`, at its maximum age or after use: the directory drops those still in
/// the pool, so it never hands out a key its owner can no longer open (docs/protocol.md §12).
struct retire_prekeys {
  uint64_t below = 0;
  friend bool operator==(const retire_prekeys&, const retire_prekeys&) = default;
};

/// Asks for one receiver key per owner (users or mirrors), for the conversation `conv` when
/// set. A mirror that runs as a cluster keeps a key pool per node, and the key for a
/// conversation must come from the pool of the node owning it: a fetch naming such a mirror
/// needs `conv`.
struct fetch_prekeys {
  std::vector<std::string> owners;
  std::optional<conv_id> conv;
  friend bool operator==(const fetch_prekeys&, const fetch_prekeys&) = default;
};

/// Asks for users' long-term keys.
struct lookup_users {
  std::vector<std::string> ids;
  friend bool operator==(const lookup_users&, const lookup_users&) = default;
};

/// Asks for the caller's own directory state (pool level).
struct account_status {
  friend bool operator==(const account_status&, const account_status&) = default;
};

/// Starts (or restarts) the stream of envelopes from U's cursors.
struct subscribe {
  friend bool operator==(const subscribe&, const subscribe&) = default;
};

/// Liveness probe; answered with `ok`.
struct ping {
  friend bool operator==(const ping&, const ping&) = default;
};

/// A barrier on the envelope stream: answered with `ok` once the router has sent, on this
/// session, every envelope that was deliverable for the session's user when the request reached
/// the user's queue (at once on a session that has not subscribed). Lets a client that has
/// nothing in flight know that nothing more is waiting for it, without a quiet period.
struct drain {
  friend bool operator==(const drain&, const drain&) = default;
};

using client_request =
    std::variant<submit_msg, ack_msg, upload_prekeys, fetch_prekeys, lookup_users, account_status,
                 subscribe, ping, drain, retire_prekeys>;

/// An encrypted client frame: a client-chosen id echoed in the response.
struct client_frame {
  uint64_t request_id = 0;
  client_request body;
  friend bool operator==(const client_frame&, const client_frame&) = default;
};

// ---------------------------------------------------------------------------
// Router -> client (encrypted frames).

struct ok_result {
  /// SUBMIT: "queued" (not ordered); other requests: done.
  friend bool operator==(const ok_result&, const ok_result&) = default;
};

struct prekeys_result {
  std::vector<prekey_bundle> bundles;
  friend bool operator==(const prekeys_result&, const prekeys_result&) = default;
};

struct users_result {
  std::vector<member> users;         // the ids that are registered
  std::vector<std::string> unknown;  // the ids that are not
  friend bool operator==(const users_result&, const users_result&) = default;
};

struct status_result {
  uint64_t one_time_remaining = 0;
  uint64_t last_resort_id = 0;  // 0 = none published
  uint64_t max_prekey_id = 0;   // highest one-time id ever uploaded
  friend bool operator==(const status_result&, const status_result&) = default;
};

using response_body =
    std::variant<ok_result, rejection, prekeys_result, users_result, status_result>;

struct response {
  uint64_t request_id = 0;
  response_body body;
  friend bool operator==(const response&, const response&) = default;
};

/// What the router pushes or answers on the encrypted channel.
using router_frame = std::variant<response, envelope, error_frame>;

// ---------------------------------------------------------------------------
// Router <-> mirror link (docs/design.md §3.4, §3.10).

/// A member's LAST_RESORT key, attached by the router to PREPARE.
struct last_resort_attachment {
  std::string member;
  uint64_t key_id = 0;
  public_key pub{};
  friend bool operator==(const last_resort_attachment&, const last_resort_attachment&) = default;
};

/// Provider HELLO, both ways; checked against configuration.
struct link_hello {
  std::string id;
  public_key lpk{};
  uint8_t version = transport_version;
  friend bool operator==(const link_hello&, const link_hello&) = default;
};

/// PREPARE{C, [(R, H(block_R))], amb_o, [LAST_RESORT keys of added members]}.
struct prepare_msg {
  common c;
  std::vector<block_digest> block_hashes;
  slot_block amb;
  std::vector<last_resort_attachment> last_resort;
  friend bool operator==(const prepare_msg&, const prepare_msg&) = default;
};

struct commit_msg {
  uint64_t index = 0;
  hash32 d{};
  prepare_msg payload;
  friend bool operator==(const commit_msg&, const commit_msg&) = default;
};

struct link_ack {
  conv_id conv{};
  uint64_t index = 0;
  friend bool operator==(const link_ack&, const link_ack&) = default;
};

struct status_query {
  conv_id conv{};
  friend bool operator==(const status_query&, const status_query&) = default;
};

struct topup {
  uint32_t count = 0;
  friend bool operator==(const topup&, const topup&) = default;
};

struct audit_query {
  conv_id conv{};
  uint64_t from = 0;
  uint64_t to = 0;  // inclusive
  friend bool operator==(const audit_query&, const audit_query&) = default;
};

using link_request =
    std::variant<link_hello, prepare_msg, commit_msg, link_ack, status_query, topup, audit_query>;

struct prepared {
  hash32 d{};
  friend bool operator==(const prepared&, const prepared&) = default;
};

/// A mirror's refusal, with its reason (a short machine-readable string).
struct link_reject {
  std::string reason;
  friend bool operator==(const link_reject&, const link_reject&) = default;
};

struct answer {
  uint64_t index = 0;
  hash32 t{};
  /// One mirror block per member of slots(C), in slots(C) order.
  std::vector<slot_block> mirror_blocks;
  friend bool operator==(const answer&, const answer&) = default;
};

struct already_answered {
  uint64_t index = 0;
  friend bool operator==(const already_answered&, const already_answered&) = default;
};

struct conflict {
  uint64_t index = 0;
  hash32 d{};  // the D the mirror holds at `index`
  friend bool operator==(const conflict&, const conflict&) = default;
};

struct gap {
  uint64_t next = 0;
  friend bool operator==(const gap&, const gap&) = default;
};

struct status_answer {
  bool known = false;  // false: the mirror has no state for the conversation
  uint64_t next = 0;
  hash32 t_last{};  // T_{next-1}
  friend bool operator==(const status_answer&, const status_answer&) = default;
};

/// A mirror's pre-keys for the directory.
struct mirror_prekeys {
  std::vector<published_key> one_time;
  std::optional<published_key> last_resort;
  friend bool operator==(const mirror_prekeys&, const mirror_prekeys&) = default;
};

struct audit_answer {
  uint64_t from = 0;
  std::vector<hash32> d;
  friend bool operator==(const audit_answer&, const audit_answer&) = default;
};

struct acked {
  friend bool operator==(const acked&, const acked&) = default;
};

using link_response =
    std::variant<link_hello, prepared, link_reject, answer, already_answered, conflict, gap,
                 status_answer, mirror_prekeys, audit_answer, acked>;

}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// The client<->router transport session (docs/design.md §2, "Transport channels"): framing, the
// HELLO / HELLO_ACK handshake, proof of possession and the encrypted frame stream, as pure
// state machines that take bytes in and hand bytes and events out.
//
// Threading contract (both session classes and `frame_reassembler`): not thread-safe. One owner
// at a time calls them; an object may move to another thread between calls (no thread-local
// state; the borrowed `identity` is read through its thread-safe `locked_secret` readers). The
// `rng&` a call takes is used during that call only, on the caller's thread.
//
// Cost split for the CAF runtime (docs/design.md §4): `frame_reassembler` and `read_frame_length`
// are cheap and belong in the broker on the I/O thread. Everything a session does may cost a
// DH or an AEAD (`router_session::resolve_lookup` runs the handshake DH; `on_frame`, `feed` and
// `seal` open or seal frames), so a session lives in an ordinary worker actor that owns it,
// receives frame payloads from the broker and sends the bytes to write back.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/transport_crypto.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cowpi::protocol {

// ---------------------------------------------------------------------------------------------
// Framing: `be32(len) || len bytes`, where `len` counts the bytes after the prefix.

/// Bytes in a frame's length prefix.
inline constexpr size_t frame_header_size = 4;
/// Smallest `max_frame` a session or reassembler accepts: room for every clear frame and for an
/// ERROR frame with the longest text. Configuration refuses anything below
/// `max_frame_protocol` anyway (limits.hpp); tests use small limits to probe the edges.
inline constexpr size_t min_max_frame = 2048;

/// Parses a 4-byte length prefix. Fails with `errc::malformed` for a length of 0 and with
/// `errc::too_large` for a length over `max_frame`. For a broker that reads with
/// `receive_policy::exactly(4)` and then `exactly(len)`.
[[nodiscard]] expected<uint32_t> read_frame_length(std::span<const uint8_t, frame_header_size> h,
                                                   size_t max_frame) noexcept;

/// Returns `be32(payload.size()) || payload`. REQUIRES: `0 < payload.size() < 2^32`.
bytes length_prefixed(byte_view payload);

/// One step of `frame_reassembler::next`.
struct frame_step {
  /// Bytes of the input the step consumed.
  size_t consumed = 0;
  /// The frame the step completed (its payload, without the prefix), if any. It views either
  /// the input or the reassembler's buffer and is valid until the next call of `next` and only
  /// while the input passed to this call is alive.
  std::optional<byte_view> frame;
};

/// Cuts a byte stream into frames, whatever the chunking: split frames (down to one byte at a
/// time), coalesced frames, or a mix. Holds at most one partial frame (the prefix plus at most
/// `max_frame` bytes), grown as bytes arrive rather than at the size a prefix announces. After
/// an error the reassembler is dead: every later call fails with the same error.
class frame_reassembler {
public:
  /// REQUIRES: `min_max_frame <= max_frame <= 2^32 - 1`.
  explicit frame_reassembler(size_t max_frame = max_frame_protocol);

  /// Consumes bytes of `in` up to the end of the next complete frame (all of `in` when none
  /// completes) and returns what it consumed and the completed frame. Call it again with the
  /// rest of `in` while bytes remain. A non-empty `in` always moves the stream forward. Fails
  /// as `read_frame_length` (then nothing is consumed, now or later).
  [[nodiscard]] expected<frame_step> next(byte_view in);

  /// Returns how many bytes complete the current prefix or frame: the `n` of a broker's
  /// `receive_policy::exactly(n)`. 0 once dead.
  size_t wanted() const noexcept;
  /// Returns the bytes held for the frame in progress (prefix included); a frame already
  /// handed out does not count.
  size_t buffered() const noexcept { return header_have_ + (delivered_ ? 0 : body_.size()); }
  /// Returns the configured limit on `len`.
  size_t max_frame() const noexcept { return max_frame_; }
  /// Returns true after a framing error.
  bool failed() const noexcept { return failure_.has_value(); }

private:
  size_t max_frame_;
  std::array<uint8_t, frame_header_size> header_{};
  size_t header_have_ = 0;
  uint32_t len_ = 0;
  // The body of the frame in progress when it spans several inputs.
  bytes body_;
  // The last step returned a frame; its storage is released on the next call.
  bool delivered_ = false;
  std::optional<error> failure_;
};

// ---------------------------------------------------------------------------------------------
// Session events. A session answers every input with a list of events, in the order the caller
// must act on them.

/// Write `data` (a complete frame, prefix included) to the socket, after every earlier one.
struct send_frame {
  bytes data;
};

/// Close the connection once every earlier `send_frame` is written. Always the last event of a
/// session: later inputs produce no events. `code` is the ERROR code the router sent (router
/// side), or the code the client received or would have to report (client side); `cause` is
/// the local reason, safe to log.
struct close_connection {
  frame_error_code code = frame_error_code::internal;
  error cause;
};

/// Router side: HELLO arrived; look `id` up and answer with `router_session::resolve_lookup`.
/// LOGIN: `ok` iff `id` is registered with exactly `lpk`, else `unknown_user`. REGISTER: `ok`
/// iff `id` is free and no provider's id, else `id_taken`. Nothing is committed yet.
struct need_lookup {
  hello_mode mode = hello_mode::login;
  std::string id;
  public_key lpk{};
};

/// Router side: the client's first encrypted frame decrypted, so it holds the secret of `lpk`
/// (proof of possession). Only now does the session count; for REGISTER only now may the caller
/// commit the registration (if the commit loses a race, call `shut_down(id_taken)`).
struct authenticated {
  hello_mode mode = hello_mode::login;
  std::string id;
  public_key lpk{};
};

/// Router side: a decrypted, decoded request to handle. Answer it with `seal(response{...})`.
struct incoming_request {
  client_frame frame;
};

/// Router side: a request the session refused and already answered (the answer follows as a
/// `send_frame`): e.g. BAD_BLOCK_SIZE. The connection survives; for logging and metrics only.
struct refused_request {
  uint64_t request_id = 0;
  rejection answer;
  error cause;
};

/// Every event a `router_session` produces.
using router_event = std::variant<need_lookup, authenticated, incoming_request, refused_request,
                                  send_frame, close_connection>;

/// Client side: HELLO_ACK arrived and the session keys are derived: `seal` works from now on.
/// The router counts the session (and a REGISTER) once the first sealed frame decrypts there.
struct session_ready {};

/// Client side: a decrypted router frame: a `response` or an `envelope`, never an
/// `error_frame` (that is a `router_error`).
struct router_message {
  router_frame frame;
};

/// Client side: the router sent ERROR and closes. `encrypted` false means it came in clear,
/// before the router accepted the client's first frame: an unauthenticated hint. A
/// `close_connection` always follows.
struct router_error {
  error_frame frame;
  bool encrypted = false;
};

/// Every event a `client_session` produces.
using client_event =
    std::variant<session_ready, router_message, router_error, send_frame, close_connection>;

// ---------------------------------------------------------------------------------------------
// Router side.

/// The directory's answer to a `need_lookup`.
enum class lookup_result : uint8_t {
  /// LOGIN: registered with that lpk. REGISTER: the id is free and no provider's id.
  ok = 1,
  /// LOGIN only: not registered, or registered with another lpk.
  unknown_user,
  /// REGISTER only: registered already, or a provider's id.
  id_taken,
};

/// Where a `router_session` is.
enum class router_state : uint8_t {
  /// Waiting for the client's HELLO (a clear frame).
  await_hello = 1,
  /// HELLO read; waiting for `resolve_lookup`. Any frame now is a protocol violation.
  await_lookup,
  /// HELLO_ACK sent; waiting for the first encrypted frame (the proof of possession).
  await_proof,
  /// The first encrypted frame decrypted; requests flow.
  established,
  /// Closed after a `close_connection`; keys wiped.
  closed,
};

/// Returns "await_hello", "await_lookup", ...
std::string_view to_string(router_state s) noexcept;

/// The server side of one client connection (docs/design.md §2). Before `established` every ERROR
/// it sends is a clear frame; afterwards ERROR frames are encrypted. Any fatal problem (framing,
/// decoding, decryption, a frame out of turn) produces an ERROR `send_frame` and a
/// `close_connection`. Move-only (it holds the session keys). See the file comment for the
/// threading contract.
class router_session {
public:
  /// `router` is borrowed and must outlive the session (its id is `id_R`, its key `lpk_R`).
  /// REQUIRES: `min_max_frame <= max_frame <= 2^32 - 1`.
  explicit router_session(const identity& router, size_t max_frame = max_frame_protocol);

  router_session(router_session&&) noexcept = default;
  router_session& operator=(router_session&&) noexcept = default;
  router_session(const router_session&) = delete;
  router_session& operator=(const router_session&) = delete;
  ~router_session() = default;

  /// Feeds bytes from the socket, in any chunking, through the session's own reassembler and
  /// handles every frame they complete. Bytes after a close are ignored.
  std::vector<router_event> feed(byte_view in);

  /// Handles one frame payload (the bytes after the prefix) that the caller framed itself, e.g.
  /// a broker reading with `exactly(4)` then `exactly(len)`. A payload that is empty or over
  /// `max_frame` is refused like a bad prefix. Do not mix with `feed` inside one frame.
  std::vector<router_event> on_frame(byte_view payload);

  /// Answers the pending `need_lookup`. With `ok` it draws X_R from `r`, runs the handshake DH
  /// and sends HELLO_ACK (or, if the DH fails on a low-order key, a clear BAD_HANDSHAKE ERROR);
  /// otherwise it sends the clear UNKNOWN_USER or ID_TAKEN ERROR and closes. Returns no events
  /// if the session closed meanwhile. Fails with `errc::bad_state` when no lookup is pending,
  /// `errc::invalid_argument` for `unknown_user` to a REGISTER or `id_taken` to a LOGIN.
  [[nodiscard]] expected<std::vector<router_event>> resolve_lookup(lookup_result result,
                                                                   crypto::rng& r);

  /// Sends ERROR{code, message} (clear before `established`, encrypted after) and closes: for
  /// framing errors a broker detects itself, a REGISTER whose commit lost a race (ID_TAKEN),
  /// overload (BUSY), shutdown. `message` is for humans, safe to show the peer, and is cut to
  /// `max_text_len` bytes. Returns no events when already closed.
  std::vector<router_event> shut_down(frame_error_code code, std::string_view message);

  /// Seals one router frame: returns `be32(len) || AEAD(k_r2c, ...)`. Fails with
  /// `errc::bad_state` before `established`, `errc::closed` after a close and `errc::too_large`
  /// when the sealed frame would exceed `max_frame` (the counter does not advance then).
  [[nodiscard]] expected<bytes> seal(const router_frame& f);

  router_state state() const noexcept { return state_; }
  bool is_established() const noexcept { return state_ == router_state::established; }
  bool is_closed() const noexcept { return state_ == router_state::closed; }
  /// Returns what HELLO claimed (mode, id, lpk) once it was read; proven only once
  /// `is_established()`.
  const std::optional<need_lookup>& peer() const noexcept { return peer_; }
  /// Returns the reassembler `feed` uses (its `wanted()` mirrors a broker's read policy).
  const frame_reassembler& reassembler() const noexcept { return reassembler_; }

  /// Test hook: seals arbitrary payload bytes as the next router->client frame.
  [[nodiscard]] expected<bytes> seal_payload_for_test(byte_view payload);
  /// Test hook: advances the c2r and r2c frame counters as if that many frames had passed
  /// (rekeying on the way). Fails with `errc::bad_state` before the keys exist.
  [[nodiscard]] expected<void> skip_frames_for_test(uint64_t c2r, uint64_t r2c);

private:
  void handle_frame(std::vector<router_event>& out, byte_view payload);
  void on_hello(std::vector<router_event>& out, byte_view payload);
  void on_proof(std::vector<router_event>& out, byte_view payload);
  void on_encrypted(std::vector<router_event>& out, byte_view payload);
  void on_request(std::vector<router_event>& out, const bytes& plaintext);
  void fatal(std::vector<router_event>& out, frame_error_code code, error cause);
  [[nodiscard]] expected<bytes> seal_bytes(byte_view payload);

  const identity* router_;
  size_t max_frame_;
  router_state state_ = router_state::await_hello;
  frame_reassembler reassembler_;
  std::optional<need_lookup> peer_;
  public_key x_u_{};
  std::optional<frame_cipher> c2r_;
  std::optional<frame_cipher> r2c_;
};

// ---------------------------------------------------------------------------------------------
// Client side.

/// Where a `client_session` is.
enum class client_state : uint8_t {
  /// Constructed; `start` sends HELLO.
  idle = 1,
  /// HELLO sent; waiting for HELLO_ACK or a clear ERROR.
  await_ack,
  /// Keys derived; frames flow. Until the first router frame decrypts, a clear ERROR (the
  /// router refusing the client's first frame) is still accepted.
  ready,
  /// Closed after a `close_connection`; keys wiped.
  closed,
};

/// Returns "idle", "await_ack", ...
std::string_view to_string(client_state s) noexcept;

/// The client side of the connection to the router: the mirror image of `router_session`. The
/// client never sends ERROR frames: it reports problems as `close_connection` and closes.
/// Move-only. See the file comment for the threading contract.
class client_session {
public:
  /// `user` is borrowed and must outlive the session. `router_id` and `router_lpk` come from
  /// the client's deployment file (`id_R`, `lpk_R`). REQUIRES: `min_max_frame <= max_frame <=
  /// 2^32 - 1`.
  client_session(const identity& user, std::string router_id, const public_key& router_lpk,
                 size_t max_frame = max_frame_protocol);

  client_session(client_session&&) noexcept = default;
  client_session& operator=(client_session&&) noexcept = default;
  client_session(const client_session&) = delete;
  client_session& operator=(const client_session&) = delete;
  ~client_session() = default;

  /// Draws the NAXOS ephemeral X_U from `r` and returns the HELLO frame to send (clear,
  /// prefix included). Fails with `errc::bad_state` unless the session is `idle`.
  [[nodiscard]] expected<bytes> start(hello_mode mode, crypto::rng& r);

  /// Feeds bytes from the socket in any chunking. HELLO_ACK derives the keys (one handshake
  /// DH) and yields `session_ready`; later frames are decrypted and decoded. Bytes before
  /// `start` or after a close produce a close or nothing.
  std::vector<client_event> feed(byte_view in);

  /// Handles one frame payload the caller framed itself (see `router_session::on_frame`).
  std::vector<client_event> on_frame(byte_view payload);

  /// Seals one client frame: returns `be32(len) || AEAD(k_c2r, ...)`. Fails with
  /// `errc::bad_state` unless `ready`, `errc::closed` after a close and `errc::too_large` when
  /// the sealed frame would exceed `max_frame` (the counter does not advance then).
  [[nodiscard]] expected<bytes> seal(const client_frame& f);

  /// Closes locally (socket lost, shutdown): wipes the keys. Later inputs produce nothing.
  void close() noexcept;

  client_state state() const noexcept { return state_; }
  bool is_ready() const noexcept { return state_ == client_state::ready; }
  bool is_closed() const noexcept { return state_ == client_state::closed; }
  /// Returns true once a router frame has decrypted: the router holds `lsk_R` and accepted the
  /// client's proof of possession; clear ERROR frames are refused from then on.
  bool is_confirmed() const noexcept { return confirmed_; }
  /// Returns the mode `start` sent.
  hello_mode mode() const noexcept { return mode_; }

  /// Test hook: seals arbitrary payload bytes as the next client->router frame.
  [[nodiscard]] expected<bytes> seal_payload_for_test(byte_view payload);
  /// Test hook: advances the c2r and r2c frame counters as if that many frames had passed
  /// (rekeying on the way). Fails with `errc::bad_state` before the keys exist.
  [[nodiscard]] expected<void> skip_frames_for_test(uint64_t c2r, uint64_t r2c);

private:
  void handle_frame(std::vector<client_event>& out, byte_view payload);
  void on_ack(std::vector<client_event>& out, byte_view payload);
  void on_encrypted(std::vector<client_event>& out, byte_view payload);
  void fatal(std::vector<client_event>& out, frame_error_code code, error cause);
  [[nodiscard]] expected<bytes> seal_bytes(byte_view payload);

  const identity* user_;
  std::string router_id_;
  public_key router_lpk_{};
  size_t max_frame_;
  client_state state_ = client_state::idle;
  hello_mode mode_ = hello_mode::login;
  bool confirmed_ = false;
  frame_reassembler reassembler_;
  // The NAXOS ephemeral between HELLO and HELLO_ACK; wiped once the keys are derived.
  crypto::secret<32> x_u_;
  public_key x_u_pub_{};
  std::optional<frame_cipher> c2r_;
  std::optional<frame_cipher> r2c_;
};

}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// Transport session state machines (docs/design.md §2 "Transport channels"): framing, handshake,
// proof of possession and the encrypted frame stream, for the router and the client.
#include "cowpi/protocol/session.hpp"

#include "cowpi/protocol/types.hpp"
#include "cowpi/protocol/wire.hpp"

#include <algorithm>
#include <utility>

namespace cowpi::protocol {

namespace {

// A body buffer above this is given back after its frame, so that one large frame does not pin
// its memory for the rest of a long-lived connection.
constexpr size_t keep_buffer_capacity = size_t{64} * 1024;

void check_max_frame(size_t max_frame) {
  COWPI_ASSERT(max_frame >= min_max_frame);
  COWPI_ASSERT(max_frame <= UINT32_MAX);
}

/// Maps a decoder error to the ERROR code that reports it.
frame_error_code code_for_decode(errc e) noexcept {
  switch (e) {
    case errc::too_large:
      return frame_error_code::too_large;
    case errc::unsupported_version:
      return frame_error_code::unsupported_version;
    default:
      return frame_error_code::malformed;
  }
}

/// Cuts `s` to at most `max_text_len` bytes without splitting a UTF-8 sequence.
std::string clip_text(std::string_view s) {
  if (s.size() <= max_text_len) {
    return std::string(s);
  }
  size_t n = max_text_len;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) {
    --n;
  }
  return std::string(s.substr(0, n));
}

/// The human text of an ERROR frame: what failed and the (loggable) decoder context.
std::string error_text(frame_error_code code, const error& cause) {
  std::string s{to_string(code)};
  if (!cause.context.empty()) {
    s += ": ";
    s += cause.context;
  }
  return clip_text(s);
}

bytes clear_error_frame(frame_error_code code, std::string text) {
  return length_prefixed(wire::encode(clear_frame{error_frame{code, std::move(text)}}));
}

/// Seals `payload` as the next frame of `c`: `be32(len) || ciphertext || tag`.
bytes seal_into_frame(frame_cipher& c, byte_view payload) {
  return length_prefixed(c.seal(payload));
}

/// Checks that a sealed payload fits `max_frame` before touching the counter.
expected<void> check_sealed_size(size_t payload, size_t max_frame) {
  if (payload > max_frame - crypto::aead_tag_size) {
    return fail(errc::too_large, "sealed frame of "
                                     + std::to_string(payload + crypto::aead_tag_size)
                                     + " bytes, limit " + std::to_string(max_frame));
  }
  return {};
}

/// Seals `payload` as the next frame on the direction `c` (sent by this side), if its keys exist
/// and the sealed frame fits `max_frame`.
expected<bytes> seal_frame(std::optional<frame_cipher>& c, byte_view payload, size_t max_frame) {
  if (!c) {
    return fail(errc::bad_state, "no session keys");
  }
  COWPI_TRY_VOID(check_sealed_size(payload.size(), max_frame));
  return seal_into_frame(*c, payload);
}

/// Advances both directions' frame counters (test hook of either side).
expected<void> skip_frames(std::optional<frame_cipher>& c2r, std::optional<frame_cipher>& r2c,
                           uint64_t c2r_frames, uint64_t r2c_frames) {
  if (!c2r || !r2c) {
    return fail(errc::bad_state, "no session keys");
  }
  c2r->skip_for_test(c2r_frames);
  r2c->skip_for_test(r2c_frames);
  return {};
}

/// Checks a payload framed by the caller the way a length prefix would have been checked.
expected<void> check_payload(byte_view payload, size_t max_frame) {
  if (payload.empty()) {
    return fail(errc::malformed, "frame length 0");
  }
  if (payload.size() > max_frame) {
    return fail(errc::too_large, "frame of " + std::to_string(payload.size()) + " bytes, limit "
                                     + std::to_string(max_frame));
  }
  return {};
}

// The two entry points both sessions share. `fatal(out, code, cause)` ends the session;
// `handle(out, payload)` takes one whole frame.
//
// A byte stream: every complete frame in `in` is handled until the session closes
// (`closed()`); a framing error ends it with the matching code.
template <class Event, class Closed, class Fatal, class Handle>
std::vector<Event> feed_frames(frame_reassembler& r, byte_view in, Closed closed, Fatal fatal,
                               Handle handle) {
  std::vector<Event> out;
  while (!in.empty() && !closed()) {
    auto step = r.next(in);
    if (!step) {
      auto code = code_for_decode(step.error().code);
      fatal(out, code, std::move(step).error());
      break;
    }
    in = in.subspan(step->consumed);
    if (step->frame) {
      handle(out, *step->frame);
    }
  }
  return out;
}

// One whole frame (a transport that keeps frame boundaries); nothing on a closed session.
template <class Event, class Fatal, class Handle>
std::vector<Event> one_frame(bool closed, byte_view payload, size_t max_frame, Fatal fatal,
                             Handle handle) {
  std::vector<Event> out;
  if (closed) {
    return out;
  }
  if (auto ok = check_payload(payload, max_frame); !ok) {
    auto code = code_for_decode(ok.error().code);
    fatal(out, code, std::move(ok).error());
    return out;
  }
  handle(out, payload);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Framing.

expected<uint32_t> read_frame_length(std::span<const uint8_t, frame_header_size> h,
                                     size_t max_frame) noexcept {
  const uint32_t len =
      (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | uint32_t{h[3]};
  if (len == 0) {
    return fail(errc::malformed, "frame length 0");
  }
  if (len > max_frame) {
    return fail(errc::too_large,
                "frame of " + std::to_string(len) + " bytes, limit " + std::to_string(max_frame));
  }
  return len;
}

bytes length_prefixed(byte_view payload) {
  COWPI_ASSERT(!payload.empty() && payload.size() <= UINT32_MAX);
  byte_writer w(frame_header_size + payload.size());
  w.be32(static_cast<uint32_t>(payload.size())).raw(payload);
  return std::move(w).take();
}

frame_reassembler::frame_reassembler(size_t max_frame) : max_frame_(max_frame) {
  check_max_frame(max_frame);
}

size_t frame_reassembler::wanted() const noexcept {
  if (failure_) {
    return 0;
  }
  if (header_have_ < frame_header_size) {
    return frame_header_size - header_have_;
  }
  return len_ - body_.size();
}

expected<frame_step> frame_reassembler::next(byte_view in) {
  if (failure_) {
    return unexpected<error>{*failure_};
  }
  if (delivered_) {
    delivered_ = false;
    if (body_.capacity() > keep_buffer_capacity) {
      bytes().swap(body_);
    } else {
      body_.clear();
    }
  }
  frame_step step;
  size_t pos = 0;
  if (header_have_ < frame_header_size) {
    const size_t take = std::min(frame_header_size - header_have_, in.size());
    std::copy_n(in.begin(), take, header_.begin() + static_cast<std::ptrdiff_t>(header_have_));
    header_have_ += take;
    pos += take;
    if (header_have_ < frame_header_size) {
      step.consumed = pos;
      return step;
    }
    auto len = read_frame_length(header_, max_frame_);
    if (!len) {
      failure_ = len.error();
      return unexpected<error>{std::move(len).error()};
    }
    len_ = *len;
  }
  const size_t need = len_ - body_.size();
  const size_t avail = in.size() - pos;
  if (body_.empty() && avail >= need) {
    // The whole body is in this input: hand out a view of it, no copy.
    step.frame = in.subspan(pos, need);
    pos += need;
    header_have_ = 0;
    len_ = 0;
    step.consumed = pos;
    return step;
  }
  const size_t take = std::min(need, avail);
  const auto first = in.begin() + static_cast<std::ptrdiff_t>(pos);
  body_.insert(body_.end(), first, first + static_cast<std::ptrdiff_t>(take));
  pos += take;
  if (body_.size() == len_) {
    step.frame = byte_view(body_);
    delivered_ = true;
    header_have_ = 0;
    len_ = 0;
  }
  step.consumed = pos;
  return step;
}

// ---------------------------------------------------------------------------------------------
// Router side.

std::string_view to_string(router_state s) noexcept {
  switch (s) {
    case router_state::await_hello:
      return "await_hello";
    case router_state::await_lookup:
      return "await_lookup";
    case router_state::await_proof:
      return "await_proof";
    case router_state::established:
      return "established";
    case router_state::closed:
      return "closed";
  }
  return "unknown";
}

router_session::router_session(const identity& router, size_t max_frame)
    : router_(&router), max_frame_(max_frame), reassembler_(max_frame) {
  check_max_frame(max_frame);
}

std::vector<router_event> router_session::feed(byte_view in) {
  return feed_frames<router_event>(
      reassembler_, in, [this] { return state_ == router_state::closed; },
      [this](auto& out, frame_error_code c, error e) { fatal(out, c, std::move(e)); },
      [this](auto& out, byte_view f) { handle_frame(out, f); });
}

std::vector<router_event> router_session::on_frame(byte_view payload) {
  return one_frame<router_event>(
      state_ == router_state::closed, payload, max_frame_,
      [this](auto& out, frame_error_code c, error e) { fatal(out, c, std::move(e)); },
      [this](auto& out, byte_view f) { handle_frame(out, f); });
}

void router_session::handle_frame(std::vector<router_event>& out, byte_view payload) {
  switch (state_) {
    case router_state::await_hello:
      on_hello(out, payload);
      return;
    case router_state::await_lookup:
      // An honest client waits for HELLO_ACK: it has no keys to send anything else with.
      fatal(out, frame_error_code::protocol_violation,
            error{errc::bad_state, "frame before HELLO_ACK"});
      return;
    case router_state::await_proof:
      on_proof(out, payload);
      return;
    case router_state::established:
      on_encrypted(out, payload);
      return;
    case router_state::closed:
      return;
  }
}

void router_session::on_hello(std::vector<router_event>& out, byte_view payload) {
  auto f = wire::decode_clear_frame(payload);
  if (!f) {
    auto code = code_for_decode(f.error().code);
    fatal(out, code, std::move(f).error());
    return;
  }
  auto* h = std::get_if<hello>(&*f);
  if (h == nullptr) {
    fatal(out, frame_error_code::protocol_violation,
          error{errc::bad_state, "the first frame is not HELLO"});
    return;
  }
  if (h->version != transport_version) {
    fatal(out, frame_error_code::unsupported_version,
          error{errc::unsupported_version, "HELLO version " + std::to_string(unsigned{h->version})
                                               + ", this router speaks "
                                               + std::to_string(unsigned{transport_version})});
    return;
  }
  if (!valid_id(h->id)) {
    fatal(out, frame_error_code::malformed, error{errc::malformed, "HELLO id is not a valid id"});
    return;
  }
  // docs/design.md §2: a REGISTER needs an id that is no provider's id. The directory knows every
  // provider; the router's own id is refused here too, without a lookup.
  if (h->id == router_->id()) {
    if (h->mode == hello_mode::register_user) {
      fatal(out, frame_error_code::id_taken, error{errc::already_exists, "id is a provider's"});
    } else {
      fatal(out, frame_error_code::unknown_user, error{errc::not_found, "unknown user"});
    }
    return;
  }
  x_u_ = h->x;
  peer_ = need_lookup{h->mode, std::move(h->id), h->lpk};
  state_ = router_state::await_lookup;
  out.emplace_back(*peer_);
}

expected<std::vector<router_event>> router_session::resolve_lookup(lookup_result result,
                                                                   crypto::rng& r) {
  std::vector<router_event> out;
  if (state_ == router_state::closed) {
    return out;
  }
  if (state_ != router_state::await_lookup) {
    return fail(errc::bad_state, "no lookup pending");
  }
  const hello_mode mode = peer_->mode;
  switch (result) {
    case lookup_result::unknown_user:
      if (mode != hello_mode::login) {
        return fail(errc::invalid_argument, "unknown_user answers a LOGIN only");
      }
      fatal(out, frame_error_code::unknown_user, error{errc::not_found, "unknown user"});
      return out;
    case lookup_result::id_taken:
      if (mode != hello_mode::register_user) {
        return fail(errc::invalid_argument, "id_taken answers a REGISTER only");
      }
      fatal(out, frame_error_code::id_taken, error{errc::already_exists, "id taken"});
      return out;
    case lookup_result::ok:
      break;
    default:
      return fail(errc::invalid_argument, "unknown lookup result");
  }
  // Mobile CoWPI §2: X_R is a NAXOS ephemeral; x_R is wiped when `kp` goes out of scope, right
  // after the session keys are derived.
  auto kp = naxos_fresh(*router_, r);
  handshake_transcript t;
  t.version = transport_version;
  t.mode = mode;
  t.id_u = peer_->id;
  t.id_r = router_->id();
  t.lpk_u = peer_->lpk;
  t.lpk_r = router_->lpk();
  t.x_u = x_u_;
  t.x_r = kp.pub;
  auto keys = router_session_keys(*router_, kp.x, t);
  if (!keys) {
    // A low-order lpk_U or X_U: nothing secret can be agreed on.
    fatal(out, frame_error_code::bad_handshake,
          error{keys.error().code, "handshake key agreement failed"});
    return out;
  }
  c2r_.emplace(std::move(keys->c2r));
  r2c_.emplace(std::move(keys->r2c));
  state_ = router_state::await_proof;
  out.emplace_back(
      send_frame{length_prefixed(wire::encode(clear_frame{hello_ack{transport_version, kp.pub}}))});
  return out;
}

void router_session::on_proof(std::vector<router_event>& out, byte_view payload) {
  auto pt = c2r_->open(payload);
  if (!pt) {
    // Wrong lpk_R on the client, or a client without the secret of the lpk it claimed: the
    // session never counts, and a REGISTER is never committed. Still a clear ERROR.
    fatal(out, frame_error_code::bad_handshake,
          error{errc::decrypt_failed, "the first encrypted frame did not decrypt"});
    return;
  }
  // Mobile CoWPI §2: the first frame that decrypts proves possession of lsk_U.
  state_ = router_state::established;
  out.emplace_back(authenticated{peer_->mode, peer_->id, peer_->lpk});
  on_request(out, *pt);
}

void router_session::on_encrypted(std::vector<router_event>& out, byte_view payload) {
  auto pt = c2r_->open(payload);
  if (!pt) {
    // Tampered, replayed, reordered or dropped: the counters no longer agree.
    fatal(out, frame_error_code::protocol_violation,
          error{errc::decrypt_failed, "frame did not decrypt"});
    return;
  }
  on_request(out, *pt);
}

void router_session::on_request(std::vector<router_event>& out, const bytes& plaintext) {
  auto f = wire::decode_client_frame(plaintext);
  if (f) {
    out.emplace_back(incoming_request{std::move(f).value()});
    return;
  }
  auto& p = f.error();
  if (p.answer && p.request_id) {
    // Answerable (BAD_BLOCK_SIZE): refuse this request only; the connection survives.
    auto sealed = seal(response{*p.request_id, *p.answer});
    if (sealed) {
      out.emplace_back(refused_request{*p.request_id, *p.answer, p.err});
      out.emplace_back(send_frame{std::move(sealed).value()});
      return;
    }
  }
  auto code = code_for_decode(p.err.code);
  fatal(out, code, std::move(p.err));
}

std::vector<router_event> router_session::shut_down(frame_error_code code,
                                                    std::string_view message) {
  std::vector<router_event> out;
  if (state_ == router_state::closed) {
    return out;
  }
  // The peer sees `message` as given; the local cause records only the code.
  error cause{errc::closed, "shut down by the router"};
  error_frame ef{code, clip_text(message)};
  if (state_ == router_state::established) {
    auto sealed = seal(router_frame{std::move(ef)});
    if (sealed) {
      out.emplace_back(send_frame{std::move(sealed).value()});
    }
  } else {
    out.emplace_back(send_frame{length_prefixed(wire::encode(clear_frame{std::move(ef)}))});
  }
  c2r_.reset();
  r2c_.reset();
  state_ = router_state::closed;
  out.emplace_back(close_connection{code, std::move(cause)});
  return out;
}

void router_session::fatal(std::vector<router_event>& out, frame_error_code code, error cause) {
  std::string text = error_text(code, cause);
  if (state_ == router_state::established) {
    auto sealed = seal(router_frame{error_frame{code, std::move(text)}});
    if (sealed) {
      out.emplace_back(send_frame{std::move(sealed).value()});
    }
  } else {
    // docs/design.md §2: errors before the first decrypted client frame are clear ERROR frames.
    out.emplace_back(send_frame{clear_error_frame(code, std::move(text))});
  }
  c2r_.reset();
  r2c_.reset();
  state_ = router_state::closed;
  out.emplace_back(close_connection{code, std::move(cause)});
}

expected<bytes> router_session::seal(const router_frame& f) {
  if (state_ == router_state::closed) {
    return fail(errc::closed, "session closed");
  }
  if (state_ != router_state::established) {
    return fail(errc::bad_state, "session not established");
  }
  return seal_bytes(wire::encode(f));
}

expected<bytes> router_session::seal_bytes(byte_view payload) {
  return seal_frame(r2c_, payload, max_frame_);
}

expected<bytes> router_session::seal_payload_for_test(byte_view payload) {
  return seal_bytes(payload);
}

expected<void> router_session::skip_frames_for_test(uint64_t c2r, uint64_t r2c) {
  return skip_frames(c2r_, r2c_, c2r, r2c);
}

// ---------------------------------------------------------------------------------------------
// Client side.

std::string_view to_string(client_state s) noexcept {
  switch (s) {
    case client_state::idle:
      return "idle";
    case client_state::await_ack:
      return "await_ack";
    case client_state::ready:
      return "ready";
    case client_state::closed:
      return "closed";
  }
  return "unknown";
}

client_session::client_session(const identity& user, std::string router_id,
                               const public_key& router_lpk, size_t max_frame)
    : user_(&user),
      router_id_(std::move(router_id)),
      router_lpk_(router_lpk),
      max_frame_(max_frame),
      reassembler_(max_frame) {
  check_max_frame(max_frame);
}

expected<bytes> client_session::start(hello_mode mode, crypto::rng& r) {
  if (state_ != client_state::idle) {
    return fail(errc::bad_state, "session already started");
  }
  auto kp = naxos_fresh(*user_, r);
  x_u_ = std::move(kp.x);
  x_u_pub_ = kp.pub;
  mode_ = mode;
  state_ = client_state::await_ack;
  hello h{transport_version, mode, user_->id(), user_->lpk(), x_u_pub_};
  return length_prefixed(wire::encode(clear_frame{std::move(h)}));
}

std::vector<client_event> client_session::feed(byte_view in) {
  return feed_frames<client_event>(
      reassembler_, in, [this] { return state_ == client_state::closed; },
      [this](auto& out, frame_error_code c, error e) { fatal(out, c, std::move(e)); },
      [this](auto& out, byte_view f) { handle_frame(out, f); });
}

std::vector<client_event> client_session::on_frame(byte_view payload) {
  return one_frame<client_event>(
      state_ == client_state::closed, payload, max_frame_,
      [this](auto& out, frame_error_code c, error e) { fatal(out, c, std::move(e)); },
      [this](auto& out, byte_view f) { handle_frame(out, f); });
}

void client_session::handle_frame(std::vector<client_event>& out, byte_view payload) {
  switch (state_) {
    case client_state::idle:
      fatal(out, frame_error_code::protocol_violation,
            error{errc::bad_state, "frame before HELLO was sent"});
      return;
    case client_state::await_ack:
      on_ack(out, payload);
      return;
    case client_state::ready:
      on_encrypted(out, payload);
      return;
    case client_state::closed:
      return;
  }
}

void client_session::on_ack(std::vector<client_event>& out, byte_view payload) {
  auto f = wire::decode_clear_frame(payload);
  if (!f) {
    auto code = code_for_decode(f.error().code);
    fatal(out, code, std::move(f).error());
    return;
  }
  if (auto* e = std::get_if<error_frame>(&*f)) {
    const frame_error_code code = e->code;
    out.emplace_back(router_error{std::move(*e), false});
    fatal(out, code, error{errc::rejected, "the router refused the HELLO"});
    return;
  }
  auto* ack = std::get_if<hello_ack>(&*f);
  if (ack == nullptr) {
    fatal(out, frame_error_code::protocol_violation,
          error{errc::bad_state, "expected HELLO_ACK or ERROR"});
    return;
  }
  if (ack->version != transport_version) {
    fatal(out, frame_error_code::unsupported_version,
          error{errc::unsupported_version,
                "HELLO_ACK version " + std::to_string(unsigned{ack->version})});
    return;
  }
  handshake_transcript t;
  t.version = transport_version;
  t.mode = mode_;
  t.id_u = user_->id();
  t.id_r = router_id_;
  t.lpk_u = user_->lpk();
  t.lpk_r = router_lpk_;
  t.x_u = x_u_pub_;
  t.x_r = ack->x;
  auto keys = client_session_keys(*user_, x_u_, t);
  // Mobile CoWPI §2: the ephemeral secret is wiped as soon as the keys are computed.
  x_u_.wipe();
  if (!keys) {
    fatal(out, frame_error_code::bad_handshake,
          error{keys.error().code, "handshake key agreement failed"});
    return;
  }
  c2r_.emplace(std::move(keys->c2r));
  r2c_.emplace(std::move(keys->r2c));
  state_ = client_state::ready;
  out.emplace_back(session_ready{});
}

void client_session::on_encrypted(std::vector<client_event>& out, byte_view payload) {
  auto pt = r2c_->open(payload);
  if (!pt) {
    if (!confirmed_) {
      // docs/design.md §2: until the router has decrypted our first frame it answers in clear, so
      // an ERROR refusing that frame (e.g. BAD_HANDSHAKE) arrives as a clear frame. Only an
      // ERROR is accepted this way, and only before any router frame decrypted.
      auto f = wire::decode_clear_frame(payload);
      if (f) {
        if (auto* e = std::get_if<error_frame>(&*f)) {
          const frame_error_code code = e->code;
          out.emplace_back(router_error{std::move(*e), false});
          fatal(out, code, error{errc::rejected, "the router refused the first frame"});
          return;
        }
      }
      fatal(out, frame_error_code::bad_handshake,
            error{errc::decrypt_failed, "the first router frame did not decrypt"});
      return;
    }
    fatal(out, frame_error_code::protocol_violation,
          error{errc::decrypt_failed, "frame did not decrypt"});
    return;
  }
  confirmed_ = true;
  auto f = wire::decode_router_frame(*pt);
  if (!f) {
    auto code = code_for_decode(f.error().code);
    fatal(out, code, std::move(f).error());
    return;
  }
  if (auto* e = std::get_if<error_frame>(&*f)) {
    const frame_error_code code = e->code;
    out.emplace_back(router_error{std::move(*e), true});
    fatal(out, code, error{errc::rejected, "the router closed the session"});
    return;
  }
  out.emplace_back(router_message{std::move(f).value()});
}

void client_session::fatal(std::vector<client_event>& out, frame_error_code code, error cause) {
  close();
  out.emplace_back(close_connection{code, std::move(cause)});
}

void client_session::close() noexcept {
  x_u_.wipe();
  c2r_.reset();
  r2c_.reset();
  state_ = client_state::closed;
}

expected<bytes> client_session::seal(const client_frame& f) {
  if (state_ == client_state::closed) {
    return fail(errc::closed, "session closed");
  }
  if (state_ != client_state::ready) {
    return fail(errc::bad_state, "session not ready");
  }
  return seal_bytes(wire::encode(f));
}

expected<bytes> client_session::seal_bytes(byte_view payload) {
  return seal_frame(c2r_, payload, max_frame_);
}

expected<bytes> client_session::seal_payload_for_test(byte_view payload) {
  return seal_bytes(payload);
}

expected<void> client_session::skip_frames_for_test(uint64_t c2r, uint64_t r2c) {
  return skip_frames(c2r_, r2c_, c2r, r2c);
}

}  // namespace cowpi::protocol

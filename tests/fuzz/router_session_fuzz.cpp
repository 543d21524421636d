// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the transport session: drives a router_session (and, in two modes, a
// client_session) with fuzz bytes and checks the event invariants a broker relies on.
//
// Input: byte 0 picks the mode, the rest is mode-specific.
//   0 raw:      be16 n, n bytes sent as one clear frame (the HELLO slot), then one byte for the
//               directory's answer if HELLO got through, then chunks `u8 size, size bytes` fed
//               to the router as raw socket bytes (prefixes included).
//   1 sealed:   a real client_session runs the handshake (LOGIN or REGISTER by the next byte),
//               then each `be16 n, n bytes` is sealed as the client's next frame payload and fed
//               to the router, so the post-handshake decoder sees arbitrary plaintext. A payload
//               with the top bit of n set is fed one byte at a time.
//   2 client:   the handshake as in mode 1, then each `be16 n, n bytes` is sealed by the router
//               and fed to the client (router-frame decoder), or, with the top bit set, fed raw.
//   3 hello:    a client_session sends HELLO; the rest is fed raw to it (HELLO_ACK slot).
#include "cowpi/protocol/session.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <variant>
#include <vector>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using namespace cowpi;            // NOLINT(google-build-using-namespace)
using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace)

constexpr size_t fuzz_max_frame = 64 * 1024;

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "session invariant broken: %s\n", what);
  std::abort();
}

/// Fixed identities: generating them per input would dominate the run time.
struct world {
  crypto::deterministic_rng rng{2024};
  identity router = identity::generate("router", rng);
  identity user = identity::generate("alice", rng);
};

world& the_world() {
  static world w;
  return w;
}

/// Reads fuzz input front to back; reads past the end yield zeros and empty views.
class input {
public:
  input(const uint8_t* d, size_t n) : rest_(d, n) {}
  bool empty() const { return rest_.empty(); }
  uint8_t u8() {
    if (rest_.empty()) {
      return 0;
    }
    uint8_t v = rest_[0];
    rest_ = rest_.subspan(1);
    return v;
  }
  uint16_t be16() {
    const auto hi = static_cast<uint16_t>(u8());
    return static_cast<uint16_t>((hi << 8) | u8());
  }
  byte_view take(size_t n) {
    n = std::min(n, rest_.size());
    byte_view v = rest_.first(n);
    rest_ = rest_.subspan(n);
    return v;
  }

private:
  byte_view rest_;
};

/// Checks what a broker relies on, across every batch of one session's events: nothing after
/// `close_connection`, which comes once, last; `authenticated` at most once and never after a
/// close; a `refused_request` always followed by the answer to send.
template <class Event>
class event_checker {
public:
  void check(const std::vector<Event>& ev) {
    for (size_t i = 0; i < ev.size(); ++i) {
      if (closed_) {
        broken("event after close_connection");
      }
      if (std::holds_alternative<close_connection>(ev[i])) {
        closed_ = true;
      }
      if constexpr (std::is_same_v<Event, router_event>) {
        if (std::holds_alternative<authenticated>(ev[i]) && authenticated_++ > 0) {
          broken("authenticated twice");
        }
        if (std::holds_alternative<refused_request>(ev[i])
            && (i + 1 >= ev.size() || !std::holds_alternative<send_frame>(ev[i + 1]))) {
          broken("refused_request without its answer");
        }
      }
      if (const auto* s = std::get_if<send_frame>(&ev[i]); s != nullptr && s->data.size() < 5) {
        broken("send_frame shorter than a prefix and one byte");
      }
    }
  }
  bool closed() const { return closed_; }
  int authenticated_count() const { return authenticated_; }

private:
  bool closed_ = false;
  int authenticated_ = 0;
};

void check_router_state(const router_session& rs, const event_checker<router_event>& c) {
  if (rs.is_closed() != c.closed()) {
    broken("router closed state and close_connection disagree");
  }
  if (rs.is_established() && c.authenticated_count() != 1) {
    broken("established without exactly one authenticated");
  }
  if (rs.reassembler().buffered() > frame_header_size + fuzz_max_frame) {
    broken("router buffered more than one frame");
  }
}

lookup_result answer_for(hello_mode mode, uint8_t pick) {
  switch (pick % 3) {
    case 0:
      return lookup_result::ok;
    case 1:
      return mode == hello_mode::login ? lookup_result::unknown_user : lookup_result::id_taken;
    default:
      // Deliberately the wrong answer for the mode: must fail without changing anything.
      return mode == hello_mode::login ? lookup_result::id_taken : lookup_result::unknown_user;
  }
}

void run_raw(input& in) {
  world& w = the_world();
  crypto::deterministic_rng r(in.u8());
  router_session rs(w.router, fuzz_max_frame);
  event_checker<router_event> checker;
  const byte_view hello_bytes = in.take(in.be16());
  if (!hello_bytes.empty()) {
    auto ev = rs.feed(length_prefixed(hello_bytes));
    checker.check(ev);
    for (const auto& e : ev) {
      if (const auto* q = std::get_if<need_lookup>(&e)) {
        const auto before = rs.state();
        auto more = rs.resolve_lookup(answer_for(q->mode, in.u8()), r);
        if (more.has_value()) {
          checker.check(*more);
        } else if (rs.state() != before) {
          broken("a refused resolve_lookup changed the state");
        }
      }
    }
  }
  check_router_state(rs, checker);
  while (!in.empty()) {
    const byte_view chunk = in.take(size_t{in.u8()} + 1);
    checker.check(rs.feed(chunk));
    check_router_state(rs, checker);
  }
  if (!rs.is_closed()) {
    checker.check(rs.shut_down(frame_error_code::internal, "end of input"));
  }
  if (!rs.is_closed()) {
    broken("shut_down did not close");
  }
}

/// Runs the handshake between `rs` and `cs`; returns false if it did not reach session_ready.
bool handshake(router_session& rs, client_session& cs, hello_mode mode, crypto::rng& r,
               event_checker<router_event>& rc, event_checker<client_event>& cc) {
  auto hello_bytes = cs.start(mode, r);
  if (!hello_bytes.has_value()) {
    broken("start failed");
  }
  auto ev = rs.feed(*hello_bytes);
  rc.check(ev);
  auto acked = rs.resolve_lookup(lookup_result::ok, r);
  if (!acked.has_value()) {
    broken("resolve_lookup after HELLO failed");
  }
  rc.check(*acked);
  bytes sent;
  for (const auto& e : *acked) {
    if (const auto* s = std::get_if<send_frame>(&e)) {
      sent.insert(sent.end(), s->data.begin(), s->data.end());
    }
  }
  auto cev = cs.feed(sent);
  cc.check(cev);
  if (!cs.is_ready()) {
    broken("an honest handshake did not complete");
  }
  return true;
}

void run_sealed(input& in) {
  world& w = the_world();
  crypto::deterministic_rng r(in.u8());
  const hello_mode mode = (in.u8() & 1) != 0 ? hello_mode::register_user : hello_mode::login;
  router_session rs(w.router, fuzz_max_frame);
  client_session cs(w.user, w.router.id(), w.router.lpk(), fuzz_max_frame);
  event_checker<router_event> rc;
  event_checker<client_event> cc;
  handshake(rs, cs, mode, r, rc, cc);
  bool first = true;
  while (!in.empty() && !rs.is_closed()) {
    const uint16_t n = in.be16();
    const byte_view payload = in.take(n & 0x7fffu);
    // An empty payload seals too (the tag alone) and must be refused as malformed.
    auto sealed = cs.seal_payload_for_test(payload);
    if (!sealed.has_value()) {
      continue;  // over the frame limit: the counter did not advance
    }
    if ((n & 0x8000u) != 0) {
      for (size_t i = 0; i < sealed->size(); ++i) {
        rc.check(rs.feed(byte_view(*sealed).subspan(i, 1)));
        check_router_state(rs, rc);
      }
    } else {
      rc.check(rs.feed(*sealed));
      check_router_state(rs, rc);
    }
    if (first && rc.authenticated_count() != 1) {
      broken("a correctly sealed first frame did not authenticate");
    }
    first = false;
  }
}

void run_client(input& in) {
  world& w = the_world();
  crypto::deterministic_rng r(in.u8());
  router_session rs(w.router, fuzz_max_frame);
  client_session cs(w.user, w.router.id(), w.router.lpk(), fuzz_max_frame);
  event_checker<router_event> rc;
  event_checker<client_event> cc;
  handshake(rs, cs, hello_mode::login, r, rc, cc);
  auto proof = cs.seal(client_frame{1, ping{}});
  if (!proof.has_value()) {
    broken("sealing a ping failed");
  }
  rc.check(rs.feed(*proof));
  if (!rs.is_established()) {
    broken("an honest proof did not establish the session");
  }
  while (!in.empty() && !cs.is_closed()) {
    const uint16_t n = in.be16();
    const byte_view payload = in.take(n & 0x7fffu);
    if ((n & 0x8000u) != 0) {
      cc.check(cs.feed(payload));
    } else {
      auto sealed = rs.seal_payload_for_test(payload);
      if (sealed.has_value()) {
        cc.check(cs.feed(*sealed));
      }
    }
    if (cs.is_closed() != cc.closed()) {
      broken("client closed state and close_connection disagree");
    }
  }
}

void run_hello_ack(input& in) {
  world& w = the_world();
  crypto::deterministic_rng r(in.u8());
  client_session cs(w.user, w.router.id(), w.router.lpk(), fuzz_max_frame);
  event_checker<client_event> cc;
  if (!cs.start(hello_mode::login, r).has_value()) {
    broken("start failed");
  }
  while (!in.empty()) {
    const byte_view chunk = in.take(size_t{in.u8()} + 1);
    cc.check(cs.feed(chunk));
    if (cs.is_closed() != cc.closed()) {
      broken("client closed state and close_connection disagree");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  if (sodium_init() < 0) {
    std::abort();
  }
  (void)the_world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input in(data, size);
  switch (in.u8() % 4) {
    case 0:
      run_raw(in);
      break;
    case 1:
      run_sealed(in);
      break;
    case 2:
      run_client(in);
      break;
    default:
      run_hello_ack(in);
      break;
  }
  return 0;
}

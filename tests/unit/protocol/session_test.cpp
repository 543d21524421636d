// SPDX-License-Identifier: Apache-2.0
// The transport session (docs/design.md §2): framing under any chunking, the LOGIN and REGISTER
// handshakes, proof of possession, frames both ways, the documented errors and the rekey
// boundary, all in memory.
#include "cowpi/protocol/session.hpp"

#include "cowpi/protocol/wire.hpp"

#include "session_pair.hpp"
#include "wire_samples.hpp"
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace cowpi::protocol {
namespace {

using namespace session_testing;  // NOLINT(google-build-using-namespace)

bytes payload_of(size_t n, uint8_t seed) {
  bytes b(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = static_cast<uint8_t>(seed + i);
  }
  return b;
}

/// Feeds `in` through `r` and returns the frames it completes (copied).
expected<std::vector<bytes>> split(frame_reassembler& r, byte_view in) {
  std::vector<bytes> frames;
  while (!in.empty()) {
    COWPI_TRY(frame_step step, r.next(in));
    EXPECT_GT(step.consumed, 0u);
    in = in.subspan(step.consumed);
    if (step.frame) {
      frames.emplace_back(step.frame->begin(), step.frame->end());
    }
  }
  return frames;
}

bytes concat(const std::vector<bytes>& parts) {
  bytes out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Framing.

TEST(frame_length, a_prefix_is_a_big_endian_count_of_the_bytes_after_it) {
  auto f = length_prefixed(payload_of(0x0102, 7));
  ASSERT_EQ(f.size(), 4u + 0x0102);
  EXPECT_EQ(f[0], 0);
  EXPECT_EQ(f[1], 0);
  EXPECT_EQ(f[2], 1);
  EXPECT_EQ(f[3], 2);
  std::array<uint8_t, 4> h{f[0], f[1], f[2], f[3]};
  auto len = read_frame_length(h, 4096);
  ASSERT_TRUE(len.has_value());
  EXPECT_EQ(*len, 0x0102u);
}

TEST(frame_length, zero_is_malformed_and_over_the_limit_is_too_large) {
  std::array<uint8_t, 4> zero{0, 0, 0, 0};
  EXPECT_EQ(read_frame_length(zero, 4096).error().code, errc::malformed);
  std::array<uint8_t, 4> at{0, 0, 0x10, 0x00};
  EXPECT_TRUE(read_frame_length(at, 4096).has_value());
  std::array<uint8_t, 4> over{0, 0, 0x10, 0x01};
  EXPECT_EQ(read_frame_length(over, 4096).error().code, errc::too_large);
  std::array<uint8_t, 4> huge{0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(read_frame_length(huge, max_frame_protocol).error().code, errc::too_large);
}

TEST(frame_reassembler, yields_a_frame_split_into_one_byte_chunks) {
  frame_reassembler r(4096);
  const bytes p = payload_of(300, 1);
  const bytes f = length_prefixed(p);
  std::vector<bytes> frames;
  for (size_t i = 0; i < f.size(); ++i) {
    auto step = r.next(byte_view(f).subspan(i, 1));
    ASSERT_TRUE(step.has_value());
    EXPECT_EQ(step->consumed, 1u);
    if (step->frame) {
      frames.emplace_back(step->frame->begin(), step->frame->end());
    }
    EXPECT_LE(r.buffered(), 4u + p.size());
  }
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], p);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(frame_reassembler, yields_every_frame_of_a_coalesced_chunk_in_order) {
  frame_reassembler r(4096);
  std::vector<bytes> payloads{payload_of(1, 1), payload_of(17, 2), payload_of(4096, 3),
                              payload_of(5, 4)};
  std::vector<bytes> framed;
  for (const auto& p : payloads) {
    framed.push_back(length_prefixed(p));
  }
  auto frames = split(r, concat(framed));
  ASSERT_TRUE(frames.has_value());
  EXPECT_EQ(*frames, payloads);
}

TEST(frame_reassembler, yields_the_same_frames_under_any_chunking) {
  std::mt19937_64 gen(12345);
  std::vector<bytes> payloads;
  for (uint8_t i = 0; i < 20; ++i) {
    payloads.push_back(payload_of(1 + gen() % 700, i));
  }
  std::vector<bytes> framed;
  for (const auto& p : payloads) {
    framed.push_back(length_prefixed(p));
  }
  const bytes stream = concat(framed);
  for (int round = 0; round < 50; ++round) {
    frame_reassembler r(4096);
    std::vector<bytes> frames;
    byte_view rest(stream);
    while (!rest.empty()) {
      const size_t n = std::min<size_t>(rest.size(), 1 + gen() % 900);
      auto got = split(r, rest.first(n));
      ASSERT_TRUE(got.has_value());
      frames.insert(frames.end(), got->begin(), got->end());
      rest = rest.subspan(n);
    }
    EXPECT_EQ(frames, payloads) << "round " << round;
  }
}

TEST(frame_reassembler, a_frame_whole_inside_one_input_is_a_view_of_that_input) {
  frame_reassembler r(4096);
  const bytes f = length_prefixed(payload_of(64, 9));
  auto step = r.next(f);
  ASSERT_TRUE(step.has_value());
  ASSERT_TRUE(step->frame.has_value());
  EXPECT_EQ(step->frame->data(), f.data() + 4);
  EXPECT_EQ(step->consumed, f.size());
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(frame_reassembler, refuses_a_zero_length_prefix) {
  frame_reassembler r(4096);
  const bytes zero{0, 0, 0, 0, 1, 2, 3};
  auto got = split(r, zero);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, errc::malformed);
}

TEST(frame_reassembler, refuses_a_length_over_the_limit_before_any_body_arrives) {
  frame_reassembler r(4096);
  const bytes exact = length_prefixed(payload_of(4096, 0));
  EXPECT_TRUE(split(r, exact).has_value());
  const bytes over{0, 0, 0x10, 0x01};
  auto got = split(r, over);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, errc::too_large);
  EXPECT_EQ(r.buffered(), 4u);  // nothing of the announced body was buffered or reserved
}

TEST(frame_reassembler, stays_dead_after_a_framing_error) {
  frame_reassembler r(4096);
  const bytes zero{0, 0, 0, 0};
  EXPECT_FALSE(r.next(zero).has_value());
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(r.wanted(), 0u);
  const bytes good = length_prefixed(payload_of(3, 0));
  auto again = r.next(good);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, errc::malformed);
}

TEST(frame_reassembler, wanted_tells_a_broker_to_read_the_prefix_then_the_body) {
  frame_reassembler r(4096);
  const bytes f = length_prefixed(payload_of(10, 0));
  EXPECT_EQ(r.wanted(), 4u);
  ASSERT_TRUE(r.next(byte_view(f).first(1)).has_value());
  EXPECT_EQ(r.wanted(), 3u);
  ASSERT_TRUE(r.next(byte_view(f).subspan(1, 3)).has_value());
  EXPECT_EQ(r.wanted(), 10u);
  auto step = r.next(byte_view(f).subspan(4, 10));
  ASSERT_TRUE(step.has_value());
  EXPECT_TRUE(step->frame.has_value());
  EXPECT_EQ(r.wanted(), 4u);
}

// ---------------------------------------------------------------------------------------------
// Handshakes and frames.

TEST(session, a_login_handshake_completes_and_frames_flow_both_ways) {
  session_pair p;
  p.register_user();
  auto hello_bytes = p.client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(hello_bytes.has_value());
  EXPECT_EQ(p.client.state(), client_state::await_ack);

  auto rev = p.router.feed(*hello_bytes);
  ASSERT_EQ(rev.size(), 1u);
  const auto* q = first_of<need_lookup>(rev);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->mode, hello_mode::login);
  EXPECT_EQ(q->id, "alice");
  EXPECT_EQ(q->lpk, p.user.lpk());
  EXPECT_EQ(p.router.state(), router_state::await_lookup);

  auto acked = p.router.resolve_lookup(lookup_result::ok, p.rng);
  ASSERT_TRUE(acked.has_value());
  ASSERT_EQ(acked->size(), 1u);
  EXPECT_EQ(p.router.state(), router_state::await_proof);
  auto cev = p.client.feed(sent_bytes(*acked));
  ASSERT_EQ(cev.size(), 1u);
  EXPECT_NE(first_of<session_ready>(cev), nullptr);
  EXPECT_FALSE(p.client.is_confirmed());

  const client_frame req{7, lookup_users{{"bob", "carol"}}};
  rev = p.request(req);
  ASSERT_EQ(rev.size(), 2u);
  const auto* a = first_of<authenticated>(rev);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->id, "alice");
  EXPECT_EQ(a->lpk, p.user.lpk());
  EXPECT_EQ(a->mode, hello_mode::login);
  ASSERT_NE(first_of<incoming_request>(rev), nullptr);
  EXPECT_EQ(first_of<incoming_request>(rev)->frame, req);
  EXPECT_TRUE(std::holds_alternative<authenticated>(rev[0]));  // before the request
  EXPECT_TRUE(p.router.is_established());

  const router_frame resp{response{7, users_result{{}, {"bob", "carol"}}}};
  cev = p.push(resp);
  ASSERT_EQ(cev.size(), 1u);
  ASSERT_NE(first_of<router_message>(cev), nullptr);
  EXPECT_EQ(first_of<router_message>(cev)->frame, resp);
  EXPECT_TRUE(p.client.is_confirmed());

  for (uint64_t i = 0; i < 10; ++i) {
    rev = p.request(client_frame{100 + i, ack_msg{{}, i}});
    ASSERT_EQ(rev.size(), 1u);
    EXPECT_EQ(first_of<incoming_request>(rev)->frame.request_id, 100 + i);
    cev = p.push(router_frame{response{100 + i, ok_result{}}});
    ASSERT_EQ(cev.size(), 1u);
    EXPECT_NE(first_of<router_message>(cev), nullptr);
  }
}

TEST(session, a_register_counts_only_once_the_first_frame_decrypts) {
  session_pair p;
  auto cev = p.handshake(hello_mode::register_user);
  ASSERT_NE(first_of<session_ready>(cev), nullptr);
  // HELLO_ACK is out, but nothing is proven yet: no authenticated event so far, and the
  // router refuses to send encrypted frames.
  EXPECT_EQ(p.router.state(), router_state::await_proof);
  EXPECT_EQ(p.router.seal(router_frame{response{1, ok_result{}}}).error().code, errc::bad_state);

  auto rev = p.request(client_frame{1, subscribe{}});
  ASSERT_EQ(count_of<authenticated>(rev), 1u);
  EXPECT_EQ(first_of<authenticated>(rev)->mode, hello_mode::register_user);
  EXPECT_EQ(first_of<authenticated>(rev)->id, "alice");
  EXPECT_EQ(count_of<incoming_request>(rev), 1u);

  // Later frames never authenticate again.
  rev = p.request(client_frame{2, ping{}});
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_EQ(count_of<incoming_request>(rev), 1u);
}

TEST(session, the_whole_session_survives_one_byte_chunks_both_ways) {
  session_pair p;
  p.register_user();
  auto cev = p.handshake(hello_mode::login, 1);
  ASSERT_NE(first_of<session_ready>(cev), nullptr);
  submit_msg s = wire_samples::mk_submit(msg_type::message);
  s.body = payload_of(2000, 3);
  auto rev = p.request(client_frame{5, s}, 1);
  ASSERT_EQ(count_of<authenticated>(rev), 1u);
  ASSERT_EQ(count_of<incoming_request>(rev), 1u);
  EXPECT_EQ(first_of<incoming_request>(rev)->frame, (client_frame{5, s}));
  envelope e;
  e.index = 3;
  e.body = payload_of(1500, 4);
  cev = p.push(router_frame{e}, 1);
  ASSERT_EQ(count_of<router_message>(cev), 1u);
  EXPECT_EQ(first_of<router_message>(cev)->frame, router_frame{e});
}

TEST(session, coalesced_frames_are_all_handled_in_order) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  bytes stream;
  for (uint64_t i = 0; i < 25; ++i) {
    auto f = p.client.seal(client_frame{i, ack_msg{{}, i}});
    ASSERT_TRUE(f.has_value());
    stream.insert(stream.end(), f->begin(), f->end());
  }
  auto rev = p.router.feed(stream);
  auto reqs = all_of<incoming_request>(rev);
  ASSERT_EQ(reqs.size(), 25u);
  for (uint64_t i = 0; i < 25; ++i) {
    EXPECT_EQ(reqs[i].frame.request_id, i);
  }

  bytes down;
  for (uint64_t i = 0; i < 25; ++i) {
    auto f = p.router.seal(router_frame{response{i, ok_result{}}});
    ASSERT_TRUE(f.has_value());
    down.insert(down.end(), f->begin(), f->end());
  }
  auto cev = p.client.feed(down);
  EXPECT_EQ(count_of<router_message>(cev), 25u);
}

TEST(session, on_frame_takes_payloads_a_broker_framed_itself) {
  session_pair p;
  p.register_user();
  frame_reassembler broker(max_frame_protocol);
  auto hello_bytes = p.client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(hello_bytes.has_value());
  std::vector<router_event> rev;
  byte_view in(*hello_bytes);
  while (!in.empty()) {
    auto step = broker.next(in.first(std::min<size_t>(in.size(), broker.wanted())));
    ASSERT_TRUE(step.has_value());
    in = in.subspan(step->consumed);
    if (step->frame) {
      append(rev, p.router.on_frame(*step->frame));
    }
  }
  ASSERT_NE(first_of<need_lookup>(rev), nullptr);
  auto ack = p.router.resolve_lookup(lookup_result::ok, p.rng);
  ASSERT_TRUE(ack.has_value());
  const bytes ack_bytes = sent_bytes(*ack);
  auto cev = p.client.on_frame(byte_view(ack_bytes).subspan(4));
  EXPECT_NE(first_of<session_ready>(cev), nullptr);
  auto f = p.client.seal(client_frame{1, ping{}});
  ASSERT_TRUE(f.has_value());
  rev = p.router.on_frame(byte_view(*f).subspan(4));
  EXPECT_NE(first_of<authenticated>(rev), nullptr);
  EXPECT_NE(first_of<incoming_request>(rev), nullptr);
}

TEST(session, on_frame_refuses_an_empty_or_oversized_payload_like_a_bad_prefix) {
  {
    session_pair p(1, min_max_frame);
    auto rev = p.router.on_frame({});
    ASSERT_NE(first_of<close_connection>(rev), nullptr);
    EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::malformed);
  }
  {
    session_pair p(1, min_max_frame);
    const bytes big(min_max_frame + 1, 0);
    auto rev = p.router.on_frame(big);
    ASSERT_NE(first_of<close_connection>(rev), nullptr);
    EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::too_large);
  }
}

TEST(session, sessions_may_change_owners_between_calls) {
  session_pair p;
  p.register_user();
  auto hello_bytes = p.client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(hello_bytes.has_value());
  auto rev = p.router.feed(*hello_bytes);
  router_session moved_router = std::move(p.router);
  client_session moved_client = std::move(p.client);
  auto ack = moved_router.resolve_lookup(lookup_result::ok, p.rng);
  ASSERT_TRUE(ack.has_value());
  auto cev = moved_client.feed(sent_bytes(*ack));
  ASSERT_NE(first_of<session_ready>(cev), nullptr);
  auto f = moved_client.seal(client_frame{1, ping{}});
  ASSERT_TRUE(f.has_value());
  rev = moved_router.feed(*f);
  EXPECT_NE(first_of<authenticated>(rev), nullptr);
}

TEST(session, the_rekey_boundary_is_crossed_in_both_directions) {
  session_pair p;
  p.register_user();
  ASSERT_NE(first_of<session_ready>(p.handshake(hello_mode::login)), nullptr);
  // Both ends jump to three frames before the first rekey, in both directions.
  const uint64_t skip = rekey_interval - 3;
  ASSERT_TRUE(p.client.skip_frames_for_test(skip, skip).has_value());
  ASSERT_TRUE(p.router.skip_frames_for_test(skip, skip).has_value());
  for (uint64_t i = 0; i < 8; ++i) {  // frames 2^20 - 3 .. 2^20 + 4
    auto rev = p.request(client_frame{i, ping{}});
    ASSERT_EQ(count_of<incoming_request>(rev), 1u) << i;
    auto cev = p.push(router_frame{response{i, ok_result{}}});
    ASSERT_EQ(count_of<router_message>(cev), 1u) << i;
  }
  // An end that skipped one frame less is out of step after the boundary as well as before.
  session_pair q(2);
  q.register_user();
  ASSERT_NE(first_of<session_ready>(q.handshake(hello_mode::login)), nullptr);
  ASSERT_TRUE(q.client.skip_frames_for_test(rekey_interval, 0).has_value());
  ASSERT_TRUE(q.router.skip_frames_for_test(rekey_interval - 1, 0).has_value());
  auto rev = q.request(client_frame{1, ping{}});
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_NE(first_of<close_connection>(rev), nullptr);
}

TEST(session, skip_hooks_need_session_keys) {
  session_pair p;
  EXPECT_EQ(p.client.skip_frames_for_test(1, 1).error().code, errc::bad_state);
  EXPECT_EQ(p.router.skip_frames_for_test(1, 1).error().code, errc::bad_state);
}

// ---------------------------------------------------------------------------------------------
// Documented refusals.

TEST(session, an_unknown_user_gets_a_clear_unknown_user_error_and_a_close) {
  session_pair p;  // alice is not registered
  auto cev = p.handshake(hello_mode::login);
  ASSERT_EQ(cev.size(), 2u);
  const auto* e = first_of<router_error>(cev);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->frame.code, frame_error_code::unknown_user);
  EXPECT_FALSE(e->encrypted);
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::unknown_user);
  EXPECT_TRUE(p.router.is_closed());
  EXPECT_TRUE(p.client.is_closed());
}

TEST(session, a_login_with_another_key_than_registered_is_an_unknown_user) {
  session_pair p;
  p.dir.users["alice"] = public_key{9, 9, 9};
  auto cev = p.handshake(hello_mode::login);
  ASSERT_NE(first_of<router_error>(cev), nullptr);
  EXPECT_EQ(first_of<router_error>(cev)->frame.code, frame_error_code::unknown_user);
}

TEST(session, a_taken_id_gets_a_clear_id_taken_error_and_a_close) {
  session_pair p;
  p.dir.users["alice"] = public_key{1};
  auto cev = p.handshake(hello_mode::register_user);
  const auto* e = first_of<router_error>(cev);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->frame.code, frame_error_code::id_taken);
  EXPECT_FALSE(e->encrypted);
  EXPECT_TRUE(p.router.is_closed());
}

TEST(session, a_register_of_a_mirrors_id_is_id_taken) {
  session_pair p(1, max_frame_protocol, "mirror-a");
  auto cev = p.handshake(hello_mode::register_user);
  ASSERT_NE(first_of<router_error>(cev), nullptr);
  EXPECT_EQ(first_of<router_error>(cev)->frame.code, frame_error_code::id_taken);
}

TEST(session, the_routers_own_id_is_refused_without_a_lookup) {
  for (auto mode : {hello_mode::register_user, hello_mode::login}) {
    session_pair p(1, max_frame_protocol, "router");
    auto hello_bytes = p.client.start(mode, p.rng);
    ASSERT_TRUE(hello_bytes.has_value());
    auto rev = p.router.feed(*hello_bytes);
    EXPECT_EQ(count_of<need_lookup>(rev), 0u);
    ASSERT_NE(first_of<close_connection>(rev), nullptr);
    EXPECT_EQ(first_of<close_connection>(rev)->code, mode == hello_mode::register_user
                                                         ? frame_error_code::id_taken
                                                         : frame_error_code::unknown_user);
  }
}

/// Sends a hand-made clear frame as the first frame and returns the router's close code.
std::optional<frame_error_code> first_frame_refusal(const clear_frame& f) {
  session_pair p;
  auto rev = p.router.feed(length_prefixed(wire::encode(f)));
  if (count_of<need_lookup>(rev) != 0) {
    return std::nullopt;
  }
  const auto* c = first_of<close_connection>(rev);
  if (c == nullptr) {
    return std::nullopt;
  }
  // The ERROR went out in clear.
  auto sent = sent_bytes(rev);
  auto decoded = wire::decode_clear_frame(byte_view(sent).subspan(4));
  EXPECT_TRUE(decoded.has_value());
  if (decoded.has_value()) {
    EXPECT_TRUE(std::holds_alternative<error_frame>(*decoded));
    if (const auto* e = std::get_if<error_frame>(&*decoded)) {
      EXPECT_EQ(e->code, c->code);
    }
  }
  return c->code;
}

TEST(session, a_hello_of_another_version_is_refused_as_unsupported) {
  hello h{2, hello_mode::login, "alice", public_key{1}, public_key{2}};
  EXPECT_EQ(first_frame_refusal(h), frame_error_code::unsupported_version);
}

TEST(session, a_hello_with_an_invalid_id_is_refused_as_malformed) {
  for (std::string id : {std::string(), std::string("a\x01z"), std::string("\xc0\xaf"),
                         std::string("zero\u200bwidth")}) {
    hello h{transport_version, hello_mode::register_user, id, public_key{1}, public_key{2}};
    EXPECT_EQ(first_frame_refusal(h), frame_error_code::malformed) << id.size();
  }
}

TEST(session, a_first_frame_other_than_hello_is_a_protocol_violation) {
  EXPECT_EQ(first_frame_refusal(hello_ack{transport_version, public_key{3}}),
            frame_error_code::protocol_violation);
  EXPECT_EQ(first_frame_refusal(error_frame{frame_error_code::busy, "x"}),
            frame_error_code::protocol_violation);
}

TEST(session, a_frame_during_the_lookup_is_a_protocol_violation) {
  session_pair p;
  auto hello_bytes = p.client.start(hello_mode::register_user, p.rng);
  ASSERT_TRUE(hello_bytes.has_value());
  bytes twice = *hello_bytes;
  twice.insert(twice.end(), hello_bytes->begin(), hello_bytes->end());
  auto rev = p.router.feed(twice);
  ASSERT_EQ(count_of<need_lookup>(rev), 1u);
  ASSERT_NE(first_of<close_connection>(rev), nullptr);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::protocol_violation);
  // The lookup answer that arrives afterwards changes nothing.
  auto late = p.router.resolve_lookup(lookup_result::ok, p.rng);
  ASSERT_TRUE(late.has_value());
  EXPECT_TRUE(late->empty());
  EXPECT_TRUE(p.router.is_closed());
}

TEST(session, resolve_lookup_refuses_answers_nobody_asked_for) {
  session_pair p;
  EXPECT_EQ(p.router.resolve_lookup(lookup_result::ok, p.rng).error().code, errc::bad_state);
  auto hello_bytes = p.client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(hello_bytes.has_value());
  (void)p.router.feed(*hello_bytes);
  EXPECT_EQ(p.router.resolve_lookup(lookup_result::id_taken, p.rng).error().code,
            errc::invalid_argument);
  EXPECT_EQ(p.router.state(), router_state::await_lookup);  // a refused call changes nothing
  ASSERT_TRUE(p.router.resolve_lookup(lookup_result::ok, p.rng).has_value());
  EXPECT_EQ(p.router.resolve_lookup(lookup_result::ok, p.rng).error().code, errc::bad_state);

  session_pair q;
  auto qh = q.client.start(hello_mode::register_user, q.rng);
  ASSERT_TRUE(qh.has_value());
  (void)q.router.feed(*qh);
  EXPECT_EQ(q.router.resolve_lookup(lookup_result::unknown_user, q.rng).error().code,
            errc::invalid_argument);
}

TEST(session, seal_is_refused_before_the_session_counts_and_after_a_close) {
  session_pair p;
  EXPECT_EQ(p.client.seal(client_frame{1, ping{}}).error().code, errc::bad_state);
  EXPECT_EQ(p.router.seal(router_frame{response{1, ok_result{}}}).error().code, errc::bad_state);
  ASSERT_TRUE(p.establish());
  (void)p.router.shut_down(frame_error_code::busy, "bye");
  p.client.close();
  EXPECT_EQ(p.client.seal(client_frame{1, ping{}}).error().code, errc::closed);
  EXPECT_EQ(p.router.seal(router_frame{response{1, ok_result{}}}).error().code, errc::closed);
}

TEST(session, shut_down_sends_a_clear_error_before_and_an_encrypted_error_after_the_proof) {
  {
    session_pair p;
    p.register_user();
    ASSERT_NE(first_of<session_ready>(p.handshake(hello_mode::login)), nullptr);
    auto rev = p.router.shut_down(frame_error_code::busy, "overloaded");
    ASSERT_EQ(rev.size(), 2u);
    EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::busy);
    auto cev = p.to_client(sent_bytes(rev));
    const auto* e = first_of<router_error>(cev);
    ASSERT_NE(e, nullptr);
    EXPECT_FALSE(e->encrypted);
    EXPECT_EQ(e->frame.code, frame_error_code::busy);
    EXPECT_EQ(e->frame.message, "overloaded");
    EXPECT_TRUE(p.router.shut_down(frame_error_code::busy, "again").empty());
  }
  {
    session_pair p;
    ASSERT_TRUE(p.establish(hello_mode::register_user));
    // The registration commit lost a race: the caller answers ID_TAKEN, now encrypted.
    auto rev = p.router.shut_down(frame_error_code::id_taken, std::string(5000, 'x'));
    auto cev = p.to_client(sent_bytes(rev));
    const auto* e = first_of<router_error>(cev);
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->encrypted);
    EXPECT_EQ(e->frame.code, frame_error_code::id_taken);
    EXPECT_EQ(e->frame.message.size(), max_text_len);
    EXPECT_NE(first_of<close_connection>(cev), nullptr);
    EXPECT_TRUE(p.client.is_closed());
  }
}

TEST(session, seal_refuses_a_frame_over_max_frame_without_advancing_the_counter) {
  session_pair p(1, 4096);
  ASSERT_TRUE(p.establish());
  submit_msg s;
  s.c.author = "alice";
  s.body = payload_of(5000, 1);
  auto big = p.client.seal(client_frame{9, s});
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, errc::too_large);
  envelope e;
  e.body = payload_of(5000, 2);
  EXPECT_EQ(p.router.seal(router_frame{e}).error().code, errc::too_large);
  // The counters did not move: the next frames still decrypt.
  EXPECT_EQ(count_of<incoming_request>(p.request(client_frame{10, ping{}})), 1u);
  EXPECT_EQ(count_of<router_message>(p.push(router_frame{response{10, ok_result{}}})), 1u);
}

TEST(session, nothing_happens_after_a_close) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto rev = p.router.feed(bytes{0, 0, 0, 0});
  ASSERT_NE(first_of<close_connection>(rev), nullptr);
  auto f = length_prefixed(payload_of(40, 0));
  EXPECT_TRUE(p.router.feed(f).empty());
  EXPECT_TRUE(p.router.on_frame(payload_of(40, 0)).empty());
  p.client.close();
  EXPECT_TRUE(p.client.feed(f).empty());
  EXPECT_TRUE(p.client.on_frame(payload_of(40, 0)).empty());
}

// ---------------------------------------------------------------------------------------------
// Client side.

TEST(client_session, start_twice_fails_with_bad_state) {
  session_pair p;
  ASSERT_TRUE(p.client.start(hello_mode::login, p.rng).has_value());
  EXPECT_EQ(p.client.start(hello_mode::login, p.rng).error().code, errc::bad_state);
  EXPECT_EQ(p.client.mode(), hello_mode::login);
}

TEST(client_session, hello_carries_the_mode_id_key_and_a_fresh_ephemeral) {
  session_pair p;
  session_pair q;  // same seed: same identities, same rng stream
  auto a = p.client.start(hello_mode::register_user, p.rng);
  (void)q.rng.array<1>();  // shift q's stream: another ephemeral
  auto b = q.client.start(hello_mode::register_user, q.rng);
  ASSERT_TRUE(a.has_value() && b.has_value());
  auto ha = wire::decode_clear_frame(byte_view(*a).subspan(4));
  auto hb = wire::decode_clear_frame(byte_view(*b).subspan(4));
  ASSERT_TRUE(ha.has_value() && hb.has_value());
  const auto& x = std::get<hello>(*ha);
  const auto& y = std::get<hello>(*hb);
  EXPECT_EQ(x.version, transport_version);
  EXPECT_EQ(x.mode, hello_mode::register_user);
  EXPECT_EQ(x.id, "alice");
  EXPECT_EQ(x.lpk, p.user.lpk());
  EXPECT_NE(x.x, y.x);
}

TEST(client_session, bytes_before_start_close_the_session) {
  session_pair p;
  auto cev = p.client.feed(length_prefixed(wire::encode(clear_frame{hello_ack{}})));
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::protocol_violation);
}

TEST(client_session, a_hello_ack_of_another_version_is_refused) {
  session_pair p;
  ASSERT_TRUE(p.client.start(hello_mode::login, p.rng).has_value());
  auto cev = p.client.feed(
      length_prefixed(wire::encode(clear_frame{hello_ack{2, p.router_identity.lpk()}})));
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::unsupported_version);
  EXPECT_EQ(count_of<session_ready>(cev), 0u);
}

TEST(client_session, a_hello_instead_of_hello_ack_is_a_protocol_violation) {
  session_pair p;
  auto h = p.client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(h.has_value());
  auto cev = p.client.feed(*h);  // its own HELLO reflected
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::protocol_violation);
}

TEST(client_session, a_low_order_router_ephemeral_fails_the_handshake) {
  session_pair p;
  ASSERT_TRUE(p.client.start(hello_mode::login, p.rng).has_value());
  auto cev = p.client.feed(length_prefixed(wire::encode(clear_frame{hello_ack{}})));  // X_R = 0
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::bad_handshake);
  EXPECT_EQ(count_of<session_ready>(cev), 0u);
}

TEST(client_session, an_encrypted_error_from_the_router_is_reported_and_closes) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto cev = p.push(router_frame{error_frame{frame_error_code::internal, "sorry"}});
  ASSERT_EQ(cev.size(), 2u);
  const auto* e = first_of<router_error>(cev);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->encrypted);
  EXPECT_EQ(e->frame.message, "sorry");
  EXPECT_TRUE(std::holds_alternative<close_connection>(cev.back()));
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::internal);
}

TEST(session_state, names_are_stable) {
  EXPECT_EQ(to_string(router_state::await_hello), "await_hello");
  EXPECT_EQ(to_string(router_state::await_lookup), "await_lookup");
  EXPECT_EQ(to_string(router_state::await_proof), "await_proof");
  EXPECT_EQ(to_string(router_state::established), "established");
  EXPECT_EQ(to_string(router_state::closed), "closed");
  EXPECT_EQ(to_string(client_state::idle), "idle");
  EXPECT_EQ(to_string(client_state::await_ack), "await_ack");
  EXPECT_EQ(to_string(client_state::ready), "ready");
  EXPECT_EQ(to_string(client_state::closed), "closed");
}

}  // namespace
}  // namespace cowpi::protocol

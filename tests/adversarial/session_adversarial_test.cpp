// SPDX-License-Identifier: Apache-2.0
// Hostile peers and hostile networks against the transport session: wrong or stolen handshake
// keys, garbage, bad length prefixes, truncation, slow drip, replay, reordering, drops,
// tampering, reflection and injected clear errors. Every one must end in a clean close (or be
// answered, for BAD_BLOCK_SIZE) and never in an `authenticated` event it did not earn.
#include "cowpi/protocol/session.hpp"
#include "cowpi/protocol/wire.hpp"

#include "cowpi.capnp.h"
#include "session_pair.hpp"
#include "wire_samples.hpp"
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace cowpi::protocol {
namespace {

using namespace session_testing;  // NOLINT(google-build-using-namespace)
namespace schema = wire::schema;

/// Re-opens an encoded Cap'n Proto message, lets `edit_fn` change it, and re-serialises it.
template <class Root, class Edit>
bytes edit(const bytes& encoded, Edit edit_fn) {
  auto words = kj::heapArray<capnp::word>(encoded.size() / sizeof(capnp::word));
  std::memcpy(words.asBytes().begin(), encoded.data(), encoded.size());
  capnp::FlatArrayMessageReader reader(words.asPtr());
  capnp::MallocMessageBuilder mb;
  mb.setRoot(reader.getRoot<Root>());
  edit_fn(mb.getRoot<Root>());
  auto flat = capnp::messageToFlatArray(mb);
  auto b = flat.asBytes();
  return bytes(b.begin(), b.end());
}

bytes random_bytes(std::mt19937_64& gen, size_t n) {
  bytes b(n);
  for (auto& x : b) {
    x = static_cast<uint8_t>(gen());
  }
  return b;
}

/// A client that builds its HELLO by hand: it may claim a key whose secret it lacks.
class hand_made_client {
public:
  /// `holder` is whose secret the client really has; it claims (`id`, `lpk`) in its HELLO.
  hand_made_client(const identity& holder, std::string id, const public_key& lpk,
                   const identity& router, hello_mode mode = hello_mode::login)
      : holder_(holder),
        claimed_id_(std::move(id)),
        claimed_lpk_(lpk),
        router_id_(router.id()),
        router_lpk_(router.lpk()),
        mode_(mode) {}

  bytes hello_frame(crypto::rng& r) {
    eph_ = naxos_fresh(holder_, r);
    return length_prefixed(wire::encode(
        clear_frame{hello{transport_version, mode_, claimed_id_, claimed_lpk_, eph_.pub}}));
  }
  /// Derives keys from HELLO_ACK (the router's sent bytes); returns false if it was no ACK.
  bool on_ack(const bytes& sent) {
    auto f = wire::decode_clear_frame(byte_view(sent).subspan(4));
    if (!f.has_value() || !std::holds_alternative<hello_ack>(*f)) {
      return false;
    }
    handshake_transcript t{transport_version, mode_,       claimed_id_, router_id_,
                           claimed_lpk_,      router_lpk_, eph_.pub,    std::get<hello_ack>(*f).x};
    auto keys = client_session_keys(holder_, eph_.x, t);
    if (!keys.has_value()) {
      return false;
    }
    c2r_.emplace(std::move(keys->c2r));
    return true;
  }
  bytes seal(const client_frame& f) { return length_prefixed(c2r_->seal(wire::encode(f))); }

private:
  const identity& holder_;
  std::string claimed_id_;
  public_key claimed_lpk_{};
  std::string router_id_;
  public_key router_lpk_{};
  hello_mode mode_;
  naxos_keypair eph_{};
  std::optional<frame_cipher> c2r_;
};

/// The router's clear ERROR in `ev`, decoded; fails the test when there is none.
std::optional<error_frame> clear_error_in(const std::vector<router_event>& ev) {
  auto sent = sent_bytes(ev);
  if (sent.size() < 5) {
    return std::nullopt;
  }
  auto f = wire::decode_clear_frame(byte_view(sent).subspan(4));
  if (!f.has_value() || !std::holds_alternative<error_frame>(*f)) {
    return std::nullopt;
  }
  return std::get<error_frame>(*f);
}

// ---------------------------------------------------------------------------------------------
// Wrong keys: the proof of possession fails at the first encrypted frame.

TEST(session_handshake, a_client_with_the_wrong_router_key_fails_at_its_first_frame_in_clear) {
  session_pair p;
  p.register_user();
  crypto::deterministic_rng other(99);
  identity fake_router = identity::generate("router", other);
  client_session client(p.user, "router", fake_router.lpk());
  auto h = client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(h.has_value());
  auto rev = p.to_router(*h);
  auto cev = client.feed(sent_bytes(rev));
  ASSERT_NE(first_of<session_ready>(cev), nullptr);  // the client cannot tell yet

  auto first = client.seal(client_frame{1, ping{}});
  ASSERT_TRUE(first.has_value());
  rev = p.to_router(*first);
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  ASSERT_NE(first_of<close_connection>(rev), nullptr);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::bad_handshake);
  auto e = clear_error_in(rev);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, frame_error_code::bad_handshake);

  cev = client.feed(sent_bytes(rev));
  ASSERT_NE(first_of<router_error>(cev), nullptr);
  EXPECT_FALSE(first_of<router_error>(cev)->encrypted);
  EXPECT_EQ(first_of<router_error>(cev)->frame.code, frame_error_code::bad_handshake);
  EXPECT_TRUE(client.is_closed());
}

TEST(session_handshake, a_client_with_the_wrong_router_id_fails_at_its_first_frame) {
  session_pair p;
  p.register_user();
  client_session client(p.user, "router-b", p.router_identity.lpk());
  auto h = client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(h.has_value());
  ASSERT_NE(first_of<session_ready>(client.feed(sent_bytes(p.to_router(*h)))), nullptr);
  auto rev = p.to_router(*client.seal(client_frame{1, ping{}}));
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::bad_handshake);
}

TEST(session_handshake, a_login_claiming_a_registered_key_without_its_secret_never_counts) {
  session_pair p;
  p.register_user();
  crypto::deterministic_rng other(5);
  identity mallory = identity::generate("alice", other);  // same id, another key
  hand_made_client m(mallory, "alice", p.user.lpk(), p.router_identity);
  auto rev = p.to_router(m.hello_frame(p.rng));
  ASSERT_EQ(count_of<need_lookup>(rev), 1u);  // the directory says yes: the claim matches
  ASSERT_TRUE(m.on_ack(sent_bytes(rev)));
  rev = p.to_router(m.seal(client_frame{1, subscribe{}}));
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::bad_handshake);
  ASSERT_TRUE(clear_error_in(rev).has_value());
  EXPECT_TRUE(p.router.is_closed());
}

TEST(session_handshake, registering_someone_elses_key_without_its_secret_never_counts) {
  session_pair p;
  crypto::deterministic_rng other(6);
  identity eve = identity::generate("eve", other);
  hand_made_client m(eve, "eve", p.user.lpk(), p.router_identity, hello_mode::register_user);
  auto rev = p.to_router(m.hello_frame(p.rng));
  ASSERT_EQ(count_of<need_lookup>(rev), 1u);
  ASSERT_TRUE(m.on_ack(sent_bytes(rev)));
  rev = p.to_router(m.seal(client_frame{1, ping{}}));
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::bad_handshake);
}

TEST(session_handshake, a_low_order_ephemeral_or_key_is_refused_after_the_lookup) {
  for (bool bad_lpk : {false, true}) {
    session_pair p;
    p.register_user();
    hello h{transport_version, bad_lpk ? hello_mode::register_user : hello_mode::login,
            bad_lpk ? "eve" : "alice", bad_lpk ? public_key{} : p.user.lpk(),
            bad_lpk ? p.user.lpk() : public_key{}};
    auto rev = p.to_router(length_prefixed(wire::encode(clear_frame{h})));
    ASSERT_EQ(count_of<need_lookup>(rev), 1u);
    EXPECT_EQ(count_of<authenticated>(rev), 0u);
    ASSERT_NE(first_of<close_connection>(rev), nullptr);
    EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::bad_handshake);
    auto e = clear_error_in(rev);
    ASSERT_TRUE(e.has_value());  // the ERROR, no HELLO_ACK
    EXPECT_EQ(e->code, frame_error_code::bad_handshake);
  }
}

TEST(session_handshake, a_frame_from_another_session_is_no_proof) {
  session_pair a(1);
  session_pair b(2);
  a.register_user();
  b.register_user();
  ASSERT_NE(first_of<session_ready>(a.handshake(hello_mode::login)), nullptr);
  ASSERT_NE(first_of<session_ready>(b.handshake(hello_mode::login)), nullptr);
  auto from_a = a.client.seal(client_frame{1, ping{}});
  ASSERT_TRUE(from_a.has_value());
  auto rev = b.to_router(*from_a);
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::bad_handshake);
}

TEST(session_handshake, a_reflected_frame_never_decrypts) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  // The client's own frame bounced back to it: c2r and r2c keys differ.
  auto own = p.client.seal(client_frame{2, ping{}});
  ASSERT_TRUE(own.has_value());
  auto cev = p.to_client(*own);
  EXPECT_EQ(count_of<router_message>(cev), 0u);
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  // The router's frame bounced back to the router.
  session_pair q;
  ASSERT_TRUE(q.establish());
  auto theirs = q.router.seal(router_frame{response{1, ok_result{}}});
  ASSERT_TRUE(theirs.has_value());
  auto rev = q.to_router(*theirs);
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::protocol_violation);
}

// ---------------------------------------------------------------------------------------------
// Garbage and framing.

TEST(session_framing, garbage_instead_of_hello_is_refused_in_clear) {
  std::mt19937_64 gen(1);
  for (int i = 0; i < 200; ++i) {
    session_pair p;
    auto rev = p.router.feed(length_prefixed(random_bytes(gen, 1 + gen() % 300)));
    EXPECT_EQ(count_of<need_lookup>(rev), 0u);
    ASSERT_NE(first_of<close_connection>(rev), nullptr) << i;
    auto e = clear_error_in(rev);
    ASSERT_TRUE(e.has_value()) << i;
    EXPECT_EQ(e->code, first_of<close_connection>(rev)->code);
  }
}

TEST(session_framing, unframed_garbage_never_crashes_and_never_authenticates) {
  std::mt19937_64 gen(2);
  for (int i = 0; i < 300; ++i) {
    session_pair p;
    auto rev = p.router.feed(random_bytes(gen, 1 + gen() % 64));
    EXPECT_EQ(count_of<authenticated>(rev), 0u);
    if (p.router.is_closed()) {
      EXPECT_TRUE(std::holds_alternative<close_connection>(rev.back()));
    }
    EXPECT_LE(p.router.reassembler().buffered(), 4u + max_frame_protocol);
  }
}

TEST(session_framing, a_huge_length_prefix_is_refused_before_and_after_the_proof) {
  {
    session_pair p;
    auto rev = p.router.feed(bytes{0x7f, 0xff, 0xff, 0xff, 1, 2, 3});
    ASSERT_NE(first_of<close_connection>(rev), nullptr);
    EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::too_large);
    ASSERT_TRUE(clear_error_in(rev).has_value());
    EXPECT_EQ(clear_error_in(rev)->code, frame_error_code::too_large);
  }
  {
    session_pair p;
    ASSERT_TRUE(p.establish());
    auto rev = p.router.feed(bytes{0x00, 0x10, 0x00, 0x01});  // max_frame_protocol + 1
    ASSERT_NE(first_of<close_connection>(rev), nullptr);
    EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::too_large);
    auto cev = p.to_client(sent_bytes(rev));
    ASSERT_NE(first_of<router_error>(cev), nullptr);
    EXPECT_TRUE(first_of<router_error>(cev)->encrypted);
    EXPECT_EQ(first_of<router_error>(cev)->frame.code, frame_error_code::too_large);
  }
}

TEST(session_framing, a_zero_length_prefix_is_refused_before_and_after_the_proof) {
  {
    session_pair p;
    auto rev = p.router.feed(bytes{0, 0, 0, 0});
    ASSERT_TRUE(clear_error_in(rev).has_value());
    EXPECT_EQ(clear_error_in(rev)->code, frame_error_code::malformed);
  }
  {
    session_pair p;
    ASSERT_TRUE(p.establish());
    auto rev = p.router.feed(bytes{0, 0, 0, 0});
    auto cev = p.to_client(sent_bytes(rev));
    ASSERT_NE(first_of<router_error>(cev), nullptr);
    EXPECT_TRUE(first_of<router_error>(cev)->encrypted);
    EXPECT_EQ(first_of<router_error>(cev)->frame.code, frame_error_code::malformed);
  }
  {
    session_pair p;  // the client refuses a zero prefix from the router too
    ASSERT_TRUE(p.client.start(hello_mode::login, p.rng).has_value());
    auto cev = p.client.feed(bytes{0, 0, 0, 0});
    ASSERT_NE(first_of<close_connection>(cev), nullptr);
    EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::malformed);
  }
}

TEST(session_framing, a_frame_cut_in_two_and_completed_later_is_accepted) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto f = p.client.seal(client_frame{2, ping{}});
  ASSERT_TRUE(f.has_value());
  const size_t cut = f->size() / 2;
  auto rev = p.router.feed(byte_view(*f).first(cut));
  EXPECT_TRUE(rev.empty());
  EXPECT_EQ(p.router.reassembler().buffered(), cut);
  rev = p.router.feed(byte_view(*f).subspan(cut));
  EXPECT_EQ(count_of<incoming_request>(rev), 1u);
}

TEST(session_framing, a_truncated_frame_followed_by_the_next_one_closes_the_session) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto f1 = p.client.seal(client_frame{2, ping{}});
  auto f2 = p.client.seal(client_frame{3, ping{}});
  ASSERT_TRUE(f1.has_value() && f2.has_value());
  bytes stream(f1->begin(), f1->end() - 5);  // the prefix still announces the full length
  stream.insert(stream.end(), f2->begin(), f2->end());
  auto rev = p.router.feed(stream);
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  ASSERT_NE(first_of<close_connection>(rev), nullptr);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::protocol_violation);
}

TEST(session_framing, a_truncated_frame_with_a_matching_prefix_closes_the_session) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto f = p.client.seal(client_frame{2, ping{}});
  ASSERT_TRUE(f.has_value());
  bytes cut = length_prefixed(byte_view(*f).subspan(4, f->size() - 4 - 3));
  auto rev = p.router.feed(cut);
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  EXPECT_NE(first_of<close_connection>(rev), nullptr);
}

TEST(session_framing, a_slow_drip_of_a_large_frame_buffers_only_that_frame) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  submit_msg s = wire_samples::mk_submit(msg_type::message);
  s.body = bytes(60000, 0x5a);
  const client_frame req{77, s};
  auto f = p.client.seal(req);
  ASSERT_TRUE(f.has_value());
  std::vector<router_event> rev;
  for (size_t i = 0; i < f->size(); ++i) {
    append(rev, p.router.feed(byte_view(*f).subspan(i, 1)));
    ASSERT_LE(p.router.reassembler().buffered(), f->size());
  }
  ASSERT_EQ(count_of<incoming_request>(rev), 1u);
  EXPECT_EQ(first_of<incoming_request>(rev)->frame, req);
  EXPECT_EQ(p.router.reassembler().buffered(), 0u);
}

TEST(session_framing, any_chunking_of_a_stream_gives_the_same_requests) {
  std::mt19937_64 gen(3);
  std::vector<client_frame> expected_reqs;
  for (uint64_t i = 0; i < 30; ++i) {
    expected_reqs.push_back(client_frame{i, ack_msg{{}, i * 7}});
  }
  for (int round = 0; round < 20; ++round) {
    session_pair p(11);  // the same seed: the same keys, so the same stream every round
    ASSERT_TRUE(p.establish());
    bytes stream;
    for (const auto& r : expected_reqs) {
      auto f = p.client.seal(r);
      ASSERT_TRUE(f.has_value());
      stream.insert(stream.end(), f->begin(), f->end());
    }
    std::vector<router_event> rev;
    byte_view rest(stream);
    while (!rest.empty()) {
      const size_t n = std::min<size_t>(rest.size(), 1 + gen() % 200);
      append(rev, p.router.feed(rest.first(n)));
      rest = rest.subspan(n);
    }
    std::vector<client_frame> got;
    for (const auto& r : all_of<incoming_request>(rev)) {
      got.push_back(r.frame);
    }
    EXPECT_EQ(got, expected_reqs) << "round " << round;
  }
}

// ---------------------------------------------------------------------------------------------
// Replay, reordering, drops and tampering after the proof.

TEST(session_stream, a_replayed_frame_closes_the_session_and_is_not_delivered_twice) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto f = p.client.seal(client_frame{2, ping{}});
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(count_of<incoming_request>(p.to_router(*f)), 1u);
  auto rev = p.to_router(*f);
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  ASSERT_NE(first_of<close_connection>(rev), nullptr);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::protocol_violation);
  auto cev = p.to_client(sent_bytes(rev));
  ASSERT_NE(first_of<router_error>(cev), nullptr);
  EXPECT_TRUE(first_of<router_error>(cev)->encrypted);
  EXPECT_EQ(first_of<router_error>(cev)->frame.code, frame_error_code::protocol_violation);
}

TEST(session_stream, reordered_frames_close_the_session) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto f1 = p.client.seal(client_frame{2, ping{}});
  auto f2 = p.client.seal(client_frame{3, ping{}});
  ASSERT_TRUE(f1.has_value() && f2.has_value());
  auto rev = p.to_router(*f2);
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  EXPECT_NE(first_of<close_connection>(rev), nullptr);
  EXPECT_TRUE(p.to_router(*f1).empty());  // closed: the earlier frame is not taken either
}

TEST(session_stream, a_dropped_frame_closes_the_session_at_the_next_one) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  ASSERT_TRUE(p.client.seal(client_frame{2, ping{}}).has_value());  // lost on the way
  auto rev = p.request(client_frame{3, ping{}});
  EXPECT_EQ(count_of<incoming_request>(rev), 0u);
  EXPECT_NE(first_of<close_connection>(rev), nullptr);
}

TEST(session_stream, a_tampered_byte_anywhere_in_the_ciphertext_closes_the_session) {
  session_pair probe;
  ASSERT_TRUE(probe.establish());
  const size_t n = probe.client.seal(client_frame{2, ping{}})->size();
  for (size_t i = 4; i < n; ++i) {
    session_pair p;  // same seed: the same frame bytes every time
    ASSERT_TRUE(p.establish());
    auto f = p.client.seal(client_frame{2, ping{}});
    ASSERT_TRUE(f.has_value());
    (*f)[i] ^= 0x01;
    auto rev = p.to_router(*f);
    EXPECT_EQ(count_of<incoming_request>(rev), 0u) << i;
    EXPECT_NE(first_of<close_connection>(rev), nullptr) << i;
  }
}

TEST(session_stream, a_replayed_hello_after_the_proof_closes_the_session) {
  session_pair p;
  p.register_user();
  auto h = p.client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(h.has_value());
  auto rev = p.to_router(*h);
  ASSERT_NE(first_of<session_ready>(p.to_client(sent_bytes(rev))), nullptr);
  ASSERT_EQ(count_of<authenticated>(p.request(client_frame{1, ping{}})), 1u);
  rev = p.to_router(*h);
  EXPECT_EQ(count_of<need_lookup>(rev), 0u);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::protocol_violation);
}

TEST(session_stream, a_second_hello_instead_of_the_proof_fails_the_handshake) {
  session_pair p;
  p.register_user();
  auto h = p.client.start(hello_mode::login, p.rng);
  ASSERT_TRUE(h.has_value());
  (void)p.to_router(*h);
  auto rev = p.to_router(*h);
  EXPECT_EQ(count_of<authenticated>(rev), 0u);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::bad_handshake);
}

TEST(session_stream, random_frames_after_the_proof_close_the_session_cleanly) {
  std::mt19937_64 gen(4);
  for (int i = 0; i < 100; ++i) {
    session_pair p;
    ASSERT_TRUE(p.establish());
    auto rev = p.router.feed(length_prefixed(random_bytes(gen, 1 + gen() % 400)));
    EXPECT_EQ(count_of<incoming_request>(rev), 0u);
    ASSERT_NE(first_of<close_connection>(rev), nullptr);
    EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::protocol_violation);
    auto cev = p.to_client(sent_bytes(rev));
    EXPECT_NE(first_of<router_error>(cev), nullptr);
  }
}

// ---------------------------------------------------------------------------------------------
// Decrypted but undecodable requests.

TEST(session_stream, a_bad_block_size_is_answered_and_the_session_survives) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto raw = edit<schema::ClientFrame>(
      wire::encode(client_frame{31, wire_samples::mk_submit(msg_type::message)}), [](auto f) {
        bytes bad(184, 0x42);
        f.getSubmit().getBlocks()[1].setBlock(capnp::Data::Reader(bad.data(), bad.size()));
      });
  auto sealed = p.client.seal_payload_for_test(raw);
  ASSERT_TRUE(sealed.has_value());
  auto rev = p.to_router(*sealed);
  ASSERT_EQ(count_of<refused_request>(rev), 1u);
  EXPECT_EQ(first_of<refused_request>(rev)->request_id, 31u);
  EXPECT_EQ(first_of<refused_request>(rev)->answer.kind, rejection_kind::bad_block_size);
  EXPECT_EQ(count_of<close_connection>(rev), 0u);
  EXPECT_TRUE(p.router.is_established());

  auto cev = p.to_client(sent_bytes(rev));
  ASSERT_EQ(count_of<router_message>(cev), 1u);
  const auto& resp = std::get<response>(first_of<router_message>(cev)->frame);
  EXPECT_EQ(resp.request_id, 31u);
  EXPECT_EQ(std::get<rejection>(resp.body).kind, rejection_kind::bad_block_size);

  EXPECT_EQ(count_of<incoming_request>(p.request(client_frame{32, ping{}})), 1u);
}

TEST(session_stream, a_malformed_request_after_the_proof_gets_an_encrypted_error) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto sealed = p.client.seal_payload_for_test(bytes{1, 2, 3, 4, 5, 6, 7, 8, 9});
  ASSERT_TRUE(sealed.has_value());
  auto rev = p.to_router(*sealed);
  ASSERT_NE(first_of<close_connection>(rev), nullptr);
  EXPECT_EQ(first_of<close_connection>(rev)->code, frame_error_code::malformed);
  auto cev = p.to_client(sent_bytes(rev));
  ASSERT_NE(first_of<router_error>(cev), nullptr);
  EXPECT_TRUE(first_of<router_error>(cev)->encrypted);
  EXPECT_EQ(first_of<router_error>(cev)->frame.code, frame_error_code::malformed);
}

TEST(session_stream, a_first_frame_that_decrypts_but_does_not_decode_still_proves_possession) {
  session_pair p;
  ASSERT_NE(first_of<session_ready>(p.handshake(hello_mode::register_user)), nullptr);
  auto sealed = p.client.seal_payload_for_test(bytes{0xde, 0xad});
  ASSERT_TRUE(sealed.has_value());
  auto rev = p.to_router(*sealed);
  ASSERT_EQ(rev.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<authenticated>(rev[0]));
  EXPECT_TRUE(std::holds_alternative<send_frame>(rev[1]));
  EXPECT_TRUE(std::holds_alternative<close_connection>(rev[2]));
  // Established by then, so the ERROR is encrypted.
  auto cev = p.to_client(sent_bytes(rev));
  ASSERT_NE(first_of<router_error>(cev), nullptr);
  EXPECT_TRUE(first_of<router_error>(cev)->encrypted);
}

// ---------------------------------------------------------------------------------------------
// The client against a hostile router or network.

TEST(client_stream, a_replayed_router_frame_closes_the_client) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto f = p.router.seal(router_frame{response{1, ok_result{}}});
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(count_of<router_message>(p.to_client(*f)), 1u);
  auto cev = p.to_client(*f);
  EXPECT_EQ(count_of<router_message>(cev), 0u);
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::protocol_violation);
}

TEST(client_stream, an_injected_clear_error_after_confirmation_is_refused) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  ASSERT_EQ(count_of<router_message>(p.push(router_frame{response{1, ok_result{}}})), 1u);
  ASSERT_TRUE(p.client.is_confirmed());
  auto cev = p.to_client(
      length_prefixed(wire::encode(clear_frame{error_frame{frame_error_code::busy, "x"}})));
  EXPECT_EQ(count_of<router_error>(cev), 0u);
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::protocol_violation);
}

TEST(client_stream, a_clear_frame_other_than_error_before_confirmation_fails_the_handshake) {
  session_pair p;
  p.register_user();
  ASSERT_NE(first_of<session_ready>(p.handshake(hello_mode::login)), nullptr);
  auto cev = p.to_client(length_prefixed(wire::encode(clear_frame{hello_ack{}})));
  EXPECT_EQ(count_of<router_error>(cev), 0u);
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::bad_handshake);
}

TEST(client_stream, an_undecodable_router_frame_closes_the_client_as_malformed) {
  session_pair p;
  ASSERT_TRUE(p.establish());
  auto f = p.router.seal_payload_for_test(bytes{9, 9, 9});
  ASSERT_TRUE(f.has_value());
  auto cev = p.to_client(*f);
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::malformed);
}

TEST(client_stream, an_oversized_router_frame_closes_the_client) {
  session_pair p(1, 4096);
  ASSERT_TRUE(p.client.start(hello_mode::login, p.rng).has_value());
  auto cev = p.client.feed(bytes{0, 0, 0x10, 0x01});
  ASSERT_NE(first_of<close_connection>(cev), nullptr);
  EXPECT_EQ(first_of<close_connection>(cev)->code, frame_error_code::too_large);
}

TEST(client_stream, garbage_instead_of_hello_ack_closes_the_client) {
  std::mt19937_64 gen(5);
  for (int i = 0; i < 100; ++i) {
    session_pair p;
    ASSERT_TRUE(p.client.start(hello_mode::login, p.rng).has_value());
    auto cev = p.client.feed(length_prefixed(random_bytes(gen, 1 + gen() % 200)));
    EXPECT_EQ(count_of<session_ready>(cev), 0u);
    EXPECT_NE(first_of<close_connection>(cev), nullptr);
  }
}

}  // namespace
}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// Sample values of every wire message, with optional fields set and unset, for the wire codec's
// round-trip, adversarial and fuzz-seed code. Header-only and free of GoogleTest.
#pragma once

#include "cowpi/protocol/messages.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::protocol::wire_samples {

/// Returns N bytes counting up from `seed`, so that fields are distinguishable.
template <size_t N>
byte_array<N> filled(uint8_t seed) {
  byte_array<N> a{};
  for (size_t i = 0; i < N; ++i) {
    a[i] = static_cast<uint8_t>(seed + i);
  }
  return a;
}

inline member mk_member(std::string id, uint8_t seed) {
  return {std::move(id), filled<32>(seed)};
}

inline block mk_block(uint8_t seed, key_kind kind = key_kind::prekey) {
  block b;
  b.x = filled<32>(seed);
  b.ref = key_ref{kind, 1000u + seed, filled<32>(static_cast<uint8_t>(seed + 1))};
  b.nonce = filled<24>(static_cast<uint8_t>(seed + 2));
  b.ct = filled<block_ct_size>(static_cast<uint8_t>(seed + 3));
  return b;
}

inline common mk_common(msg_type t) {
  common c;
  c.type = t;
  c.conv = filled<16>(0x10);
  c.author = "alice";
  c.aseq = t == msg_type::setup ? 1 : 7;
  if (t != msg_type::setup) {
    c.parent = 41;
    c.parent_hash = filled<32>(0x20);
  }
  switch (t) {
    case msg_type::setup:
      c.ms = {mk_member("mirror-a", 1), mk_member("mirror-b", 2)};
      c.members = {mk_member("alice", 3), mk_member("bob", 4), mk_member("carol", 5)};
      break;
    case msg_type::message:
      c.body_len = 40 + 256;
      c.body_hash = filled<32>(0x30);
      c.body_commit = filled<32>(0x40);
      break;
    case msg_type::receipt:
      c.voids = {3, 17, 40};
      break;
    case msg_type::update:
      c.ms = {mk_member("mirror-a", 1), mk_member("mirror-b", 2)};
      c.adds = {mk_member("dave", 6)};
      c.removes = {"carol"};
      c.members = {mk_member("alice", 3), mk_member("bob", 4), mk_member("dave", 6)};
      break;
  }
  return c;
}

inline submit_msg mk_submit(msg_type t) {
  submit_msg s;
  s.c = mk_common(t);
  if (t == msg_type::message) {
    s.body = bytes(296, 0xab);
  }
  s.blocks = {{"bob", mk_block(0x50)}, {"carol", mk_block(0x60, key_kind::last_resort)}};
  s.ambs = {mk_block(0x70, key_kind::ratchet), mk_block(0x80)};
  return s;
}

/// An ENVELOPE with every optional field set (`full`) or none.
inline envelope mk_envelope(bool full) {
  envelope e;
  e.conv = filled<16>(0x10);
  e.index = 42;
  e.c = mk_common(full ? msg_type::message : msg_type::receipt);
  if (full) {
    e.body = bytes(296, 0xcd);
    e.block_u = mk_block(0x90);
    e.t_prev = filled<32>(0xa0);
  }
  e.blocks_root = filled<32>(0xb0);
  e.mirror_blocks = {mk_block(0xc0), mk_block(0xd0, key_kind::last_resort)};
  return e;
}

inline prekey_bundle mk_bundle(key_kind k) {
  return {"bob", filled<32>(0x11), key_ref{k, 9, filled<32>(0x12)}};
}

inline prepare_msg mk_prepare() {
  prepare_msg p;
  p.c = mk_common(msg_type::update);
  p.block_hashes = {{"bob", filled<32>(0x13)}, {"carol", filled<32>(0x14)}};
  p.amb = mk_block(0x15);
  p.last_resort = {{"dave", 77, filled<32>(0x16)}};
  return p;
}

inline std::vector<clear_frame> all_clear_frames() {
  std::vector<clear_frame> v;
  v.emplace_back(
      hello{transport_version, hello_mode::login, "alice", filled<32>(1), filled<32>(2)});
  v.emplace_back(
      hello{transport_version, hello_mode::register_user, "bob", filled<32>(3), filled<32>(4)});
  v.emplace_back(hello_ack{transport_version, filled<32>(5)});
  for (uint8_t c = 1; c <= static_cast<uint8_t>(frame_error_code::protocol_violation); ++c) {
    v.emplace_back(error_frame{static_cast<frame_error_code>(c), "error " + std::to_string(c)});
  }
  v.emplace_back(error_frame{frame_error_code::internal, ""});
  return v;
}

inline std::vector<client_frame> all_client_frames() {
  std::vector<client_frame> v;
  uint64_t id = 1;
  auto add = [&](client_request r) { v.push_back(client_frame{id++, std::move(r)}); };
  for (auto t : {msg_type::setup, msg_type::message, msg_type::receipt, msg_type::update}) {
    add(mk_submit(t));
  }
  submit_msg lone = mk_submit(msg_type::message);  // the only remaining member: no blocks
  lone.blocks.clear();
  add(lone);
  add(ack_msg{filled<16>(0x10), 42});
  add(upload_prekeys{{{1, filled<32>(1)}, {2, filled<32>(2)}}, published_key{3, filled<32>(3)}});
  add(upload_prekeys{{{4, filled<32>(4)}}, std::nullopt});
  add(upload_prekeys{{}, published_key{5, filled<32>(5)}});
  add(fetch_prekeys{{"bob", "carol", "mirror-a"}, std::nullopt});
  add(fetch_prekeys{{"mirror-a"}, filled<16>(0x21)});
  add(lookup_users{{"bob", "zed"}});
  add(lookup_users{});
  add(account_status{});
  add(subscribe{});
  add(ping{});
  add(drain{});
  add(retire_prekeys{17});
  add(retire_prekeys{});
  v.push_back(client_frame{UINT64_MAX, ping{}});
  return v;
}

inline std::vector<router_frame> all_router_frames() {
  std::vector<router_frame> v;
  v.emplace_back(response{1, ok_result{}});
  for (uint8_t k = 1; k <= static_cast<uint8_t>(rejection_kind::unknown_user); ++k) {
    v.emplace_back(response{
        100u + k, rejection{static_cast<rejection_kind>(k), 9u * k, k % 2 ? "detail" : ""}});
  }
  v.emplace_back(
      response{2, prekeys_result{{mk_bundle(key_kind::prekey), mk_bundle(key_kind::last_resort)}}});
  v.emplace_back(response{3, prekeys_result{}});
  v.emplace_back(response{4, users_result{{mk_member("bob", 1)}, {"zed"}}});
  v.emplace_back(response{5, users_result{}});
  v.emplace_back(response{6, status_result{10, 2, 99}});
  v.emplace_back(mk_envelope(true));
  v.emplace_back(mk_envelope(false));
  envelope setup = mk_envelope(false);
  setup.index = 0;
  setup.c = mk_common(msg_type::setup);
  setup.block_u = mk_block(0x33, key_kind::last_resort);
  v.emplace_back(setup);
  v.emplace_back(error_frame{frame_error_code::protocol_violation, "bye"});
  return v;
}

inline std::vector<link_request> all_link_requests() {
  std::vector<link_request> v;
  v.emplace_back(link_hello{"router", filled<32>(1), transport_version});
  v.emplace_back(mk_prepare());
  prepare_msg empty = mk_prepare();
  empty.c = mk_common(msg_type::receipt);
  empty.block_hashes.clear();
  empty.last_resort.clear();
  v.emplace_back(empty);
  v.emplace_back(commit_msg{12, filled<32>(2), mk_prepare()});
  v.emplace_back(link_ack{filled<16>(3), 12});
  v.emplace_back(status_query{filled<16>(4)});
  v.emplace_back(topup{500});
  v.emplace_back(audit_query{filled<16>(5), 3, 9});
  return v;
}

inline std::vector<link_response> all_link_responses() {
  std::vector<link_response> v;
  v.emplace_back(link_hello{"mirror-a", filled<32>(1), transport_version});
  v.emplace_back(prepared{filled<32>(2)});
  v.emplace_back(link_reject{"validate: aseq"});
  v.emplace_back(answer{12, filled<32>(3), {mk_block(4), mk_block(5), mk_block(6)}});
  v.emplace_back(already_answered{12});
  v.emplace_back(conflict{12, filled<32>(7)});
  v.emplace_back(gap{13});
  v.emplace_back(status_answer{true, 13, filled<32>(8)});
  v.emplace_back(status_answer{false, 0, {}});
  v.emplace_back(mirror_prekeys{{{1, filled<32>(9)}}, published_key{2, filled<32>(10)}});
  v.emplace_back(mirror_prekeys{{{3, filled<32>(11)}}, std::nullopt});
  v.emplace_back(audit_answer{3, {filled<32>(12), filled<32>(13)}});
  v.emplace_back(acked{});
  return v;
}

}  // namespace cowpi::protocol::wire_samples

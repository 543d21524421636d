// SPDX-License-Identifier: Apache-2.0
// Wire codec: every frame and link message survives encode then decode, and the largest
// messages the protocol limits allow fit in max_frame_protocol.
#include "cowpi/protocol/wire.hpp"

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"

#include "wire_samples.hpp"
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace cowpi::protocol {
namespace {

using namespace wire_samples;  // NOLINT(google-build-using-namespace)

template <class T, class Decode>
void expect_round_trip(const T& value, Decode decode) {
  const bytes b = wire::encode(value);
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.size() % 8, 0u) << "standard framing is whole words";
  auto d = decode(b);
  ASSERT_TRUE(d.has_value()) << d.error().message();
  EXPECT_TRUE(*d == value);
}

TEST(wire_round_trip, directory_entries_survive_encode_and_decode) {
  wire::directory_entries d;
  public_key k{};
  k.fill(7);
  d.emplace_back("alice", directory_entry{k, published_key{9, k}});
  d.emplace_back("bob", directory_entry{k, std::nullopt});
  d.emplace_back("carol", std::nullopt);
  auto back = wire::decode_directory_entries(wire::encode_directory_entries(d));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  ASSERT_EQ(back->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*back)[i].first, d[i].first);
    ASSERT_EQ((*back)[i].second.has_value(), d[i].second.has_value()) << i;
    if (d[i].second) {
      EXPECT_EQ((*back)[i].second->lpk, d[i].second->lpk);
      EXPECT_EQ((*back)[i].second->last_resort, d[i].second->last_resort);
    }
  }
}

TEST(wire_malformed, directory_entries_refuse_garbage_and_wrong_sizes) {
  EXPECT_FALSE(wire::decode_directory_entries(bytes{1, 2, 3}).has_value());
  // A registered entry whose key is not 32 bytes.
  wire::directory_entries d;
  public_key k{};
  d.emplace_back("alice", directory_entry{k, std::nullopt});
  auto enc = wire::encode_directory_entries(d);
  auto truncated = enc;
  truncated.resize(enc.size() / 2);
  EXPECT_FALSE(wire::decode_directory_entries(truncated).has_value());
  // More entries than a conversation has members.
  wire::directory_entries many;
  for (size_t i = 0; i <= max_members; ++i)
    many.emplace_back("u" + std::to_string(i), std::nullopt);
  EXPECT_FALSE(wire::decode_directory_entries(wire::encode_directory_entries(many)).has_value());
}

TEST(wire_round_trip, every_clear_frame_survives_encode_and_decode) {
  for (const auto& f : all_clear_frames()) {
    SCOPED_TRACE(f.index());
    expect_round_trip(f, wire::decode_clear_frame);
  }
}

TEST(wire_round_trip, every_client_request_survives_encode_and_decode) {
  for (const auto& f : all_client_frames()) {
    SCOPED_TRACE(f.request_id);
    const bytes b = wire::encode(f);
    auto d = wire::decode_client_frame(b);
    ASSERT_TRUE(d.has_value()) << d.error().err.message();
    EXPECT_TRUE(*d == f);
  }
}

TEST(wire_round_trip, every_router_frame_survives_encode_and_decode) {
  size_t n = 0;
  for (const auto& f : all_router_frames()) {
    SCOPED_TRACE(n++);
    expect_round_trip(f, wire::decode_router_frame);
  }
}

TEST(wire_round_trip, every_link_request_survives_encode_and_decode) {
  for (const auto& m : all_link_requests()) {
    SCOPED_TRACE(m.index());
    expect_round_trip(m, wire::decode_link_request);
  }
}

TEST(wire_round_trip, every_link_response_survives_encode_and_decode) {
  size_t n = 0;
  for (const auto& m : all_link_responses()) {
    SCOPED_TRACE(n++);
    expect_round_trip(m, wire::decode_link_response);
  }
}

TEST(wire_round_trip, every_message_type_of_c_survives_standalone_encode_and_decode) {
  for (auto t : {msg_type::setup, msg_type::message, msg_type::receipt, msg_type::update}) {
    SCOPED_TRACE(to_string(t));
    const common c = mk_common(t);
    auto d = wire::decode_common(wire::encode_common(c));
    ASSERT_TRUE(d.has_value()) << d.error().message();
    EXPECT_EQ(*d, c);
  }
}

TEST(wire_round_trip, standalone_submit_envelope_and_bundle_survive_encode_and_decode) {
  for (auto t : {msg_type::setup, msg_type::message, msg_type::receipt, msg_type::update}) {
    const submit_msg s = mk_submit(t);
    auto d = wire::decode_submit(wire::encode_submit(s));
    ASSERT_TRUE(d.has_value()) << d.error().message();
    EXPECT_EQ(*d, s);
  }
  for (bool full : {true, false}) {
    const envelope e = mk_envelope(full);
    auto d = wire::decode_envelope(wire::encode_envelope(e));
    ASSERT_TRUE(d.has_value()) << d.error().message();
    EXPECT_EQ(*d, e);
  }
  for (auto k : {key_kind::prekey, key_kind::last_resort, key_kind::ratchet}) {
    const prekey_bundle p = mk_bundle(k);
    auto d = wire::decode_prekey_bundle(wire::encode_prekey_bundle(p));
    ASSERT_TRUE(d.has_value()) << d.error().message();
    EXPECT_EQ(*d, p);
  }
}

// A chain-mode SUBMIT with three recipients and two ambs, as a client builds it.
submit_msg chain_submit() {
  submit_msg s = mk_submit(msg_type::message);
  s.c.version = protocol_version_chain;
  block b = std::get<block>(s.blocks.front().blk);
  s.blocks = {{"bob", chain_block{3, 7, bytes(48, 0x11)}},
              {"carol", dh_step{2, b}},
              {"dave", chain_block{1, 0, bytes(88, 0x22)}}};
  s.ambs = {chain_block{1, 4, bytes(16, 0x33)}, chain_block{1, 5, bytes(16, 0x44)}};
  return s;
}

// The SUBMIT a router reads from a client frame.
submit_msg as_sent(const submit_msg& s) {
  auto d = wire::decode_client_frame(wire::encode(client_frame{1, s}));
  EXPECT_TRUE(d.has_value()) << d.error().err.message();
  auto* got = std::get_if<submit_msg>(&d->body);
  EXPECT_NE(got, nullptr);
  return got != nullptr ? *got : submit_msg{};
}

TEST(wire_names_free_submit, a_chain_mode_submit_travels_without_recipient_ids) {
  const submit_msg s = chain_submit();
  const submit_msg d = as_sent(s);
  ASSERT_EQ(d.blocks.size(), 3u);
  std::vector<block_digest> ds;
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_TRUE(d.blocks[k].recipient.empty()) << k;
    EXPECT_EQ(d.blocks[k].blk, s.blocks[k].blk) << k;
    ds.push_back(block_digest{s.blocks[k].recipient, block_hash(s.blocks[k].blk)});
  }
  ASSERT_TRUE(d.names_free_root.has_value());
  EXPECT_EQ(*d.names_free_root, blocks_root(ds));
  EXPECT_EQ(d.ambs, s.ambs);
  EXPECT_EQ(d.c, s.c);
  // Per recipient the frame holds the slot and one length byte: the ids and the list's
  // pointers (a 16-byte entry and at least one word of id each) are gone, against a fixed
  // 32-byte root.
  submit_msg many = s;
  many.blocks.clear();
  for (int k = 0; k < 50; ++k) {
    many.blocks.push_back({"user-" + std::to_string(k), chain_block{1, 0, bytes(16, 0x55)}});
  }
  submit_msg named = many;
  named.c.version = 1;
  const size_t free_size = wire::encode(client_frame{1, many}).size();
  const size_t named_size = wire::encode(client_frame{1, named}).size();
  EXPECT_GE(named_size, free_size + 50 * 16) << free_size << " against " << named_size;
  // The stores keep the named form, which decodes to exactly what was written.
  auto stored = wire::decode_submit(wire::encode_submit(s));
  ASSERT_TRUE(stored.has_value()) << stored.error().message();
  EXPECT_EQ(*stored, s);
  // A public-key SUBMIT keeps its ids on the wire.
  const submit_msg pk = mk_submit(msg_type::message);
  EXPECT_EQ(as_sent(pk), pk);
}

TEST(wire_names_free_submit, malformed_slot_lists_are_refused_with_a_reason) {
  // The names-free form, re-encoded from what a router read.
  const bytes good = wire::encode_submit(as_sent(chain_submit()));
  ASSERT_TRUE(wire::decode_submit(good).has_value());
  // The last slot's length byte claims more than the blob holds.
  const bytes last = {96, 0, 0, 0, 1, 0, 0, 0, 0, 0x22, 0x22};
  auto at = std::search(good.begin(), good.end(), last.begin(), last.end());
  ASSERT_NE(at, good.end());
  bytes past = good;
  past[static_cast<size_t>(at - good.begin())] = 0xff;
  auto p = wire::decode_submit(past);
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message().find("runs past the end"), std::string::npos)
      << p.error().message();
  // A slot of a length no kind has: refused by the standalone decoder; a client frame is
  // answered BAD_BLOCK_SIZE under its request id and the connection survives.
  submit_msg odd = as_sent(chain_submit());
  odd.blocks[0].blk = chain_block{1, 0, bytes(17)};  // 25 bytes: no slot is that long
  auto d = wire::decode_submit(wire::encode_submit(odd));
  ASSERT_FALSE(d.has_value());
  EXPECT_NE(d.error().message().find("SUBMIT slot"), std::string::npos) << d.error().message();
  auto f = wire::decode_client_frame(wire::encode(client_frame{9, odd}));
  ASSERT_FALSE(f.has_value());
  ASSERT_TRUE(f.error().answer.has_value());
  EXPECT_EQ(f.error().answer->kind, rejection_kind::bad_block_size);
  EXPECT_EQ(f.error().request_id, std::optional<uint64_t>(9));
  // Truncating the encoding anywhere never crashes and never decodes.
  for (size_t cut = 1; cut < good.size(); cut += 7) {
    auto t = wire::decode_submit(byte_view(good.data(), cut));
    EXPECT_FALSE(t.has_value()) << cut;
  }
}

TEST(wire_round_trip, an_empty_body_stays_distinct_from_an_absent_one) {
  submit_msg s = mk_submit(msg_type::message);
  s.body = bytes{};
  auto d = wire::decode_submit(wire::encode_submit(s));
  ASSERT_TRUE(d.has_value()) << d.error().message();
  ASSERT_TRUE(d->body.has_value());
  EXPECT_TRUE(d->body->empty());
  s.body.reset();
  d = wire::decode_submit(wire::encode_submit(s));
  ASSERT_TRUE(d.has_value()) << d.error().message();
  EXPECT_FALSE(d->body.has_value());
}

TEST(wire_round_trip, ids_and_texts_keep_arbitrary_bytes) {
  // The codec moves ids as bytes; validate() judges their form, so even a NUL survives.
  client_frame f{5, lookup_users{{std::string("a\0b", 3), "\xff\xfe", std::string(64, 'x')}}};
  auto d = wire::decode_client_frame(wire::encode(f));
  ASSERT_TRUE(d.has_value()) << d.error().err.message();
  EXPECT_EQ(*d, f);
  router_frame e = error_frame{frame_error_code::busy, std::string("x\0y", 3)};
  auto de = wire::decode_router_frame(wire::encode(e));
  ASSERT_TRUE(de.has_value()) << de.error().message();
  EXPECT_EQ(*de, e);
}

TEST(wire_round_trip, a_frame_at_an_unaligned_address_decodes) {
  const client_frame f = all_client_frames().front();
  const bytes b = wire::encode(f);
  bytes shifted(b.size() + 1);
  std::copy(b.begin(), b.end(), shifted.begin() + 1);
  auto d = wire::decode_client_frame(byte_view(shifted).subspan(1));
  ASSERT_TRUE(d.has_value()) << d.error().err.message();
  EXPECT_EQ(*d, f);
}

TEST(wire_encode, a_c_is_written_with_exactly_the_fields_of_its_type) {
  common c = mk_common(msg_type::message);
  c.voids = {1, 2};                     // belongs to RECEIPT
  c.members = {mk_member("alice", 1)};  // belongs to SETUP and UPDATE
  auto d = wire::decode_common(wire::encode_common(c));
  ASSERT_TRUE(d.has_value()) << d.error().message();
  EXPECT_EQ(*d, mk_common(msg_type::message));
}

TEST(wire_encode, every_top_level_frame_carries_the_wire_version) {
  // ClientFrame's version is the first byte of its data section: the root struct starts at
  // word 2 of a single-segment message (segment table, root pointer).
  const bytes b = wire::encode(client_frame{1, ping{}});
  ASSERT_GE(b.size(), 17u);
  EXPECT_EQ(b[16], wire::wire_version);
}

// ---------------------------------------------------------------------------------------------
// The largest messages the limits allow.

/// A 64-byte id (max_id_len), sorting in the order of `i`.
std::string long_id(char prefix, size_t i) {
  const std::string digits = std::to_string(1000000 + i).substr(1);  // i < 10^6
  return std::string(max_id_len - digits.size(), prefix) + digits;
}

member_list long_members(char prefix, size_t n) {
  member_list l;
  for (size_t i = 0; i < n; ++i) {
    l.push_back(mk_member(long_id(prefix, i), static_cast<uint8_t>(i)));
  }
  return l;
}

std::vector<recipient_block> long_blocks(size_t n) {
  std::vector<recipient_block> v;
  for (size_t i = 0; i < n; ++i) {
    v.push_back({long_id('r', i), mk_block(static_cast<uint8_t>(i))});
  }
  return v;
}

std::vector<slot_block> blocks(size_t n) {
  std::vector<slot_block> v;
  for (size_t i = 0; i < n; ++i) {
    v.push_back(mk_block(static_cast<uint8_t>(i)));
  }
  return v;
}

common largest_common(msg_type t) {
  common c = mk_common(t);
  c.author = long_id('u', 0);
  c.aseq = UINT64_MAX;
  if (t != msg_type::setup) {
    c.parent = UINT64_MAX;
  }
  switch (t) {
    case msg_type::setup:
      c.ms = long_members('m', max_mirrors);
      c.members = long_members('u', max_members);
      break;
    case msg_type::message:
      c.body_len = max_body;
      break;
    case msg_type::receipt:
      c.voids.clear();
      for (size_t i = 0; i < max_voids; ++i) {
        c.voids.push_back(UINT64_MAX - max_voids + i);
      }
      break;
    case msg_type::update: {
      // A full conversation swapping half of max_ops members: the most recipients an UPDATE
      // can have (limits.hpp, max_recipients).
      c.ms = long_members('m', max_mirrors);
      c.adds = long_members('v', max_ops / 2);
      c.removes.clear();
      for (size_t i = 0; i < max_ops / 2; ++i) {
        c.removes.push_back(long_id('t', i));
      }
      c.members = long_members('u', max_members);
      break;
    }
  }
  return c;
}

submit_msg largest_submit(msg_type t) {
  submit_msg s;
  s.c = largest_common(t);
  if (t == msg_type::message) {
    s.body = bytes(max_body, 0x5a);
  }
  s.blocks = long_blocks(t == msg_type::update ? max_recipients : max_members - 1);
  s.ambs = blocks(max_mirrors);
  return s;
}

/// Checks that an encrypted frame carrying `b` fits max_frame_protocol, and records the size.
void expect_fits(const char* what, size_t size, size_t overhead) {
  ::testing::Test::RecordProperty(what, std::to_string(size));
  std::printf("[ sizes    ] %-40s %8zu bytes (+%zu)\n", what, size, overhead);
  EXPECT_LE(size + overhead, max_frame_protocol) << what;
}

TEST(wire_limits, the_largest_submits_fit_max_frame_protocol_and_decode) {
  const struct {
    const char* what;
    msg_type type;
  } cases[] = {{"client SUBMIT SETUP", msg_type::setup},
               {"client SUBMIT MESSAGE", msg_type::message},
               {"client SUBMIT RECEIPT", msg_type::receipt},
               {"client SUBMIT UPDATE", msg_type::update}};
  for (const auto& c : cases) {
    const client_frame f{UINT64_MAX, largest_submit(c.type)};
    const bytes b = wire::encode(f);
    expect_fits(c.what, b.size(), crypto::aead_tag_size);
    auto d = wire::decode_client_frame(b);
    ASSERT_TRUE(d.has_value()) << c.what << ": " << d.error().err.message();
    EXPECT_TRUE(*d == f) << c.what;
  }
}

TEST(wire_limits, the_largest_directory_requests_fit_max_frame_protocol_and_decode) {
  upload_prekeys up;
  for (size_t i = 0; i < max_prekey_batch; ++i) {
    up.one_time.push_back({UINT64_MAX - i, {}});
  }
  up.last_resort = published_key{UINT64_MAX, {}};
  fetch_prekeys fetch;
  fetch.conv = conv_id{};
  for (size_t i = 0; i < max_fetch_owners; ++i) {
    fetch.owners.push_back(long_id('o', i));
  }
  lookup_users lookup;
  for (size_t i = 0; i < max_members; ++i) {
    lookup.ids.push_back(long_id('o', i));
  }
  const std::pair<const char*, client_frame> cases[] = {
      {"client UPLOAD_PREKEYS", {UINT64_MAX, up}},
      {"client FETCH_PREKEYS", {UINT64_MAX, fetch}},
      {"client LOOKUP_USERS", {UINT64_MAX, lookup}}};
  for (const auto& [what, f] : cases) {
    const bytes b = wire::encode(f);
    expect_fits(what, b.size(), crypto::aead_tag_size);
    auto d = wire::decode_client_frame(b);
    ASSERT_TRUE(d.has_value()) << what << ": " << d.error().err.message();
    EXPECT_TRUE(*d == f) << what;
  }
}

TEST(wire_limits, the_largest_router_frames_fit_max_frame_protocol_and_decode) {
  std::vector<std::pair<const char*, router_frame>> cases;
  for (auto t : {msg_type::setup, msg_type::message, msg_type::update}) {
    envelope e;
    e.index = UINT64_MAX;
    e.c = largest_common(t);
    if (t == msg_type::message) {
      e.body = bytes(max_body, 0x5a);
    }
    e.block_u = mk_block(1);
    e.mirror_blocks = blocks(max_mirrors);
    e.t_prev = hash32{};
    cases.emplace_back(t == msg_type::setup     ? "router ENVELOPE SETUP"
                       : t == msg_type::message ? "router ENVELOPE MESSAGE"
                                                : "router ENVELOPE UPDATE",
                       e);
  }
  prekeys_result pk;
  for (size_t i = 0; i < max_fetch_owners; ++i) {
    pk.bundles.push_back({long_id('o', i), {}, key_ref{key_kind::prekey, UINT64_MAX, {}}});
  }
  cases.emplace_back("router prekeys result", response{UINT64_MAX, pk});
  // The decoder bounds users and unknown ids separately, so measure both full.
  users_result users{long_members('u', max_members), {}};
  for (size_t i = 0; i < max_members; ++i) {
    users.unknown.push_back(long_id('z', i));
  }
  cases.emplace_back("router users result", response{UINT64_MAX, users});
  cases.emplace_back("router rejection",
                     response{UINT64_MAX, rejection{rejection_kind::invalid, UINT64_MAX,
                                                    std::string(max_text_len, 'r')}});
  for (const auto& [what, f] : cases) {
    const bytes b = wire::encode(f);
    expect_fits(what, b.size(), crypto::aead_tag_size);
    auto d = wire::decode_router_frame(b);
    ASSERT_TRUE(d.has_value()) << what << ": " << d.error().message();
    EXPECT_TRUE(*d == f) << what;
  }
}

TEST(wire_limits, the_largest_link_messages_fit_max_frame_protocol_and_decode) {
  prepare_msg p;
  p.c = largest_common(msg_type::update);
  for (size_t i = 0; i < max_recipients; ++i) {
    p.block_hashes.push_back({long_id('r', i), {}});
  }
  p.amb = mk_block(1);
  for (size_t i = 0; i < max_members; ++i) {
    p.last_resort.push_back({long_id('u', i), UINT64_MAX, {}});
  }
  const std::pair<const char*, link_request> requests[] = {
      {"link PREPARE", p}, {"link COMMIT", commit_msg{UINT64_MAX, {}, p}}};
  for (const auto& [what, m] : requests) {
    const bytes b = wire::encode(m);
    expect_fits(what, b.size(), 0);
    auto d = wire::decode_link_request(b);
    ASSERT_TRUE(d.has_value()) << what << ": " << d.error().message();
    EXPECT_TRUE(*d == m) << what;
  }
  mirror_prekeys mp;
  for (size_t i = 0; i < max_prekey_batch; ++i) {
    mp.one_time.push_back({UINT64_MAX - i, {}});
  }
  mp.last_resort = published_key{UINT64_MAX, {}};
  audit_answer audit{UINT64_MAX, std::vector<hash32>(max_audit_batch)};
  const std::pair<const char*, link_response> responses[] = {
      {"link ANSWER", answer{UINT64_MAX, {}, blocks(max_slots)}},
      {"link mirror PREKEYS", mp},
      {"link AUDIT answer", audit}};
  for (const auto& [what, m] : responses) {
    const bytes b = wire::encode(m);
    expect_fits(what, b.size(), 0);
    auto d = wire::decode_link_response(b);
    ASSERT_TRUE(d.has_value()) << what << ": " << d.error().message();
    EXPECT_TRUE(*d == m) << what;
  }
}

}  // namespace
}  // namespace cowpi::protocol

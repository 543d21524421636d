// SPDX-License-Identifier: Apache-2.0
// Canonical encodings: ids, enc(C) refusals, blocks, padding, safety number.
#include "cowpi/protocol/encoding.hpp"

#include "cowpi/protocol/chain.hpp"
#include "cowpi/protocol/limits.hpp"

#include <gtest/gtest.h>

#include <regex>

namespace cowpi::protocol {
namespace {

member mk(std::string id, uint8_t fill) {
  member m{std::move(id), {}};
  m.lpk.fill(fill);
  return m;
}

common setup_c() {
  common c;
  c.type = msg_type::setup;
  c.conv.fill(7);
  c.author = "alice";
  c.aseq = 1;
  c.ms = {mk("m1", 1), mk("m2", 2)};
  c.members = {mk("alice", 3), mk("bob", 4)};
  return c;
}

TEST(valid_id, accepts_plain_and_multibyte_utf8) {
  EXPECT_TRUE(valid_id("alice"));
  EXPECT_TRUE(valid_id("\xc3\xa9mile"));      // U+00E9
  EXPECT_TRUE(valid_id("\xf0\x9f\x90\xae"));  // U+1F42E
  EXPECT_TRUE(valid_id(std::string(64, 'a')));
}

TEST(valid_id, refuses_empty_long_and_malformed_ids) {
  EXPECT_FALSE(valid_id(""));
  EXPECT_FALSE(valid_id(std::string(65, 'a')));
  EXPECT_FALSE(valid_id("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(valid_id("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(valid_id("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(valid_id("a\xc3"));             // truncated sequence
  EXPECT_FALSE(valid_id("\x80"));              // lone continuation byte
}

TEST(valid_id, refuses_controls_and_invisible_characters) {
  EXPECT_FALSE(valid_id(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_id("a\nb"));
  EXPECT_FALSE(valid_id("a\x7f"));
  EXPECT_FALSE(valid_id("a\xc2\x85"));      // U+0085
  EXPECT_FALSE(valid_id("a\xe2\x80\x8b"));  // U+200B zero width space
  EXPECT_FALSE(valid_id("a\xe2\x80\xae"));  // U+202E right-to-left override
  EXPECT_FALSE(valid_id("a\xe2\x81\xa6"));  // U+2066
  EXPECT_FALSE(
      valid_id("\xef\xbb\xbf"
               "a"));  // U+FEFF
}

TEST(enc_common, encodes_setup_with_the_documented_layout) {
  auto e = enc_common(setup_c());
  ASSERT_TRUE(e.has_value()) << e.error().message();
  byte_writer w;
  w.u8(1).raw(setup_c().conv).u8(1).lp("alice").be64(1);
  enc_list(w, setup_c().ms);
  enc_list(w, setup_c().members);
  EXPECT_EQ(*e, w.data());
}

TEST(enc_common, refuses_unsorted_or_duplicate_member_lists) {
  auto c = setup_c();
  std::swap(c.members[0], c.members[1]);
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
  c = setup_c();
  c.members = {mk("alice", 3), mk("alice", 9)};
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
}

TEST(enc_common, refuses_fields_that_do_not_belong_to_the_type) {
  auto c = setup_c();
  c.voids = {1};
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
  c = setup_c();
  c.parent = 3;
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
  c = setup_c();
  c.body_len = 296;
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
}

TEST(enc_common, refuses_unknown_versions_and_bad_authors) {
  auto c = setup_c();
  c.version = 3;
  EXPECT_EQ(enc_common(c).error().code, errc::unsupported_version);
  c = setup_c();
  c.author = "bad\nid";
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
}

TEST(enc_common, refuses_receipt_voids_out_of_order) {
  common c;
  c.type = msg_type::receipt;
  c.author = "bob";
  c.aseq = 2;
  c.voids = {5, 5};
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
  c.voids = {5, 4};
  EXPECT_EQ(enc_common(c).error().code, errc::not_canonical);
  c.voids = {4, 5};
  EXPECT_TRUE(enc_common(c).has_value());
}

TEST(block_encoding, round_trips_in_185_bytes) {
  block b;
  b.x.fill(1);
  b.ref = {key_kind::last_resort, 0x0102030405060708ull, {}};
  b.ref.pub.fill(2);
  b.nonce.fill(3);
  b.ct.fill(4);
  auto e = enc_block(b);
  ASSERT_EQ(e.size(), 185u);
  EXPECT_EQ(e[32], 2);  // kind LAST_RESORT
  EXPECT_EQ(e[33], 1);  // be64 id, most significant byte first
  auto d = decode_block(e);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, b);
}

TEST(block_encoding, refuses_wrong_sizes_and_unknown_kinds) {
  bytes short_block(184, 0);
  EXPECT_EQ(decode_block(short_block).error().code, errc::bad_length);
  bytes bad_kind(185, 0);
  bad_kind[32] = 4;
  EXPECT_EQ(decode_block(bad_kind).error().code, errc::malformed);
}

TEST(padding, pads_to_the_next_multiple_of_256_and_round_trips) {
  for (size_t n : {0u, 1u, 254u, 255u, 256u, 1000u}) {
    bytes p(n, 0xAB);
    auto padded = pad(p);
    EXPECT_EQ(padded.size() % 256, 0u);
    EXPECT_GE(padded.size(), n + 1);
    EXPECT_LT(padded.size(), n + 1 + 256);
    auto back = unpad(padded);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, p);
  }
}

TEST(padding, accepts_longer_padding_and_refuses_malformed_padding) {
  bytes p = pad(bytes{1, 2, 3});
  p.resize(p.size() + 256, 0);
  EXPECT_EQ(*unpad(p), (bytes{1, 2, 3}));
  EXPECT_EQ(unpad(bytes(256, 0)).error().code, errc::malformed);
  bytes no_marker(256, 0);
  no_marker[0] = 0x7f;
  EXPECT_EQ(unpad(no_marker).error().code, errc::malformed);
}

TEST(safety_number, is_twelve_five_digit_groups_on_three_lines) {
  auto s = safety_number(setup_c().members);
  EXPECT_TRUE(std::regex_match(
      s, std::regex("(\\d{5} ){3}\\d{5}\\n(\\d{5} ){3}\\d{5}\\n(\\d{5} ){3}\\d{5}")))
      << s;
  auto other = setup_c().members;
  other[1].lpk[0] ^= 1;
  EXPECT_NE(safety_number(other), s);
}

TEST(hashes, transcript_hash_binds_conv_index_previous_and_digest) {
  conv_id conv{};
  hash32 d{};
  auto t = transcript_hash(conv, 0, t_genesis, d);
  conv[0] = 1;
  EXPECT_NE(transcript_hash(conv, 0, t_genesis, d), t);
  conv[0] = 0;
  EXPECT_NE(transcript_hash(conv, 1, t_genesis, d), t);
  d[0] = 1;
  EXPECT_NE(transcript_hash(conv, 0, t_genesis, d), t);
}

TEST(slots, each_kind_round_trips_and_is_told_apart_by_its_length) {
  block b;
  b.x[0] = 1;
  b.ref = key_ref{key_kind::last_resort, 7, {}};
  b.ref.pub[0] = 2;
  b.ct[87] = 3;
  const std::vector<slot_block> all = {
      b,
      dh_step{9, b},
      chain_block{1, 0, bytes(16, 4)},
      chain_block{2, 1, bytes(48, 5)},
      chain_block{3, 2, bytes(56, 6)},
      chain_block{0xffffffffU, 0xfffffffeU, bytes(88, 7)},
  };
  const std::vector<size_t> sizes = {185, 189, 24, 56, 64, 96};
  for (size_t k = 0; k < all.size(); ++k) {
    const bytes e = enc_slot(all[k]);
    EXPECT_EQ(e.size(), sizes[k]) << k;
    EXPECT_TRUE(valid_slot_size(e.size())) << k;
    auto d = decode_slot(e);
    ASSERT_TRUE(d.has_value()) << k << ": " << d.error().message();
    EXPECT_EQ(*d, all[k]) << k;
    EXPECT_EQ(slot_hash(all[k]), crypto::sha256(e)) << k;
    EXPECT_EQ(mode_of(all[k]), k == 0 ? block_mode::pk : block_mode::chain) << k;
    EXPECT_EQ(block_of(all[k]) != nullptr, k < 2) << k;
  }
  EXPECT_EQ(slot_hash(all[0]), block_hash(b)) << "a public-key slot hashes as before";
  EXPECT_EQ(*block_of(all[1]), b);
}

TEST(slots, every_other_length_is_bad_length_and_a_bad_key_kind_still_fails) {
  for (size_t n = 0; n <= 200; ++n) {
    if (valid_slot_size(n))
      continue;
    auto d = decode_slot(bytes(n, 0));
    ASSERT_FALSE(d.has_value()) << n;
    EXPECT_EQ(d.error().code, errc::bad_length) << n;
  }
  // A 185- or 189-byte slot with an unknown key kind is malformed, not a chain block.
  bytes pk(185, 0);
  pk[32] = 9;
  EXPECT_EQ(decode_slot(pk).error().code, errc::malformed);
  bytes step(189, 0);
  step[4 + 32] = 9;
  EXPECT_EQ(decode_slot(step).error().code, errc::malformed);
}

TEST(enc_common, takes_version_1_and_2_and_refuses_any_other) {
  common c;
  c.type = msg_type::receipt;
  c.author = "alice";
  c.aseq = 2;
  for (uint8_t v : {uint8_t{1}, uint8_t{2}}) {
    c.version = v;
    auto e = enc_common(c);
    ASSERT_TRUE(e.has_value()) << unsigned{v};
    EXPECT_EQ((*e)[0], v);
  }
  for (uint8_t v : {uint8_t{0}, uint8_t{3}, uint8_t{255}}) {
    c.version = v;
    EXPECT_EQ(enc_common(c).error().code, errc::unsupported_version) << unsigned{v};
  }
}

}  // namespace
}  // namespace cowpi::protocol

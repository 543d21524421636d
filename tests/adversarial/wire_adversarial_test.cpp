// SPDX-License-Identifier: Apache-2.0
// Hostile bytes against the wire decoders: truncation, garbage, forged segment tables, bad
// pointers, unknown tags, wrong sizes and oversized lists. Every decoder must refuse cleanly.
// This test builds raw Cap'n Proto messages with the generated schema on purpose: it is the
// one place outside protocol/src/wire/ that needs to write what our encoder never would.
#include "cowpi/protocol/chain.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/wire.hpp"

#include "cowpi.capnp.h"
#include "wire_samples.hpp"
#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace cowpi::protocol {
namespace {

using namespace wire_samples;  // NOLINT(google-build-using-namespace)
namespace schema = wire::schema;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// One decoder, reduced to "the error, if any".
struct decoder {
  const char* name;
  std::function<std::optional<error>(byte_view)> run;
};

template <class F>
decoder make_decoder(const char* name, F f) {
  return {name, [f](byte_view b) -> std::optional<error> {
            auto r = f(b);
            if (r.has_value()) {
              return std::nullopt;
            }
            return r.error();
          }};
}

std::vector<decoder> all_decoders() {
  return {
      make_decoder("clear", wire::decode_clear_frame),
      {"client",
       [](byte_view b) -> std::optional<error> {
         auto r = wire::decode_client_frame(b);
         if (r.has_value()) {
           return std::nullopt;
         }
         return r.error().err;
       }},
      make_decoder("router", wire::decode_router_frame),
      make_decoder("link request", wire::decode_link_request),
      make_decoder("link response", wire::decode_link_response),
      make_decoder("common", wire::decode_common),
      make_decoder("envelope", wire::decode_envelope),
      make_decoder("submit", wire::decode_submit),
      make_decoder("prekey bundle", wire::decode_prekey_bundle),
  };
}

/// Every sample message, encoded, paired with the decoder meant for it.
std::vector<std::pair<bytes, size_t>> all_samples() {
  std::vector<std::pair<bytes, size_t>> v;
  for (const auto& f : all_clear_frames()) {
    v.emplace_back(wire::encode(f), 0);
  }
  for (const auto& f : all_client_frames()) {
    v.emplace_back(wire::encode(f), 1);
  }
  for (const auto& f : all_router_frames()) {
    v.emplace_back(wire::encode(f), 2);
  }
  for (const auto& m : all_link_requests()) {
    v.emplace_back(wire::encode(m), 3);
  }
  for (const auto& m : all_link_responses()) {
    v.emplace_back(wire::encode(m), 4);
  }
  v.emplace_back(wire::encode_common(mk_common(msg_type::update)), 5);
  v.emplace_back(wire::encode_envelope(mk_envelope(true)), 6);
  v.emplace_back(wire::encode_submit(mk_submit(msg_type::message)), 7);
  v.emplace_back(wire::encode_prekey_bundle(mk_bundle(key_kind::ratchet)), 8);
  return v;
}

/// A decoder's error must be one of the three the codec documents.
bool documented(const error& e) {
  return e.code == errc::malformed || e.code == errc::too_large
         || e.code == errc::unsupported_version;
}

bytes flat(capnp::MessageBuilder& mb) {
  auto words = capnp::messageToFlatArray(mb);
  auto b = words.asBytes();
  return bytes(b.begin(), b.end());
}

/// Re-opens an encoded message as a builder, lets `edit` change it, and re-serialises it.
template <class Root, class Edit>
bytes edit(const bytes& encoded, Edit edit_fn) {
  auto words = kj::heapArray<capnp::word>(encoded.size() / sizeof(capnp::word));
  std::memcpy(words.asBytes().begin(), encoded.data(), encoded.size());
  capnp::FlatArrayMessageReader reader(words.asPtr());
  capnp::MallocMessageBuilder mb;
  mb.setRoot(reader.getRoot<Root>());
  edit_fn(mb.getRoot<Root>());
  return flat(mb);
}

/// Writes `tag` into the discriminant of `b`'s unnamed union, bypassing the generated setters.
template <class T>
void set_union_tag(typename T::Builder b, uint16_t tag) {
  const uint32_t off = capnp::Schema::from<T>().getProto().getStruct().getDiscriminantOffset();
  auto ds = capnp::AnyStruct::Builder(kj::mv(b)).getDataSection();
  ds[2 * off] = static_cast<kj::byte>(tag & 0xff);
  ds[2 * off + 1] = static_cast<kj::byte>(tag >> 8);
}

bytes sized(size_t n) {
  return bytes(n, 0x42);
}
capnp::Data::Reader as_data(const bytes& b) {
  return {b.data(), b.size()};
}

uint64_t le64(const bytes& b, size_t word) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) {
    v |= uint64_t{b[8 * word + i]} << (8 * i);
  }
  return v;
}
void put_le64(bytes& b, size_t word, uint64_t v) {
  for (size_t i = 0; i < 8; ++i) {
    b[8 * word + i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

bytes words_to_bytes(const std::vector<uint64_t>& w) {
  bytes b(w.size() * 8);
  for (size_t i = 0; i < w.size(); ++i) {
    put_le64(b, i, w[i]);
  }
  return b;
}

/// Expects a client frame to be refused with `code`, under its request id, without an answer.
void expect_client_refusal(const bytes& b, errc code, uint64_t request_id) {
  auto r = wire::decode_client_frame(b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().err.code, code) << r.error().err.message();
  ASSERT_TRUE(r.error().request_id.has_value());
  EXPECT_EQ(*r.error().request_id, request_id);
  EXPECT_FALSE(r.error().answer.has_value());
}

// ---------------------------------------------------------------------------------------------
// Framing.

TEST(wire_framing, every_proper_prefix_of_a_valid_message_is_refused) {
  const auto decoders = all_decoders();
  for (const auto& [b, which] : all_samples()) {
    ASSERT_FALSE(decoders[which].run(b).has_value()) << decoders[which].name;
    for (size_t len = 0; len < b.size(); ++len) {
      auto e = decoders[which].run(byte_view(b).first(len));
      ASSERT_TRUE(e.has_value()) << decoders[which].name << " accepted a prefix of " << len;
      EXPECT_TRUE(documented(*e)) << e->message();
    }
  }
}

TEST(wire_framing, empty_input_is_malformed_for_every_decoder) {
  for (const auto& d : all_decoders()) {
    auto e = d.run({});
    ASSERT_TRUE(e.has_value()) << d.name;
    EXPECT_EQ(e->code, errc::malformed) << d.name;
  }
}

TEST(wire_framing, a_length_that_is_not_a_multiple_of_eight_is_malformed) {
  const bytes b = wire::encode(client_frame{9, ping{}});
  for (size_t extra = 1; extra < 8; ++extra) {
    bytes longer = b;
    longer.resize(b.size() + extra, 0);
    auto r = wire::decode_client_frame(longer);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().err.code, errc::malformed);
    EXPECT_FALSE(r.error().request_id.has_value()) << "framing fails before the id is read";
  }
  auto r = wire::decode_client_frame(byte_view(b).first(b.size() - 3));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().err.code, errc::malformed);
}

TEST(wire_framing, bytes_after_the_end_of_the_message_are_malformed) {
  bytes b = wire::encode(client_frame{9, ping{}});
  b.resize(b.size() + 8, 0);
  auto r = wire::decode_client_frame(b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().err.code, errc::malformed);
  EXPECT_FALSE(r.error().request_id.has_value());
}

TEST(wire_framing, input_over_max_frame_protocol_is_too_large_before_parsing) {
  bytes b(max_frame_protocol + 8, 0);
  for (const auto& d : all_decoders()) {
    auto e = d.run(b);
    ASSERT_TRUE(e.has_value()) << d.name;
    EXPECT_EQ(e->code, errc::too_large) << d.name;
  }
}

TEST(wire_framing, a_huge_segment_count_is_refused_without_allocating_for_it) {
  const bytes valid = wire::encode(client_frame{9, ping{}});
  for (uint32_t count_minus_one : {0xffffffffu, 0x7fffffffu, 0x10000u, 511u, 64u}) {
    bytes b = valid;
    for (size_t i = 0; i < 4; ++i) {
      b[i] = static_cast<uint8_t>(count_minus_one >> (8 * i));
    }
    auto r = wire::decode_client_frame(b);
    ASSERT_FALSE(r.has_value()) << count_minus_one;
    EXPECT_EQ(r.error().err.code, errc::malformed) << count_minus_one;
  }
}

TEST(wire_framing, segment_sizes_larger_than_the_input_are_malformed) {
  for (uint32_t size : {0xffffffffu, 0x10000000u, 1000u}) {
    bytes b = wire::encode(client_frame{9, ping{}});
    for (size_t i = 0; i < 4; ++i) {
      b[4 + i] = static_cast<uint8_t>(size >> (8 * i));
    }
    auto r = wire::decode_client_frame(b);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().err.code, errc::malformed);
    // Two segments, the second claiming 4 GiB.
    bytes two = words_to_bytes({1 | uint64_t{1} << 32, 0xffffffffu, 0});
    r = wire::decode_client_frame(two);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().err.code, errc::malformed);
  }
}

TEST(wire_framing, garbage_bytes_never_crash_and_fail_with_a_documented_error) {
  std::mt19937_64 rng(0xc0ff1);
  const auto decoders = all_decoders();
  for (int round = 0; round < 3000; ++round) {
    const size_t words = 1 + rng() % 48;
    bytes b(words * 8);
    for (auto& x : b) {
      x = static_cast<uint8_t>(rng());
    }
    if (round % 2 == 0) {
      // A plausible single-segment table, so the reader gets past the framing.
      put_le64(b, 0, uint64_t{words - 1} << 32);
    }
    for (const auto& d : decoders) {
      auto e = d.run(b);
      if (e) {
        EXPECT_TRUE(documented(*e)) << d.name << ": " << e->message();
      }
    }
  }
}

TEST(wire_framing, a_list_of_empty_structs_claiming_huge_counts_hits_the_traversal_limit) {
  // A hand-made Common (SETUP): conv of 16 bytes, and `members` as an inline-composite list of
  // zero-sized structs claiming `count` elements in zero words: the amplification pattern.
  auto craft = [](uint64_t count) {
    return words_to_bytes({
        uint64_t{15} << 32,                     // segment table: 1 segment of 15 words
        uint64_t{4} << 32 | uint64_t{7} << 48,  // root: struct, 4 data words, 7 pointers
        1,                                      // version 1, union tag 0 (setup)
        0, 0, 0,                                // rest of the data section
        1 | 6u << 2 | uint64_t{2} << 32 | uint64_t{16} << 35,  // conv: 16 bytes at word 13
        0,                                                     // author: absent (empty)
        0,                                                     // ms: empty
        1 | 5u << 2 | uint64_t{7} << 32,         // members: inline composite, tag at word 15
        0, 0, 0,                                 // unused pointers
        0x0706050403020100, 0x0f0e0d0c0b0a0908,  // conv bytes
        count << 2,                              // tag: count elements of 0+0 words
    });
  };
  auto ok = wire::decode_common(craft(0));
  ASSERT_TRUE(ok.has_value()) << ok.error().message();  // the hand-made message is well-formed
  EXPECT_TRUE(ok->members.empty());
  for (uint64_t count : {uint64_t{200}, uint64_t{1} << 20, (uint64_t{1} << 29) - 1}) {
    auto r = wire::decode_common(craft(count));
    ASSERT_FALSE(r.has_value()) << count;
    EXPECT_EQ(r.error().code, errc::malformed) << count;
  }
}

// ---------------------------------------------------------------------------------------------
// Pointers, tags and enumerants.

TEST(wire_pointers, a_corrupt_root_pointer_is_malformed) {
  const bytes valid = wire::encode(client_frame{9, ping{}});
  const uint64_t bad[] = {
      0x3ffffffcu | uint64_t{2} << 32 | uint64_t{1} << 48,  // struct far past the segment end
      0x80000000u | uint64_t{2} << 32 | uint64_t{1} << 48,  // struct before the segment start
      2 | uint64_t{9} << 32,                                // far pointer into segment 9
      3,                                                    // capability pointer
      1 | uint64_t{2} << 32 | uint64_t{0x1fffffff} << 35,   // list of 2^29-1 bytes
      1 | uint64_t{7} << 32 | uint64_t{5} << 35,            // inline composite, bad tag
  };
  for (uint64_t p : bad) {
    bytes b = valid;
    put_le64(b, 1, p);
    auto r = wire::decode_client_frame(b);
    ASSERT_FALSE(r.has_value()) << std::hex << p;
    EXPECT_EQ(r.error().err.code, errc::malformed) << std::hex << p;
    EXPECT_FALSE(r.error().request_id.has_value());
  }
}

TEST(wire_pointers, corrupting_any_word_of_a_submit_never_crashes) {
  const bytes valid = wire::encode(client_frame{9, mk_submit(msg_type::update)});
  const uint64_t patterns[] = {
      0x3ffffffcu | uint64_t{2} << 32 | uint64_t{1} << 48,
      0xfffffffcu,
      2 | uint64_t{9} << 32,
      6 | uint64_t{0} << 32,
      3,
      1 | uint64_t{2} << 32 | uint64_t{0x1fffffff} << 35,
      1 | 4u | uint64_t{7} << 32 | uint64_t{0x1fffffff} << 35,
      UINT64_MAX,
  };
  for (size_t w = 1; w < valid.size() / 8; ++w) {
    for (uint64_t p : patterns) {
      bytes b = valid;
      put_le64(b, w, p ^ (le64(valid, w) & 0));  // replace the word entirely
      auto r = wire::decode_client_frame(b);
      if (!r.has_value()) {
        EXPECT_TRUE(documented(r.error().err)) << r.error().err.message();
      }
    }
  }
}

TEST(wire_tags, unknown_union_tags_from_a_newer_sender_are_malformed) {
  struct probe {
    const char* name;
    std::function<std::optional<error>()> run;
  };
  const uint16_t tag = 99;
  auto msg = [](const std::optional<error>& e) { return e ? e->message() : std::string("ok"); };
  const probe probes[] = {
      {"clear frame",
       [&] {
         auto b = edit<schema::ClearFrame>(wire::encode(all_clear_frames().front()), [&](auto f) {
           set_union_tag<schema::ClearFrame>(f, tag);
         });
         auto r = wire::decode_clear_frame(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"client frame",
       [&] {
         auto b = edit<schema::ClientFrame>(wire::encode(client_frame{4, ping{}}), [&](auto f) {
           set_union_tag<schema::ClientFrame>(f, tag);
         });
         auto r = wire::decode_client_frame(b);
         if (r) {
           return std::optional<error>();
         }
         EXPECT_EQ(r.error().request_id, std::optional<uint64_t>(4));
         return std::optional<error>(r.error().err);
       }},
      {"C type",
       [&] {
         auto b = edit<schema::Common>(wire::encode_common(mk_common(msg_type::message)),
                                       [&](auto c) { set_union_tag<schema::Common>(c, 4); });
         auto r = wire::decode_common(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"router frame",
       [&] {
         auto b = edit<schema::RouterFrame>(wire::encode(all_router_frames().front()), [&](auto f) {
           set_union_tag<schema::RouterFrame>(f, tag);
         });
         auto r = wire::decode_router_frame(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"response",
       [&] {
         auto b = edit<schema::RouterFrame>(wire::encode(all_router_frames().front()), [&](auto f) {
           set_union_tag<schema::Response>(f.getResponse(), tag);
         });
         auto r = wire::decode_router_frame(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"link request",
       [&] {
         auto b = edit<schema::LinkRequest>(wire::encode(all_link_requests().front()), [&](auto f) {
           set_union_tag<schema::LinkRequest>(f, tag);
         });
         auto r = wire::decode_link_request(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"link response",
       [&] {
         auto b = edit<schema::LinkResponse>(
             wire::encode(all_link_responses().front()),
             [&](auto f) { set_union_tag<schema::LinkResponse>(f, tag); });
         auto r = wire::decode_link_response(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
  };
  for (const auto& p : probes) {
    auto e = p.run();
    ASSERT_TRUE(e.has_value()) << p.name;
    EXPECT_EQ(e->code, errc::malformed) << p.name << ": " << msg(e);
    EXPECT_NE(e->context.find("unknown union tag"), std::string::npos) << msg(e);
  }
}

TEST(wire_tags, unknown_and_unspecified_enumerants_are_malformed) {
  for (uint16_t v : {uint16_t{0}, uint16_t{4}, uint16_t{500}}) {
    auto b = edit<schema::PrekeyBundle>(
        wire::encode_prekey_bundle(mk_bundle(key_kind::prekey)),
        [&](auto p) { p.getKey().setKind(static_cast<schema::KeyKind>(v)); });
    auto r = wire::decode_prekey_bundle(b);
    ASSERT_FALSE(r.has_value()) << v;
    EXPECT_EQ(r.error().code, errc::malformed);
  }
  for (uint16_t v : {uint16_t{0}, uint16_t{3}}) {
    auto b = edit<schema::ClearFrame>(wire::encode(all_clear_frames().front()), [&](auto f) {
      f.getHello().setMode(static_cast<schema::HelloMode>(v));
    });
    auto r = wire::decode_clear_frame(b);
    ASSERT_FALSE(r.has_value()) << v;
    EXPECT_EQ(r.error().code, errc::malformed);
  }
  for (uint16_t v : {uint16_t{0}, uint16_t{10}}) {
    auto b = edit<schema::RouterFrame>(
        wire::encode(router_frame{error_frame{frame_error_code::busy, "x"}}),
        [&](auto f) { f.getError().setCode(static_cast<schema::ErrorCode>(v)); });
    auto r = wire::decode_router_frame(b);
    ASSERT_FALSE(r.has_value()) << v;
    EXPECT_EQ(r.error().code, errc::malformed);
  }
  for (uint16_t v : {uint16_t{0}, uint16_t{15}}) {
    auto b = edit<schema::RouterFrame>(
        wire::encode(router_frame{response{3, rejection{rejection_kind::stale, 1, ""}}}),
        [&](auto f) {
          f.getResponse().getRejection().setKind(static_cast<schema::RejectionKind>(v));
        });
    auto r = wire::decode_router_frame(b);
    ASSERT_FALSE(r.has_value()) << v;
    EXPECT_EQ(r.error().code, errc::malformed);
  }
}

TEST(wire_versions, an_unknown_wire_version_is_unsupported_in_every_top_level_frame) {
  auto b = edit<schema::ClientFrame>(wire::encode(client_frame{6, ping{}}),
                                     [](auto f) { f.setVersion(2); });
  expect_client_refusal(b, errc::unsupported_version, 6);
  for (uint8_t v : {uint8_t{0}, uint8_t{2}, uint8_t{255}}) {
    auto c = edit<schema::ClearFrame>(wire::encode(all_clear_frames().front()),
                                      [&](auto f) { f.setVersion(v); });
    EXPECT_EQ(wire::decode_clear_frame(c).error().code, errc::unsupported_version);
    auto r = edit<schema::RouterFrame>(wire::encode(all_router_frames().front()),
                                       [&](auto f) { f.setVersion(v); });
    EXPECT_EQ(wire::decode_router_frame(r).error().code, errc::unsupported_version);
    auto q = edit<schema::LinkRequest>(wire::encode(all_link_requests().front()),
                                       [&](auto f) { f.setVersion(v); });
    EXPECT_EQ(wire::decode_link_request(q).error().code, errc::unsupported_version);
    auto a = edit<schema::LinkResponse>(wire::encode(all_link_responses().front()),
                                        [&](auto f) { f.setVersion(v); });
    EXPECT_EQ(wire::decode_link_response(a).error().code, errc::unsupported_version);
  }
}

TEST(wire_versions, a_c_of_another_protocol_version_is_unsupported) {
  auto b = edit<schema::ClientFrame>(wire::encode(client_frame{6, mk_submit(msg_type::message)}),
                                     [](auto f) { f.getSubmit().getC().setVersion(3); });
  expect_client_refusal(b, errc::unsupported_version, 6);
}

TEST(wire_versions, a_submit_in_the_other_modes_form_is_malformed) {
  // A chain-mode C in a named SUBMIT: a client writes chain-mode SUBMITs names-free only.
  auto named = edit<schema::ClientFrame>(
      wire::encode(client_frame{6, mk_submit(msg_type::message)}),
      [](auto f) { f.getSubmit().getC().setVersion(protocol_version_chain); });
  expect_client_refusal(named, errc::malformed, 6);
  // A public-key C in a names-free SUBMIT.
  submit_msg chain = mk_submit(msg_type::message);
  chain.c.version = protocol_version_chain;
  auto free = edit<schema::ClientFrame>(wire::encode(client_frame{7, chain}),
                                        [](auto f) { f.getSubmit().getC().setVersion(1); });
  expect_client_refusal(free, errc::malformed, 7);
  // Each in its own form decodes, and decodes to what re-encodes to the same bytes.
  const bytes e = wire::encode(client_frame{8, chain});
  auto d = wire::decode_client_frame(e);
  ASSERT_TRUE(d.has_value()) << d.error().err.message();
  EXPECT_EQ(wire::encode(*d), e);
}

TEST(wire_versions, a_submit_without_c_is_malformed_not_unsupported) {
  auto b = edit<schema::ClientFrame>(wire::encode(client_frame{6, mk_submit(msg_type::message)}),
                                     [](auto f) { f.getSubmit().disownC(); });
  expect_client_refusal(b, errc::malformed, 6);
}

// ---------------------------------------------------------------------------------------------
// Sizes of fixed-size fields and blocks.

TEST(wire_sizes, fixed_size_fields_of_the_wrong_size_are_malformed) {
  const std::vector<std::pair<const char*, std::function<std::optional<error>()>>> probes = {
      {"HELLO lpk of 31 bytes",
       [] {
         auto b = edit<schema::ClearFrame>(wire::encode(all_clear_frames().front()),
                                           [](auto f) { f.getHello().setLpk(as_data(sized(31))); });
         auto r = wire::decode_clear_frame(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"ACK conv of 15 bytes",
       [] {
         auto b = edit<schema::ClientFrame>(wire::encode(client_frame{1, ack_msg{{}, 2}}),
                                            [](auto f) { f.getAck().setConv(as_data(sized(15))); });
         auto r = wire::decode_client_frame(b);
         return r ? std::nullopt : std::optional<error>(r.error().err);
       }},
      {"C conv of 17 bytes",
       [] {
         auto b = edit<schema::Common>(wire::encode_common(mk_common(msg_type::setup)),
                                       [](auto c) { c.setConv(as_data(sized(17))); });
         auto r = wire::decode_common(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"C parent_hash of 33 bytes",
       [] {
         auto b =
             edit<schema::Common>(wire::encode_common(mk_common(msg_type::receipt)),
                                  [](auto c) { c.getReceipt().setParentHash(as_data(sized(33))); });
         auto r = wire::decode_common(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"member lpk absent",
       [] {
         auto b = edit<schema::Common>(wire::encode_common(mk_common(msg_type::setup)),
                                       [](auto c) { c.getSetup().getMembers()[1].disownLpk(); });
         auto r = wire::decode_common(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"ENVELOPE t_prev of 31 bytes",
       [] {
         auto b = edit<schema::Envelope>(wire::encode_envelope(mk_envelope(true)),
                                         [](auto e) { e.setTPrev(as_data(sized(31))); });
         auto r = wire::decode_envelope(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"ENVELOPE mirror block of 184 bytes",
       [] {
         auto b = edit<schema::Envelope>(wire::encode_envelope(mk_envelope(true)), [](auto e) {
           e.getMirrorBlocks().set(0, as_data(sized(184)));
         });
         auto r = wire::decode_envelope(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"key ref pub of 31 bytes",
       [] {
         auto b =
             edit<schema::PrekeyBundle>(wire::encode_prekey_bundle(mk_bundle(key_kind::prekey)),
                                        [](auto p) { p.getKey().setPub(as_data(sized(31))); });
         auto r = wire::decode_prekey_bundle(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"PREPARED d of 31 bytes",
       [] {
         auto b = edit<schema::LinkResponse>(wire::encode(link_response{prepared{}}), [](auto f) {
           f.getPrepared().setD(as_data(sized(31)));
         });
         auto r = wire::decode_link_response(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"AUDIT answer D of 31 bytes",
       [] {
         auto b = edit<schema::LinkResponse>(
             wire::encode(link_response{audit_answer{1, {hash32{}, hash32{}}}}),
             [](auto f) { f.getAudit().getD().set(1, as_data(sized(31))); });
         auto r = wire::decode_link_response(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
      {"PREPARE amb of 186 bytes",
       [] {
         auto b = edit<schema::LinkRequest>(wire::encode(link_request{mk_prepare()}), [](auto f) {
           f.getPrepare().setAmb(as_data(sized(186)));
         });
         auto r = wire::decode_link_request(b);
         return r ? std::nullopt : std::optional<error>(r.error());
       }},
  };
  for (const auto& [name, run] : probes) {
    auto e = run();
    ASSERT_TRUE(e.has_value()) << name;
    EXPECT_EQ(e->code, errc::malformed) << name << ": " << e->message();
  }
}

TEST(wire_sizes, a_submit_block_of_a_length_no_slot_kind_has_is_answered_bad_block_size) {
  for (size_t n : {size_t{0}, size_t{23}, size_t{25}, size_t{100}, size_t{184}, size_t{186},
                   size_t{188}, size_t{190}, size_t{370}}) {
    auto b = edit<schema::ClientFrame>(
        wire::encode(client_frame{31, mk_submit(msg_type::message)}),
        [&](auto f) { f.getSubmit().getBlocks()[1].setBlock(as_data(sized(n))); });
    auto r = wire::decode_client_frame(b);
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error().err.code, errc::malformed) << n;
    EXPECT_EQ(r.error().request_id, std::optional<uint64_t>(31));
    ASSERT_TRUE(r.error().answer.has_value()) << n;
    EXPECT_EQ(r.error().answer->kind, rejection_kind::bad_block_size);
  }
}

TEST(wire_sizes, a_submit_carries_chain_blocks_and_dh_steps_of_every_length) {
  submit_msg s = mk_submit(msg_type::message);
  ASSERT_GE(s.blocks.size(), 2u);
  s.blocks[0].blk = dh_step{3, std::get<block>(s.blocks[0].blk)};
  s.blocks[1].blk = chain_block{3, 1, bytes(88, 1)};
  s.ambs[0] = chain_block{1, 0, bytes(16, 2)};
  auto r = wire::decode_client_frame(wire::encode(client_frame{34, s}));
  ASSERT_TRUE(r.has_value()) << r.error().err.message();
  EXPECT_EQ(std::get<submit_msg>(r->body), s);
  for (size_t n : {size_t{24}, size_t{56}, size_t{64}, size_t{96}}) {
    auto b = edit<schema::ClientFrame>(
        wire::encode(client_frame{35, mk_submit(msg_type::message)}),
        [&](auto f) { f.getSubmit().getBlocks()[1].setBlock(as_data(sized(n))); });
    auto d = wire::decode_client_frame(b);
    ASSERT_TRUE(d.has_value()) << n;
    const auto& blk = std::get<submit_msg>(d->body).blocks[1].blk;
    ASSERT_TRUE(std::holds_alternative<chain_block>(blk)) << n;
    EXPECT_EQ(enc_slot(blk).size(), n);
  }
}

TEST(wire_sizes, a_submit_amb_of_the_wrong_size_is_answered_bad_block_size) {
  auto b = edit<schema::ClientFrame>(
      wire::encode(client_frame{32, mk_submit(msg_type::setup)}),
      [](auto f) { f.getSubmit().getAmbs().set(1, as_data(sized(186))); });
  auto r = wire::decode_client_frame(b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().request_id, std::optional<uint64_t>(32));
  ASSERT_TRUE(r.error().answer.has_value());
  EXPECT_EQ(r.error().answer->kind, rejection_kind::bad_block_size);
}

TEST(wire_sizes, a_submit_block_naming_an_unknown_key_kind_is_answered_bad_block_size) {
  submit_msg s = mk_submit(msg_type::message);
  auto block_bytes = enc_block(std::get<block>(s.blocks[0].blk));
  block_bytes[32] = 9;  // enc(ref) starts after X_S: its first byte is the kind
  auto b = edit<schema::ClientFrame>(wire::encode(client_frame{33, s}), [&](auto f) {
    f.getSubmit().getBlocks()[0].setBlock(
        capnp::Data::Reader(block_bytes.data(), block_bytes.size()));
  });
  auto r = wire::decode_client_frame(b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().request_id, std::optional<uint64_t>(33));
  ASSERT_TRUE(r.error().answer.has_value());
  EXPECT_EQ(r.error().answer->kind, rejection_kind::bad_block_size);
  EXPECT_EQ(r.error().answer->detail, "key kind");
}

TEST(wire_sizes, a_bad_block_in_a_frame_that_is_also_too_large_is_refused_not_answered) {
  submit_msg s = mk_submit(msg_type::setup);
  s.c.members.resize(max_members + 1, mk_member("zz", 1));
  auto b = edit<schema::ClientFrame>(wire::encode(client_frame{34, s}), [](auto f) {
    f.getSubmit().getBlocks()[0].setBlock(as_data(sized(184)));
  });
  expect_client_refusal(b, errc::too_large, 34);
}

TEST(wire_sizes, a_wrong_size_block_outside_a_client_frame_is_malformed) {
  auto b = edit<schema::Submit>(wire::encode_submit(mk_submit(msg_type::message)),
                                [](auto s) { s.getBlocks()[0].setBlock(as_data(sized(184))); });
  auto r = wire::decode_submit(b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::malformed);
}

// ---------------------------------------------------------------------------------------------
// Oversized lists and fields (the encoder takes trusted input, so it writes them as asked).

TEST(wire_limits, a_submit_over_any_list_limit_is_too_large_under_its_request_id) {
  const std::vector<std::pair<const char*, std::function<void(submit_msg&)>>> cases = {
      {"members", [](submit_msg& s) { s.c.members.resize(max_members + 1, mk_member("m", 1)); }},
      {"ms", [](submit_msg& s) { s.c.ms.resize(max_mirrors + 1, mk_member("m", 1)); }},
      {"blocks",
       [](submit_msg& s) {
         s.blocks.resize(max_recipients + 1, {"r", mk_block(1)});
       }},
      {"ambs", [](submit_msg& s) { s.ambs.resize(max_mirrors + 1, mk_block(1)); }},
      {"author id of 65 bytes", [](submit_msg& s) { s.c.author = std::string(65, 'a'); }},
      {"member id of 65 bytes",
       [](submit_msg& s) { s.c.members[0].id = std::string(max_id_len + 1, 'a'); }},
  };
  for (const auto& [what, mutate] : cases) {
    submit_msg s = mk_submit(msg_type::setup);
    mutate(s);
    SCOPED_TRACE(what);
    expect_client_refusal(wire::encode(client_frame{40, s}), errc::too_large, 40);
  }
  submit_msg m = mk_submit(msg_type::message);
  m.body = bytes(max_body + 1, 0);
  expect_client_refusal(wire::encode(client_frame{41, m}), errc::too_large, 41);
  submit_msg r = mk_submit(msg_type::receipt);
  r.c.voids.assign(max_voids + 1, 5);
  expect_client_refusal(wire::encode(client_frame{42, r}), errc::too_large, 42);
  submit_msg u = mk_submit(msg_type::update);
  u.c.adds.assign(200, mk_member("a", 1));  // each list within max_ops,
  u.c.removes.assign(57, "r");              // but together one over
  expect_client_refusal(wire::encode(client_frame{43, u}), errc::too_large, 43);
  u = mk_submit(msg_type::update);
  u.c.removes.assign(max_ops + 1, "r");
  expect_client_refusal(wire::encode(client_frame{44, u}), errc::too_large, 44);
}

TEST(wire_limits, directory_requests_over_their_limits_are_too_large) {
  upload_prekeys up;
  up.one_time.resize(max_prekey_batch + 1);
  expect_client_refusal(wire::encode(client_frame{50, up}), errc::too_large, 50);
  fetch_prekeys f;
  f.owners.assign(max_fetch_owners + 1, "o");
  expect_client_refusal(wire::encode(client_frame{51, f}), errc::too_large, 51);
  lookup_users l;
  l.ids.assign(max_members + 1, "o");
  expect_client_refusal(wire::encode(client_frame{52, l}), errc::too_large, 52);
}

TEST(wire_limits, router_frames_over_their_limits_are_too_large) {
  prekeys_result pk;
  pk.bundles.assign(max_fetch_owners + 1, mk_bundle(key_kind::prekey));
  users_result users;
  users.unknown.assign(max_members + 1, "z");
  envelope e = mk_envelope(true);
  e.mirror_blocks.resize(max_mirrors + 1);
  envelope big_body = mk_envelope(true);
  big_body.body = bytes(max_body + 1, 0);
  const router_frame frames[] = {
      response{1, pk},
      response{2, users},
      response{3, rejection{rejection_kind::invalid, 0, std::string(max_text_len + 1, 'd')}},
      error_frame{frame_error_code::busy, std::string(max_text_len + 1, 'd')},
      e,
      big_body,
  };
  for (const auto& f : frames) {
    auto r = wire::decode_router_frame(wire::encode(f));
    ASSERT_FALSE(r.has_value()) << f.index();
    EXPECT_EQ(r.error().code, errc::too_large) << r.error().message();
  }
}

TEST(wire_limits, link_messages_over_their_limits_are_too_large) {
  prepare_msg hashes = mk_prepare();
  hashes.block_hashes.resize(max_recipients + 1);
  prepare_msg lr = mk_prepare();
  lr.last_resort.resize(max_members + 1);
  for (const link_request& m :
       {link_request{hashes}, link_request{lr}, link_request{commit_msg{1, {}, hashes}},
        link_request{link_hello{std::string(65, 'h'), {}, 1}}}) {
    auto r = wire::decode_link_request(wire::encode(m));
    ASSERT_FALSE(r.has_value()) << m.index();
    EXPECT_EQ(r.error().code, errc::too_large) << r.error().message();
  }
  mirror_prekeys mp;
  mp.one_time.resize(max_prekey_batch + 1);
  for (const link_response& m :
       {link_response{answer{1, {}, std::vector<slot_block>(max_slots + 1)}}, link_response{mp},
        link_response{audit_answer{0, std::vector<hash32>(max_audit_batch + 1)}},
        link_response{link_reject{std::string(max_text_len + 1, 'r')}}}) {
    auto r = wire::decode_link_response(wire::encode(m));
    ASSERT_FALSE(r.has_value()) << m.index();
    EXPECT_EQ(r.error().code, errc::too_large) << r.error().message();
  }
}

}  // namespace
}  // namespace cowpi::protocol

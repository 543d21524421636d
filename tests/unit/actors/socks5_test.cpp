// SPDX-License-Identifier: Apache-2.0
// The SOCKS5 CONNECT state machine (RFC 1928, no authentication): request bytes and replies.
#include "cowpi/actors/socks5.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cowpi::actors {
namespace {

socks5_handshake make(std::string_view host, uint16_t port) {
  auto h = socks5_handshake::make(host, port);
  EXPECT_TRUE(h.has_value()) << (h ? "" : h.error().message());
  return std::move(h).value();
}

TEST(socks5, the_greeting_offers_only_no_authentication) {
  EXPECT_EQ(socks5_handshake::greeting(), (bytes{0x05, 0x01, 0x00}));
}

TEST(socks5, an_ipv4_literal_is_sent_as_an_address) {
  auto h = make("127.0.0.1", 8080);
  EXPECT_EQ(h.connect_request(),
            (bytes{0x05, 0x01, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x1f, 0x90}));
}

TEST(socks5, an_ipv6_literal_is_sent_as_an_address) {
  auto h = make("::1", 443);
  bytes want{0x05, 0x01, 0x00, 0x04};
  for (int k = 0; k < 15; ++k)
    want.push_back(0x00);
  want.push_back(0x01);
  want.push_back(0x01);
  want.push_back(0xbb);
  EXPECT_EQ(h.connect_request(), want);
}

TEST(socks5, a_host_name_is_sent_for_the_proxy_to_resolve) {
  auto h = make("router.example", 7000);
  bytes want{0x05, 0x01, 0x00, 0x03, 14};
  for (char c : std::string("router.example"))
    want.push_back(static_cast<uint8_t>(c));
  want.push_back(0x1b);
  want.push_back(0x58);
  EXPECT_EQ(h.connect_request(), want);
}

TEST(socks5, an_empty_host_a_zero_port_or_an_overlong_name_is_refused) {
  EXPECT_EQ(socks5_handshake::make("", 1).error().code, errc::invalid_argument);
  EXPECT_EQ(socks5_handshake::make("host", 0).error().code, errc::invalid_argument);
  EXPECT_EQ(socks5_handshake::make(std::string(256, 'a'), 1).error().code, errc::invalid_argument);
  EXPECT_TRUE(socks5_handshake::make(std::string(255, 'a'), 1).has_value());
}

TEST(socks5, a_successful_exchange_writes_the_request_then_completes) {
  auto h = make("127.0.0.1", 7000);
  ASSERT_EQ(h.wanted(), 2u);
  auto m = h.on_read(bytes{0x05, 0x00});
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->write, h.connect_request());
  EXPECT_FALSE(m->done);
  ASSERT_EQ(h.wanted(), 5u);
  auto head = h.on_read(bytes{0x05, 0x00, 0x00, 0x01, 0x0a});
  ASSERT_TRUE(head.has_value());
  EXPECT_TRUE(head->write.empty());
  ASSERT_EQ(h.wanted(), 5u);  // 3 more address bytes and the port
  auto tail = h.on_read(bytes{0x00, 0x00, 0x01, 0x1b, 0x58});
  ASSERT_TRUE(tail.has_value());
  EXPECT_TRUE(tail->done);
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.wanted(), 0u);
}

TEST(socks5, the_reply_length_follows_its_address_type) {
  auto v6 = make("h", 1);
  ASSERT_TRUE(v6.on_read(bytes{0x05, 0x00}).has_value());
  ASSERT_TRUE(v6.on_read(bytes{0x05, 0x00, 0x00, 0x04, 0x00}).has_value());
  EXPECT_EQ(v6.wanted(), 17u);
  auto name = make("h", 1);
  ASSERT_TRUE(name.on_read(bytes{0x05, 0x00}).has_value());
  ASSERT_TRUE(name.on_read(bytes{0x05, 0x00, 0x00, 0x03, 0x07}).has_value());
  EXPECT_EQ(name.wanted(), 9u);  // 7 name bytes and the port
}

TEST(socks5, a_proxy_that_wants_authentication_is_a_rejection) {
  auto h = make("127.0.0.1", 1);
  auto r = h.on_read(bytes{0x05, 0xff});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::rejected);
  EXPECT_EQ(h.wanted(), 0u);
  EXPECT_EQ(h.on_read(bytes{}).error().code, errc::bad_state);
}

TEST(socks5, a_peer_that_is_not_socks5_is_malformed) {
  auto h = make("127.0.0.1", 1);
  EXPECT_EQ(h.on_read(bytes{0x04, 0x00}).error().code, errc::malformed);
  auto g = make("127.0.0.1", 1);
  EXPECT_EQ(g.on_read(bytes{0x05, 0x02}).error().code, errc::malformed);
}

TEST(socks5, a_refused_connect_is_unavailable_and_says_why) {
  auto h = make("127.0.0.1", 1);
  ASSERT_TRUE(h.on_read(bytes{0x05, 0x00}).has_value());
  auto r = h.on_read(bytes{0x05, 0x05, 0x00, 0x01, 0x00});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().context.find("connection refused"), std::string::npos);
}

TEST(socks5, a_read_of_the_wrong_size_is_out_of_turn) {
  auto h = make("127.0.0.1", 1);
  EXPECT_EQ(h.on_read(bytes{0x05}).error().code, errc::bad_state);
  // The machine is unharmed: the right read still works.
  EXPECT_TRUE(h.on_read(bytes{0x05, 0x00}).has_value());
}

}  // namespace
}  // namespace cowpi::actors

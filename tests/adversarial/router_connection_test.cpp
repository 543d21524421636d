// SPDX-License-Identifier: Apache-2.0
// The router's client connections over real sockets: handshake and registration, hostile
// framing, timeouts, connection limits, and every request kind (directory and SUBMIT).
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/protocol/wire.hpp"

#include "router_fixture.hpp"

#include <set>

namespace cowpi::actors::testing {
namespace {

using cowpi::testing::tcp_conn;
using protocol::frame_error_code;
using protocol::hello_mode;

// Decodes a clear ERROR frame payload read off the socket.
std::optional<protocol::error_frame> clear_error(const std::optional<bytes>& payload) {
  if (!payload) {
    return std::nullopt;
  }
  auto f = protocol::wire::decode_clear_frame(*payload);
  if (!f) {
    return std::nullopt;
  }
  if (auto* e = std::get_if<protocol::error_frame>(&*f)) {
    return *e;
  }
  return std::nullopt;
}

bytes be32(uint32_t v) {
  return bytes{static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
               static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

template <class T>
const T* as(const std::optional<protocol::response_body>& r) {
  return r ? std::get_if<T>(&*r) : nullptr;
}

protocol::published_key key(uint64_t id, crypto::rng& r) {
  protocol::published_key k;
  k.id = id;
  k.pub = protocol::identity::generate("k", r).lpk();
  return k;
}

using router_connection = router_fixture;

TEST_F(router_connection, register_then_login_establishes_sessions) {
  boot();
  auto alice = user("alice");
  {
    auto c = client(alice);
    ASSERT_TRUE(c->login(hello_mode::register_user));
  }
  auto found = store->find_user("alice");
  ASSERT_TRUE(found.has_value() && found->has_value());
  EXPECT_EQ((*found)->lpk, alice.lpk());
  auto again = client(alice);
  EXPECT_TRUE(again->login(hello_mode::login));
}

TEST_F(router_connection, a_registration_counts_only_after_the_proof_of_possession) {
  boot();
  auto alice = user("alice");
  {
    auto c = client(alice);
    ASSERT_TRUE(c->start(hello_mode::register_user));  // HELLO_ACK, but no encrypted frame
  }
  std::this_thread::sleep_for(200ms);
  auto found = store->find_user("alice");
  ASSERT_TRUE(found.has_value());
  EXPECT_FALSE(found->has_value());
  auto later = client(alice);
  EXPECT_TRUE(later->login(hello_mode::register_user)) << "the id is still free";
}

TEST_F(router_connection, register_of_a_taken_id_is_refused_with_a_clear_id_taken) {
  boot();
  register_user(user("alice"));
  auto other = user("alice");
  auto c = client(other);
  EXPECT_FALSE(c->start(hello_mode::register_user));
  ASSERT_TRUE(c->last_error().has_value());
  EXPECT_EQ(c->last_error()->code, frame_error_code::id_taken);
  EXPECT_FALSE(c->last_error_encrypted());
  EXPECT_TRUE(c->conn().closed_within(2s));
}

TEST_F(router_connection, a_provider_id_cannot_be_registered) {
  boot();
  for (const char* id : {"mirror-a", "router"}) {
    auto provider = user(id);  // the client borrows the identity
    auto c = client(provider);
    EXPECT_FALSE(c->start(hello_mode::register_user)) << id;
    ASSERT_TRUE(c->last_error().has_value()) << id;
    EXPECT_EQ(c->last_error()->code, frame_error_code::id_taken) << id;
  }
}

TEST_F(router_connection, a_registration_that_loses_the_race_is_shut_down_encrypted) {
  boot();
  auto first = user("alice");
  auto second = user("alice");
  auto a = client(first);
  auto b = client(second);
  ASSERT_TRUE(a->start(hello_mode::register_user));
  ASSERT_TRUE(b->start(hello_mode::register_user));  // both lookups saw a free id
  auto ok = a->call(protocol::ping{});
  ASSERT_TRUE(as<protocol::ok_result>(ok));
  b->send(protocol::ping{});
  auto err = b->wait_error();
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, frame_error_code::id_taken);
  EXPECT_TRUE(b->last_error_encrypted()) << "the loser proved possession: the ERROR is sealed";
  EXPECT_TRUE(b->conn().closed_within(2s));
  auto found = store->find_user("alice");
  ASSERT_TRUE(found.has_value() && found->has_value());
  EXPECT_EQ((*found)->lpk, first.lpk());
}

TEST_F(router_connection, login_with_another_key_is_refused_as_unknown_user) {
  boot();
  register_user(user("alice"));
  auto impostor = user("alice");
  auto c = client(impostor);
  EXPECT_FALSE(c->start(hello_mode::login));
  ASSERT_TRUE(c->last_error().has_value());
  EXPECT_EQ(c->last_error()->code, frame_error_code::unknown_user);
}

TEST_F(router_connection, login_of_an_unknown_user_is_refused) {
  boot();
  auto nobody = user("nobody");
  auto c = client(nobody);
  EXPECT_FALSE(c->start(hello_mode::login));
  ASSERT_TRUE(c->last_error().has_value());
  EXPECT_EQ(c->last_error()->code, frame_error_code::unknown_user);
  EXPECT_TRUE(c->conn().closed_within(2s));
}

TEST_F(router_connection, a_client_without_the_secret_of_its_claimed_key_fails_the_handshake) {
  boot();
  auto alice = user("alice");
  register_user(alice);
  tcp_conn c(port);
  protocol::hello h;
  h.mode = hello_mode::login;
  h.id = "alice";
  h.lpk = alice.lpk();  // claims alice's key without holding its secret
  h.x = user("x").lpk();
  ASSERT_TRUE(
      c.write_all(protocol::length_prefixed(protocol::wire::encode(protocol::clear_frame{h}))));
  auto ack = c.read_frame(3s);
  ASSERT_TRUE(ack.has_value());
  auto decoded = protocol::wire::decode_clear_frame(*ack);
  ASSERT_TRUE(decoded && std::holds_alternative<protocol::hello_ack>(*decoded));
  ASSERT_TRUE(c.write_all(protocol::length_prefixed(bytes(64, 0x5A))));
  auto err = clear_error(c.read_frame(3s));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, frame_error_code::bad_handshake);
  EXPECT_TRUE(c.closed_within(2s));
}

TEST_F(router_connection, garbage_gets_an_error_frame_and_a_close_without_harming_another_client) {
  boot();
  auto bob = user("bob");
  register_user(bob);
  auto other = logged_in(bob);
  tcp_conn c(port);
  bytes junk = be32(16);
  junk.insert(junk.end(), 16, 0xFF);
  ASSERT_TRUE(c.write_all(junk));
  auto err = clear_error(c.read_frame(3s));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, frame_error_code::malformed);
  EXPECT_TRUE(c.closed_within(2s));
  EXPECT_TRUE(as<protocol::ok_result>(other->call(protocol::ping{})));
}

TEST_F(router_connection, an_oversize_length_prefix_gets_too_large_before_any_body) {
  boot();
  auto bob = user("bob");
  register_user(bob);
  auto other = logged_in(bob);
  for (uint32_t len : {uint32_t{0x7FFFFFFF}, uint32_t(cfg.limits.max_frame + 1)}) {
    tcp_conn c(port);
    ASSERT_TRUE(c.write_all(be32(len)));
    auto err = clear_error(c.read_frame(3s));
    ASSERT_TRUE(err.has_value()) << len;
    EXPECT_EQ(err->code, frame_error_code::too_large);
    EXPECT_TRUE(c.closed_within(2s));
  }
  {
    tcp_conn c(port);
    ASSERT_TRUE(c.write_all(be32(0)));
    auto err = clear_error(c.read_frame(3s));
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->code, frame_error_code::malformed);
  }
  EXPECT_TRUE(as<protocol::ok_result>(other->call(protocol::ping{})));
}

TEST_F(router_connection, a_truncated_frame_gets_an_encrypted_error_at_the_frame_timeout) {
  opts.frame_timeout = 300ms;
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  register_user(alice);
  register_user(bob);
  auto other = logged_in(bob);
  auto c = logged_in(alice);
  bytes partial = be32(100);
  partial.insert(partial.end(), 10, 0x11);
  ASSERT_TRUE(c->conn().write_all(partial));  // and nothing more
  auto err = c->wait_error(3s);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, frame_error_code::protocol_violation);
  EXPECT_TRUE(c->last_error_encrypted());
  EXPECT_TRUE(c->conn().closed_within(2s));
  EXPECT_TRUE(as<protocol::ok_result>(other->call(protocol::ping{})));
}

TEST_F(router_connection, a_slow_drip_handshake_is_cut_at_the_handshake_timeout) {
  cfg.timeouts.handshake = 400ms;
  boot();
  auto bob = user("bob");
  register_user(bob);
  auto other = logged_in(bob);
  tcp_conn c(port);
  protocol::hello h;
  h.id = "alice";
  h.lpk = user("alice").lpk();
  h.x = user("x").lpk();
  const bytes hello = protocol::length_prefixed(protocol::wire::encode(protocol::clear_frame{h}));
  bool refused = false;
  for (size_t i = 0; i < hello.size(); ++i) {
    if (!c.write_all(byte_view(hello).subspan(i, 1))) {
      refused = true;
      break;
    }
    std::this_thread::sleep_for(30ms);
  }
  if (!refused) {
    auto err = clear_error(c.read_frame(3s));
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->code, frame_error_code::protocol_violation);
  }
  EXPECT_TRUE(c.closed_within(2s));
  EXPECT_TRUE(as<protocol::ok_result>(other->call(protocol::ping{})));
}

TEST_F(router_connection, a_silent_client_is_closed_at_the_handshake_timeout) {
  cfg.timeouts.handshake = 300ms;
  boot();
  tcp_conn c(port);
  auto err = clear_error(c.read_frame(3s));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, frame_error_code::protocol_violation);
  EXPECT_TRUE(c.closed_within(2s));
}

TEST_F(router_connection, an_idle_session_is_closed_and_pings_keep_it_alive) {
  cfg.timeouts.idle = 400ms;
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  register_user(alice);
  register_user(bob);
  auto idle = logged_in(alice);
  auto busy = logged_in(bob);
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(as<protocol::ok_result>(busy->call(protocol::ping{}))) << i;
  }
  auto err = idle->wait_error(2s);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, frame_error_code::busy);
  EXPECT_TRUE(idle->last_error_encrypted());
  EXPECT_TRUE(idle->conn().closed_within(2s));
}

TEST_F(router_connection, connections_over_the_limit_are_refused_with_a_clear_busy) {
  cfg.limits.max_connections = 2;
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  register_user(alice);
  register_user(bob);
  auto a = logged_in(alice);
  auto b = logged_in(bob);
  {
    tcp_conn c(port);
    auto err = clear_error(c.read_frame(3s));
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->code, frame_error_code::busy);
    EXPECT_TRUE(c.closed_within(2s));
  }
  EXPECT_TRUE(as<protocol::ok_result>(a->call(protocol::ping{})));
  b.reset();  // a slot frees once the connection is gone
  EXPECT_TRUE(eventually([&] {
    auto c = client(bob);
    return c->login(hello_mode::login, 1s);
  }));
}

// -- Requests --------------------------------------------------------------------------------

using router_requests = router_fixture;

TEST_F(router_requests, prekeys_are_handed_out_once_then_the_last_resort_key) {
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  register_user(alice);
  register_user(bob);
  auto a = logged_in(alice);
  protocol::upload_prekeys up;
  up.one_time = {key(1, rng_), key(2, rng_)};
  up.last_resort = key(7, rng_);
  ASSERT_TRUE(as<protocol::ok_result>(a->call(up)));

  auto b = logged_in(bob);
  std::vector<uint64_t> got;
  std::vector<protocol::key_kind> kinds;
  for (int i = 0; i < 3; ++i) {
    auto r = b->call(protocol::fetch_prekeys{{"alice"}, std::nullopt});
    auto* pk = as<protocol::prekeys_result>(r);
    ASSERT_TRUE(pk) << i;
    ASSERT_EQ(pk->bundles.size(), 1u);
    EXPECT_EQ(pk->bundles[0].owner, "alice");
    EXPECT_EQ(pk->bundles[0].lpk, alice.lpk());
    got.push_back(pk->bundles[0].key.id);
    kinds.push_back(pk->bundles[0].key.kind);
  }
  EXPECT_EQ(got, (std::vector<uint64_t>{1, 2, 7}));
  EXPECT_EQ(kinds,
            (std::vector<protocol::key_kind>{protocol::key_kind::prekey, protocol::key_kind::prekey,
                                             protocol::key_kind::last_resort}));
  auto st = a->call(protocol::account_status{});
  auto* s = as<protocol::status_result>(st);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->one_time_remaining, 0u);
  EXPECT_EQ(s->last_resort_id, 7u);
  EXPECT_EQ(s->max_prekey_id, 2u);
}

TEST_F(router_requests, a_requester_over_its_fetch_budget_gets_the_last_resort_key) {
  opts.fetch_policy.budget = 1;
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  auto carol = user("carol");
  for (auto* u : {&alice, &bob, &carol}) {
    register_user(*u);
  }
  protocol::upload_prekeys up;
  up.one_time = {key(1, rng_), key(2, rng_), key(3, rng_)};
  up.last_resort = key(9, rng_);
  ASSERT_TRUE(as<protocol::ok_result>(logged_in(alice)->call(up)));
  auto b = logged_in(bob);
  auto first = b->call(protocol::fetch_prekeys{{"alice", "alice"}, std::nullopt});
  auto* pk = as<protocol::prekeys_result>(first);
  ASSERT_TRUE(pk);
  ASSERT_EQ(pk->bundles.size(), 2u);
  EXPECT_EQ(pk->bundles[0].key.kind, protocol::key_kind::prekey);
  EXPECT_EQ(pk->bundles[1].key.kind, protocol::key_kind::last_resort);
  // Another requester has its own budget.
  auto c = logged_in(carol);
  auto other = c->call(protocol::fetch_prekeys{{"alice"}, std::nullopt});
  auto* pk2 = as<protocol::prekeys_result>(other);
  ASSERT_TRUE(pk2);
  ASSERT_EQ(pk2->bundles.size(), 1u);
  EXPECT_EQ(pk2->bundles[0].key.kind, protocol::key_kind::prekey);
  EXPECT_EQ(pk2->bundles[0].key.id, 2u);
}

TEST_F(router_requests, a_mirror_clusters_key_comes_from_the_node_owning_the_conversation) {
  // mirror-a runs as two nodes, each with its own pool (uploaded by its link, owner = node id).
  cfg.mirrors[0].address = {};
  cfg.mirrors[0].nodes = {{"a-1", config::endpoint{"127.0.0.1", 1}},
                          {"a-2", config::endpoint{"127.0.0.1", 2}}};
  boot();
  caf::scoped_actor self{sys()};
  auto upload = [&](const std::string& pool, uint64_t first) {
    protocol::upload_prekeys up;
    for (uint64_t i = first; i < first + 4; ++i)
      up.one_time.push_back(key(i, rng_));
    up.last_resort = key(first + 50, rng_);
    std::optional<protocol::response_body> got;
    self->request(side().directory, 5s, upload_atom_v, pool, up)
        .receive([&](protocol::response_body& b) { got = std::move(b); }, [&](caf::error&) {});
    ASSERT_TRUE(got && std::holds_alternative<protocol::ok_result>(*got)) << pool;
  };
  upload("a-1", 100);
  upload("a-2", 200);
  auto bob = user("bob");
  register_user(bob);
  auto b = logged_in(bob);
  // Without a conversation the directory cannot tell which node's key is usable.
  auto r = b->call(protocol::fetch_prekeys{{"mirror-a"}, std::nullopt});
  auto* rej = as<protocol::rejection>(r);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, protocol::rejection_kind::invalid);
  EXPECT_NE(rej->detail.find("runs as a cluster"), std::string::npos) << rej->detail;
  // For each conversation, the key comes from the pool of the node that owns it, and names
  // the mirror, not the node.
  const std::vector<std::string> nodes{"a-1", "a-2"};
  std::set<size_t> owners_seen;
  for (uint8_t n = 0; n < 6; ++n) {
    protocol::conv_id conv;
    conv.fill(n);
    const size_t owner = protocol::conv_owner(nodes, conv);
    owners_seen.insert(owner);
    auto got = b->call(protocol::fetch_prekeys{{"mirror-a"}, conv});
    auto* pk = as<protocol::prekeys_result>(got);
    ASSERT_TRUE(pk) << int(n);
    ASSERT_EQ(pk->bundles.size(), 1u);
    EXPECT_EQ(pk->bundles[0].owner, "mirror-a");
    EXPECT_EQ(pk->bundles[0].lpk, cfg.mirrors[0].public_key);
    const uint64_t id = pk->bundles[0].key.id;
    if (owner == 0)
      EXPECT_TRUE(id >= 100 && id < 200) << id;
    else
      EXPECT_TRUE(id >= 200 && id < 300) << id;
  }
  EXPECT_EQ(owners_seen.size(), 2u) << "the sample covers both nodes";
  // Node ids are provider ids: nobody registers as one.
  auto node = user("a-2");  // the client borrows the identity
  auto c = client(node);
  EXPECT_FALSE(c->start(hello_mode::register_user));
  ASSERT_TRUE(c->last_error().has_value());
  EXPECT_EQ(c->last_error()->code, frame_error_code::id_taken);
}

TEST_F(router_requests, low_order_or_zero_id_prekeys_are_refused_and_nothing_is_stored) {
  boot();
  auto alice = user("alice");
  register_user(alice);
  auto a = logged_in(alice);
  protocol::upload_prekeys low;
  low.one_time = {key(1, rng_), protocol::published_key{2, protocol::public_key{}}};
  auto r = a->call(low);
  auto* rej = as<protocol::rejection>(r);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, protocol::rejection_kind::invalid);
  protocol::upload_prekeys zero;
  zero.last_resort = key(0, rng_);
  auto r2 = a->call(zero);
  ASSERT_TRUE(as<protocol::rejection>(r2));
  auto st = store->directory_status("alice");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->one_time_remaining, 0u);
  EXPECT_EQ(st->last_resort_id, 0u);
  EXPECT_TRUE(as<protocol::ok_result>(a->call(protocol::ping{}))) << "the connection survives";
}

TEST_F(router_requests, the_directory_refuses_a_batch_over_max_prekey_batch) {
  boot();
  register_user(user("alice"));
  protocol::upload_prekeys big;
  for (uint64_t i = 1; i <= protocol::max_prekey_batch + 1; ++i) {
    big.one_time.push_back(protocol::published_key{i, user("k").lpk()});
  }
  caf::scoped_actor self{sys()};
  std::optional<protocol::response_body> got;
  self->request(side().directory, 5s, upload_atom_v, std::string("alice"), big)
      .receive([&](protocol::response_body& b) { got = std::move(b); }, [&](caf::error&) {});
  ASSERT_TRUE(got.has_value());
  auto* rej = std::get_if<protocol::rejection>(&*got);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, protocol::rejection_kind::limit);
  EXPECT_EQ(rej->detail, "prekeys");
}

TEST_F(router_requests, a_members_pool_stops_at_max_prekey_pool_whatever_it_uploads) {
  // A member may not fill the router's disk with pre-keys: its pool holds max_prekey_pool.
  boot();
  auto alice = user("alice");
  register_user(alice);
  auto a = logged_in(alice);
  const auto k = key(1, rng_).pub;
  auto batch = [&](uint64_t first, size_t n) {
    protocol::upload_prekeys up;
    for (uint64_t i = first; i < first + n; ++i)
      up.one_time.push_back(protocol::published_key{i, k});
    return up;
  };
  ASSERT_TRUE(as<protocol::ok_result>(a->call(batch(1, protocol::max_prekey_pool - 1))));
  // One more key fits; a batch of two would pass the limit and stores nothing.
  auto r = a->call(batch(protocol::max_prekey_pool, 2));
  auto* rej = as<protocol::rejection>(r);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, protocol::rejection_kind::limit);
  EXPECT_EQ(rej->detail, "prekey pool");
  EXPECT_EQ(store->directory_status("alice")->one_time_remaining, protocol::max_prekey_pool - 1);
  ASSERT_TRUE(as<protocol::ok_result>(a->call(batch(protocol::max_prekey_pool, 1))));
  EXPECT_TRUE(as<protocol::rejection>(a->call(batch(protocol::max_prekey_pool + 1, 1))));
  // Retiring keys makes room again; a retirement only ever touches the caller's own pool.
  auto bob = user("bob");
  register_user(bob);
  auto b = logged_in(bob);
  ASSERT_TRUE(as<protocol::ok_result>(b->call(batch(1, 10))));
  ASSERT_TRUE(as<protocol::ok_result>(a->call(protocol::retire_prekeys{101})));
  EXPECT_EQ(store->directory_status("alice")->one_time_remaining, protocol::max_prekey_pool - 100);
  EXPECT_EQ(store->directory_status("bob")->one_time_remaining, 10u);
  ASSERT_TRUE(as<protocol::ok_result>(a->call(batch(protocol::max_prekey_pool + 1, 100))));
  EXPECT_EQ(store->directory_status("alice")->one_time_remaining, protocol::max_prekey_pool);
  ASSERT_TRUE(as<protocol::ok_result>(a->call(protocol::retire_prekeys{UINT64_MAX})));
  EXPECT_EQ(store->directory_status("alice")->one_time_remaining, 0u);
  EXPECT_EQ(store->directory_status("bob")->one_time_remaining, 10u);
}

TEST_F(router_requests, lookup_users_returns_registered_keys_and_unknown_ids) {
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  register_user(alice);
  register_user(bob);
  auto a = logged_in(alice);
  auto r = a->call(protocol::lookup_users{{"carol", "bob", "alice", "bob"}});
  auto* u = as<protocol::users_result>(r);
  ASSERT_TRUE(u);
  ASSERT_EQ(u->users.size(), 2u);
  EXPECT_EQ(u->users[0], alice.as_member());
  EXPECT_EQ(u->users[1], bob.as_member());
  EXPECT_EQ(u->unknown, (std::vector<std::string>{"carol"}));
}

protocol::submit_msg submit_in(uint8_t conv_tag, const std::string& author) {
  protocol::submit_msg s;
  s.c.conv[0] = conv_tag;
  s.c.type = protocol::msg_type::receipt;
  s.c.author = author;
  s.c.aseq = 3;
  return s;
}

TEST_F(router_requests, a_submit_goes_to_the_registry_for_the_session_user) {
  boot();
  auto alice = user("alice");
  register_user(alice);
  auto a = logged_in(alice);
  EXPECT_TRUE(as<protocol::ok_result>(a->call(submit_in(1, "alice"))));
  EXPECT_TRUE(as<protocol::ok_result>(a->call(submit_in(2, "mallory"))));
  std::lock_guard<std::mutex> g(reg_log->mu);
  EXPECT_EQ(reg_log->submit_users, (std::vector<std::string>{"alice", "alice"}))
      << "the session's user is authoritative, whatever C names";
  EXPECT_EQ(reg_log->submit_authors, (std::vector<std::string>{"alice", "mallory"}));
}

TEST_F(router_requests, a_registry_that_does_not_answer_in_time_gives_unavailable) {
  opts.request_timeout = 300ms;
  boot();
  auto alice = user("alice");
  register_user(alice);
  auto a = logged_in(alice);
  auto r = a->call(submit_in(silent_conv, "alice"), 3s);
  auto* rej = as<protocol::rejection>(r);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, protocol::rejection_kind::unavailable);
  EXPECT_TRUE(as<protocol::ok_result>(a->call(protocol::ping{})));
}

TEST_F(router_requests, a_late_rejection_reaches_the_client_under_its_request_id) {
  boot();
  auto alice = user("alice");
  register_user(alice);
  auto a = logged_in(alice);
  const uint64_t id = a->send(submit_in(rejected_conv, "alice"));
  ASSERT_NE(id, 0u);
  auto first = a->wait_response(id);
  auto second = a->wait_response(id);
  ASSERT_TRUE(first && second);
  // "Queued" and the rejection race in the worker's mailbox; both come under the request id.
  const bool ok_first = as<protocol::ok_result>(first) != nullptr;
  auto* rej = as<protocol::rejection>(ok_first ? second : first);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, protocol::rejection_kind::stale);
  EXPECT_EQ(rej->value, 7u);
}

TEST_F(router_requests, many_pipelined_requests_are_all_answered) {
  opts.max_inflight_requests = 4;
  boot();
  auto alice = user("alice");
  register_user(alice);
  auto a = logged_in(alice);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 200; ++i) {
    ids.push_back(a->send(i % 2 == 0 ? protocol::client_request{protocol::account_status{}}
                                     : protocol::client_request{submit_in(1, "alice")}));
  }
  for (auto id : ids) {
    auto r = a->wait_response(id);
    ASSERT_TRUE(r.has_value()) << id;
    EXPECT_FALSE(std::holds_alternative<protocol::rejection>(*r)) << id;
  }
}

}  // namespace
}  // namespace cowpi::actors::testing

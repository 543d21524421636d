// SPDX-License-Identifier: Apache-2.0
// Delivery over real sockets: queue actors streaming envelopes from the router store's cursors
// under a window, acks, pokes, HISTORY_EXPIRED, slow readers, and the admin endpoint.
#include "admin_endpoint.hpp"
#include "router_fixture.hpp"
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace cowpi::actors::testing {
namespace {

using cowpi::testing::synthetic_conv;
using protocol::hello_mode;

using router_delivery = router_fixture;

// A conversation of alice and bob with a SETUP by alice and `messages` MESSAGEs by alice.
std::vector<protocol::log_entry> alice_and_bob(router_fixture& f, synthetic_conv& sc,
                                               size_t messages, uint64_t body_len = 296) {
  // Each entry is logged right after it is made: the store checks it against sc's state.
  std::vector<protocol::log_entry> out;
  out.push_back(sc.setup());
  f.commit(sc, out.back());
  for (size_t i = 0; i < messages; ++i) {
    out.push_back(sc.message("alice", body_len));
    f.commit(sc, out.back());
  }
  return out;
}

uint64_t cursor_of(router_fixture& f, const std::string& user, const protocol::conv_id& conv) {
  auto c = f.store->cursor(user, conv);
  return c && *c ? (*c)->next : UINT64_MAX;
}

TEST_F(router_delivery, envelopes_stream_in_order_and_acks_advance_the_cursor) {
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  register_user(alice);
  register_user(bob);
  synthetic_conv sc(1, {"alice", "bob"});
  auto entries = alice_and_bob(*this, sc, 5);
  auto b = logged_in(bob);
  for (uint64_t i = 0; i < entries.size(); ++i) {
    auto env = b->next_envelope();
    ASSERT_TRUE(env.has_value()) << i;
    EXPECT_EQ(env->conv, sc.conv());
    EXPECT_EQ(env->index, i);
    EXPECT_EQ(env->c, entries[i].c);
    EXPECT_TRUE(env->block_u.has_value()) << "bob is a recipient";
    EXPECT_EQ(env->mirror_blocks.size(), 2u);
  }
  EXPECT_FALSE(b->next_envelope(200ms).has_value());
  ASSERT_NE(b->send(protocol::ack_msg{sc.conv(), 0}), 0u);
  ASSERT_NE(b->send(protocol::ack_msg{sc.conv(), 1}), 0u);
  EXPECT_TRUE(eventually([&] { return cursor_of(*this, "bob", sc.conv()) == 2; }));
  // The author gets its own echo, without a block for itself.
  auto a = logged_in(alice);
  auto echo = a->next_envelope();
  ASSERT_TRUE(echo.has_value());
  EXPECT_EQ(echo->index, 0u);
  EXPECT_FALSE(echo->block_u.has_value());
}

TEST_F(router_delivery, acknowledged_envelopes_do_not_come_again_after_a_reconnect) {
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(2, {"alice", "bob"});
  alice_and_bob(*this, sc, 4);
  {
    auto b = logged_in(bob);
    for (uint64_t i = 0; i < 3; ++i) {
      auto env = b->next_envelope();
      ASSERT_TRUE(env.has_value());
      ASSERT_NE(b->send(protocol::ack_msg{sc.conv(), env->index}), 0u);
    }
    ASSERT_TRUE(eventually([&] { return cursor_of(*this, "bob", sc.conv()) == 3; }));
  }
  auto b = logged_in(bob);
  auto env = b->next_envelope();
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->index, 3u);
  auto more = b->next_envelope();
  ASSERT_TRUE(more.has_value());
  EXPECT_EQ(more->index, 4u);
}

TEST_F(router_delivery, the_window_bounds_unacknowledged_envelopes) {
  opts.window_envelopes = 4;
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(3, {"alice", "bob"});
  alice_and_bob(*this, sc, 9);  // indices 0..9
  auto b = logged_in(bob);
  for (uint64_t i = 0; i < 4; ++i) {
    auto env = b->next_envelope();
    ASSERT_TRUE(env.has_value());
    EXPECT_EQ(env->index, i);
  }
  EXPECT_FALSE(b->next_envelope(300ms).has_value()) << "the window is full";
  ASSERT_NE(b->send(protocol::ack_msg{sc.conv(), 0}), 0u);
  auto next = b->next_envelope();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->index, 4u);
  EXPECT_FALSE(b->next_envelope(300ms).has_value());
  ASSERT_NE(b->send(protocol::ack_msg{sc.conv(), 4}), 0u);  // acknowledges 1..4 too
  for (uint64_t i = 5; i < 9; ++i) {
    auto env = b->next_envelope();
    ASSERT_TRUE(env.has_value());
    EXPECT_EQ(env->index, i);
  }
  EXPECT_FALSE(b->next_envelope(300ms).has_value());
}

TEST_F(router_delivery, an_ack_for_an_envelope_never_delivered_changes_nothing) {
  opts.window_envelopes = 2;
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(4, {"alice", "bob"});
  alice_and_bob(*this, sc, 5);
  auto b = logged_in(bob);
  ASSERT_TRUE(b->next_envelope().has_value());
  ASSERT_NE(b->send(protocol::ack_msg{sc.conv(), 5}), 0u);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(cursor_of(*this, "bob", sc.conv()), 0u);
}

TEST_F(router_delivery, a_poke_streams_a_new_entry) {
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(5, {"alice", "bob"});
  alice_and_bob(*this, sc, 1);
  auto b = logged_in(bob);
  ASSERT_TRUE(b->next_envelope().has_value());
  ASSERT_TRUE(b->next_envelope().has_value());
  EXPECT_FALSE(b->next_envelope(200ms).has_value());
  auto e = sc.message("alice");
  commit(sc, e);
  EXPECT_FALSE(b->next_envelope(200ms).has_value()) << "nothing streams without a poke";
  poke(sc, e.index);
  auto env = b->next_envelope();
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->index, 2u);
}

TEST_F(router_delivery, envelopes_only_on_disk_are_read_on_the_reader_thread_and_delivered) {
  metrics::registry reg;
  // Declared after `reg`, so destroyed before it: the actors that count into it stop first.
  struct stop_first {
    router_fixture& f;
    ~stop_first() { f.stop(); }
  } guard{*this};
  opts.metrics = client_metrics::make(&reg);
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(12, {"alice", "bob"});
  auto entries = alice_and_bob(*this, sc, 40);
  // Flushed and compacted into table files no read has touched: not in memory.
  ASSERT_TRUE(store->raw().compact().has_value());
  auto b = logged_in(bob);
  for (uint64_t i = 0; i < entries.size(); ++i) {
    auto env = b->next_envelope();
    ASSERT_TRUE(env.has_value()) << i;
    EXPECT_EQ(env->index, i);
    EXPECT_EQ(env->c, entries[i].c);
  }
  EXPECT_FALSE(b->next_envelope(200ms).has_value());
  EXPECT_GE(opts.metrics->disk_reads->value(), 1u);
  EXPECT_EQ(opts.metrics->delivered->value(), entries.size());
}

TEST_F(router_delivery, a_poke_for_a_conversation_the_user_just_joined_streams_it) {
  boot();
  auto carol = user("carol");
  register_user(user("alice"));
  register_user(carol);
  auto c = logged_in(carol);
  EXPECT_FALSE(c->next_envelope(200ms).has_value());
  synthetic_conv sc(6, {"alice", "carol"});
  auto setup = sc.setup();
  commit(sc, setup);
  poke(sc, 0);
  auto env = c->next_envelope();
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->conv, sc.conv());
  EXPECT_EQ(env->index, 0u);
}

TEST_F(router_delivery, subscribe_restarts_the_stream_from_the_cursor) {
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(7, {"alice", "bob"});
  alice_and_bob(*this, sc, 2);
  auto b = logged_in(bob);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(b->next_envelope().has_value());
  }
  ASSERT_NE(b->send(protocol::ack_msg{sc.conv(), 0}), 0u);
  ASSERT_TRUE(b->call(protocol::subscribe{}));
  auto again = b->next_envelope();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->index, 1u) << "the unacknowledged envelopes come again";
}

TEST_F(router_delivery, drain_is_answered_after_every_envelope_deliverable_when_it_arrived) {
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(10, {"alice", "bob"});
  auto entries = alice_and_bob(*this, sc, 5);
  auto b = logged_in(bob);
  auto r = b->call(protocol::drain{});
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(std::holds_alternative<protocol::ok_result>(*r));
  // Every envelope came before the answer (call() keeps those that arrive meanwhile).
  ASSERT_EQ(b->pending_envelopes().size(), entries.size());
  for (uint64_t i = 0; i < entries.size(); ++i)
    EXPECT_EQ(b->pending_envelopes()[i].index, i);
  // A new deliverable entry: the next DRAIN comes after it too.
  auto more = sc.message("alice", 296);
  commit(sc, more);
  poke(sc, more.index);
  r = b->call(protocol::drain{});
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(std::holds_alternative<protocol::ok_result>(*r));
  ASSERT_EQ(b->pending_envelopes().size(), entries.size() + 1);
  EXPECT_EQ(b->pending_envelopes().back().index, more.index);
  // Nothing more is deliverable: answered at once, with nothing before it.
  r = b->call(protocol::drain{});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(b->pending_envelopes().size(), entries.size() + 1);
}

TEST_F(router_delivery, drain_waits_while_the_delivery_window_is_full) {
  opts.window_envelopes = 2;
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(11, {"alice", "bob"});
  auto entries = alice_and_bob(*this, sc, 5);
  auto b = logged_in(bob);
  const uint64_t id = b->send(protocol::drain{});
  ASSERT_NE(id, 0u);
  // Two envelopes fill the window; the rest wait for acks, and so does the answer.
  EXPECT_FALSE(b->wait_response(id, 300ms).has_value());
  EXPECT_EQ(b->pending_envelopes().size(), 2u);
  size_t received = 0;
  std::optional<protocol::response_body> answer;
  while (!answer) {
    auto env = b->next_envelope(2s);
    ASSERT_TRUE(env.has_value()) << "after " << received;
    ++received;
    ASSERT_TRUE(b->send(protocol::ack_msg{sc.conv(), env->index}) != 0);
    if (received == entries.size())
      answer = b->wait_response(id);
  }
  EXPECT_TRUE(std::holds_alternative<protocol::ok_result>(*answer));
  EXPECT_EQ(received, entries.size());
}

TEST_F(router_delivery, a_collected_next_index_gives_history_expired) {
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(8, {"alice", "bob"});
  alice_and_bob(*this, sc, 3);
  // Retention past the cap (entries logged at t = 1000) removes what bob never acknowledged.
  auto gc = store->collect(sc.conv(), 1000 + 10, 5);
  ASSERT_TRUE(gc.has_value());
  ASSERT_EQ(gc->log_start, 4u);
  auto b = logged_in(bob);
  auto notice = b->next_notice();
  ASSERT_TRUE(notice.has_value());
  auto* rej = std::get_if<protocol::rejection>(&notice->body);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, protocol::rejection_kind::history_expired);
  EXPECT_EQ(rej->value, 4u);
  EXPECT_EQ(rej->detail, to_hex(byte_view(sc.conv().data(), sc.conv().size())));
  EXPECT_FALSE(b->next_envelope(300ms).has_value());
}

TEST_F(router_delivery, a_slow_reader_is_cut_off_without_harming_others) {
  opts.window_envelopes = 100000;
  opts.window_bytes = size_t{1} << 30;
  opts.max_unsent_bytes = 256 * 1024;
  boot();
  auto alice = user("alice");
  auto bob = user("bob");
  register_user(alice);
  register_user(bob);
  synthetic_conv sc(9, {"alice", "bob"});
  alice_and_bob(*this, sc, 200, 40 + 256 * 200);  // about 10 MiB of envelopes
  auto b = client(bob, 4096);
  ASSERT_TRUE(b->login(hello_mode::login));
  // bob does not read; the router's unsent bytes pass the bound and the connection goes.
  std::this_thread::sleep_for(500ms);
  size_t drained = 0;
  EXPECT_TRUE(b->conn().closed_within(10s, &drained));
  EXPECT_LT(drained, size_t{200} * (40 + 256 * 200));
  auto a = logged_in(alice);
  EXPECT_TRUE(a->next_envelope().has_value());
  EXPECT_TRUE(eventually([&] {
    auto j = nlohmann::json::parse(stats(side().acceptor), nullptr, false);
    return !j.is_discarded() && j["open"] == 1;
  }));
}

std::string admin_request(const std::filesystem::path& path, const std::string& line) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {};
  }
  const std::string req = line + "\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

TEST_F(router_delivery, the_admin_endpoint_reports_connections_and_queue_windows) {
  opts.window_envelopes = 3;
  boot();
  auto bob = user("bob");
  register_user(user("alice"));
  register_user(bob);
  synthetic_conv sc(10, {"alice", "bob"});
  alice_and_bob(*this, sc, 4);
  auto b = logged_in(bob);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(b->next_envelope().has_value());
  }
  const auto path = dir_.path() / "admin.sock";
  auto admin = admin_endpoint::start(sys(), path);
  ASSERT_TRUE(admin.has_value()) << admin.error().message();
  for (const auto& [name, a] : side().admin_sections()) {
    (*admin)->add_section(name, a);
  }
  auto reply = admin_request(path, R"({"get":"status"})");
  ASSERT_FALSE(reply.empty());
  EXPECT_EQ(reply.back(), '\n');
  auto j = nlohmann::json::parse(reply, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << reply;
  EXPECT_EQ(j["ok"], true);
  EXPECT_TRUE(j["uptime_s"].is_number());
  EXPECT_EQ(j["sections"]["connections"]["open"], 1);
  const auto& users = j["sections"]["queues"]["users"];
  ASSERT_EQ(users.size(), 1u) << reply;
  EXPECT_EQ(users[0]["user"], "bob");
  EXPECT_EQ(users[0]["window"], 3);
  ASSERT_EQ(users[0]["conversations"].size(), 1u);
  EXPECT_EQ(users[0]["conversations"][0]["cursor"], 0);
  EXPECT_EQ(users[0]["conversations"][0]["sent"], 3);
  EXPECT_TRUE(j["sections"]["directory"].is_object());

  auto one = nlohmann::json::parse(
      admin_request(path, R"({"get":"status","section":"connections"})"), nullptr, false);
  ASSERT_FALSE(one.is_discarded());
  EXPECT_EQ(one["sections"].size(), 1u);
  auto names = nlohmann::json::parse(admin_request(path, R"({"get":"sections"})"), nullptr, false);
  EXPECT_EQ(names["sections"], (nlohmann::json::array({"connections", "queues", "directory"})));
  auto bad = nlohmann::json::parse(admin_request(path, "not json"), nullptr, false);
  EXPECT_EQ(bad["ok"], false);
  auto unknown = nlohmann::json::parse(admin_request(path, R"({"get":"status","section":"nope"})"),
                                       nullptr, false);
  EXPECT_EQ(unknown["ok"], false);
  (*admin)->stop();
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(router_delivery, a_section_that_does_not_answer_is_reported_not_waited_for) {
  boot();
  // An argument, because CAF 0.17 trips UBSan spawning an actor without any (deps-probe §9).
  auto silent = sys().spawn(
      [](caf::event_based_actor*, int) -> caf::behavior {
        return {
            [](stats_atom) -> caf::result<std::string> { return caf::delegated<std::string>{}; }};
      },
      0);
  auto admin = admin_endpoint::start(sys(), dir_.path() / "admin.sock", 200ms);
  ASSERT_TRUE(admin.has_value());
  (*admin)->add_section("silent", silent);
  auto j = nlohmann::json::parse((*admin)->answer(R"({"get":"status"})"), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_TRUE(j["sections"]["silent"].contains("error"));
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace cowpi::actors::testing

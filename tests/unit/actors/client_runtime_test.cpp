// SPDX-License-Identifier: Apache-2.0
// The client runtime: its store across init and load, clear errors within the bound when the
// router cannot be reached, and whole conversations (register, create, send, receipts, add,
// remove, leave, reconnect, restart, SOCKS5) against the fake router of tests/support.
#include "cowpi/actors/client_runtime.hpp"

#include "cowpi/protocol/shard.hpp"

#include "fake_router.hpp"
#include "socks5_server.hpp"
#include "temp_dir.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cowpi::actors {
namespace {

using namespace std::chrono_literals;
using testing::fake_router;
using testing::temp_dir;

// Records a runtime's events; tests wait on them instead of sleeping.
class event_log {
public:
  std::function<void(const client_event&)> sink() {
    return [this](const client_event& e) {
      std::lock_guard<std::mutex> g(mu_);
      events_.push_back(e);
      cv_.notify_all();
    };
  }
  /// Waits until `pred(events)` holds; returns whether it did within `timeout`.
  bool wait(const std::function<bool(const std::vector<client_event>&)>& pred,
            std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, timeout, [&] { return pred(events_); });
  }
  /// Waits for an accepted MESSAGE with `text`.
  bool wait_text(const std::string& text, std::chrono::milliseconds timeout = 10s) {
    return wait(
        [&](const std::vector<client_event>& evs) {
          for (const auto& e : evs) {
            const auto* a = std::get_if<entry_event>(&e);
            if (a != nullptr && a->entry.type == protocol::msg_type::message
                && std::string(a->entry.plaintext.begin(), a->entry.plaintext.end()) == text)
              return true;
          }
          return false;
        },
        timeout);
  }
  /// Waits until `count` SETUP or UPDATE entries were accepted.
  bool wait_membership(size_t count, std::chrono::milliseconds timeout = 10s) {
    return wait(
        [&](const std::vector<client_event>& evs) {
          size_t n = 0;
          for (const auto& e : evs) {
            const auto* a = std::get_if<entry_event>(&e);
            if (a != nullptr
                && (a->entry.type == protocol::msg_type::setup
                    || a->entry.type == protocol::msg_type::update))
              ++n;
          }
          return n >= count;
        },
        timeout);
  }
  bool wait_state(client_connection_state s, size_t nth = 1,
                  std::chrono::milliseconds timeout = 10s) {
    return wait(
        [&](const std::vector<client_event>& evs) {
          size_t n = 0;
          for (const auto& e : evs) {
            const auto* c = std::get_if<connection_event>(&e);
            if (c != nullptr && c->state == s)
              ++n;
          }
          return n >= nth;
        },
        timeout);
  }
  std::vector<client_event> snapshot() {
    std::lock_guard<std::mutex> g(mu_);
    return events_;
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<client_event> events_;
};

config::deployment_file offline_deployment(uint16_t port) {
  fake_router r;  // only for a well-formed router key and mirror set
  auto d = r.deployment();
  d.router.address.port = port;
  return d;
}

client_runtime_options options_for(const temp_dir& dir, const std::string& user,
                                   const config::deployment_file& dep) {
  client_runtime_options o;
  o.deployment = dep;
  o.store_path = dir.path() / user;
  o.key = storage::key_file{dir.path() / (user + ".key")};
  o.connect_timeout = 3s;
  o.request_timeout = 3s;
  o.quiet_period = 100ms;
  o.reconnect_min = 50ms;
  o.reconnect_max = 400ms;
  o.housekeeping_interval = 200ms;
  o.protocol.prekey_target = 20;
  o.protocol.prekey_low_water = 5;
  return o;
}

std::unique_ptr<client_runtime> must(expected<std::unique_ptr<client_runtime>> r) {
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? std::move(*r) : nullptr;
}

// A port on 127.0.0.1 that refuses connections (bound once, then released).
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::vector<std::string> texts(const std::vector<transcript_line>& tr) {
  std::vector<std::string> out;
  for (const auto& l : tr)
    if (l.entry.type == protocol::msg_type::message)
      out.emplace_back(l.entry.plaintext.begin(), l.entry.plaintext.end());
  return out;
}

// -- Store ------------------------------------------------------------------------------------

TEST(client_runtime, init_creates_a_user_that_load_resumes_from_the_store) {
  temp_dir dir("cruntime");
  client_system sys;
  auto dep = offline_deployment(closed_port());
  protocol::public_key lpk{};
  {
    auto rt = must(client_runtime::init(sys, "alice", options_for(dir, "alice", dep)));
    ASSERT_NE(rt, nullptr);
    EXPECT_EQ(rt->id(), "alice");
    lpk = rt->lpk();
    EXPECT_EQ(rt->state(), client_connection_state::offline);
  }
  auto rt = must(client_runtime::load(sys, options_for(dir, "alice", dep)));
  ASSERT_NE(rt, nullptr);
  EXPECT_EQ(rt->id(), "alice");
  EXPECT_EQ(rt->lpk(), lpk);
  auto convs = rt->conversations();
  ASSERT_TRUE(convs.has_value()) << convs.error().message();
  EXPECT_TRUE(convs->empty());
}

TEST(client_runtime, init_refuses_a_store_that_already_holds_a_user) {
  temp_dir dir("cruntime");
  client_system sys;
  auto dep = offline_deployment(closed_port());
  must(client_runtime::init(sys, "alice", options_for(dir, "alice", dep)));
  auto again = client_runtime::init(sys, "alice", options_for(dir, "alice", dep));
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, errc::already_exists);
}

TEST(client_runtime, init_refuses_a_malformed_id) {
  temp_dir dir("cruntime");
  client_system sys;
  auto r = client_runtime::init(sys, std::string("bad\nid"),
                                options_for(dir, "x", offline_deployment(closed_port())));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
}

TEST(client_runtime, load_without_a_store_is_not_found) {
  temp_dir dir("cruntime");
  client_system sys;
  auto r = client_runtime::load(sys, options_for(dir, "nobody", offline_deployment(closed_port())));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::not_found);
}

TEST(client_runtime, load_with_another_mirror_set_is_a_configuration_error) {
  temp_dir dir("cruntime");
  client_system sys;
  auto dep = offline_deployment(closed_port());
  must(client_runtime::init(sys, "alice", options_for(dir, "alice", dep)));
  auto other = offline_deployment(closed_port());
  other.mirrors[0].public_key[0] ^= 1;
  auto r = client_runtime::load(sys, options_for(dir, "alice", other));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::config);
}

TEST(client_runtime, a_closed_runtime_answers_closed) {
  temp_dir dir("cruntime");
  client_system sys;
  auto rt = must(client_runtime::init(
      sys, "alice", options_for(dir, "alice", offline_deployment(closed_port()))));
  rt->close();
  rt->close();
  auto r = rt->conversations();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::closed);
}

// -- Unreachable routers ----------------------------------------------------------------------

TEST(client_runtime, a_router_that_refuses_connections_is_unavailable_at_once) {
  temp_dir dir("cruntime");
  client_system sys;
  const uint16_t port = closed_port();
  auto rt =
      must(client_runtime::init(sys, "alice", options_for(dir, "alice", offline_deployment(port))));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = rt->connect();
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().context.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.error().context;
  EXPECT_LT(took, 3s);
  EXPECT_EQ(rt->state(), client_connection_state::offline);
}

TEST(client_runtime, a_router_that_accepts_but_never_answers_is_unavailable_within_the_bound) {
  // A listening socket nobody accepts on: TCP connects (the kernel's backlog), the HELLO gets
  // no HELLO_ACK.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t port = ntohs(a.sin_port);

  temp_dir dir("cruntime");
  client_system sys;
  auto o = options_for(dir, "alice", offline_deployment(port));
  o.connect_timeout = 500ms;
  auto rt = must(client_runtime::init(sys, "alice", o));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = rt->connect();
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().context.find("127.0.0.1:" + std::to_string(port)), std::string::npos);
  EXPECT_NE(r.error().context.find("500 ms"), std::string::npos) << r.error().context;
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 2s);
  ::close(fd);
}

TEST(client_runtime, an_unroutable_router_address_is_unavailable_within_the_bound) {
  // 10.255.255.1 is either unreachable at once (no route) or silently dropped (a blackhole):
  // either way a clear error before the bound, never the kernel's two-minute SYN timeout.
  temp_dir dir("cruntime");
  client_system sys;
  auto dep = offline_deployment(9);
  dep.router.address.host = "10.255.255.1";
  auto o = options_for(dir, "alice", dep);
  o.connect_timeout = 700ms;
  auto rt = must(client_runtime::init(sys, "alice", o));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = rt->connect();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().context.find("10.255.255.1:9"), std::string::npos) << r.error().context;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(client_runtime, operations_that_need_the_router_fail_clearly_when_offline) {
  temp_dir dir("cruntime");
  client_system sys;
  auto rt = must(client_runtime::init(
      sys, "alice", options_for(dir, "alice", offline_deployment(closed_port()))));
  auto c = rt->create({"bob"});
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, errc::unavailable);
  auto s = rt->sync(200ms);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, errc::unavailable);
  auto m = rt->send(protocol::conv_id{}, "hello");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, errc::not_found);
}

// -- Against the fake router ------------------------------------------------------------------

TEST(client_runtime, register_uploads_one_time_pre_keys_and_a_last_resort_key) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log ev;
  auto o = options_for(dir, "alice", router.deployment());
  o.on_event = ev.sink();
  auto rt = must(client_runtime::init(sys, "alice", o));
  auto r = rt->register_user();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(rt->state(), client_connection_state::online);
  auto acc = router.account("alice");
  ASSERT_TRUE(acc.has_value());
  EXPECT_EQ(acc->one_time, 20u);
  EXPECT_NE(acc->last_resort_id, 0u);
  EXPECT_TRUE(ev.wait_state(client_connection_state::online));
  // Already online: connect is a no-op.
  EXPECT_TRUE(rt->connect().has_value());
}

TEST(client_runtime, connect_before_register_reports_an_unknown_user) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  auto rt =
      must(client_runtime::init(sys, "alice", options_for(dir, "alice", router.deployment())));
  auto r = rt->connect();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::not_found);
  EXPECT_NE(r.error().context.find("UNKNOWN_USER"), std::string::npos) << r.error().context;
}

TEST(client_runtime, registering_an_id_someone_else_holds_is_already_exists) {
  fake_router router;
  router.take_id("alice");
  temp_dir dir("cruntime");
  client_system sys;
  auto rt =
      must(client_runtime::init(sys, "alice", options_for(dir, "alice", router.deployment())));
  auto r = rt->register_user();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::already_exists);
}

TEST(client_runtime, registering_again_after_a_completed_registration_logs_in) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  auto o = options_for(dir, "alice", router.deployment());
  {
    auto rt = must(client_runtime::init(sys, "alice", o));
    ASSERT_TRUE(rt->register_user().has_value());
  }
  auto rt = must(client_runtime::load(sys, o));
  auto r = rt->register_user();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(rt->state(), client_connection_state::online);
}

TEST(client_runtime, lookup_names_the_registered_and_the_unknown_ids) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  auto alice =
      must(client_runtime::init(sys, "alice", options_for(dir, "alice", router.deployment())));
  auto bob = must(client_runtime::init(sys, "bob", options_for(dir, "bob", router.deployment())));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  auto r = alice->lookup({"zoe", "bob"});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  ASSERT_EQ(r->found.size(), 1u);
  EXPECT_EQ(r->found[0].id, "bob");
  EXPECT_EQ(r->found[0].lpk, bob->lpk());
  EXPECT_EQ(r->unknown, std::vector<std::string>{"zoe"});
  auto c = alice->create({"zoe"});
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, errc::not_found);
}

// Conversations in both block modes (docs/protocol.md §5.2).
class client_runtime_modes : public ::testing::TestWithParam<protocol::block_mode> {};

TEST_P(client_runtime_modes, two_users_converse_and_see_each_others_receipts) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log alice_ev;
  event_log bob_ev;
  auto ao = options_for(dir, "alice", router.deployment());
  ao.on_event = alice_ev.sink();
  // Bob's clock is driven by the test: his receipts are rate-limited (§3.7).
  auto bob_clock = std::make_shared<std::atomic<uint64_t>>(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()));
  auto bo = options_for(dir, "bob", router.deployment());
  bo.on_event = bob_ev.sink();
  bo.clock = [bob_clock] { return bob_clock->load(); };
  auto alice = must(client_runtime::init(sys, "alice", ao));
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());

  auto conv = alice->create({"bob"}, GetParam());
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(bob_ev.wait_membership(1));
  auto sent = alice->send(*conv, "hello bob");
  ASSERT_TRUE(sent.has_value()) << sent.error().message();
  EXPECT_TRUE(sent->queued);
  ASSERT_TRUE(bob_ev.wait_text("hello bob"));
  // Past R(n): Bob's RECEIPT covering "hello bob" goes out at his next check.
  *bob_clock += 60;
  ASSERT_TRUE(alice_ev.wait([](const std::vector<client_event>& evs) {
    for (const auto& e : evs) {
      const auto* d = std::get_if<delivery_event>(&e);
      if (d != nullptr && d->member == "bob" && d->read && d->read->last >= 1)
        return true;
    }
    return false;
  }));
  auto reply = bob->send(*conv, "hello alice");
  ASSERT_TRUE(reply.has_value()) << reply.error().message();
  ASSERT_TRUE(alice_ev.wait_text("hello alice"));

  auto bs = bob->sync(10s);
  ASSERT_TRUE(bs.has_value()) << bs.error().message();
  EXPECT_TRUE(bs->idle);
  EXPECT_EQ(bs->outbox, 0u);
  auto as = alice->sync(10s);
  ASSERT_TRUE(as.has_value()) << as.error().message();
  EXPECT_TRUE(as->idle);

  auto tr = alice->transcript(*conv);
  ASSERT_TRUE(tr.has_value()) << tr.error().message();
  EXPECT_EQ(texts(*tr), (std::vector<std::string>{"hello bob", "hello alice"}));
  bool checked = false;
  for (const auto& l : *tr) {
    if (l.entry.type != protocol::msg_type::message)
      continue;
    ASSERT_EQ(l.delivery.members.size(), 1u);
    if (l.entry.own) {
      EXPECT_EQ(l.delivery.members[0].member, "bob");
      EXPECT_EQ(l.delivery.members[0].state, delivery_state::read);
      checked = true;
    } else {
      // Alice's own entries after it acknowledge Bob's reply at least as received.
      EXPECT_EQ(l.delivery.members[0].member, "alice");
    }
  }
  EXPECT_TRUE(checked);
  auto bt = bob->transcript(*conv);
  ASSERT_TRUE(bt.has_value());
  EXPECT_EQ(texts(*bt), texts(*tr));
  auto convs = alice->conversations();
  ASSERT_TRUE(convs.has_value());
  ASSERT_EQ(convs->size(), 1u);
  EXPECT_EQ((*convs)[0].status, conversation_status::active);
  EXPECT_EQ((*convs)[0].members.size(), 2u);
  EXPECT_FALSE((*convs)[0].safety_number.empty());
  EXPECT_EQ((*convs)[0].mode, GetParam());
}

TEST_P(client_runtime_modes, members_are_added_removed_and_leave) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log carol_ev;
  auto alice =
      must(client_runtime::init(sys, "alice", options_for(dir, "alice", router.deployment())));
  auto bob = must(client_runtime::init(sys, "bob", options_for(dir, "bob", router.deployment())));
  auto co = options_for(dir, "carol", router.deployment());
  co.on_event = carol_ev.sink();
  auto carol = must(client_runtime::init(sys, "carol", co));
  for (auto* rt : {alice.get(), bob.get(), carol.get()})
    ASSERT_TRUE(rt->register_user().has_value());

  auto conv = alice->create({"bob"}, GetParam());
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(bob->sync(10s).has_value());
  auto added = alice->add(*conv, {"carol"});
  ASSERT_TRUE(added.has_value()) << added.error().message();
  ASSERT_TRUE(bob->send(*conv, "welcome carol").has_value());
  ASSERT_TRUE(carol_ev.wait_text("welcome carol"));

  auto left = bob->leave(*conv);
  ASSERT_TRUE(left.has_value()) << left.error().message();
  ASSERT_TRUE(bob->sync(10s).has_value());
  auto bc = bob->conversations();
  ASSERT_TRUE(bc.has_value());
  ASSERT_EQ(bc->size(), 1u);
  EXPECT_EQ((*bc)[0].status, conversation_status::removed);

  // Alice's add is "queued" when add() returns: she removes carol once she has accepted it.
  ASSERT_TRUE(alice->sync(10s).has_value());
  auto removed = alice->remove(*conv, {"carol"});
  ASSERT_TRUE(removed.has_value()) << removed.error().message();
  ASSERT_TRUE(alice->sync(10s).has_value());
  auto ac = alice->conversations();
  ASSERT_TRUE(ac.has_value());
  ASSERT_EQ(ac->size(), 1u);
  EXPECT_EQ((*ac)[0].members.size(), 1u);
  // A removed member can no longer send there.
  ASSERT_TRUE(carol->sync(10s).has_value());
  auto late = carol->send(*conv, "still here?");
  EXPECT_FALSE(late.has_value());
}

TEST_P(client_runtime_modes, a_restarted_client_resumes_from_its_store) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log alice_ev;
  auto ao = options_for(dir, "alice", router.deployment());
  ao.on_event = alice_ev.sink();
  auto alice = must(client_runtime::init(sys, "alice", ao));
  auto bo = options_for(dir, "bob", router.deployment());
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  auto conv = alice->create({"bob"}, GetParam());
  ASSERT_TRUE(conv.has_value());
  ASSERT_TRUE(alice->send(*conv, "one").has_value());
  ASSERT_TRUE(bob->sync(10s).has_value());
  bob.reset();  // closes its store

  // Written while Bob is away; he gets it from the router's cursor after the restart.
  ASSERT_TRUE(alice->send(*conv, "two").has_value());
  bob = must(client_runtime::load(sys, bo));
  ASSERT_NE(bob, nullptr);
  ASSERT_TRUE(bob->connect().has_value());
  auto s = bob->sync(10s);
  ASSERT_TRUE(s.has_value()) << s.error().message();
  auto tr = bob->transcript(*conv);
  ASSERT_TRUE(tr.has_value());
  EXPECT_EQ(texts(*tr), (std::vector<std::string>{"one", "two"}));
  ASSERT_TRUE(bob->send(*conv, "back").has_value());
  EXPECT_TRUE(alice_ev.wait_text("back"));
}

TEST_P(client_runtime_modes, a_backlog_is_accepted_in_order_through_fewer_synced_writes) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  auto ao = options_for(dir, "alice", router.deployment());
  auto alice = must(client_runtime::init(sys, "alice", ao));
  auto bo = options_for(dir, "bob", router.deployment());
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  auto conv = alice->create({"bob"}, GetParam());
  ASSERT_TRUE(conv.has_value());
  ASSERT_TRUE(bob->sync(10s).has_value());
  bob.reset();

  // Written while Bob is away: at his next login the router sends them back to back, and
  // envelopes waiting behind one another share a synced write.
  constexpr int n = 40;
  std::vector<std::string> want;
  for (int k = 0; k < n; ++k) {
    want.push_back("backlog " + std::to_string(k));
    ASSERT_TRUE(alice->send(*conv, want.back()).has_value());
  }
  ASSERT_TRUE(alice->sync(10s).has_value());
  bob = must(client_runtime::load(sys, bo));
  auto before = bob->store_stats();
  ASSERT_TRUE(before.has_value());
  ASSERT_TRUE(bob->connect().has_value());
  ASSERT_TRUE(bob->sync(10s).has_value());
  auto tr = bob->transcript(*conv);
  ASSERT_TRUE(tr.has_value());
  auto got = texts(*tr);
  ASSERT_GE(got.size(), want.size());
  EXPECT_EQ(std::vector<std::string>(got.end() - n, got.end()), want);
  auto after = bob->store_stats();
  ASSERT_TRUE(after.has_value());
  EXPECT_LT(after->syncs - before->syncs, static_cast<uint64_t>(n));

  // Every entry was acknowledged: after a restart nothing is delivered again.
  bob.reset();
  bob = must(client_runtime::load(sys, bo));
  ASSERT_TRUE(bob->connect().has_value());
  auto s = bob->sync(10s);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->accepted, 0u);
}

TEST_P(client_runtime_modes, a_message_written_offline_goes_out_at_the_next_connect) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log bob_ev;
  auto ao = options_for(dir, "alice", router.deployment());
  ao.reconnect = false;
  auto alice = must(client_runtime::init(sys, "alice", ao));
  auto bo = options_for(dir, "bob", router.deployment());
  bo.on_event = bob_ev.sink();
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  auto conv = alice->create({"bob"}, GetParam());
  ASSERT_TRUE(conv.has_value());
  ASSERT_TRUE(alice->sync(10s).has_value());

  router.drop_connections();
  for (int k = 0; k < 200 && alice->state() == client_connection_state::online; ++k)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(alice->state(), client_connection_state::offline);
  auto sent = alice->send(*conv, "from the tunnel");
  ASSERT_TRUE(sent.has_value()) << sent.error().message();
  EXPECT_FALSE(sent->queued);
  ASSERT_TRUE(alice->connect().has_value());
  EXPECT_TRUE(bob_ev.wait_text("from the tunnel"));
}

INSTANTIATE_TEST_SUITE_P(modes, client_runtime_modes,
                         ::testing::Values(protocol::block_mode::pk, protocol::block_mode::chain),
                         [](const ::testing::TestParamInfo<protocol::block_mode>& i) {
                           return std::string(
                               i.param == protocol::block_mode::chain ? "chain" : "public_key");
                         });

TEST(client_runtime, a_dropped_connection_is_re_established_with_backoff) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log ev;
  event_log bob_ev;
  auto o = options_for(dir, "alice", router.deployment());
  o.on_event = ev.sink();
  auto alice = must(client_runtime::init(sys, "alice", o));
  auto bo = options_for(dir, "bob", router.deployment());
  bo.on_event = bob_ev.sink();
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  auto conv = alice->create({"bob"});
  ASSERT_TRUE(conv.has_value());

  router.drop_connections();
  ASSERT_TRUE(ev.wait_state(client_connection_state::waiting));
  ASSERT_TRUE(ev.wait_state(client_connection_state::online, 2));
  ASSERT_TRUE(bob_ev.wait_state(client_connection_state::online, 2));
  ASSERT_TRUE(alice->send(*conv, "after the drop").has_value());
  EXPECT_TRUE(bob_ev.wait_text("after the drop"));
}

TEST(client_runtime, a_request_the_router_never_answers_times_out_within_the_bound) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  auto o = options_for(dir, "alice", router.deployment());
  o.request_timeout = 300ms;
  auto alice = must(client_runtime::init(sys, "alice", o));
  ASSERT_TRUE(alice->register_user().has_value());
  router.set_answering(false);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = alice->lookup({"bob"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
}

TEST(client_runtime, a_low_pre_key_pool_is_topped_up_once_the_backlog_is_drained) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log ev;
  auto o = options_for(dir, "alice", router.deployment());
  o.on_event = ev.sink();
  auto alice = must(client_runtime::init(sys, "alice", o));
  ASSERT_TRUE(alice->register_user().has_value());
  router.take_prekeys("alice", 18);  // 2 left, under the low-water mark of 5
  router.drop_connections();
  ASSERT_TRUE(ev.wait_state(client_connection_state::online, 2));
  bool topped_up = false;
  for (int k = 0; k < 500 && !topped_up; ++k) {
    auto acc = router.account("alice");
    topped_up = acc && acc->one_time == 20;
    if (!topped_up)
      std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(topped_up);
}

TEST(client_runtime, a_submit_answered_unavailable_is_retried_until_it_is_ordered) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log bob_ev;
  auto alice =
      must(client_runtime::init(sys, "alice", options_for(dir, "alice", router.deployment())));
  auto bo = options_for(dir, "bob", router.deployment());
  bo.on_event = bob_ev.sink();
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  auto conv = alice->create({"bob"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  router.refuse_submits("alice", 2,
                        protocol::rejection{protocol::rejection_kind::unavailable, 0, "busy"});
  auto sent = alice->send(*conv, "eventually");
  ASSERT_TRUE(sent.has_value()) << sent.error().message();
  EXPECT_FALSE(sent->queued);
  EXPECT_TRUE(bob_ev.wait_text("eventually"));
}

TEST(client_runtime, a_setup_refused_for_the_setup_rate_is_kept_and_resent_after_the_wait) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log bob_ev;
  auto alice =
      must(client_runtime::init(sys, "alice", options_for(dir, "alice", router.deployment())));
  auto bo = options_for(dir, "bob", router.deployment());
  bo.on_event = bob_ev.sink();
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  // LIMIT(setup_rate) is flow control: the SETUP waits the second the router names, then goes.
  router.refuse_submits("alice", 1,
                        protocol::rejection{protocol::rejection_kind::limit, 1, "setup_rate"});
  const auto t0 = std::chrono::steady_clock::now();
  auto conv = alice->create({"bob"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);
  ASSERT_TRUE(alice->send(*conv, "after the wait").has_value());
  EXPECT_TRUE(bob_ev.wait_text("after the wait"));
}

TEST(client_runtime, a_permanently_refused_message_is_dropped_and_the_next_one_goes_through) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log alice_ev;
  event_log bob_ev;
  auto ao = options_for(dir, "alice", router.deployment());
  ao.on_event = alice_ev.sink();
  auto alice = must(client_runtime::init(sys, "alice", ao));
  auto bo = options_for(dir, "bob", router.deployment());
  bo.on_event = bob_ev.sink();
  auto bob = must(client_runtime::init(sys, "bob", bo));
  ASSERT_TRUE(alice->register_user().has_value());
  ASSERT_TRUE(bob->register_user().has_value());
  auto conv = alice->create({"bob"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  router.refuse_submits("alice", 1,
                        protocol::rejection{protocol::rejection_kind::limit, 0, "rate"});
  auto refused = alice->send(*conv, "too fast");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, errc::rejected);
  EXPECT_NE(refused.error().context.find("LIMIT"), std::string::npos) << refused.error().context;
  EXPECT_TRUE(alice_ev.wait([](const std::vector<client_event>& evs) {
    for (const auto& e : evs) {
      const auto* d = std::get_if<dropped_event>(&e);
      if (d != nullptr && std::string(d->plaintext.begin(), d->plaintext.end()) == "too fast")
        return true;
    }
    return false;
  }));
  ASSERT_TRUE(alice->send(*conv, "calmer").has_value());
  EXPECT_TRUE(bob_ev.wait_text("calmer"));
  auto s = alice->sync(10s);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->outbox, 0u);
}

TEST(client_runtime, history_expired_from_the_router_is_reported) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  event_log ev;
  auto o = options_for(dir, "alice", router.deployment());
  o.on_event = ev.sink();
  auto alice = must(client_runtime::init(sys, "alice", o));
  ASSERT_TRUE(alice->register_user().has_value());
  router.push_history_expired("alice");
  EXPECT_TRUE(ev.wait([](const std::vector<client_event>& evs) {
    for (const auto& e : evs)
      if (std::holds_alternative<history_expired_event>(e))
        return true;
    return false;
  }));
}

TEST(client_runtime, many_runtimes_share_one_system_on_the_scheduler_threads) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys(client_system_options{2});
  // The logs outlive the runtimes whose sinks write into them.
  std::vector<std::unique_ptr<event_log>> logs;
  std::vector<std::unique_ptr<client_runtime>> users;
  for (int k = 0; k < 4; ++k) {
    const std::string id = "user" + std::to_string(k);
    logs.push_back(std::make_unique<event_log>());
    auto o = options_for(dir, id, router.deployment());
    o.dedicated_thread = false;
    o.on_event = logs.back()->sink();
    users.push_back(must(client_runtime::init(sys, id, o)));
    ASSERT_TRUE(users.back()->register_user().has_value());
  }
  auto conv = users[0]->create({"user1", "user2", "user3"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  for (int k = 0; k < 4; ++k) {
    ASSERT_TRUE(logs[k]->wait_membership(1));
    auto sent = users[k]->send(*conv, "from user" + std::to_string(k));
    ASSERT_TRUE(sent.has_value()) << sent.error().message();
  }
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j)
      EXPECT_TRUE(logs[k]->wait_text("from user" + std::to_string(j)));
}

// -- SOCKS5 -----------------------------------------------------------------------------------

TEST(client_runtime, the_socks5_handshake_carries_the_session_to_the_router) {
  fake_router router;
  testing::socks5_server proxy;
  temp_dir dir("cruntime");
  client_system sys;
  auto o = options_for(dir, "alice", router.deployment());
  o.proxy = socks5_proxy{"127.0.0.1", proxy.port()};
  auto rt = must(client_runtime::init(sys, "alice", o));
  auto r = rt->register_user();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  auto req = proxy.wait_request(1s);
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->greeting, (std::vector<uint8_t>{0x05, 0x01, 0x00}));
  EXPECT_EQ(req->atyp, 1);
  EXPECT_EQ(req->host, "127.0.0.1");
  EXPECT_EQ(req->port, router.port());
  EXPECT_EQ(router.hellos(), 1u);
  EXPECT_GT(proxy.relayed_up(), 0u);
  ASSERT_TRUE(router.account("alice").has_value());
}

TEST(client_runtime, a_router_host_name_is_resolved_by_the_proxy) {
  fake_router router;
  testing::socks5_server proxy;
  temp_dir dir("cruntime");
  client_system sys;
  auto dep = router.deployment();
  dep.router.address.host = "localhost";
  auto o = options_for(dir, "alice", dep);
  o.proxy = socks5_proxy{"127.0.0.1", proxy.port()};
  auto rt = must(client_runtime::init(sys, "alice", o));
  (void)rt->register_user();  // "localhost" may resolve to ::1 where nothing listens
  auto req = proxy.wait_request(1s);
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->atyp, 3);
  EXPECT_EQ(req->host, "localhost");
}

TEST(client_runtime, a_proxy_that_cannot_reach_the_router_is_unavailable_and_says_why) {
  testing::socks5_server proxy(0x05);
  temp_dir dir("cruntime");
  client_system sys;
  auto o = options_for(dir, "alice", offline_deployment(closed_port()));
  o.proxy = socks5_proxy{"127.0.0.1", proxy.port()};
  auto rt = must(client_runtime::init(sys, "alice", o));
  auto r = rt->connect();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().context.find("connection refused"), std::string::npos) << r.error().context;
  EXPECT_NE(r.error().context.find("SOCKS5 proxy at 127.0.0.1:" + std::to_string(proxy.port())),
            std::string::npos)
      << r.error().context;
}

TEST(client_runtime, an_unreachable_proxy_is_unavailable_naming_the_proxy) {
  temp_dir dir("cruntime");
  client_system sys;
  const uint16_t port = closed_port();
  auto o = options_for(dir, "alice", offline_deployment(closed_port()));
  o.proxy = socks5_proxy{"127.0.0.1", port};
  auto rt = must(client_runtime::init(sys, "alice", o));
  auto r = rt->connect();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().context.find("SOCKS5 proxy at 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << r.error().context;
}

// -- Router clusters --------------------------------------------------------------------------

// A listening socket on 127.0.0.1 that never accepts: TCP connects, the HELLO goes unanswered.
class silent_listener {
public:
  silent_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~silent_listener() { ::close(fd_); }
  silent_listener(const silent_listener&) = delete;
  silent_listener& operator=(const silent_listener&) = delete;
  uint16_t port() const noexcept { return port_; }
  /// Whether a client connected (each call takes one connection off the backlog).
  bool connected() const {
    const int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0)
      return false;
    ::close(c);
    return true;
  }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// `dep` turned into a router cluster of `ports.size()` nodes "r-1", "r-2", ... on 127.0.0.1,
// placed so that the user `user`'s connect order meets them as `ports` lists them.
config::deployment_file cluster_deployment(config::deployment_file dep, const std::string& user,
                                           const std::vector<uint16_t>& ports) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < ports.size(); ++i)
    ids.push_back("r-" + std::to_string(i + 1));
  const size_t home = protocol::user_owner(ids, user);
  dep.router.nodes.resize(ports.size());
  for (size_t k = 0; k < ports.size(); ++k) {
    const size_t i = (home + k) % ports.size();
    dep.router.nodes[i] = {ids[i], config::endpoint{"127.0.0.1", ports[k]}};
  }
  dep.router.address = dep.router.nodes.front().address;
  return dep;
}

TEST(client_runtime, the_connect_order_starts_at_the_home_node_and_wraps_through_every_node) {
  config::deployment_router one;
  one.name = "router";
  one.address = {"127.0.0.1", 7400};
  EXPECT_EQ(connect_order(one, "alice"),
            (std::vector<config::deployment_router_node>{{"router", {"127.0.0.1", 7400}}}));

  config::deployment_router cluster = one;
  std::vector<std::string> ids;
  for (uint16_t i = 0; i < 5; ++i) {
    ids.push_back("router-" + std::to_string(i + 1));
    cluster.nodes.push_back({ids.back(), {"127.0.0.1", static_cast<uint16_t>(7401 + i)}});
  }
  for (const std::string user : {"alice", "bob", "carol", "dave", "erin", "frank", "grace"}) {
    const auto order = connect_order(cluster, user);
    const size_t home = protocol::user_owner(ids, user);
    ASSERT_EQ(order.size(), ids.size()) << user;
    for (size_t k = 0; k < order.size(); ++k)
      EXPECT_EQ(order[k], cluster.nodes[(home + k) % ids.size()]) << user << " " << k;
  }
  // The order depends on the ids, not on where the list starts.
  auto rotated = cluster;
  std::rotate(rotated.nodes.begin(), rotated.nodes.begin() + 2, rotated.nodes.end());
  EXPECT_EQ(connect_order(rotated, "alice").front(), connect_order(cluster, "alice").front());
}

TEST(client_runtime, a_dead_home_node_is_skipped_for_the_next_node_of_the_cluster) {
  fake_router router;
  temp_dir dir("cruntime");
  client_system sys;
  const uint16_t dead = closed_port();
  auto dep = cluster_deployment(router.deployment(), "alice", {dead, router.port(), closed_port()});
  ASSERT_EQ(connect_order(dep.router, "alice").front().address.port, dead);
  auto rt = must(client_runtime::init(sys, "alice", options_for(dir, "alice", dep)));
  auto r = rt->register_user();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_TRUE(router.account("alice").has_value());
  EXPECT_EQ(router.hellos(), 1u);
  EXPECT_EQ(rt->state(), client_connection_state::online);
}

TEST(client_runtime, a_cluster_with_no_reachable_node_is_unavailable_after_trying_each) {
  silent_listener silent;
  temp_dir dir("cruntime");
  client_system sys;
  auto dep = cluster_deployment(offline_deployment(9), "alice",
                                {closed_port(), silent.port(), closed_port()});
  auto o = options_for(dir, "alice", dep);
  o.connect_timeout = 500ms;
  auto rt = must(client_runtime::init(sys, "alice", o));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = rt->connect();
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().context.find("none of the router's 3 nodes could be reached"),
            std::string::npos)
      << r.error().context;
  EXPECT_TRUE(silent.connected());
  // The silent node cost its connect_timeout; the refusing ones nothing.
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(rt->state(), client_connection_state::offline);
}

TEST(client_runtime, a_lost_connection_is_re_established_at_the_next_node_then_wraps) {
  fake_router router;
  silent_listener silent;
  temp_dir dir("cruntime");
  client_system sys;
  event_log ev;
  auto dep = cluster_deployment(router.deployment(), "alice", {router.port(), silent.port()});
  auto o = options_for(dir, "alice", dep);
  o.connect_timeout = 500ms;
  o.on_event = ev.sink();
  auto rt = must(client_runtime::init(sys, "alice", o));
  ASSERT_TRUE(rt->register_user().has_value());
  EXPECT_FALSE(silent.connected());

  // The reconnect goes to the other node first, which never answers; then back home.
  router.drop_connections();
  ASSERT_TRUE(ev.wait_state(client_connection_state::waiting));
  ASSERT_TRUE(ev.wait_state(client_connection_state::online, 2));
  EXPECT_TRUE(silent.connected());
  EXPECT_EQ(router.hellos(), 2u);
}

}  // namespace
}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// A real router client side for actor tests: a CAF actor system with the middleman, a real
// router_store on a temp dir, a stand-in conversation registry, and socket test clients.
#pragma once

#include "cowpi/config/provider_config.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/storage/router_store.hpp"

#include "router/client_side.hpp"
#include "synthetic_log.hpp"
#include "temp_dir.hpp"
#include "test_client.hpp"
#include "type_ids.hpp"
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cowpi::actors::testing {

using namespace std::chrono_literals;

/// What the stand-in registry saw.
struct registry_log {
  std::mutex mu;
  std::vector<std::string> submit_users;
  std::vector<std::string> submit_authors;
};

/// Conversation ids the stand-in treats specially (first byte of the conv id).
inline constexpr uint8_t silent_conv = 0xEE;    // never answered
inline constexpr uint8_t rejected_conv = 0xDD;  // answered "queued", then rejected STALE(7)

/// A stand-in for the conversation registry (the real one is tested elsewhere): answers every
/// SUBMIT with ok_result, except the two special conversations above.
inline caf::behavior stand_in_registry(caf::event_based_actor* self,
                                       std::shared_ptr<registry_log> log) {
  return {
      [self, log](submit_atom, submit_request& r) -> caf::result<protocol::response_body> {
        {
          std::lock_guard<std::mutex> g(log->mu);
          log->submit_users.push_back(r.user);
          log->submit_authors.push_back(r.submit.c.author);
        }
        if (r.submit.c.conv[0] == silent_conv) {
          return caf::delegated<protocol::response_body>{};
        }
        if (r.submit.c.conv[0] == rejected_conv) {
          self->send(r.session, reject_atom_v,
                     late_rejection{r.request_id, r.submit.c.conv, r.submit.c.aseq,
                                    protocol::rejection{protocol::rejection_kind::stale, 7, {}}});
        }
        return protocol::response_body{protocol::ok_result{}};
      },
      [](attach_atom, const caf::actor&) {},
  };
}

class router_fixture : public ::testing::Test {
public:
  router_fixture() : dir_("actors"), rng_(4242) {
    cfg = config::defaults_for(config::role::router);
    cfg.name = "router";
    cfg.clients = config::endpoint{"127.0.0.1", 0};
    cfg.timeouts.handshake = 3000ms;
    cfg.timeouts.idle = 60000ms;
    for (const char* m : {"mirror-a", "mirror-b"}) {
      cfg.mirrors.push_back(config::mirror_peer{
          m, config::endpoint{"127.0.0.1", 1}, protocol::identity::generate(m, rng_).lpk(), {}});
    }
    opts.request_timeout = 2000ms;
    auto s = storage::router_store::open(dir_.path() / "router");
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
    store = std::move(s).value();
  }

  ~router_fixture() override { stop(); }

  /// Starts the actor system and the client side with `cfg` and `opts`.
  void boot() {
    caf_cfg_ = std::make_unique<caf::actor_system_config>();
    caf_cfg_->load<caf::io::middleman>();
    caf_cfg_->add_message_types<caf::id_block::cowpi>();
    caf_cfg_->set("scheduler.max-threads", 4);
    sys_ = std::make_unique<caf::actor_system>(*caf_cfg_);
    registry_ = sys_->spawn(stand_in_registry, reg_log);
    auto router = protocol::identity::generate("router", rng_);
    router_lpk = router.lpk();
    auto side = spawn_client_side(*sys_, cfg, *store, registry_, std::move(router), opts);
    ASSERT_TRUE(side.has_value()) << side.error().message();
    side_ = *side;
    port = side_.port;
  }

  void stop() {
    if (!sys_) {
      return;
    }
    stop_client_side(side_);
    caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
    side_ = client_side{};
    registry_ = caf::actor{};
    sys_.reset();
    caf_cfg_.reset();
  }

  caf::actor_system& sys() { return *sys_; }
  const client_side& side() const { return side_; }

  protocol::identity user(const std::string& id) { return protocol::identity::generate(id, rng_); }

  /// Registers `u` directly in the store (faster than a REGISTER handshake).
  void register_user(const protocol::identity& u) {
    ASSERT_TRUE(store->register_user(u.id(), u.lpk(), 1000).has_value());
  }

  std::unique_ptr<cowpi::testing::test_client> client(const protocol::identity& u, int rcvbuf = 0) {
    return std::make_unique<cowpi::testing::test_client>(port, u, "router", router_lpk,
                                                         protocol::max_frame_protocol, rcvbuf);
  }

  /// A logged-in client of the registered user `u`.
  std::unique_ptr<cowpi::testing::test_client> logged_in(const protocol::identity& u) {
    auto c = client(u);
    EXPECT_TRUE(c->login(protocol::hello_mode::login)) << u.id();
    return c;
  }

  /// Appends `e` and persists every mirror's answer: the entry is deliverable.
  void commit(cowpi::testing::synthetic_conv& sc, const protocol::log_entry& e) {
    ASSERT_TRUE(store->append(sc.rc(), e, 1000).has_value());
    ASSERT_TRUE(store->persist_answers(e, sc.answers(e)).has_value());
  }

  /// Pokes the queues as the conversation actor does after persisting answers.
  void poke(const cowpi::testing::synthetic_conv& sc, uint64_t index) {
    std::vector<std::string> members;
    for (const auto& m : sc.members()) {
      members.push_back(m.id);
    }
    caf::anon_send(side_.queues, poke_atom_v, sc.conv(), index, members);
  }

  /// Asks `a` for `(stats_atom)` and returns the parsed JSON text.
  std::string stats(const caf::actor& a) {
    caf::scoped_actor self{*sys_};
    std::string out;
    self->request(a, 2s, stats_atom_v)
        .receive([&](const std::string& s) { out = s; }, [&](caf::error&) {});
    return out;
  }

  /// Polls `pred` until it holds or `timeout` passes.
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) {
        return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }

  cowpi::testing::temp_dir dir_;
  crypto::deterministic_rng rng_;
  config::provider_config cfg;
  client_side_options opts;
  std::unique_ptr<storage::router_store> store;
  std::shared_ptr<registry_log> reg_log = std::make_shared<registry_log>();
  protocol::public_key router_lpk{};
  uint16_t port = 0;

private:
  std::unique_ptr<caf::actor_system_config> caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::actor registry_;
  client_side side_;
};

}  // namespace cowpi::actors::testing

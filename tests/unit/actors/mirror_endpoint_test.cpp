// SPDX-License-Identifier: Apache-2.0
// A mirror node's endpoint and its conversation actors (actors/src/mirror/) on a real mirror
// store. Each conversation is first run in a simulated deployment of its own (cowpi::sim), all
// with one mirror identity and key store; then every conversation's PREPAREs and COMMITs are sent
// to one endpoint at once, pipelined. With the simulated mirror's clock and randomness injected,
// the endpoint must answer every COMMIT exactly as the serial mirror did (the same mirror blocks),
// each conversation's answers in request order, with nothing refused; a conversation actor that
// stops when idle must hand its conversation on intact; the store must reload what was answered.
#include "cowpi/protocol/wire.hpp"
#include "cowpi/sim/mirror_replay.hpp"
#include "cowpi/storage/mirror_store.hpp"

#include "mirror/endpoint.hpp"
#include "temp_dir.hpp"
#include "type_ids.hpp"
#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cowpi::actors {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t seed = 11;
constexpr size_t conversations = 6;

using recorded = sim::mirror_recording;

/// The `k`th conversation: created by alice with bob and carol, messages, an UPDATE that adds
/// dave and removes carol, messages, receipts.
recorded record_conversation(size_t k, protocol::block_mode mode) {
  auto r =
      sim::record_for_mirror(seed, k, [mode](sim::world& w) -> std::optional<protocol::conv_id> {
        for (const char* u : {"alice", "bob", "carol", "dave"})
          w.add_user(u);
        auto conv = w.create("alice", {"bob", "carol"}, mode);
        if (!conv)
          return std::nullopt;
        w.run();
        for (int n = 0; n < 6; ++n) {
          if (!w.send(n % 2 ? "bob" : "carol", *conv, "before " + std::to_string(n)))
            return std::nullopt;
          w.run();
        }
        if (!w.update("bob", *conv, {"dave"}, {"carol"}))
          return std::nullopt;
        w.run();
        for (int n = 0; n < 6; ++n) {
          if (!w.send(n % 2 ? "dave" : "alice", *conv, "after " + std::to_string(n)))
            return std::nullopt;
          w.run();
        }
        w.receipts_due();
        w.run();
        return *conv;
      });
  EXPECT_TRUE(r.has_value()) << "conversation " << k;
  return r ? std::move(*r) : recorded{};
}

link_frame frame_of(const protocol::link_request& r) {
  return link_frame{protocol::wire::encode(r)};
}

protocol::commit_msg commit_of(const protocol::log_entry& e) {
  return protocol::commit_msg{e.index, e.d, e.prepare_for(0)};
}

/// What one driver got back: each answer by request number, and the order they came in.
struct driven {
  std::mutex mu;
  std::vector<std::optional<protocol::link_response>> answers;
  std::vector<size_t> arrival;
};

/// An actor that sends every request of `frames` to `ep` at once and records the answers; `done`
/// is set when all have come back (or failed). (Its state comes as spawn arguments: CAF 0.17
/// dereferences a null pointer when it spawns a function with none.)
void driver(caf::event_based_actor* self, caf::actor ep, std::vector<link_frame> frames,
            std::shared_ptr<driven> log, std::shared_ptr<std::promise<void>> done) {
  auto left = std::make_shared<size_t>(frames.size());
  for (size_t n = 0; n < frames.size(); ++n) {
    auto finish = [=] {
      if (--*left == 0)
        done->set_value();
    };
    self->request(ep, 60s, link_atom_v, frames[n])
        .then(
            [=](const link_frame& f) {
              {
                std::lock_guard<std::mutex> g(log->mu);
                if (auto r = protocol::wire::decode_link_response(f.bytes))
                  log->answers[n] = std::move(*r);
                log->arrival.push_back(n);
              }
              finish();
            },
            [=](const caf::error&) { finish(); });
  }
}

void drive(caf::actor_system& sys, const caf::actor& ep, std::vector<link_frame> frames,
           std::shared_ptr<driven> log, std::shared_ptr<std::promise<void>> done) {
  log->answers.resize(frames.size());
  sys.spawn(driver, ep, std::move(frames), std::move(log), std::move(done));
}

/// Draws from a conversation's randomness owned by the test (one actor at a time uses it).
class continued_rng final : public crypto::rng {
public:
  explicit continued_rng(crypto::deterministic_rng* r) : r_(r) {}
  void fill(std::span<uint8_t> out) override { r_->fill(out); }

private:
  crypto::deterministic_rng* r_;
};

/// A started endpoint, and the actor that said HELLO: the endpoint accepts requests from the
/// actors of a node as long as one that said HELLO lives (as the router's link does).
struct node {
  caf::actor ep;
  std::unique_ptr<caf::scoped_actor> greeter;
  ~node() { caf::anon_send_exit(ep, caf::exit_reason::user_shutdown); }
};

class mirror_endpoint : public ::testing::TestWithParam<protocol::block_mode> {
protected:
  void SetUp() override {
    for (size_t k = 0; k < conversations; ++k)
      convs_.push_back(record_conversation(k, GetParam()));
    mirror_ = std::make_unique<protocol::mirror>(sim::recorded_mirror(seed));
    crypto::deterministic_rng r(99);
    router_ = std::make_unique<protocol::identity>(protocol::identity::generate("router", r));
    store_ = open_store();
    ASSERT_TRUE(store_->persist_keys(*mirror_).has_value());
  }

  std::unique_ptr<storage::mirror_store> open_store() {
    auto s = storage::mirror_store::open(dir_.path() / "mirror",
                                         storage::key_file{dir_.path() / "mirror.key"}, srng_);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
    return s ? std::move(*s) : nullptr;
  }

  /// An endpoint over the store; `m` is the mirror it starts from.
  std::unique_ptr<node> start(caf::actor_system& sys, std::unique_ptr<protocol::mirror> m,
                              std::chrono::milliseconds idle = 30s) {
    mirror_endpoint_deps d;
    d.mirror = std::move(m);
    d.store = store_.get();
    d.router = config::peer{router_->id(), router_->lpk()};
    d.idle = idle;
    const uint64_t now = convs_.front().now;
    d.clock = [now] { return now; };
    // Each conversation's randomness goes on where it stopped when a new actor takes the
    // conversation on (as the serial mirror's single source went on).
    rngs_.clear();
    for (const auto& c : convs_)
      rngs_.emplace(c.conv, c.rng);
    d.rng_for = [this](const protocol::conv_id& conv) -> std::unique_ptr<crypto::rng> {
      return std::make_unique<continued_rng>(&rngs_.try_emplace(conv, 1).first->second);
    };
    auto n = std::make_unique<node>();
    n->ep = spawn_mirror_endpoint(sys, std::move(d));
    n->greeter = std::make_unique<caf::scoped_actor>(sys);
    auto& self = *n->greeter;
    bool greeted = false;
    self->request(n->ep, 10s, link_atom_v,
                  frame_of(protocol::link_hello{router_->id(), router_->lpk()}))
        .receive(
            [&](const link_frame& f) {
              auto r = protocol::wire::decode_link_response(f.bytes);
              greeted = r && std::holds_alternative<protocol::link_hello>(*r);
            },
            [](const caf::error&) {});
    EXPECT_TRUE(greeted);
    return n;
  }

  /// Runs entries [from, to) of every conversation (PREPARE then COMMIT each), all conversations
  /// at once; checks every COMMIT answer against the serial mirror's and the order of arrival.
  void run_entries(caf::actor_system& sys, const caf::actor& ep, size_t from, size_t to) {
    std::vector<std::shared_ptr<driven>> logs;
    std::vector<std::future<void>> waits;
    for (const auto& c : convs_) {
      std::vector<link_frame> frames;
      for (size_t i = from; i < std::min(to, c.entries.size()); ++i) {
        frames.push_back(frame_of(c.entries[i].prepare_for(0)));
        frames.push_back(frame_of(commit_of(c.entries[i])));
      }
      auto log = std::make_shared<driven>();
      auto done = std::make_shared<std::promise<void>>();
      waits.push_back(done->get_future());
      logs.push_back(log);
      drive(sys, ep, std::move(frames), log, done);
    }
    for (auto& w : waits)
      ASSERT_EQ(w.wait_for(60s), std::future_status::ready);
    for (size_t k = 0; k < convs_.size(); ++k) {
      const auto& c = convs_[k];
      auto& log = *logs[k];
      std::lock_guard<std::mutex> g(log.mu);
      for (size_t n = 0; n < log.arrival.size(); ++n)
        EXPECT_EQ(log.arrival[n], n) << "conversation " << k << ": answers out of request order";
      for (size_t i = from; i < std::min(to, c.entries.size()); ++i) {
        const auto& prepared = log.answers[2 * (i - from)];
        const auto& committed = log.answers[2 * (i - from) + 1];
        ASSERT_TRUE(prepared.has_value());
        const auto* p = std::get_if<protocol::prepared>(&*prepared);
        ASSERT_NE(p, nullptr) << "conversation " << k << " entry " << i << ": PREPARE refused";
        EXPECT_TRUE(crypto::ct_equal(p->d, c.entries[i].d));
        ASSERT_TRUE(committed.has_value());
        const auto* a = std::get_if<protocol::answer>(&*committed);
        ASSERT_NE(a, nullptr) << "conversation " << k << " entry " << i << ": COMMIT refused";
        EXPECT_EQ(a->index, i);
        EXPECT_TRUE(crypto::ct_equal(a->t, c.entries[i].t));
        EXPECT_TRUE(a->mirror_blocks == c.blocks[i])
            << "conversation " << k << " entry " << i << ": not the serial mirror's blocks";
      }
    }
  }

  nlohmann::json stats(caf::actor_system& sys, const caf::actor& ep) {
    caf::scoped_actor self{sys};
    nlohmann::json out;
    self->request(ep, 10s, stats_atom_v)
        .receive([&](const std::string& js) { out = nlohmann::json::parse(js); },
                 [](const caf::error&) {});
    return out;
  }

  std::optional<protocol::link_response> call(caf::actor_system& sys, const caf::actor& ep,
                                              const protocol::link_request& req) {
    caf::scoped_actor self{sys};
    std::optional<protocol::link_response> out;
    self->request(ep, 10s, link_atom_v, frame_of(req))
        .receive(
            [&](const link_frame& f) {
              if (auto r = protocol::wire::decode_link_response(f.bytes))
                out = std::move(*r);
            },
            [](const caf::error&) {});
    return out;
  }

  size_t longest() const {
    size_t n = 0;
    for (const auto& c : convs_)
      n = std::max(n, c.entries.size());
    return n;
  }

  testing::temp_dir dir_;
  crypto::system_rng srng_;
  std::vector<recorded> convs_;
  std::unique_ptr<protocol::mirror> mirror_;
  std::unique_ptr<protocol::identity> router_;
  std::unique_ptr<storage::mirror_store> store_;
  /// Every conversation's randomness (read by `rng_for`, on the endpoint's thread).
  std::map<protocol::conv_id, crypto::deterministic_rng> rngs_;
};

INSTANTIATE_TEST_SUITE_P(modes, mirror_endpoint,
                         ::testing::Values(protocol::block_mode::pk, protocol::block_mode::chain),
                         [](const auto& p) {
                           return p.param == protocol::block_mode::chain
                                      ? std::string("chain")
                                      : std::string("public_key");
                         });

caf::actor_system_config& system_config() {
  static caf::actor_system_config cfg = [] {
    caf::actor_system_config c;
    c.add_message_types<caf::id_block::cowpi>();
    c.set("scheduler.max-threads", 4);
    return c;
  }();
  return cfg;
}

TEST_P(mirror_endpoint, concurrent_conversations_answer_what_one_serial_mirror_answers) {
  ASSERT_GE(convs_.front().entries.size(), 14u);
  {
    caf::actor_system sys{system_config()};
    auto n = start(sys, std::move(mirror_));
    const auto& ep = n->ep;
    run_entries(sys, ep, 0, longest());
    auto js = stats(sys, ep);
    size_t total = 0;
    for (const auto& c : convs_) {
      total += c.entries.size();
      auto st = call(sys, ep, protocol::status_query{c.conv});
      ASSERT_TRUE(st.has_value());
      const auto* s = std::get_if<protocol::status_answer>(&*st);
      ASSERT_NE(s, nullptr);
      EXPECT_TRUE(s->known);
      EXPECT_EQ(s->next, c.entries.size());
    }
    EXPECT_EQ(js["conversations"], conversations);
    EXPECT_EQ(js["conversation_actors"], conversations);
    EXPECT_EQ(js["commits"], total);
    EXPECT_EQ(js["answers_held"], total);
  }
  // Everything answered was synced: a reloaded mirror holds every conversation at its length,
  // and answers a retried COMMIT with the answer it gave.
  store_.reset();
  store_ = open_store();
  const auto original = sim::recorded_mirror(seed);
  auto reloaded = store_->load(
      protocol::identity::from_secret(original.self().id(), original.self().export_secret()));
  ASSERT_TRUE(reloaded.has_value()) << reloaded.error().message();
  ASSERT_EQ(reloaded->convs().size(), conversations);
  for (const auto& c : convs_)
    EXPECT_EQ(reloaded->find(c.conv)->st.next, c.entries.size());
  caf::actor_system sys{system_config()};
  auto n = start(sys, std::make_unique<protocol::mirror>(std::move(*reloaded)));
  const auto& ep = n->ep;
  const auto& c = convs_[2];
  auto again = call(sys, ep, commit_of(c.entries[5]));
  ASSERT_TRUE(again.has_value());
  const auto* a = std::get_if<protocol::answer>(&*again);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->mirror_blocks == c.blocks[5]);
}

TEST_P(mirror_endpoint, an_idle_conversation_actor_stops_and_its_conversation_goes_on) {
  caf::actor_system sys{system_config()};
  auto n = start(sys, std::move(mirror_), 50ms);
  const auto& ep = n->ep;
  const size_t half = longest() / 2;
  run_entries(sys, ep, 0, half);
  // Every conversation actor, idle, stops (the endpoint keeps the records).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  nlohmann::json js = stats(sys, ep);
  while (js["conversation_actors"] != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    js = stats(sys, ep);
  }
  ASSERT_EQ(js["conversation_actors"], 0) << js.dump();
  EXPECT_EQ(js["conversations"], conversations);
  // A new actor per conversation takes the record on where the last one left it.
  run_entries(sys, ep, half, longest());
  const auto& c = convs_[1];
  auto retried = call(sys, ep, commit_of(c.entries[1]));
  ASSERT_TRUE(retried.has_value());
  const auto* a = std::get_if<protocol::answer>(&*retried);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->mirror_blocks == c.blocks[1]);
}

TEST_P(mirror_endpoint, a_conversation_nobody_holds_is_answered_without_an_actor) {
  caf::actor_system sys{system_config()};
  auto n = start(sys, std::move(mirror_));
  const auto& ep = n->ep;
  protocol::conv_id unknown{};
  unknown[0] = 0x5A;
  auto st = call(sys, ep, protocol::status_query{unknown});
  ASSERT_TRUE(st.has_value());
  const auto* s = std::get_if<protocol::status_answer>(&*st);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->known);
  auto au = call(sys, ep, protocol::audit_query{unknown, 0, 10});
  ASSERT_TRUE(au.has_value());
  const auto* a = std::get_if<protocol::audit_answer>(&*au);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->d.empty());
  auto ack = call(sys, ep, protocol::link_ack{unknown, 3});
  ASSERT_TRUE(ack.has_value());
  EXPECT_TRUE(std::holds_alternative<protocol::acked>(*ack));
  // A COMMIT out of order for it: GAP, from an actor that then stops like any other.
  const auto& c = convs_.front();
  auto gap = call(sys, ep, commit_of(c.entries[3]));
  ASSERT_TRUE(gap.has_value());
  const auto* g = std::get_if<protocol::gap>(&*gap);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->next, 0u);
  auto js = stats(sys, ep);
  EXPECT_EQ(js["conversations"], 0);
  EXPECT_EQ(js["conversation_actors"], 1);
}

}  // namespace
}  // namespace cowpi::actors

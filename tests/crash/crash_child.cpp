// SPDX-License-Identifier: Apache-2.0
// cowpi-crash-child: the process the crash tests SIGKILL at random points. It writes through
// cowpi's stores and prints one line per acknowledged (synced) write on stdout, so the parent
// knows what must survive.
//
//   cowpi-crash-child world  DIR SEED   a deployment (router, 2 mirrors, 3 clients) chatting
//   cowpi-crash-child world-chain DIR SEED   the same in a chain-mode conversation
//   cowpi-crash-child router DIR SEED   4 threads appending, answering and acking concurrently
//                                       through the router store (group commit)
#include "cowpi/storage/router_store.hpp"

#include "durable_world.hpp"
#include "synthetic_log.hpp"
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

std::mutex out_mu;

// One line per write(2), so a kill never leaves a torn line the parent would misread as
// complete (it only trusts lines ending in '\n').
void say(const std::string& line) {
  const std::string s = line + "\n";
  std::lock_guard<std::mutex> g(out_mu);
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(1, s.data() + done, s.size() - done);
    if (n <= 0)
      std::_Exit(3);
    done += static_cast<size_t>(n);
  }
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "cowpi-crash-child: %s\n", why.c_str());
  std::_Exit(2);
}

int run_world(const std::string& dir, uint64_t seed, cowpi::protocol::block_mode mode) {
  using cowpi::testing::durable_world;
  durable_world w(dir, cowpi::testing::durable_options{seed, 2, 1'000'000 + seed * 1000});
  w.on_event = say;
  const std::vector<std::string> users = {"alice", "bob", "carol"};
  for (const auto& u : users)
    w.add_user(u);
  cowpi::protocol::conv_id conv{};
  if (w.client("alice").convs().empty()) {
    auto c = w.create("alice", {"bob", "carol"}, mode);
    if (!c)
      die("create: " + c.error().message());
    conv = *c;
  } else {
    conv = w.client("alice").convs().begin()->first;
    w.recover();
  }
  say("conv " + cowpi::testing::conv_hex(conv));
  cowpi::crypto::deterministic_rng pick(seed ^ 0x5eed);
  for (uint64_t k = 0; k < 100000; ++k) {
    uint8_t b[2];
    pick.fill(b);
    const std::string& author = users[b[0] % users.size()];
    // Unique per incarnation (seed) and message: the parent checks each arrives exactly once.
    auto s = w.send(author, conv, "m-" + std::to_string(seed) + "-" + std::to_string(k));
    // Until the SETUP has reached every member, some of them cannot send yet.
    if (!s && s.error().code != cowpi::errc::not_found && s.error().code != cowpi::errc::bad_state)
      die("send: " + s.error().message());
    w.run(b[1] % 24 + (s ? 0 : 8));
    if (k % 5 == 4) {
      w.advance_time(30);
      w.receipts_due();
    }
  }
  w.run();
  return 0;
}

int run_router(const std::string& dir, uint64_t seed) {
  using cowpi::testing::synthetic_conv;
  auto rs = cowpi::storage::router_store::open(dir);
  if (!rs)
    die("open: " + rs.error().message());
  auto& store = **rs;
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 4; ++t) {
    threads.emplace_back([&store, seed, t] {
      synthetic_conv sc(seed * 16 + t, {"alice", "bob", "carol", "dave"});
      const std::string ts = std::to_string(t);
      for (uint64_t k = 0;; ++k) {
        const cowpi::protocol::log_entry e =
            k == 0 ? sc.setup() : sc.message(k % 2 ? "bob" : "carol");
        auto a = store.append(sc.rc(), e, 1000 + k);
        if (!a)
          die("append: " + a.error().message());
        say("appended " + ts + " " + std::to_string(e.index));
        // Every third entry stays pending a while (its answers come with the next one).
        if (k % 3 == 1)
          continue;
        for (uint64_t i = k % 3 == 2 && k > 0 ? e.index - 1 : e.index; i <= e.index; ++i) {
          auto se = store.read_entry(sc.conv(), i);
          if (!se || !*se)
            die("read back");
          if ((*se)->complete)
            continue;
          auto p = store.persist_answers((*se)->entry, sc.answers((*se)->entry));
          if (!p)
            die("answers: " + p.error().message());
          say("answered " + ts + " " + std::to_string(i));
        }
        const std::string user = k % 2 ? "alice" : "dave";
        auto ack = store.ack(user, sc.conv(), e.index > 0 ? e.index - 1 : 0);
        if (!ack)
          die("ack: " + ack.error().message());
        say("acked " + ts + " " + user + " " + std::to_string(e.index > 0 ? e.index - 1 : 0));
      }
    });
  }
  for (auto& th : threads)
    th.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: cowpi-crash-child world|world-chain|router DIR SEED\n");
    return 1;
  }
  if (sodium_init() < 0)
    return 1;
  const std::string mode = argv[1];
  const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  if (mode == "world")
    return run_world(argv[2], seed, cowpi::protocol::block_mode::pk);
  if (mode == "world-chain")
    return run_world(argv[2], seed, cowpi::protocol::block_mode::chain);
  if (mode == "router")
    return run_router(argv[2], seed);
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 1;
}

// SPDX-License-Identifier: Apache-2.0
// `cowpi-bench mirror`: one mirror node (its endpoint and conversation actors on a real mirror
// store, synced writes) fed the PREPAREs and COMMITs of many conversations at once, in process.
// Each conversation is first run in a simulated deployment of its own that shares the mirror's
// identity and keys; the node gets the simulated mirror's clock and randomness, so it must
// answer every COMMIT (checked) with exactly the simulated mirror's blocks.
#include "mirror_bench.hpp"

#include "cowpi/protocol/wire.hpp"
#include "cowpi/sim/mirror_replay.hpp"
#include "cowpi/storage/mirror_store.hpp"

#include "mirror/endpoint.hpp"
#include "type_ids.hpp"
#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cowpi::bench {

namespace {

using namespace std::chrono_literals;
using actors::link_frame;

constexpr uint64_t seed = 23;

using recorded = sim::mirror_recording;

/// The `k`th conversation: `members` members, its creator's SETUP then messages by each member in
/// turn, `entries` entries in all.
std::optional<recorded> record(size_t k, size_t members, size_t entries,
                               protocol::block_mode mode) {
  return sim::record_for_mirror(seed, k, [=](sim::world& w) -> std::optional<protocol::conv_id> {
    std::vector<std::string> users;
    for (size_t u = 0; u < members; ++u) {
      users.push_back("user-" + std::to_string(u));
      w.add_user(users.back());
    }
    auto conv = w.create(users[0], std::vector<std::string>(users.begin() + 1, users.end()), mode);
    if (!conv)
      return std::nullopt;
    w.run();
    for (size_t n = 1; n < entries; ++n) {
      if (!w.send(users[n % members], *conv, "message " + std::to_string(n)))
        return std::nullopt;
      w.run();
    }
    return *conv;
  });
}

link_frame frame_of(const protocol::link_request& r) {
  return link_frame{protocol::wire::encode(r)};
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

struct run_result {
  double seconds = 0;
  double cpu = 0;
  size_t commits = 0;
  size_t wrong = 0;
  uint64_t writes = 0;
};

/// What the feeders counted.
struct feed_counts {
  std::atomic<size_t> commits{0};
  std::atomic<size_t> wrong{0};
};

/// Feeds the entries of `rc` to `ep`, keeping `window` in flight, and sets `done` when every one
/// is answered. (Its state comes as spawn arguments: CAF 0.17 dereferences a null pointer when it
/// spawns a function with none.)
void feeder(caf::event_based_actor* self, caf::actor ep, const recorded* rc, size_t window,
            feed_counts* counts, std::shared_ptr<std::promise<void>> done) {
  auto next = std::make_shared<size_t>(0);
  auto answered = std::make_shared<size_t>(0);
  // Sends entry `*next` (PREPARE, then COMMIT without waiting, as a pipelining router would
  // once every mirror prepared); the COMMIT's answer sends the next one.
  auto send_one = std::make_shared<std::function<void()>>();
  *send_one = [=] {
    const size_t i = (*next)++;
    const auto& e = rc->entries[i];
    self->request(ep, 60s, actors::link_atom_v, frame_of(e.prepare_for(0)))
        .then([](const link_frame&) {}, [counts](const caf::error&) { ++counts->wrong; });
    self->request(ep, 60s, actors::link_atom_v,
                  frame_of(protocol::commit_msg{e.index, e.d, e.prepare_for(0)}))
        .then(
            [=](const link_frame& f) {
              auto r = protocol::wire::decode_link_response(f.bytes);
              const auto* a = r ? std::get_if<protocol::answer>(&*r) : nullptr;
              if (a == nullptr || a->index != i || !(a->mirror_blocks == rc->blocks[i]))
                ++counts->wrong;
              else
                ++counts->commits;
              if (*next < rc->entries.size())
                (*send_one)();
              if (++*answered == rc->entries.size()) {
                *send_one = nullptr;  // breaks the cycle through its own capture
                done->set_value();
              }
            },
            [=](const caf::error&) {
              ++counts->wrong;
              if (++*answered == rc->entries.size()) {
                *send_one = nullptr;
                done->set_value();
              }
            });
  };
  for (size_t k = 0; k < window && *next < rc->entries.size(); ++k)
    (*send_one)();
}

/// Feeds every conversation's entries to a fresh node with `threads` scheduler threads: each
/// conversation keeps `window` entries (a PREPARE and a COMMIT each) in flight.
run_result run(const std::vector<recorded>& convs, size_t threads, size_t window,
               const std::filesystem::path& dir) {
  run_result out;
  crypto::system_rng srng;
  std::filesystem::remove_all(dir);
  auto store =
      storage::mirror_store::open(dir / "mirror", storage::key_file{dir / "mirror.key"}, srng);
  if (!store) {
    std::fprintf(stderr, "cannot open the store: %s\n", store.error().message().c_str());
    out.wrong = 1;
    return out;
  }
  auto m = std::make_unique<protocol::mirror>(sim::recorded_mirror(seed));
  (void)(*store)->persist_keys(*m);
  crypto::deterministic_rng rr(7);
  auto router = protocol::identity::generate("router", rr);

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::cowpi>();
  cfg.set("scheduler.max-threads", threads);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system sys{cfg};
  actors::mirror_endpoint_deps d;
  d.mirror = std::move(m);
  d.store = store->get();
  d.router = config::peer{router.id(), router.lpk()};
  const uint64_t now = convs.front().now;
  d.clock = [now] { return now; };
  std::map<protocol::conv_id, crypto::deterministic_rng> rngs;
  for (const auto& c : convs)
    rngs.emplace(c.conv, c.rng);
  d.rng_for = [rngs](const protocol::conv_id& conv) -> std::unique_ptr<crypto::rng> {
    return std::make_unique<crypto::deterministic_rng>(rngs.at(conv));
  };
  auto ep = actors::spawn_mirror_endpoint(sys, std::move(d));
  // The node accepts requests from this process's actors while the one that said HELLO lives
  // (as from the router's while its link does).
  caf::scoped_actor greeter{sys};
  greeter
      ->request(ep, 10s, actors::link_atom_v,
                frame_of(protocol::link_hello{router.id(), router.lpk()}))
      .receive([](const link_frame&) {}, [](const caf::error&) {});
  const auto writes_before = (*store)->stats().syncs;
  feed_counts counts;
  std::vector<std::future<void>> waits;
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& c : convs) {
    auto done = std::make_shared<std::promise<void>>();
    waits.push_back(done->get_future());
    sys.spawn(feeder, ep, &c, window, &counts, done);
  }
  for (auto& f : waits)
    f.wait();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.cpu = cpu_seconds() - cpu0;
  out.commits = counts.commits;
  out.wrong = counts.wrong;
  out.writes = (*store)->stats().syncs - writes_before;
  caf::anon_send_exit(ep, caf::exit_reason::user_shutdown);
  return out;
}

std::vector<size_t> parse_list(const std::string& s) {
  std::vector<size_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    out.push_back(std::stoul(s.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int run_mirror(int argc, char** argv) {
  std::string conversations = "1,16";
  std::string threads = "1,2";
  std::string modes = "chain,public-key";
  size_t members = 10;
  size_t entries = 100;
  size_t window = 4;
  std::string dir = std::filesystem::temp_directory_path().string();
  CLI::App app{
      "cowpi-bench mirror: one mirror node in this process (its endpoint and one actor per\n"
      "conversation, on a real mirror store with synced writes) fed the PREPAREs and COMMITs of\n"
      "many conversations at once, each keeping --window entries in flight. The conversations\n"
      "are first run in simulated deployments sharing the node's identity and keys (not\n"
      "measured), and every COMMIT answer is checked against the simulated mirror's. Prints,\n"
      "per mode, conversation count and scheduler threads: COMMITs/s, the process's CPU per\n"
      "COMMIT and the synced writes per COMMIT.",
      "cowpi-bench mirror"};
  app.add_option("--conversations", conversations, "conversation counts, comma-separated")
      ->capture_default_str();
  app.add_option("--threads", threads, "scheduler thread counts, comma-separated")
      ->capture_default_str();
  app.add_option("--modes", modes, "chain, public-key or both, comma-separated")
      ->capture_default_str();
  app.add_option("--members", members, "members per conversation (>= 2)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{2}, size_t{100}));
  app.add_option("--entries", entries, "entries per conversation (>= 2)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{2}, size_t{100000}));
  app.add_option("--window", window, "entries in flight per conversation")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{64}));
  app.add_option("--dir", dir, "where the store goes (a fresh cowpi-mirror-bench-* directory)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::vector<size_t> conv_counts;
  std::vector<size_t> thread_counts;
  try {
    conv_counts = parse_list(conversations);
    thread_counts = parse_list(threads);
  } catch (const std::exception&) {
    std::fprintf(stderr, "cowpi-bench mirror: --conversations and --threads take numbers\n");
    return 2;
  }
  bool problem = false;
  for (const std::string mode_name : {"chain", "public-key"}) {
    if (modes.find(mode_name) == std::string::npos)
      continue;
    const auto mode = mode_name == "chain" ? protocol::block_mode::chain : protocol::block_mode::pk;
    size_t most = 0;
    for (size_t n : conv_counts)
      most = std::max(most, n);
    std::vector<recorded> all;
    const auto sim0 = std::chrono::steady_clock::now();
    for (size_t k = 0; k < most; ++k) {
      auto r = record(k, members, entries, mode);
      if (!r) {
        std::fprintf(stderr, "cowpi-bench mirror: the simulated conversation %zu failed\n", k);
        return 1;
      }
      all.push_back(std::move(*r));
    }
    std::printf("%s: %zu conversations of %zu entries simulated in %.1f s (not measured)\n",
                mode_name.c_str(), most, entries,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - sim0).count());
    std::fflush(stdout);
    for (size_t n : conv_counts) {
      if (n == 0)
        continue;
      const std::vector<recorded> convs(all.begin(), all.begin() + static_cast<ptrdiff_t>(n));
      for (size_t t : thread_counts) {
        const auto path =
            std::filesystem::path(dir) / ("cowpi-mirror-bench-" + std::to_string(::getpid()));
        auto r = run(convs, std::max<size_t>(t, 1), window, path);
        std::filesystem::remove_all(path);
        const double per = r.commits == 0 ? 0 : 1e3 * r.cpu / static_cast<double>(r.commits);
        std::printf(
            "%-10s members %zu  conversations %3zu  threads %zu: %7.0f COMMITs/s  CPU %.3f ms per "
            "COMMIT  %.2f synced writes per COMMIT%s\n",
            mode_name.c_str(), members, n, t, static_cast<double>(r.commits) / r.seconds, per,
            r.commits == 0 ? 0.0 : static_cast<double>(r.writes) / static_cast<double>(r.commits),
            r.wrong ? "  (WRONG ANSWERS)" : "");
        std::fflush(stdout);
        problem = problem || r.wrong != 0;
      }
    }
  }
  return problem ? 1 : 0;
}

}  // namespace cowpi::bench

// SPDX-License-Identifier: Apache-2.0
// Private to `cowpi-bench load` (load*.cpp): its options, the tracker of every member's accepted
// entries, one run's context, and the pieces each file provides: process and provider
// readings (load_system.cpp), statistics (load_stats.cpp), the set-up and the two phases
// (load_phases.cpp); load.cpp parses the options, runs each size and reports.
#pragma once

#include "cowpi/actors/client_runtime.hpp"
#include "cowpi/config/deployment_file.hpp"
#include "cowpi/protocol/expected.hpp"

#include "local_deployment.hpp"
#include <nlohmann/json.hpp>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::bench::load {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using json = nlohmann::json;

/// Set by SIGINT/SIGTERM: phases end early and the spawned providers are stopped.
extern std::atomic<bool> g_interrupted;

inline double ms_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct load_options {
  std::vector<size_t> members{3, 10, 50};
  std::vector<std::string> modes{"public-key", "chain"};
  size_t messages = 200;
  double rate = 0;  // 0: closed loop
  size_t senders = 4;
  size_t window = 4;
  double duration_s = 10;
  double warmup_s = 2;
  size_t size = 100;
  size_t threads = 8;
  /// Nodes per spawned mirror (a mirror cluster when > 1).
  size_t mirror_nodes = 1;
  /// Nodes of the spawned router (a router cluster when > 1).
  size_t router_nodes = 1;
  std::string phases = "both";
  bool spawn = false;
  std::string deployment;
  std::string admin;
  std::string provider;
  std::string dir;
  std::string clients_dir;
  bool keep = false;
  bool smoke = false;
  std::string json_path;
};

// -- Process and provider readings (load_system.cpp) -------------------------------------------

/// A fresh directory "cowpi-load-XXXXXX" under `base` (TMPDIR or /tmp when empty).
expected<fs::path> make_run_dir(const std::string& base);
/// CPU seconds (user + system) of a process, from /proc/PID/stat; -1 when unreadable.
double process_cpu_s(pid_t pid);
/// Machine-wide busy and total CPU seconds, from /proc/stat (iowait counts as idle).
std::pair<double, double> machine_cpu_s();
std::string load_average();
/// One JSON request line to a provider's admin socket; the answer, or nullopt.
std::optional<json> admin_request(const fs::path& socket, const json& req);

// What the providers' admin sockets say about ordering progress.
struct provider_counters {
  bool ok = false;
  uint64_t pokes = 0;    // router: entries that became deliverable (every mirror answered)
  uint64_t commits = 0;  // sum over mirrors: COMMITs persisted
  uint64_t acks = 0;     // sum over mirrors: ACKs handled (cumulative: one may cover several)
  uint64_t link_failures = 0;
};

provider_counters read_counters(const fs::path& router_admin,
                                const std::vector<fs::path>& mirror_admins);
bool links_up(const fs::path& router_admin, const std::vector<std::string>& mirrors);

// -- Statistics (load_stats.cpp) ----------------------------------------------------------------

struct distribution {
  size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

distribution summarize(std::vector<double> v);
json to_json(const distribution& d);
std::string fmt_ms(double ms);
std::string fmt_dist(const distribution& d);

// -- The tracker: every member's accepted entries, timed ----------------------------------------

enum class phase : uint8_t { warmup, latency, throughput };

struct message_record {
  size_t author = 0;
  phase ph = phase::warmup;
  steady::time_point t_call{};
  steady::time_point t_return{};
  std::vector<steady::time_point> accepted;  // per member; epoch: not yet
  size_t count = 0;
  uint64_t index = 0;
  bool send_failed = false;
};

// Shared by every runtime's event callback (CAF threads) and the driving threads.
class tracker {
public:
  explicit tracker(size_t n) : n_(n), inflight_(n, 0), entries_(n, 0) {}

  /// Starts message `id` by `author`, timed from now; its text carries the id.
  uint64_t begin(size_t author, phase ph) {
    std::lock_guard<std::mutex> g(mu_);
    message_record r;
    r.author = author;
    r.ph = ph;
    r.accepted.assign(n_, steady::time_point{});
    r.t_call = steady::now();
    msgs_.push_back(std::move(r));
    ++inflight_[author];
    return msgs_.size() - 1;
  }

  /// The send call of `id` returned (`ok`: with a value).
  void sent(uint64_t id, const expected<actors::sent_message>& r) {
    std::lock_guard<std::mutex> g(mu_);
    auto& m = msgs_[id];
    m.t_return = steady::now();
    if (!r) {
      m.send_failed = true;
      --inflight_[m.author];
      note_locked("send by member " + std::to_string(m.author) + " failed: " + r.error().message());
      cv_.notify_all();
    }
  }

  void on_event(size_t member, const actors::client_event& ev) {
    const auto now = steady::now();
    std::lock_guard<std::mutex> g(mu_);
    if (const auto* e = std::get_if<actors::entry_event>(&ev)) {
      ++entries_[member];
      const auto& a = e->entry;
      if (a.type == protocol::msg_type::setup) {
        ++setups_;
        cv_.notify_all();
        return;
      }
      if (a.type == protocol::msg_type::receipt) {
        ++receipts_;
        return;
      }
      if (a.type != protocol::msg_type::message) {
        ++other_entries_;
        return;
      }
      const std::string text(a.plaintext.begin(), a.plaintext.end());
      uint64_t id = 0;
      if (text.rfind("load ", 0) != 0 || std::sscanf(text.c_str() + 5, "%lu", &id) != 1
          || id >= msgs_.size()) {
        note_locked("member " + std::to_string(member) + " accepted an unknown or unreadable "
                    + "MESSAGE at index " + std::to_string(a.index) + (a.is_void ? " (VOID)" : ""));
        return;
      }
      auto& m = msgs_[id];
      if (m.accepted[member] != steady::time_point{}) {
        ++duplicates_;
        note_locked("member " + std::to_string(member) + " accepted message " + std::to_string(id)
                    + " twice");
        return;
      }
      if (m.count > 0 && m.index != a.index)
        note_locked("message " + std::to_string(id) + " at index " + std::to_string(a.index)
                    + " for member " + std::to_string(member) + " but " + std::to_string(m.index)
                    + " for another");
      m.index = a.index;
      m.accepted[member] = now;
      ++m.count;
      if (member == m.author) {
        if (!a.own)
          note_locked("the author's echo of " + std::to_string(id) + " is not own");
        if (!m.send_failed)
          --inflight_[m.author];
      }
      if (m.count == n_ || member == m.author)
        cv_.notify_all();
    } else if (const auto* al = std::get_if<actors::alarm_event>(&ev)) {
      ++alarms_;
      note_locked("member " + std::to_string(member) + ": "
                  + std::string(protocol::to_string(al->alarm.kind)) + " alarm at index "
                  + std::to_string(al->alarm.index) + " (" + al->alarm.party + ": "
                  + al->alarm.evidence + ")");
    } else if (const auto* d = std::get_if<actors::dropped_event>(&ev)) {
      ++dropped_;
      note_locked("member " + std::to_string(member) + ": message aseq " + std::to_string(d->aseq)
                  + " dropped: " + std::string(protocol::to_string(d->why.kind)) + " "
                  + d->why.detail);
    } else if (const auto* c = std::get_if<actors::connection_event>(&ev)) {
      if (c->state == actors::client_connection_state::online) {
        ++onlines_;
      } else if (c->state == actors::client_connection_state::waiting
                 || c->state == actors::client_connection_state::failed) {
        ++disconnects_;
        note_locked("member " + std::to_string(member) + " "
                    + std::string(actors::to_string(c->state)) + ": " + c->detail);
      }
    } else if (const auto* s = std::get_if<actors::storage_failure_event>(&ev)) {
      note_locked("member " + std::to_string(member) + ": storage failure: " + s->cause.message());
    } else if (std::holds_alternative<actors::history_expired_event>(ev)
               || std::holds_alternative<actors::recreated_event>(ev)) {
      note_locked("member " + std::to_string(member) + ": unexpected history/recreated event");
    }
  }

  /// Waits until `pred()` (under the lock) or `deadline`.
  template <class Pred>
  bool wait_until(steady::time_point deadline, Pred pred) {
    std::unique_lock<std::mutex> g(mu_);
    while (!pred()) {
      if (g_interrupted.load())
        return false;
      if (cv_.wait_until(g, std::min(deadline, steady::now() + 200ms)) == std::cv_status::timeout
          && steady::now() >= deadline)
        return pred();
    }
    return true;
  }

  bool complete_locked(uint64_t id) const { return msgs_[id].count == n_; }
  bool wait_complete(const std::vector<uint64_t>& ids, steady::time_point deadline) {
    return wait_until(deadline, [&] {
      return std::all_of(ids.begin(), ids.end(), [&](uint64_t i) { return complete_locked(i); });
    });
  }
  bool wait_setups(size_t want, steady::time_point deadline) {
    return wait_until(deadline, [&] { return setups_ >= want; });
  }
  /// Waits until `author` has fewer than `window` messages sent and not echoed.
  bool wait_window(size_t author, size_t window, steady::time_point deadline) {
    return wait_until(deadline, [&] { return inflight_[author] < window; });
  }

  std::vector<message_record> snapshot() const {
    std::lock_guard<std::mutex> g(mu_);
    return msgs_;
  }
  std::vector<std::string> notes() const {
    std::lock_guard<std::mutex> g(mu_);
    return notes_;
  }
  size_t receipts() const {
    std::lock_guard<std::mutex> g(mu_);
    return receipts_;
  }
  size_t disconnects() const {
    std::lock_guard<std::mutex> g(mu_);
    return disconnects_;
  }
  void note(const std::string& s) {
    std::lock_guard<std::mutex> g(mu_);
    note_locked(s);
  }

private:
  void note_locked(std::string s) {
    ++note_count_;
    if (notes_.size() < 40)
      notes_.push_back(std::move(s));
  }

  const size_t n_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<message_record> msgs_;
  std::vector<size_t> inflight_;
  std::vector<size_t> entries_;
  size_t setups_ = 0, receipts_ = 0, other_entries_ = 0, duplicates_ = 0, alarms_ = 0, dropped_ = 0,
         onlines_ = 0, disconnects_ = 0, note_count_ = 0;
  std::vector<std::string> notes_;
};

// -- One run: a deployment, n users, one conversation ------------------------------------------

struct cpu_sample {
  steady::time_point t{};
  double router = -1;
  /// Router cluster: nodes 2 ... N (node 1 is `router`).
  std::vector<double> router_nodes;
  std::vector<double> mirrors;
  double self = 0;
  double machine_busy = 0;
  double machine_total = 0;
  provider_counters counters;
  /// Summed over every member's store: synced writes and batches written.
  uint64_t client_syncs = 0;
  uint64_t client_batches = 0;
};

struct run_context {
  explicit run_context(const load_options& opts) : o(opts) {}
  const load_options& o;
  size_t n = 0;
  protocol::block_mode mode = protocol::block_mode::pk;
  fs::path root;          // this size's provider directory
  fs::path clients_root;  // this size's client stores
  std::optional<tools::running_deployment> spawned;
  tools::local_deployment layout;
  config::deployment_file deployment;
  fs::path router_admin;
  std::vector<fs::path> mirror_admins;
  std::unique_ptr<tracker> tr;
  std::unique_ptr<actors::client_system> sys;
  std::vector<std::unique_ptr<actors::client_runtime>> users;
  protocol::conv_id conv{};
  std::string text_pad;
  json out = json::object();
  bool problem = false;
};

/// What the processes used so far (load_system.cpp).
cpu_sample sample(const run_context& c);

// -- Set-up and phases (load_phases.cpp) --------------------------------------------------------

/// Starts (--spawn) or finds (--deployment) the providers.
expected<void> start_providers(run_context& c);
void stop_providers(run_context& c);
/// Creates and registers the users (in parallel), then the conversation, then warms every
/// pairwise channel up: two rounds in which every member sends once.
expected<void> set_up_users(run_context& c);
/// Latency: closed loop (one message in flight, authors in turn) or paced open loop at --rate.
void latency_phase(run_context& c);
/// Throughput: `senders` members each keep `window` messages in flight for warmup + duration.
void throughput_phase(run_context& c);

}  // namespace cowpi::bench::load

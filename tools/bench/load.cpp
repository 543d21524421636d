// SPDX-License-Identifier: Apache-2.0
// The end-to-end load generator behind `cowpi-bench load`: n users on one client_system (one
// client_runtime each, sharing scheduler threads) in one conversation against a router and two
// mirrors, measuring latency from send until every member accepted and sustained messages/s.
#include "load.hpp"

#include "cowpi/actors/client_runtime.hpp"
#include "cowpi/config/deployment_file.hpp"
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/rng.hpp"

#include "admin_socket.hpp"
#include "local_deployment.hpp"
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cowpi::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using json = nlohmann::json;

// Set by SIGINT/SIGTERM: phases end early and the spawned providers are stopped.
std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int /*sig*/) {
  g_interrupted.store(true);
}

double ms_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// -- Options ----------------------------------------------------------------------------------

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

// -- Small system helpers ---------------------------------------------------------------------

// A fresh directory "cowpi-load-XXXXXX" under `base` (TMPDIR or /tmp when empty).
expected<fs::path> make_run_dir(const std::string& base) {
  fs::path b = base;
  if (b.empty()) {
    const char* t = std::getenv("TMPDIR");
    b = (t != nullptr && *t != 0) ? fs::path(t) : fs::path("/tmp");
  }
  std::error_code ec;
  fs::create_directories(b, ec);
  std::string tmpl = (b / "cowpi-load-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    return fail(errc::storage, "cannot create a directory under " + b.string());
  return fs::path(tmpl);
}

// CPU seconds (user + system) of a process, from /proc/PID/stat; -1 when unreadable.
double process_cpu_s(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos)
    return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  double utime = 0;
  double stime = 0;
  // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
  for (int f = 3; f <= 15 && rest >> field; ++f) {
    if (f == 14)
      utime = std::strtod(field.c_str(), nullptr);
    if (f == 15)
      stime = std::strtod(field.c_str(), nullptr);
  }
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Machine-wide busy and total CPU seconds, from /proc/stat (iowait counts as idle).
std::pair<double, double> machine_cpu_s() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  double v[8] = {};
  for (double& x : v)
    in >> x;
  const double total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  const double idle = v[3] + v[4];
  const auto hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {(total - idle) / hz, total / hz};
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// One JSON request line to a provider's admin socket; the answer, or nullopt.
std::optional<json> admin_request(const fs::path& socket, const json& req) {
  auto answer = cowpi::tools::admin_call(socket, req, std::chrono::seconds(2));
  if (!answer)
    return std::nullopt;
  return *answer;
}

// What the providers' admin sockets say about ordering progress.
struct provider_counters {
  bool ok = false;
  uint64_t pokes = 0;    // router: entries that became deliverable (every mirror answered)
  uint64_t commits = 0;  // sum over mirrors: COMMITs persisted
  uint64_t acks = 0;     // sum over mirrors: ACKs handled (cumulative: one may cover several)
  uint64_t link_failures = 0;
};

provider_counters read_counters(const fs::path& router_admin,
                                const std::vector<fs::path>& mirror_admins) {
  provider_counters c;
  auto r = admin_request(router_admin, {{"get", "status"}});
  if (!r || !r->contains("sections"))
    return c;
  const auto& s = (*r)["sections"];
  if (s.contains("queues") && s["queues"].is_object())
    c.pokes = s["queues"].value("pokes", 0ULL);
  for (const auto& [name, sec] : s.items())
    if (name.rfind("link:", 0) == 0 && sec.is_object())
      c.link_failures += sec.value("failures", 0ULL);
  for (const auto& m : mirror_admins) {
    auto a = admin_request(m, {{"get", "status"}});
    if (a && a->contains("sections") && (*a)["sections"].contains("mirror")) {
      c.commits += (*a)["sections"]["mirror"].value("commits", 0ULL);
      c.acks += (*a)["sections"]["mirror"].value("acks", 0ULL);
    }
  }
  c.ok = true;
  return c;
}

bool links_up(const fs::path& router_admin, const std::vector<std::string>& mirrors) {
  auto r = admin_request(router_admin, {{"get", "status"}});
  if (!r || !r->contains("sections"))
    return false;
  for (const auto& m : mirrors) {
    const auto& sec = (*r)["sections"]["link:" + m];
    if (!sec.is_object() || !sec.value("up", false) || !sec.value("keys", false))
      return false;
  }
  return true;
}

// -- Statistics -------------------------------------------------------------------------------

struct distribution {
  size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

distribution summarize(std::vector<double> v) {
  distribution d;
  d.count = v.size();
  if (v.empty())
    return d;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    const auto k = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
  };
  d.p50 = rank(0.50);
  d.p90 = rank(0.90);
  d.p99 = rank(0.99);
  d.max = v.back();
  double sum = 0;
  for (double x : v)
    sum += x;
  d.mean = sum / static_cast<double>(v.size());
  return d;
}

json to_json(const distribution& d) {
  return {{"count", d.count}, {"p50_ms", d.p50}, {"p90_ms", d.p90},
          {"p99_ms", d.p99},  {"max_ms", d.max}, {"mean_ms", d.mean}};
}

std::string fmt_ms(double ms) {
  char b[32];
  std::snprintf(b, sizeof b, ms < 10 ? "%.2f" : (ms < 100 ? "%.1f" : "%.0f"), ms);
  return b;
}

std::string fmt_dist(const distribution& d) {
  return "p50 " + fmt_ms(d.p50) + "  p90 " + fmt_ms(d.p90) + "  p99 " + fmt_ms(d.p99) + "  max "
         + fmt_ms(d.max) + " ms  (n=" + std::to_string(d.count) + ")";
}

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

cpu_sample sample(const run_context& c) {
  cpu_sample s;
  s.t = steady::now();
  if (c.spawned) {
    s.router = process_cpu_s(c.spawned->router.pid());
    for (const auto& m : c.spawned->mirrors)
      s.mirrors.push_back(process_cpu_s(m.pid()));
  }
  s.self = process_cpu_s(::getpid());
  std::tie(s.machine_busy, s.machine_total) = machine_cpu_s();
  if (!c.router_admin.empty())
    s.counters = read_counters(c.router_admin, c.mirror_admins);
  for (const auto& u : c.users)
    if (auto st = u->store_stats()) {
      s.client_syncs += st->syncs;
      s.client_batches += st->batches;
    }
  return s;
}

std::string member_name(const std::string& prefix, size_t k) {
  char b[24];
  std::snprintf(b, sizeof b, "%03zu", k);
  return prefix + b;
}

// Sends message `id` from member `author` and records the send call.
void send_one(run_context& c, size_t author, phase ph, std::vector<uint64_t>* ids) {
  const uint64_t id = c.tr->begin(author, ph);
  if (ids != nullptr)
    ids->push_back(id);
  const std::string text = "load " + std::to_string(id) + " " + c.text_pad;
  auto r = c.users[author]->send(c.conv, text);
  c.tr->sent(id, r);
}

expected<void> start_providers(run_context& c) {
  if (!c.o.spawn) {
    COWPI_TRY(c.deployment, config::load_deployment_file(c.o.deployment));
    if (!c.o.admin.empty())
      c.router_admin = c.o.admin;
    return {};
  }
  fs::path binary = c.o.provider;
  if (binary.empty()) {
    std::error_code ec;
    binary = fs::read_symlink("/proc/self/exe", ec).parent_path() / "cowpi-provider";
  }
  if (!fs::exists(binary))
    return fail(errc::not_found, binary.string() + " not found (use --provider PATH)");
  c.layout.dir = c.root;
  c.layout.log_level = config::log_level::warn;
  c.layout.mirror_nodes = c.o.mirror_nodes;
  COWPI_TRY(auto run, tools::start_local_deployment(c.layout, binary));
  c.spawned.emplace(std::move(run));
  c.deployment = c.spawned->deployment;
  c.router_admin = c.root / c.layout.router / "admin.sock";
  for (const auto& m : c.layout.mirror_processes())
    c.mirror_admins.push_back(c.root / m / "admin.sock");
  const auto deadline = steady::now() + 30s;
  while (!links_up(c.router_admin, c.layout.mirror_processes())) {
    if (steady::now() > deadline || g_interrupted.load())
      return fail(errc::unavailable, "the router's mirror links did not come up within 30 s");
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

void stop_providers(run_context& c) {
  if (!c.spawned)
    return;
  c.spawned->router.signal(SIGTERM);
  for (auto& m : c.spawned->mirrors)
    m.signal(SIGTERM);
  if (!c.spawned->router.wait(20s))
    c.tr->note("the router did not stop within 20 s of SIGTERM");
  for (auto& m : c.spawned->mirrors)
    if (!m.wait(20s))
      c.tr->note("a mirror did not stop within 20 s of SIGTERM");
  c.spawned.reset();  // SIGKILLs whatever still runs
}

// Creates and registers the users (in parallel), then the conversation, then warms every
// pairwise channel up: two rounds in which every member sends once.
expected<void> set_up_users(run_context& c) {
  actors::client_system_options so;
  so.scheduler_threads = c.o.threads;
  c.sys = std::make_unique<actors::client_system>(so);
  c.tr = std::make_unique<tracker>(c.n);
  c.users.resize(c.n);
  std::string prefix = "u";
  if (!c.o.spawn) {
    crypto::system_rng r;
    std::array<uint8_t, 3> b{};
    r.fill(b);
    prefix = "load-" + to_hex(b) + "-u";
  }
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  std::optional<error> first_error;
  auto worker = [&] {
    for (size_t k = next++; k < c.n; k = next++) {
      actors::client_runtime_options ro;
      ro.deployment = c.deployment;
      const std::string name = member_name(prefix, k);
      ro.store_path = c.clients_root / name;
      ro.key = storage::key_file{c.clients_root / (name + ".key")};
      ro.connect_timeout = 10s;
      ro.request_timeout = 30s;
      ro.dedicated_thread = false;
      tracker* t = c.tr.get();
      ro.on_event = [t, k](const actors::client_event& e) { t->on_event(k, e); };
      auto rt = actors::client_runtime::init(*c.sys, name, std::move(ro));
      expected<void> reg = rt ? (*rt)->register_user() : expected<void>{};
      std::lock_guard<std::mutex> g(err_mu);
      if (!rt || !reg) {
        if (!first_error)
          first_error = rt ? reg.error() : rt.error();
        continue;
      }
      c.users[k] = std::move(*rt);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 0; t < std::min<size_t>(8, c.n); ++t)
    pool.emplace_back(worker);
  for (auto& t : pool)
    t.join();
  if (first_error)
    return unexpected<error>{error{first_error->code, "registering: " + first_error->context}};

  std::vector<std::string> others;
  for (size_t k = 1; k < c.n; ++k)
    others.push_back(c.users[k]->id());
  COWPI_TRY(c.conv, c.users[0]->create(others, c.mode));
  if (!c.tr->wait_setups(c.n, steady::now() + 60s))
    return fail(errc::timeout, "not every member accepted the SETUP within 60 s");
  for (int round = 0; round < 2; ++round) {
    std::vector<uint64_t> ids;
    for (size_t k = 0; k < c.n; ++k)
      send_one(c, k, phase::warmup, &ids);
    if (!c.tr->wait_complete(ids, steady::now() + 120s))
      return fail(errc::timeout, "the warm-up messages were not all accepted within 120 s");
  }
  return {};
}

// Latency: closed loop (one message in flight, authors in turn) or paced open loop at --rate
// (authors in turn, send calls from a pool of 8 threads at their scheduled times).
void latency_phase(run_context& c) {
  std::vector<uint64_t> ids;
  std::mutex ids_mu;
  const auto t0 = steady::now();
  size_t late = 0;
  if (c.o.rate <= 0) {
    for (size_t m = 0; m < c.o.messages && !g_interrupted.load(); ++m) {
      send_one(c, m % c.n, phase::latency, &ids);
      if (!c.tr->wait_complete({ids.back()}, steady::now() + 30s))
        c.tr->note("latency: message " + std::to_string(ids.back())
                   + " not accepted by every member within 30 s");
    }
  } else {
    std::atomic<size_t> next{0};
    std::atomic<size_t> late_count{0};
    const auto interval = std::chrono::duration<double>(1.0 / c.o.rate);
    auto worker = [&] {
      for (size_t m = next++; m < c.o.messages && !g_interrupted.load(); m = next++) {
        const auto at = t0 + std::chrono::duration_cast<steady::duration>(interval * m);
        if (steady::now() > at + 5ms)
          ++late_count;
        std::this_thread::sleep_until(at);
        std::vector<uint64_t> one;
        send_one(c, m % c.n, phase::latency, &one);
        std::lock_guard<std::mutex> g(ids_mu);
        ids.push_back(one.front());
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 0; t < std::min<size_t>(8, c.o.messages); ++t)
      pool.emplace_back(worker);
    for (auto& t : pool)
      t.join();
    late = late_count.load();
    if (!c.tr->wait_complete(ids, steady::now() + 60s))
      c.tr->note("latency: messages not accepted by every member within 60 s of the last send");
  }
  const double wall_s = std::chrono::duration<double>(steady::now() - t0).count();
  const auto msgs = c.tr->snapshot();
  std::vector<double> e2e, call, echo, first_other, last_other;
  size_t incomplete = 0;
  for (uint64_t id : ids) {
    const auto& m = msgs[id];
    if (m.count < c.n) {
      ++incomplete;
      continue;
    }
    steady::time_point first = steady::time_point::max(), last{};
    for (size_t k = 0; k < c.n; ++k) {
      if (k == m.author)
        continue;
      first = std::min(first, m.accepted[k]);
      last = std::max(last, m.accepted[k]);
    }
    last = std::max(last, m.accepted[m.author]);
    e2e.push_back(ms_between(m.t_call, last));
    call.push_back(ms_between(m.t_call, m.t_return));
    echo.push_back(ms_between(m.t_call, m.accepted[m.author]));
    first_other.push_back(ms_between(m.t_call, first));
    last_other.push_back(ms_between(first, last));
  }
  const auto d = summarize(e2e);
  const auto dc = summarize(call), de = summarize(echo), df = summarize(first_other),
             ds = summarize(last_other);
  std::printf("  latency, %s, %zu messages in %.1f s:\n",
              c.o.rate <= 0 ? "closed loop (1 in flight)" : "paced open loop", ids.size(), wall_s);
  if (c.o.rate > 0)
    std::printf("    rate %.1f msg/s, %zu sends started late\n", c.o.rate, late);
  std::printf("    send -> every member accepted: %s\n", fmt_dist(d).c_str());
  std::printf("    send call returned (queued)    p50 %s ms\n", fmt_ms(dc.p50).c_str());
  std::printf("    author's echo accepted         p50 %s ms\n", fmt_ms(de.p50).c_str());
  std::printf("    first other member accepted    p50 %s ms\n", fmt_ms(df.p50).c_str());
  std::printf("    first -> last member spread    p50 %s ms  p99 %s ms\n", fmt_ms(ds.p50).c_str(),
              fmt_ms(ds.p99).c_str());
  if (incomplete > 0) {
    std::printf("    %zu messages never reached every member\n", incomplete);
    c.problem = true;
  }
  c.out["latency"] = {{"mode", c.o.rate <= 0 ? "closed" : "paced"},
                      {"rate", c.o.rate},
                      {"messages", ids.size()},
                      {"wall_s", wall_s},
                      {"late_sends", late},
                      {"incomplete", incomplete},
                      {"e2e", to_json(d)},
                      {"send_call", to_json(dc)},
                      {"author_echo", to_json(de)},
                      {"first_other", to_json(df)},
                      {"spread", to_json(ds)}};
}

// Throughput: `senders` members each keep `window` messages in flight for warmup + duration;
// counted over the last `duration` seconds at the reference member (the last one).
void throughput_phase(run_context& c) {
  const size_t senders = std::min(c.o.senders, c.n);
  std::atomic<bool> stop{false};
  std::mutex ids_mu;
  std::vector<uint64_t> ids;
  auto worker = [&](size_t author) {
    while (!stop.load() && !g_interrupted.load()) {
      if (!c.tr->wait_window(author, c.o.window, steady::now() + 100ms))
        continue;
      if (stop.load())
        break;
      std::vector<uint64_t> one;
      send_one(c, author, phase::throughput, &one);
      std::lock_guard<std::mutex> g(ids_mu);
      ids.push_back(one.front());
    }
  };
  const auto start = steady::now();
  std::vector<std::thread> pool;
  for (size_t s = 0; s < senders; ++s)
    pool.emplace_back(worker, s);
  const auto ta =
      start
      + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(c.o.warmup_s));
  std::this_thread::sleep_until(ta);
  const auto sa = sample(c);
  const auto tb =
      ta
      + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(c.o.duration_s));
  while (steady::now() < tb && !g_interrupted.load())
    std::this_thread::sleep_for(50ms);
  const auto sb = sample(c);
  stop = true;
  for (auto& t : pool)
    t.join();
  const auto drain_start = steady::now();
  bool drained = false;
  {
    std::vector<uint64_t> copy;
    {
      std::lock_guard<std::mutex> g(ids_mu);
      copy = ids;
    }
    drained = c.tr->wait_complete(copy, steady::now() + 120s);
  }
  const double drain_s = std::chrono::duration<double>(steady::now() - drain_start).count();
  const double window_s = std::chrono::duration<double>(sb.t - sa.t).count();
  const auto msgs = c.tr->snapshot();
  const size_t ref = c.n - 1;
  size_t at_ref = 0, sent_in_window = 0, incomplete = 0, failed = 0;
  std::vector<double> e2e;
  for (uint64_t id : ids) {
    const auto& m = msgs[id];
    if (m.send_failed)
      ++failed;
    if (m.t_call >= sa.t && m.t_call < sb.t)
      ++sent_in_window;
    if (m.accepted[ref] >= sa.t && m.accepted[ref] < sb.t)
      ++at_ref;
    if (m.count < c.n) {
      ++incomplete;
      if (incomplete <= 5) {
        std::string missing;
        for (size_t k = 0; k < c.n; ++k)
          if (m.accepted[k] == steady::time_point{})
            missing += " " + std::to_string(k);
        c.tr->note("throughput: message " + std::to_string(id) + " by member "
                   + std::to_string(m.author) + " missing at members" + missing);
      }
      continue;
    }
    if (m.t_call >= sa.t && m.t_call < sb.t) {
      steady::time_point last{};
      for (const auto& t : m.accepted)
        last = std::max(last, t);
      e2e.push_back(ms_between(m.t_call, last));
    }
  }
  const double rate_ref = static_cast<double>(at_ref) / window_s;
  const auto d = summarize(e2e);
  std::printf("  throughput, %zu senders x %zu in flight, %.1f s measured after %.1f s:\n", senders,
              c.o.window, window_s, c.o.warmup_s);
  std::printf("    ordered and accepted at member %zu: %.1f msg/s (%zu sent in the window)\n", ref,
              rate_ref, sent_in_window);
  json j = {{"senders", senders},
            {"window", c.o.window},
            {"measured_s", window_s},
            {"warmup_s", c.o.warmup_s},
            {"msgs_per_s_at_reference", rate_ref},
            {"sent_in_window", sent_in_window},
            {"sent_total", ids.size()},
            {"send_failures", failed},
            {"incomplete_after_drain", incomplete},
            {"drain_s", drain_s},
            {"e2e_under_load", to_json(d)}};
  if (sa.counters.ok && sb.counters.ok) {
    const double pokes = static_cast<double>(sb.counters.pokes - sa.counters.pokes) / window_s;
    const double commits =
        static_cast<double>(sb.counters.commits - sa.counters.commits) / window_s;
    const uint64_t committed = sb.counters.commits - sa.counters.commits;
    const double acks_per_commit = committed > 0
                                       ? static_cast<double>(sb.counters.acks - sa.counters.acks)
                                             / static_cast<double>(committed)
                                       : 0;
    std::printf(
        "    router: %.1f entries/s deliverable (messages + receipts); mirrors: %.1f "
        "commits/s together, %.2f ACKs per commit; link failures %lu\n",
        pokes, commits, acks_per_commit, static_cast<unsigned long>(sb.counters.link_failures));
    j["router_entries_per_s"] = pokes;
    j["mirror_commits_per_s"] = commits;
    j["mirror_acks_per_commit"] = acks_per_commit;
    j["link_failures"] = sb.counters.link_failures;
  }
  std::printf("    send -> every member accepted, under load: %s\n", fmt_dist(d).c_str());
  const double per = at_ref > 0 ? 1000.0 / static_cast<double>(at_ref) : 0;
  json cpu = json::object();
  const double self_s = sb.self - sa.self;
  const double busy_s = sb.machine_busy - sa.machine_busy;
  double ours = self_s;
  std::string line = "    CPU per message: load generator (all clients) " + fmt_ms(self_s * per);
  cpu["clients_ms_per_msg"] = self_s * per;
  if (sa.router >= 0) {
    const double router_s = sb.router - sa.router;
    ours += router_s;
    line += ", router " + fmt_ms(router_s * per);
    cpu["router_ms_per_msg"] = router_s * per;
    for (size_t k = 0; k < sa.mirrors.size(); ++k) {
      const double m_s = sb.mirrors[k] - sa.mirrors[k];
      ours += m_s;
      line += (c.layout.mirror_nodes > 1 ? ", " + c.layout.mirror_processes().at(k) + " "
                                         : std::string(", mirror "))
              + fmt_ms(m_s * per);
      cpu["mirror_ms_per_msg"].push_back(m_s * per);
    }
  }
  line += " ms";
  std::printf("%s\n", line.c_str());
  if (at_ref > 0) {
    // Per message per member: how many synced writes (and batches) a member's store takes.
    const double denom = static_cast<double>(at_ref) * static_cast<double>(c.n);
    const double syncs = static_cast<double>(sb.client_syncs - sa.client_syncs) / denom;
    const double batches = static_cast<double>(sb.client_batches - sa.client_batches) / denom;
    std::printf("    client stores: %.2f synced writes, %.2f batches per message per member\n",
                syncs, batches);
    j["client_syncs_per_msg_per_member"] = syncs;
    j["client_batches_per_msg_per_member"] = batches;
  }
  std::printf("    cores busy: ours %.2f, whole machine %.2f (of %ld)\n", ours / window_s,
              busy_s / window_s, ::sysconf(_SC_NPROCESSORS_ONLN));
  cpu["ours_cores"] = ours / window_s;
  cpu["machine_cores"] = busy_s / window_s;
  j["cpu"] = cpu;
  if (!drained || incomplete > 0 || failed > 0) {
    std::printf(
        "    %zu messages not accepted by every member %.0f s after the senders "
        "stopped; %zu send calls failed\n",
        incomplete, drain_s, failed);
    c.problem = true;
  } else {
    std::printf("    drained in %.2f s: every message accepted exactly once by every member\n",
                drain_s);
  }
  c.out["throughput"] = j;
}

void run_size(const load_options& o, size_t n, protocol::block_mode mode, const fs::path& root,
              const fs::path& clients, json& all, bool& problem) {
  run_context c(o);
  c.n = n;
  c.mode = mode;
  const std::string mode_name(protocol::to_string(mode));
  c.root = root / ("n" + std::to_string(n) + "-" + mode_name);
  c.clients_root = clients / ("n" + std::to_string(n) + "-" + mode_name + "-clients");
  std::error_code ec;
  fs::create_directories(c.root, ec);
  fs::create_directories(c.clients_root, ec);
  c.text_pad.assign(o.size > 16 ? o.size - 16 : 0, 'x');
  std::printf("\n== %zu members, %s mode, 2 mirrors, loopback (load %s)\n", n, mode_name.c_str(),
              load_average().c_str());
  std::fflush(stdout);
  c.out["members"] = n;
  c.out["mode"] = mode_name;
  c.out["load_average_before"] = load_average();
  auto started = start_providers(c);
  if (!started) {
    std::printf("  cannot start: %s\n", started.error().message().c_str());
    problem = true;
    c.out["error"] = started.error().message();
    all.push_back(c.out);
    return;
  }
  const auto t_setup = steady::now();
  auto ready = set_up_users(c);
  std::printf("  set-up (register %zu users, SETUP, 2 warm-up rounds): %.1f s\n", n,
              std::chrono::duration<double>(steady::now() - t_setup).count());
  std::fflush(stdout);
  if (!ready) {
    std::printf("  set-up failed: %s\n", ready.error().message().c_str());
    c.problem = true;
    c.out["error"] = ready.error().message();
  } else {
    if (o.phases != "throughput")
      latency_phase(c);
    std::fflush(stdout);
    if (o.phases != "latency" && !g_interrupted.load())
      throughput_phase(c);
  }
  std::fflush(stdout);
  if (c.tr)
    c.out["receipts_accepted"] = c.tr->receipts();
  c.users.clear();
  c.sys.reset();
  if (c.spawned)
    stop_providers(c);
  if (c.tr) {
    const auto notes = c.tr->notes();
    for (const auto& s : notes)
      std::printf("  problem: %s\n", s.c_str());
    if (!notes.empty())
      c.problem = true;
    c.out["problems"] = notes;
  }
  problem = problem || c.problem;
  all.push_back(c.out);
}

}  // namespace

int run_load(int argc, char** argv) {
  load_options o;
  CLI::App app{
      "cowpi-bench load: the end-to-end load generator. For each conversation size it starts\n"
      "(with --spawn, the default) a router and two mirrors as cowpi-provider processes on\n"
      "loopback, runs that many users as client runtimes in this process (one shared actor\n"
      "system), registers them, creates one conversation with all of them (once per block\n"
      "mode), warms every pairwise channel up, then measures:\n"
      "  latency     from the send call until every member, the author's echo included, has\n"
      "              accepted the message (persisted): closed loop, one message in flight,\n"
      "              authors in turn; or paced open loop with --rate;\n"
      "  throughput  --senders members each keep --window messages in flight; ordered\n"
      "              messages/s accepted by the last member, the router's and mirrors' counters\n"
      "              (admin sockets) and CPU per message per process.\n"
      "Every message must reach every member exactly once; anything else is reported as a\n"
      "problem (exit status 1).",
      "cowpi-bench load"};
  app.add_option("--members", o.members, "conversation sizes, comma-separated (each >= 2)")
      ->delimiter(',')
      ->check(CLI::Range(size_t{2}, size_t{1000}))
      ->capture_default_str();
  app.add_option("--modes", o.modes,
                 "block modes of the conversation, comma-separated; each size runs in each "
                 "(docs/protocol.md §5.2)")
      ->delimiter(',')
      ->check(CLI::IsMember({"public-key", "chain"}))
      ->capture_default_str();
  app.add_option("--messages", o.messages, "messages in the latency phase")
      ->check(CLI::Range(size_t{1}, size_t{1000000}))
      ->capture_default_str();
  app.add_option("--rate", o.rate,
                 "latency phase: paced open loop at this many messages/s (0: closed loop)")
      ->check(CLI::Range(0.0, 100000.0))
      ->capture_default_str();
  app.add_option("--senders", o.senders, "throughput phase: members sending concurrently")
      ->check(CLI::Range(size_t{1}, size_t{1000}))
      ->capture_default_str();
  app.add_option("--window", o.window,
                 "throughput phase: messages in flight per sender (sent, not yet echoed)")
      ->check(CLI::Range(size_t{1}, size_t{64}))
      ->capture_default_str();
  app.add_option("--duration", o.duration_s, "throughput phase: seconds measured")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "throughput phase: seconds sent before measuring")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--size", o.size, "plaintext bytes per message")
      ->check(CLI::Range(size_t{16}, size_t{60000}))
      ->capture_default_str();
  app.add_option("--threads", o.threads,
                 "scheduler threads of the clients' actor system (client store writes are "
                 "synced and block a thread)")
      ->check(CLI::Range(size_t{1}, size_t{256}))
      ->capture_default_str();
  app.add_option("--mirror-nodes", o.mirror_nodes,
                 "nodes per spawned mirror: > 1 runs each mirror as a cluster (the CPU line "
                 "then lists every node; one conversation lives on one node of each)")
      ->check(CLI::Range(size_t{1}, size_t{16}))
      ->capture_default_str();
  app.add_option("--phases", o.phases, "latency, throughput or both")
      ->check(CLI::IsMember({"latency", "throughput", "both"}))
      ->capture_default_str();
  auto* spawn =
      app.add_flag("--spawn", o.spawn, "start a router and two mirrors per size (the default)");
  app.add_option("--deployment", o.deployment,
                 "use the running deployment of this client deployment file instead; users get "
                 "fresh random ids")
      ->check(CLI::ExistingFile)
      ->excludes(spawn);
  app.add_option("--admin", o.admin,
                 "with --deployment: the router's admin socket, for its counters");
  app.add_option("--provider", o.provider,
                 "the cowpi-provider binary (default: next to this executable)");
  app.add_option("--dir", o.dir,
                 "where the spawned providers' data goes: a fresh cowpi-load-XXXXXX directory is "
                 "made under it (default: $TMPDIR or /tmp)");
  app.add_option("--clients-dir", o.clients_dir,
                 "where the client stores go, likewise (default: with the providers); a tmpfs "
                 "such as /dev/shm takes the clients' fsyncs out of the measurement");
  app.add_flag("--keep", o.keep, "keep the data directories");
  app.add_flag("--smoke", o.smoke,
               "a tiny run: 3 members, 20 messages, 2 s of throughput after 0.5 s");
  app.add_option("--json", o.json_path, "also write the results as JSON to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.spawn = o.deployment.empty();
  if (o.smoke) {
    o.members = {3};
    o.messages = 20;
    o.duration_s = 2;
    o.warmup_s = 0.5;
  }

  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto root = make_run_dir(o.dir);
  if (!root) {
    std::fprintf(stderr, "cowpi-bench load: %s\n", root.error().message().c_str());
    return 2;
  }
  fs::path clients = *root;
  if (!o.clients_dir.empty()) {
    auto cr = make_run_dir(o.clients_dir);
    if (!cr) {
      std::fprintf(stderr, "cowpi-bench load: %s\n", cr.error().message().c_str());
      return 2;
    }
    clients = *cr;
  }
  std::printf(
      "cowpi-bench load: providers in %s, clients in %s, %zu client threads, "
      "%ld cores, load %s\n",
      root->c_str(), clients.c_str(), o.threads, ::sysconf(_SC_NPROCESSORS_ONLN),
      load_average().c_str());
  json all = json::array();
  bool problem = false;
  for (size_t n : o.members)
    for (const auto& m : o.modes) {
      if (g_interrupted.load())
        break;
      run_size(o, n, m == "chain" ? protocol::block_mode::chain : protocol::block_mode::pk, *root,
               clients, all, problem);
    }
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path, std::ios::trunc);
    f << json{{"runs", all}}.dump(2) << "\n";
  }
  if (!o.keep) {
    std::error_code ec;
    fs::remove_all(*root, ec);
    if (clients != *root)
      fs::remove_all(clients, ec);
  } else {
    std::printf("\nkept %s%s%s\n", root->c_str(), clients != *root ? " and " : "",
                clients != *root ? clients.c_str() : "");
  }
  if (g_interrupted.load())
    return 130;
  return problem ? 1 : 0;
}

}  // namespace cowpi::bench

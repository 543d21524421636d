// SPDX-License-Identifier: Apache-2.0
// The integration-test harness: deployments of real providers and in-process users.
#include "client_harness.hpp"

#include "support.hpp"

#include <set>
#include <sstream>

namespace cowpi::testing {

live_deployment::live_deployment(const std::string& name,
                                 std::map<std::string, std::map<std::string, std::string>> env,
                                 std::filesystem::path binary, bool wait_ready,
                                 const std::function<void(tools::local_deployment&)>& configure)
    : binary_(std::move(binary)), dir_(name), run_(fail(errc::unavailable, "not started")) {
  d_.dir = dir_.path();
  d_.log_level = config::log_level::info;
  if (configure)
    configure(d_);
  run_ = tools::start_local_deployment(d_, binary_, env);
  if (run_) {
    // Wait until the router's links to both mirrors are up and their keys in its directory
    // before users talk to it.
    if (wait_ready)
      (void)eventually([&] { return tools::router_ready(d_); });
    sys_ = std::make_unique<actors::client_system>();
  }
}

live_deployment::~live_deployment() {
  users_.clear();
  sys_.reset();
}

actors::client_runtime_options live_deployment::options_for(const std::string& id) {
  actors::client_runtime_options o;
  o.deployment = run_->deployment;
  o.store_path = d_.dir / "clients" / id;
  o.key = storage::key_file{d_.dir / "clients" / (id + ".key")};
  o.connect_timeout = std::chrono::seconds(10);
  o.request_timeout = std::chrono::seconds(30);
  o.reconnect_min = std::chrono::milliseconds(100);
  o.reconnect_max = std::chrono::milliseconds(1000);
  o.housekeeping_interval = std::chrono::milliseconds(100);
  o.quiet_period = std::chrono::milliseconds(300);
  o.clock = [this] { return clock_.load(); };
  o.on_event = [this, id](const actors::client_event& ev) {
    if (const auto* a = std::get_if<actors::alarm_event>(&ev)) {
      std::lock_guard<std::mutex> g(mu_);
      alarms_[id].push_back(a->alarm);
    }
    if (const auto* h = std::get_if<actors::history_expired_event>(&ev)) {
      std::lock_guard<std::mutex> g(mu_);
      expired_[id].push_back(h->detail);
    }
  };
  if (auto it = tweaks_.find(id); it != tweaks_.end())
    it->second(o);
  return o;
}

actors::client_runtime& live_deployment::add_user(
    const std::string& id, const std::function<void(actors::client_runtime_options&)>& tweak) {
  std::error_code ec;
  std::filesystem::create_directories(d_.dir / "clients", ec);
  if (tweak)
    tweaks_[id] = tweak;
  auto rt = actors::client_runtime::init(*sys_, id, options_for(id));
  EXPECT_TRUE(rt.has_value()) << id << ": " << rt.error().message();
  auto& r = *users_.emplace(id, std::move(*rt)).first->second;
  auto reg = r.register_user();
  EXPECT_TRUE(reg.has_value()) << id << ": " << reg.error().message();
  return r;
}

void live_deployment::close_user(const std::string& id) {
  users_.erase(id);
}

actors::client_runtime& live_deployment::reopen_user(const std::string& id) {
  auto rt = actors::client_runtime::load(*sys_, options_for(id));
  EXPECT_TRUE(rt.has_value()) << id << ": " << rt.error().message();
  auto& r = *users_.insert_or_assign(id, std::move(*rt)).first->second;
  auto c = r.connect();
  EXPECT_TRUE(c.has_value()) << id << ": " << c.error().message();
  return r;
}

bool live_deployment::settle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Two rounds of all-idle: an entry accepted by one user can make another's receipt due.
  int quiet_rounds = 0;
  std::string last;  // what each user's last sync said, for the failure message
  while (quiet_rounds < 2) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ADD_FAILURE() << "not settled after " << timeout.count() << " ms:" << last;
      return false;
    }
    bool all_idle = true;
    size_t accepted = 0;
    last.clear();
    for (auto& [id, rt] : users_) {
      auto r = rt->sync(std::chrono::seconds(10));
      if (!r || !r->idle)
        all_idle = false;
      if (r)
        accepted += r->accepted;
      last += " " + id
              + (r ? ": accepted " + std::to_string(r->accepted) + ", outbox "
                         + std::to_string(r->outbox) + (r->idle ? ", idle" : ", busy")
                   : ": " + r.error().message());
    }
    quiet_rounds = all_idle && accepted == 0 ? quiet_rounds + 1 : 0;
  }
  return true;
}

std::vector<actors::transcript_line> live_deployment::transcript(const std::string& id,
                                                                 const protocol::conv_id& conv) {
  auto t = user(id).transcript(conv);
  EXPECT_TRUE(t.has_value()) << id << ": " << t.error().message();
  return t ? *t : std::vector<actors::transcript_line>{};
}

std::vector<protocol::alarm> live_deployment::alarms(const std::string& id) {
  std::lock_guard<std::mutex> g(mu_);
  return alarms_[id];
}

std::vector<std::string> live_deployment::history_expired(const std::string& id) {
  std::lock_guard<std::mutex> g(mu_);
  return expired_[id];
}

tools::provider_process& live_deployment::process(const std::string& provider) {
  const auto routers = d_.router_processes();
  if (provider == routers.front())
    return run_->router;
  for (size_t k = 1; k < routers.size(); ++k)
    if (routers[k] == provider)
      return run_->router_nodes[k - 1];
  const auto names = d_.mirror_processes();
  for (size_t k = 0; k < names.size(); ++k)
    if (names[k] == provider)
      return run_->mirrors[k];
  ADD_FAILURE() << "no provider " << provider;
  return run_->router;
}

bool live_deployment::restart(const std::string& provider,
                              const std::map<std::string, std::string>& env) {
  auto p = tools::restart_provider(d_, provider, binary_, env);
  EXPECT_TRUE(p.has_value()) << provider << ": " << p.error().message();
  if (!p)
    return false;
  process(provider) = std::move(*p);
  return true;
}

bool live_deployment::restart_after_stop(const std::string& provider,
                                         const std::map<std::string, std::string>& env) {
  auto& p = process(provider);
  p.signal(SIGTERM);
  if (!p.wait(std::chrono::seconds(30))) {
    ADD_FAILURE() << provider << " did not stop within 30 s of SIGTERM";
    return false;
  }
  return restart(provider, env);
}

void expect_one_conversation(live_deployment& dep, const protocol::conv_id& conv,
                             const std::vector<std::string>& users) {
  std::map<uint64_t, std::pair<std::string, hash32>> seen;
  for (const auto& u : users) {
    auto t = dep.transcript(u, conv);
    std::set<std::pair<std::string, uint64_t>> authored;
    for (size_t k = 0; k < t.size(); ++k) {
      const auto& e = t[k].entry;
      if (k > 0) {
        EXPECT_EQ(e.index, t[k - 1].entry.index + 1)
            << u << ": indices not consecutive at " << e.index;
      }
      EXPECT_TRUE(authored.emplace(e.author, e.aseq).second)
          << u << ": (" << e.author << ", " << e.aseq << ") accepted twice";
      auto [it, fresh] = seen.emplace(e.index, std::make_pair(u, e.t));
      if (!fresh) {
        EXPECT_EQ(it->second.second, e.t)
            << it->second.first << " and " << u << " differ at index " << e.index;
      }
    }
  }
}

std::map<std::string, double> blocking_store_calls(const live_deployment& dep) {
  const auto& d = dep.layout();
  std::vector<std::string> names = d.router_processes();
  for (const auto& m : d.mirror_processes())
    names.push_back(m);
  std::map<std::string, double> out;
  for (const auto& n : names) {
    auto r = admin_request(d.dir / n / "admin.sock", {{"get", "metrics"}});
    if (!r.contains("metrics") || !r["metrics"].is_string()) {
      out[n] = -1;
      continue;
    }
    std::istringstream text(r["metrics"].get<std::string>());
    double sum = 0;
    int series = 0;
    for (std::string line; std::getline(text, line);) {
      if (line.rfind("cowpi_store_blocking_calls_total{", 0) != 0)
        continue;
      sum += std::stod(line.substr(line.rfind(' ') + 1));
      ++series;
    }
    out[n] = series == 3 ? sum : -1;
  }
  return out;
}

void expect_no_blocking_store_calls(const live_deployment& dep) {
  for (const auto& [name, calls] : blocking_store_calls(dep))
    EXPECT_EQ(calls, 0) << name << ": store calls that may block on a scheduler or I/O thread";
}

std::vector<std::string> texts(const std::vector<actors::transcript_line>& t) {
  std::vector<std::string> out;
  for (const auto& l : t)
    if (l.entry.type == protocol::msg_type::message && !l.entry.is_void)
      out.emplace_back(l.entry.plaintext.begin(), l.entry.plaintext.end());
  return out;
}

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// `cowpi-bench load`: the providers, the users' set-up, the latency and throughput phases.
#include "cowpi/protocol/shard.hpp"

#include "load_run.hpp"
#include <signal.h>
#include <unistd.h>

#include <thread>

namespace cowpi::bench::load {

namespace {

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

}  // namespace

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
  c.layout.router_nodes = c.o.router_nodes;
  COWPI_TRY(auto run, tools::start_local_deployment(c.layout, binary));
  c.spawned.emplace(std::move(run));
  c.deployment = c.spawned->deployment;
  c.router_admin = c.root / c.layout.router_processes().front() / "admin.sock";
  for (const auto& m : c.layout.mirror_processes())
    c.mirror_admins.push_back(c.root / m / "admin.sock");
  const auto deadline = steady::now() + 30s;
  while (!tools::router_ready(c.layout)) {
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
  for (auto& r : c.spawned->router_nodes)
    r.signal(SIGTERM);
  for (auto& m : c.spawned->mirrors)
    m.signal(SIGTERM);
  if (!c.spawned->router.wait(20s))
    c.tr->note("the router did not stop within 20 s of SIGTERM");
  for (auto& r : c.spawned->router_nodes)
    if (!r.wait(20s))
      c.tr->note("a router node did not stop within 20 s of SIGTERM");
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
  if (c.spawned && c.layout.router_nodes > 1) {
    // The router's counters are the conversation's node's.
    const auto nodes = c.layout.router_processes();
    c.router_admin = c.root / nodes[protocol::conv_owner(nodes, c.conv)] / "admin.sock";
  }
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
  json by_node;
  if (c.layout.router_nodes > 1 && c.spawned) {
    // Each recipient's own acceptance, split by whether its home node (where it is
    // connected) holds the conversation or reaches it through another node.
    const auto nodes = c.layout.router_processes();
    const size_t owner = protocol::conv_owner(nodes, c.conv);
    std::vector<double> same, cross;
    for (uint64_t id : ids) {
      const auto& m = msgs[id];
      if (m.count < c.n)
        continue;
      for (size_t k = 0; k < c.n; ++k)
        if (k != m.author)
          (protocol::user_owner(nodes, c.users[k]->id()) == owner ? same : cross)
              .push_back(ms_between(m.t_call, m.accepted[k]));
    }
    const auto dsame = summarize(same), dcross = summarize(cross);
    std::printf("    a member accepted, homed on the conversation's node (%s): %s\n",
                nodes[owner].c_str(), fmt_dist(dsame).c_str());
    std::printf("    a member accepted, homed on another node:              %s\n",
                fmt_dist(dcross).c_str());
    by_node = {{"same_node", to_json(dsame)}, {"cross_node", to_json(dcross)}};
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
  if (!by_node.is_null())
    c.out["latency"]["by_home_node"] = by_node;
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
    line += (c.layout.router_nodes > 1 ? ", router-1 " : ", router ") + fmt_ms(router_s * per);
    cpu["router_ms_per_msg"] = router_s * per;
    for (size_t k = 0; k < sa.router_nodes.size() && k < sb.router_nodes.size(); ++k) {
      const double r_s = sb.router_nodes[k] - sa.router_nodes[k];
      ours += r_s;
      line += ", router-" + std::to_string(k + 2) + " " + fmt_ms(r_s * per);
      cpu["router_nodes_ms_per_msg"].push_back(r_s * per);
    }
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

}  // namespace cowpi::bench::load

// SPDX-License-Identifier: Apache-2.0
// `cowpi-bench load`: what the run reads of processes (/proc) and providers (admin sockets).
#include "admin_socket.hpp"
#include "load_run.hpp"
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace cowpi::bench::load {

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

cpu_sample sample(const run_context& c) {
  cpu_sample s;
  s.t = steady::now();
  if (c.spawned) {
    s.router = process_cpu_s(c.spawned->router.pid());
    for (const auto& r : c.spawned->router_nodes)
      s.router_nodes.push_back(process_cpu_s(r.pid()));
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

}  // namespace cowpi::bench::load

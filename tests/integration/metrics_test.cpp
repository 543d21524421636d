// SPDX-License-Identifier: Apache-2.0
// The providers' Prometheus endpoint in a real deployment: scraped over HTTP before and after a
// conversation, every counter that the traffic drives has moved, the text is well formed, and
// `cowpi-admin metrics` prints the same families.
#include "client_harness.hpp"
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace cowpi::testing {
namespace {

// One scrape: series (name with labels, as written) -> value, and the TYPE of each family.
struct scrape {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::string text;

  double at(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? -1 : it->second;
  }
};

// Parses the text exposition format strictly enough for these checks: every sample line is
// `SERIES VALUE`, and its family (the name without a histogram suffix) was TYPEd before it.
::testing::AssertionResult parse(const std::string& text, scrape& out) {
  out.text = text;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty())
      return ::testing::AssertionFailure() << "an empty line";
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream w(line.substr(7));
      std::string name;
      std::string type;
      w >> name >> type;
      if (out.types.count(name) != 0)
        return ::testing::AssertionFailure() << "TYPE twice: " << line;
      out.types[name] = type;
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0)
      continue;
    const auto sp = line.rfind(' ');
    if (sp == std::string::npos || sp == 0)
      return ::testing::AssertionFailure() << "not a sample: " << line;
    const std::string series = line.substr(0, sp);
    const std::string name = series.substr(0, series.find('{'));
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (family.size() > s.size() && family.compare(family.size() - s.size(), s.size(), s) == 0
          && out.types.count(family.substr(0, family.size() - s.size())) != 0) {
        family.resize(family.size() - s.size());
        break;
      }
    }
    if (out.types.count(family) == 0)
      return ::testing::AssertionFailure() << "a sample before its TYPE: " << line;
    try {
      out.samples[series] = std::stod(line.substr(sp + 1));
    } catch (const std::exception&) {
      return ::testing::AssertionFailure() << "not a number: " << line;
    }
  }
  return ::testing::AssertionSuccess();
}

std::pair<std::string, int> host_port(const std::string& v) {
  const auto colon = v.rfind(':');
  return {v.substr(0, colon), std::stoi(v.substr(colon + 1))};
}

::testing::AssertionResult get(tools::provider_process& p, scrape& out) {
  const auto [host, port] = host_port(p.value("metrics"));
  httplib::Client cli(host, port);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(5, 0);
  auto res = cli.Get("/metrics");
  if (!res)
    return ::testing::AssertionFailure() << "no answer from " << p.value("metrics");
  if (res->status != 200)
    return ::testing::AssertionFailure() << "status " << res->status;
  if (res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) != 0)
    return ::testing::AssertionFailure()
           << "content type " << res->get_header_value("Content-Type");
  return parse(res->body, out);
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr)
    return out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  ::pclose(f);
  return out;
}

TEST(provider_metrics, counters_move_with_traffic_on_the_scrape_endpoint_and_in_cowpi_admin) {
  live_deployment dep("metrics", {}, provider_binary(), true,
                      [](tools::local_deployment& d) { d.metrics = true; });
  ASSERT_TRUE(dep.ok()) << dep.error();
  const std::vector<std::string> providers = {"router", "mirror-a", "mirror-b"};
  std::map<std::string, scrape> before;
  for (const auto& p : providers) {
    ASSERT_FALSE(dep.process(p).value("metrics").empty()) << p << ": no metrics= in its ready line";
    ASSERT_TRUE(get(dep.process(p), before[p])) << p;
  }
  const scrape& r0 = before["router"];
  EXPECT_EQ(r0.types.at("cowpi_router_entries_ordered_total"), "counter");
  EXPECT_EQ(r0.types.at("cowpi_router_connections_open"), "gauge");
  EXPECT_EQ(r0.types.at("cowpi_store_sync_seconds"), "histogram");
  EXPECT_EQ(r0.at("cowpi_router_mirror_link_up{mirror=\"mirror-a\"}"), 1);
  EXPECT_EQ(r0.at("cowpi_router_mirror_link_up{mirror=\"mirror-b\"}"), 1);
  EXPECT_EQ(r0.at("cowpi_node_info{role=\"router\",provider=\"router\"}"), 1);
  EXPECT_EQ(before["mirror-a"].at("cowpi_mirror_router_links"), 1);

  const std::vector<std::string> users = {"mtuser-one", "mtuser-two", "mtuser-three"};
  for (const auto& u : users)
    dep.add_user(u);
  auto conv = dep.user(users[0]).create({users[1], users[2]});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  constexpr int messages = 5;
  for (int k = 0; k < messages; ++k)
    ASSERT_TRUE(dep.user(users[0]).send(*conv, "metric message " + std::to_string(k)).has_value());
  ASSERT_TRUE(dep.settle());

  std::map<std::string, scrape> after;
  for (const auto& p : providers)
    ASSERT_TRUE(get(dep.process(p), after[p])) << p;
  const scrape& r1 = after["router"];
  auto moved = [&](const std::string& series) { return r1.at(series) - r0.at(series); };
  // SETUP and the messages at least (receipts come on top).
  const double entries = 1 + messages;
  EXPECT_GE(moved("cowpi_router_entries_ordered_total"), entries);
  EXPECT_GE(moved("cowpi_router_entries_committed_total"), entries);
  EXPECT_GE(moved("cowpi_router_intake_total{result=\"accepted\"}"), entries);
  EXPECT_GE(moved("cowpi_router_commit_seconds_count"), entries);
  for (const char* m : {"mirror-a", "mirror-b"}) {
    const std::string commit =
        std::string("cowpi_router_mirror_requests_total{mirror=\"") + m + "\",kind=\"commit\"}";
    EXPECT_GE(moved(commit), entries) << commit;
    const std::string mirror_commits = "cowpi_mirror_commits_total";
    EXPECT_GE(after[m].at(mirror_commits) - before[m].at(mirror_commits), entries) << m;
    EXPECT_GE(after[m].at("cowpi_mirror_conversations"), 1) << m;
    // Each COMMIT and ACK is a batch; group commit may merge several into one synced write.
    EXPECT_GE(after[m].at("cowpi_store_batches_total{store=\"mirror\"}")
                  - before[m].at("cowpi_store_batches_total{store=\"mirror\"}"),
              entries)
        << m;
    EXPECT_GE(after[m].at("cowpi_store_sync_seconds_count{store=\"mirror\"}")
                  - before[m].at("cowpi_store_sync_seconds_count{store=\"mirror\"}"),
              1)
        << m;
  }
  // The router's ACKs are cumulative (entries answered back to back share one): however many
  // it sent, the last covers every answer, and each mirror ends up holding none. A scrape reads
  // one series after the other, not all at one instant: an ACK handled while it runs may show
  // in the answers held and not yet in the request count, so both are awaited.
  for (const char* m : {"mirror-a", "mirror-b"}) {
    const std::string acks = "cowpi_mirror_requests_total{kind=\"ack\"}";
    scrape now = after[m];
    auto settled = [&] {
      return now.at("cowpi_mirror_answers_held") == 0 && now.at(acks) - before[m].at(acks) >= 1;
    };
    for (int k = 0; k < 100 && !settled(); ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      scrape fresh;
      ASSERT_TRUE(get(dep.process(m), fresh)) << m;
      now = std::move(fresh);
    }
    EXPECT_EQ(now.at("cowpi_mirror_answers_held"), 0) << m;
    EXPECT_GE(now.at(acks) - before[m].at(acks), 1) << m;
    EXPECT_LE(now.at(acks) - before[m].at(acks), now.at("cowpi_mirror_commits_total")) << m;
  }
  // Appends and answers are batches of their own; group commit may merge them into fewer
  // synced writes, and cursor acks (lazy batches) may be written without one.
  EXPECT_GE(moved("cowpi_store_batches_total{store=\"router\"}"), 2 * entries);
  EXPECT_GE(moved("cowpi_store_syncs_total{store=\"router\"}"), 1);
  EXPECT_GE(moved("cowpi_store_sync_seconds_count{store=\"router\"}"), 1);
  EXPECT_GE(moved("cowpi_router_responses_total{result=\"OK\"}"), entries);
  EXPECT_GE(moved("cowpi_router_connections_accepted_total"), 3);
  EXPECT_GE(r1.at("cowpi_router_connections_open"), 3);
  EXPECT_GE(r1.at("cowpi_router_queues_attached"), 3);
  // Every member was online: each message reached the two others.
  EXPECT_GE(moved("cowpi_router_envelopes_delivered_total"), 2 * entries);
  EXPECT_GE(moved("cowpi_router_delivery_lag_seconds_count"), 1);
  // A histogram's +Inf bucket is its count.
  EXPECT_EQ(r1.at("cowpi_router_commit_seconds_bucket{le=\"+Inf\"}"),
            r1.at("cowpi_router_commit_seconds_count"));
  // No user id in the metrics.
  for (const auto& u : users)
    EXPECT_EQ(r1.text.find(u), std::string::npos) << u;

  // Other paths are not found.
  {
    const auto [host, port] = host_port(dep.process("router").value("metrics"));
    httplib::Client cli(host, port);
    auto res = cli.Get("/");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 404);
  }

  // cowpi-admin metrics prints the same families.
  const auto admin = std::filesystem::path(COWPI_BINARY_DIR) / "tools" / "admin" / "cowpi-admin";
  const std::string text = run_capture(admin.string() + " --config "
                                       + dep.layout().config_path("router").string() + " metrics");
  scrape via_admin;
  ASSERT_TRUE(parse(text, via_admin)) << text;
  for (const auto& [name, type] : r1.types)
    EXPECT_EQ(via_admin.types.count(name), 1u) << name;
  EXPECT_GE(via_admin.at("cowpi_router_entries_ordered_total"),
            r1.at("cowpi_router_entries_ordered_total"));
}

}  // namespace
}  // namespace cowpi::testing

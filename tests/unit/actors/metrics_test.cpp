// SPDX-License-Identifier: Apache-2.0
// The metrics registry: lock-free updates from many threads, and the Prometheus text format
// (HELP and TYPE once per family, escaped labels, cumulative histogram buckets).
#include "cowpi/actors/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace cowpi::metrics {
namespace {

TEST(metrics, counters_and_gauges_render_with_help_type_and_escaped_labels) {
  registry r;
  auto& a = r.counter("x_requests_total", "Requests.\nTwo lines \\ here", {{"kind", "a"}});
  auto& b = r.counter("x_requests_total", "Requests.\nTwo lines \\ here", {{"kind", "b\"\n\\"}});
  auto& g = r.gauge("x_open", "Open things");
  a.inc();
  a.inc(4);
  b.inc();
  g.set(7);
  g.add(-2);
  EXPECT_EQ(&r.counter("x_requests_total", "Requests.\nTwo lines \\ here", {{"kind", "a"}}), &a);
  EXPECT_EQ(r.render(),
            "# HELP x_requests_total Requests.\\nTwo lines \\\\ here\n"
            "# TYPE x_requests_total counter\n"
            "x_requests_total{kind=\"a\"} 5\n"
            "x_requests_total{kind=\"b\\\"\\n\\\\\"} 1\n"
            "# HELP x_open Open things\n"
            "# TYPE x_open gauge\n"
            "x_open 5\n");
}

TEST(metrics, histogram_buckets_are_cumulative_with_inclusive_bounds_and_inf) {
  registry r;
  auto& h = r.histogram("x_seconds", "Latency", {0.5, 1, 2}, {{"op", "w"}});
  for (double v : {0.1, 0.5, 0.75, 2.0, 3.0, 100.0})
    h.observe(v);
  EXPECT_EQ(r.render(),
            "# HELP x_seconds Latency\n"
            "# TYPE x_seconds histogram\n"
            "x_seconds_bucket{op=\"w\",le=\"0.5\"} 2\n"
            "x_seconds_bucket{op=\"w\",le=\"1\"} 3\n"
            "x_seconds_bucket{op=\"w\",le=\"2\"} 4\n"
            "x_seconds_bucket{op=\"w\",le=\"+Inf\"} 6\n"
            "x_seconds_sum{op=\"w\"} 106.35\n"
            "x_seconds_count{op=\"w\"} 6\n");
}

TEST(metrics, collectors_add_series_to_one_family_per_name) {
  registry r;
  r.counter("x_total", "Registered", {{"src", "reg"}}).inc(2);
  r.add_collector([](sink& out) {
    out.counter("x_total", "Registered", {{"src", "pulled"}}, 3);
    out.gauge("y_level", "Pulled level", {}, 0.25);
    const double bounds[] = {1};
    const uint64_t counts[] = {4, 1};
    out.histogram("z_size", "Pulled sizes", {}, bounds, counts, 9);
    // A second type for a name already typed is dropped, not rendered invalid.
    out.gauge("x_total", "Registered", {{"src", "wrong"}}, 1);
  });
  EXPECT_EQ(r.render(),
            "# HELP x_total Registered\n"
            "# TYPE x_total counter\n"
            "x_total{src=\"reg\"} 2\n"
            "x_total{src=\"pulled\"} 3\n"
            "# HELP y_level Pulled level\n"
            "# TYPE y_level gauge\n"
            "y_level 0.25\n"
            "# HELP z_size Pulled sizes\n"
            "# TYPE z_size histogram\n"
            "z_size_bucket{le=\"1\"} 4\n"
            "z_size_bucket{le=\"+Inf\"} 5\n"
            "z_size_sum 9\n"
            "z_size_count 5\n");
}

TEST(metrics, updates_from_many_threads_are_all_counted) {
  registry r;
  auto& c = r.counter("x_total", "Count");
  auto& h = r.histogram("x_seconds", "Latency", latency_bounds());
  constexpr int threads = 4;
  constexpr int each = 50000;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < each; ++i) {
        c.inc();
        h.observe(0.001);
      }
    });
  // Renders concurrently with the updates: never a torn or failing render.
  for (int i = 0; i < 20; ++i)
    EXPECT_FALSE(r.render().empty());
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(c.value(), uint64_t{threads} * each);
  uint64_t total = 0;
  for (auto n : h.counts())
    total += n;
  EXPECT_EQ(total, uint64_t{threads} * each);
  EXPECT_NEAR(h.sum(), threads * each * 0.001, 1e-6);
}

}  // namespace
}  // namespace cowpi::metrics

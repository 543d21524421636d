// SPDX-License-Identifier: Apache-2.0
// `cowpi-bench load`: latency distributions and their rendering.
#include "load_run.hpp"

#include <cmath>

namespace cowpi::bench::load {

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

}  // namespace cowpi::bench::load

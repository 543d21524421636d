// SPDX-License-Identifier: Apache-2.0
// A provider's metrics: counters, gauges and histograms updated lock-free by the actors that own
// the events, plus pull-time collectors, rendered in the Prometheus text exposition format
// (version 0.0.4). CAF-free; docs/admin.md, "Metrics", lists every metric.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cowpi::metrics {

/// Label pairs of one series, e.g. {{"mirror", "m1"}}. Values are escaped when rendered; names
/// must match [a-zA-Z_][a-zA-Z0-9_]* (checked at registration).
using labels = std::vector<std::pair<std::string, std::string>>;

/// A monotonically increasing count. Thread-safe.
class counter {
public:
  void inc(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> v_{0};
};

/// A value that goes up and down. Thread-safe.
class gauge {
public:
  void set(int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
  std::atomic<int64_t> v_{0};
};

/// Observations counted in buckets with fixed upper bounds (plus +Inf), with their sum.
/// Thread-safe; a concurrent render may see a sum and counts from slightly different moments,
/// never a bucket count above the total.
class histogram {
public:
  /// `bounds`: strictly increasing, finite upper bounds (checked at registration).
  explicit histogram(std::vector<double> bounds);
  void observe(double v) noexcept;

  const std::vector<double>& bounds() const noexcept { return bounds_; }
  /// Per-bucket counts (not cumulative), one per bound and a last one for +Inf.
  std::vector<uint64_t> counts() const;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

/// Bounds for latencies in seconds: 100 µs to 10 s.
std::vector<double> latency_bounds();
/// Bounds for sizes and counts: 1, 2, 4, ... 1024.
std::vector<double> size_bounds();

/// What a collector reports at render time (values read from elsewhere, e.g. a store's
/// counters). The same name may be reported with different labels; a name must keep one type.
class sink {
public:
  virtual ~sink() = default;
  virtual void counter(std::string_view name, std::string_view help, const labels& l,
                       double value) = 0;
  virtual void gauge(std::string_view name, std::string_view help, const labels& l,
                     double value) = 0;
  /// `counts`: per bucket (not cumulative), bounds.size() + 1 of them.
  virtual void histogram(std::string_view name, std::string_view help, const labels& l,
                         std::span<const double> bounds, std::span<const uint64_t> counts,
                         double sum) = 0;
};

/// The registry of one process. Registration takes a lock and returns a reference that stays
/// valid for the registry's life; updates through it take none. Asking again for the same
/// (name, labels) returns the same metric. Thread-safe.
class registry {
public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// `name` should end in "_total". A name registered before with another type or help is a
  /// programming error (COWPI_ASSERT): names are constants of this code base, never input.
  metrics::counter& counter(std::string_view name, std::string_view help, const labels& l = {});
  metrics::gauge& gauge(std::string_view name, std::string_view help, const labels& l = {});
  metrics::histogram& histogram(std::string_view name, std::string_view help,
                                std::vector<double> bounds, const labels& l = {});

  using collector = std::function<void(sink&)>;
  /// Adds a function called at each render to report pulled values.
  void add_collector(collector c);

  /// Every metric in the text exposition format: per name one `# HELP` and one `# TYPE` line,
  /// then its series (histograms as cumulative `_bucket{le=...}`, `_sum` and `_count`), in the
  /// order of first registration. Ends with a newline.
  std::string render() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

/// The content type of `render`'s output, for an HTTP answer.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace cowpi::metrics

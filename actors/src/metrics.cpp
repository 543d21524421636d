// SPDX-License-Identifier: Apache-2.0
// The metrics registry and its Prometheus text rendering.
#include "cowpi/actors/metrics.hpp"

#include "cowpi/protocol/expected.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>

namespace cowpi::metrics {

namespace {

enum class kind : uint8_t { counter, gauge, histogram };

std::string_view type_name(kind k) {
  switch (k) {
    case kind::counter:
      return "counter";
    case kind::gauge:
      return "gauge";
    case kind::histogram:
      return "histogram";
  }
  return "untyped";
}

bool valid_name(std::string_view n) {
  if (n.empty())
    return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0))
      return false;
  }
  return true;
}

bool valid_bounds(const std::vector<double>& b) {
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(b[i]) || (i > 0 && b[i] <= b[i - 1]))
      return false;
  }
  return true;
}

// A label value: backslash, double quote and newline escaped.
void append_escaped(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

// HELP text: backslash and newline escaped.
void append_help(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

std::string number(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void append_labels(std::string& out, const labels& l, const std::string* le = nullptr) {
  if (l.empty() && le == nullptr)
    return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : l) {
    if (!first)
      out += ',';
    first = false;
    out += k;
    out += "=\"";
    append_escaped(out, v);
    out += '"';
  }
  if (le != nullptr) {
    if (!first)
      out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
}

// One rendered family, built at render time from registered metrics and collectors.
struct family_text {
  kind k = kind::counter;
  std::string help;
  std::string samples;
};

class render_sink final : public sink {
public:
  std::vector<std::string> order;
  std::map<std::string, family_text, std::less<>> families;

  family_text* family(std::string_view name, std::string_view help, kind k) {
    auto it = families.find(name);
    if (it == families.end()) {
      order.emplace_back(name);
      it = families.emplace(std::string(name), family_text{k, std::string(help), {}}).first;
    }
    // A collector reporting one name with two types would make the output invalid: the
    // second type's samples are dropped.
    return it->second.k == k ? &it->second : nullptr;
  }

  void counter(std::string_view name, std::string_view help, const labels& l,
               double value) override {
    scalar(name, help, kind::counter, l, value);
  }
  void gauge(std::string_view name, std::string_view help, const labels& l, double value) override {
    scalar(name, help, kind::gauge, l, value);
  }
  void histogram(std::string_view name, std::string_view help, const labels& l,
                 std::span<const double> bounds, std::span<const uint64_t> counts,
                 double sum) override {
    if (!valid_name(name) || counts.size() != bounds.size() + 1)
      return;
    auto* f = family(name, help, kind::histogram);
    if (f == nullptr)
      return;
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += counts[i];
      const std::string le = i < bounds.size() ? number(bounds[i]) : "+Inf";
      f->samples += name;
      f->samples += "_bucket";
      append_labels(f->samples, l, &le);
      f->samples += ' ';
      f->samples += std::to_string(cumulative);
      f->samples += '\n';
    }
    f->samples += name;
    f->samples += "_sum";
    append_labels(f->samples, l);
    f->samples += ' ';
    f->samples += number(sum);
    f->samples += '\n';
    f->samples += name;
    f->samples += "_count";
    append_labels(f->samples, l);
    f->samples += ' ';
    f->samples += std::to_string(cumulative);
    f->samples += '\n';
  }

private:
  void scalar(std::string_view name, std::string_view help, kind k, const labels& l, double v) {
    if (!valid_name(name))
      return;
    auto* f = family(name, help, k);
    if (f == nullptr)
      return;
    f->samples += name;
    append_labels(f->samples, l);
    f->samples += ' ';
    f->samples += number(v);
    f->samples += '\n';
  }
};

}  // namespace

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void histogram::observe(double v) noexcept {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  const auto bucket = static_cast<size_t>(it - bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> histogram::counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> latency_bounds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::vector<double> size_bounds() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
}

struct registry::impl {
  struct series {
    labels l;
    std::unique_ptr<metrics::counter> c;
    std::unique_ptr<metrics::gauge> g;
    std::unique_ptr<metrics::histogram> h;
  };
  struct family {
    std::string name;
    std::string help;
    kind k = kind::counter;
    std::vector<double> bounds;
    std::deque<series> members;
  };

  mutable std::mutex mu;
  std::deque<family> families;
  std::vector<collector> collectors;

  series& find_or_add(std::string_view name, std::string_view help, kind k, const labels& l,
                      const std::vector<double>& bounds) {
    COWPI_ASSERT(valid_name(name));
    for (const auto& [key, v] : l)
      COWPI_ASSERT(valid_name(key) && key != "le");
    auto it = std::find_if(families.begin(), families.end(),
                           [&](const family& f) { return f.name == name; });
    if (it == families.end()) {
      families.push_back(family{std::string(name), std::string(help), k, bounds, {}});
      it = std::prev(families.end());
    }
    COWPI_ASSERT(it->k == k && it->help == help && it->bounds == bounds);
    for (auto& s : it->members)
      if (s.l == l)
        return s;
    series s;
    s.l = l;
    switch (k) {
      case kind::counter:
        s.c = std::make_unique<metrics::counter>();
        break;
      case kind::gauge:
        s.g = std::make_unique<metrics::gauge>();
        break;
      case kind::histogram:
        s.h = std::make_unique<metrics::histogram>(bounds);
        break;
    }
    it->members.push_back(std::move(s));
    return it->members.back();
  }
};

registry::registry() : impl_(std::make_unique<impl>()) {}
registry::~registry() = default;

counter& registry::counter(std::string_view name, std::string_view help, const labels& l) {
  std::lock_guard<std::mutex> g(impl_->mu);
  return *impl_->find_or_add(name, help, kind::counter, l, {}).c;
}

gauge& registry::gauge(std::string_view name, std::string_view help, const labels& l) {
  std::lock_guard<std::mutex> g(impl_->mu);
  return *impl_->find_or_add(name, help, kind::gauge, l, {}).g;
}

histogram& registry::histogram(std::string_view name, std::string_view help,
                               std::vector<double> bounds, const labels& l) {
  COWPI_ASSERT(valid_bounds(bounds));
  std::lock_guard<std::mutex> g(impl_->mu);
  return *impl_->find_or_add(name, help, kind::histogram, l, bounds).h;
}

void registry::add_collector(collector c) {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->collectors.push_back(std::move(c));
}

std::string registry::render() const {
  render_sink out;
  std::vector<collector> collectors;
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    for (const auto& f : impl_->families) {
      for (const auto& s : f.members) {
        switch (f.k) {
          case kind::counter:
            out.counter(f.name, f.help, s.l, static_cast<double>(s.c->value()));
            break;
          case kind::gauge:
            out.gauge(f.name, f.help, s.l, static_cast<double>(s.g->value()));
            break;
          case kind::histogram: {
            const auto counts = s.h->counts();
            out.histogram(f.name, f.help, s.l, f.bounds, counts, s.h->sum());
            break;
          }
        }
      }
    }
    collectors = impl_->collectors;
  }
  for (const auto& c : collectors)
    c(out);
  std::string text;
  for (const auto& name : out.order) {
    const auto& f = out.families.at(name);
    text += "# HELP ";
    text += name;
    text += ' ';
    append_help(text, f.help);
    text += "\n# TYPE ";
    text += name;
    text += ' ';
    text += type_name(f.k);
    text += '\n';
    text += f.samples;
  }
  return text;
}

}  // namespace cowpi::metrics

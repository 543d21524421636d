// SPDX-License-Identifier: Apache-2.0
// The retention collector (collector.hpp).
#include "collector.hpp"

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <optional>
#include <string>

namespace cowpi::actors {

namespace {

// What one run did.
struct run_result {
  uint64_t conversations = 0;
  uint64_t deleted = 0;
  uint64_t errors = 0;
  std::string first_error;
  double ms = 0;
  uint64_t at = 0;  // Unix seconds at its start

  nlohmann::json to_json() const {
    nlohmann::json j{{"conversations", conversations},
                     {"deleted", deleted},
                     {"errors", errors},
                     {"ms", ms},
                     {"at", at}};
    if (!first_error.empty())
      j["first_error"] = first_error;
    return j;
  }
};

struct collector_state {
  collector_deps d;
  uint64_t runs = 0;
  uint64_t deleted_total = 0;
  std::optional<run_result> last;
  static inline const char* name = "cowpi.collector";
};

using collector_actor = caf::stateful_actor<collector_state>;

run_result run(collector_actor* self) {
  auto& st = self->state;
  run_result r;
  r.at = unix_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  auto convs = st.d.store->conversations();
  if (!convs) {
    r.errors = 1;
    r.first_error = convs.error().message();
  } else {
    const auto cap = static_cast<uint64_t>(st.d.retention.count());
    for (const auto& conv : *convs) {
      ++r.conversations;
      auto got = st.d.store->collect(conv, unix_seconds(), cap);
      if (!got) {
        if (r.errors++ == 0)
          r.first_error =
              "conversation " + to_hex(byte_view(conv.data(), 4)) + "...: " + got.error().message();
        continue;
      }
      r.deleted += got->deleted;
    }
  }
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ++st.runs;
  st.deleted_total += r.deleted;
  st.d.metrics->runs->inc();
  st.d.metrics->deleted->inc(r.deleted);
  st.d.metrics->errors->inc(r.errors);
  st.d.metrics->last_run_ms->set(static_cast<int64_t>(r.ms));
  if (r.errors > 0)
    spdlog::warn("retention: {} of {} conversations could not be collected: {}", r.errors,
                 r.conversations, r.first_error);
  if (r.deleted > 0)
    spdlog::info("retention: deleted {} log entries over {} conversations in {:.0f} ms", r.deleted,
                 r.conversations, r.ms);
  st.last = r;
  return r;
}

caf::behavior collector(collector_actor* self, collector_deps deps) {
  self->state.d = std::move(deps);
  // Detached: this thread is the actor's own, and its store calls may block here.
  storage::mark_nonblocking_thread(false);
  self->send(self, collect_atom_v);
  return {
      [=](collect_atom) {
        run(self);
        self->delayed_send(self, self->state.d.interval, collect_atom_v);
      },
      [=](command_atom, const std::string& line) -> std::string {
        auto req = nlohmann::json::parse(line, nullptr, false);
        if (req.is_discarded() || !req.is_object())
          return nlohmann::json{{"ok", false}, {"error", "a JSON object expected"}}.dump();
        auto j = run(self).to_json();
        j["ok"] = true;
        return j.dump();
      },
      [=](stats_atom) -> std::string {
        const auto& st = self->state;
        nlohmann::json j{{"max_age_s", st.d.retention.count()},
                         {"collect_interval_s", st.d.interval.count()},
                         {"runs", st.runs},
                         {"deleted_total", st.deleted_total}};
        if (st.last)
          j["last_run"] = st.last->to_json();
        return j.dump();
      },
  };
}

}  // namespace

std::shared_ptr<const collector_metrics> collector_metrics::make(metrics::registry* reg) {
  static metrics::registry discard;
  auto& r = reg == nullptr ? discard : *reg;
  auto m = std::make_shared<collector_metrics>();
  m->runs = &r.counter("cowpi_router_retention_runs_total",
                       "Runs of the retention collector over every conversation's log");
  m->deleted = &r.counter("cowpi_router_log_entries_collected_total",
                          "Log entries deleted by retention (acknowledged by every member, or "
                          "older than the retention cap)");
  m->errors = &r.counter("cowpi_router_retention_errors_total",
                         "Conversations a retention run could not collect (storage errors)");
  m->last_run_ms = &r.gauge("cowpi_router_retention_last_run_ms",
                            "Duration of the last retention run, in milliseconds");
  return m;
}

caf::actor spawn_collector(caf::actor_system& sys, collector_deps deps) {
  return sys.spawn<caf::detached>(collector, std::move(deps));
}

}  // namespace cowpi::actors

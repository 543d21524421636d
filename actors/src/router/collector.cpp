// SPDX-License-Identifier: Apache-2.0
// The retention collector (collector.hpp).
#include "collector.hpp"

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// Conversations collected per message to itself: between two steps the collector answers
// status requests and admin commands, so a run over many conversations never holds them up.
constexpr size_t step_conversations = 256;

// A run under way.
struct run_in_progress {
  run_result r;
  std::vector<protocol::conv_id> convs;
  size_t next = 0;
  std::chrono::steady_clock::time_point t0;
  // `collect` commands answered when this run ends.
  std::vector<caf::response_promise> waiting;
};

struct collector_state {
  collector_deps d;
  uint64_t runs = 0;
  uint64_t deleted_total = 0;
  std::optional<run_result> last;
  std::optional<run_in_progress> current;
  // `collect` commands that came during a run: they get a run of their own after it (the one
  // under way may have passed conversations whose entries were acknowledged since).
  std::vector<caf::response_promise> queued;
  // The periodic timer is armed (one at a time, whatever the commands do).
  bool timer_armed = false;
  static inline const char* name = "cowpi.collector";
};

using collector_actor = caf::stateful_actor<collector_state>;

void start_run(collector_actor* self, std::vector<caf::response_promise> waiting) {
  auto& st = self->state;
  run_in_progress run;
  run.r.at = unix_seconds();
  run.t0 = std::chrono::steady_clock::now();
  run.waiting = std::move(waiting);
  auto convs = st.d.store->conversations();
  if (!convs) {
    run.r.errors = 1;
    run.r.first_error = convs.error().message();
  } else {
    run.convs = std::move(*convs);
  }
  st.current = std::move(run);
  self->send(self, collect_atom_v, uint64_t{0});
}

void finish_run(collector_actor* self) {
  auto& st = self->state;
  run_in_progress run = std::move(*st.current);
  st.current.reset();
  run_result& r = run.r;
  r.ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - run.t0).count();
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
  auto answer = r.to_json();
  answer["ok"] = true;
  const std::string line = answer.dump();
  for (auto& p : run.waiting)
    p.deliver(line);
  if (!st.queued.empty()) {
    start_run(self, std::exchange(st.queued, {}));
    return;
  }
  if (!st.timer_armed) {
    st.timer_armed = true;
    self->delayed_send(self, st.d.interval, collect_atom_v);
  }
}

// Collects the next `step_conversations` conversations of the run under way.
void step(collector_actor* self) {
  auto& st = self->state;
  if (!st.current)
    return;
  run_in_progress& run = *st.current;
  const auto cap = static_cast<uint64_t>(st.d.retention.count());
  const size_t end = std::min(run.convs.size(), run.next + step_conversations);
  for (; run.next < end; ++run.next) {
    const auto& conv = run.convs[run.next];
    ++run.r.conversations;
    auto got = st.d.store->collect(conv, unix_seconds(), cap);
    if (!got) {
      if (run.r.errors++ == 0)
        run.r.first_error =
            "conversation " + to_hex(byte_view(conv.data(), 4)) + "...: " + got.error().message();
      continue;
    }
    run.r.deleted += got->deleted;
  }
  if (run.next < run.convs.size()) {
    self->send(self, collect_atom_v, uint64_t{run.next});
    return;
  }
  finish_run(self);
}

caf::behavior collector(collector_actor* self, collector_deps deps) {
  self->state.d = std::move(deps);
  // Detached: this thread is the actor's own, and its store calls may block here.
  storage::mark_nonblocking_thread(false);
  return {
      // The periodic timer: a run now, unless one is under way (its end re-arms the timer).
      [=](collect_atom) {
        auto& st = self->state;
        st.timer_armed = false;
        if (!st.current) {
          start_run(self, {});
        } else {
          st.timer_armed = true;
          self->delayed_send(self, st.d.interval, collect_atom_v);
        }
      },
      [=](collect_atom, uint64_t) { step(self); },
      [=](command_atom, const std::string& line) -> caf::result<std::string> {
        auto req = nlohmann::json::parse(line, nullptr, false);
        if (req.is_discarded() || !req.is_object())
          return nlohmann::json{{"ok", false}, {"error", "a JSON object expected"}}.dump();
        auto& st = self->state;
        auto p = self->make_response_promise<std::string>();
        if (st.current) {
          st.queued.push_back(p);
        } else {
          start_run(self, {p});
        }
        return p;
      },
      [=](stats_atom) -> std::string {
        const auto& st = self->state;
        nlohmann::json j{{"max_age_s", st.d.retention.count()},
                         {"collect_interval_s", st.d.interval.count()},
                         {"runs", st.runs},
                         {"deleted_total", st.deleted_total}};
        if (st.last)
          j["last_run"] = st.last->to_json();
        if (st.current)
          j["running"] = {{"done", st.current->next},
                          {"of", st.current->convs.size()},
                          {"deleted", st.current->r.deleted}};
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
  auto c = sys.spawn<caf::detached>(collector, std::move(deps));
  // The run at start: the first message in its mailbox, ahead of anything sent to it later.
  caf::anon_send(c, collect_atom_v);
  return c;
}

}  // namespace cowpi::actors

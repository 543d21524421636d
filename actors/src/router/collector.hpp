// SPDX-License-Identifier: Apache-2.0
// The router's retention collector: deletes, from the start of every conversation's log, the
// entries every member acknowledged (the low-water mark) or older than the retention cap
// (docs/design.md §4 "Delivery", docs/storage.md "Retention").
#pragma once

#include "cowpi/actors/metrics.hpp"
#include "cowpi/storage/router_store.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <memory>

namespace cowpi::actors {

/// The collector's metrics (docs/admin.md).
struct collector_metrics {
  metrics::counter* runs = nullptr;
  metrics::counter* deleted = nullptr;
  metrics::counter* errors = nullptr;
  metrics::gauge* last_run_ms = nullptr;
  static std::shared_ptr<const collector_metrics> make(metrics::registry* r);
};

struct collector_deps {
  /// The router's store; outlives the actor.
  storage::router_store* store = nullptr;
  /// `[retention] max_age_s`: entries logged this long ago go even if undelivered.
  std::chrono::seconds retention{30LL * 24 * 3600};
  /// `[retention] collect_interval_s`: the time between the end of a run and the next.
  std::chrono::seconds interval{600};
  std::shared_ptr<const collector_metrics> metrics = collector_metrics::make(nullptr);
};

/// Spawns the collector, detached: its scans and synced deletions block only its own thread.
/// It runs once at start and then every `interval`, over every conversation of the store
/// (`router_store::collect`), 256 conversations per message to itself, so it answers between
/// them. It answers `(command_atom, std::string request_line)` for `{"do":"collect"}` at the
/// end of a whole run that starts no earlier than the command (JSON: conversations, entries
/// deleted, errors, milliseconds; docs/admin.md), and `(stats_atom)` with JSON about its runs
/// (and the one under way: `running`).
caf::actor spawn_collector(caf::actor_system& sys, collector_deps deps);

}  // namespace cowpi::actors

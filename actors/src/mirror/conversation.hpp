// SPDX-License-Identifier: Apache-2.0
// A mirror node's conversation actor: the single writer of one conversation's record, spawned
// by the endpoint on demand and stopped when idle (docs/architecture.md, "The mirror process").
#pragma once

#include "cowpi/protocol/mirror.hpp"
#include "cowpi/storage/mirror_store.hpp"

#include "../node_metrics.hpp"
#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace cowpi::actors {

/// The clock a mirror node's actors read (Unix seconds).
using mirror_clock = std::function<uint64_t()>;
/// The randomness of the conversation actor of a conversation.
using mirror_rng_factory = std::function<std::unique_ptr<crypto::rng>(const protocol::conv_id&)>;

/// What every conversation actor of a mirror node shares with the endpoint.
struct mirror_shared {
  /// The identity and options; only its const per-conversation calls run on conversation
  /// actors. Its keys are `keys`, guarded by `keys_mu`.
  std::unique_ptr<protocol::mirror> m;
  protocol::mirror_keys* keys = nullptr;
  /// Held by a call that reads or changes `keys` (`protocol::reads_keys`, a TOPUP) from before it
  /// reads them until its batch is queued, so key batches reach the store in the order the
  /// changes were made.
  std::mutex keys_mu;
  storage::mirror_store* store = nullptr;
  std::shared_ptr<const mirror_metrics> metrics;
  /// How long a conversation actor waits without a request before it offers to stop.
  std::chrono::milliseconds idle{std::chrono::seconds(60)};
  mirror_clock clock;
  /// Called by the endpoint when it spawns a conversation actor.
  mirror_rng_factory rng_for;
  /// Counters for the endpoint's admin section (actors update them from their own threads).
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> acks{0};
  std::atomic<int64_t> answers_held{0};
  std::atomic<int64_t> conversations{0};
};

/// A conversation's record, owned by its live conversation actor (when there is one) and by the
/// endpoint otherwise; empty until its SETUP is committed.
struct mirror_slot {
  std::optional<protocol::mirror_conv> mc;
};

/// Spawns the conversation actor of `conv` on `slot`, drawing from `rng`. It answers `(link_atom,
/// link_request)` requests (PREPARE, COMMIT, ACK, STATUS, AUDIT of `conv`) that `endpoint`
/// delegates to it (a decoded request is a local-only type) with a `link_frame`, in request order,
/// each after the writes it rests on are synced; it counts what it handled, and after
/// `shared->idle` without a request it sends the endpoint
/// `(idle_atom, conv, handled)`; it quits on `(shutdown_atom)` or when the endpoint goes down.
caf::actor spawn_mirror_conversation(caf::actor_system& sys, std::shared_ptr<mirror_shared> shared,
                                     protocol::conv_id conv, std::shared_ptr<mirror_slot> slot,
                                     caf::actor endpoint, std::unique_ptr<crypto::rng> rng);

}  // namespace cowpi::actors

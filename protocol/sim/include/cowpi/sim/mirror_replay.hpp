// SPDX-License-Identifier: Apache-2.0
// Conversations recorded in simulated deployments for replay against another copy of their
// mirror: a provider's mirror node driven with the recorded PREPAREs and COMMITs, and the
// recorded mirror's clock and randomness, must answer exactly as the recorded mirror did (the
// mirror node's tests and `cowpi-bench mirror`).
#pragma once

#include "cowpi/sim/world.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace cowpi::sim {

/// One conversation as a deployment of its own ran it, and what its first mirror (mirror-a)
/// answered. The deployment's clock does not move while it runs.
struct mirror_recording {
  conv_id conv{};
  /// The log, in index order (`entries[i].prepare_for(0)` is mirror-a's PREPARE of entry i).
  std::vector<log_entry> entries;
  /// mirror-a's blocks for each entry.
  std::vector<std::vector<slot_block>> blocks;
  /// mirror-a's randomness before the conversation: it draws only for this conversation.
  crypto::deterministic_rng rng{0};
  uint64_t now = 0;
};

/// Creates the world's one conversation and runs it; returns its id (nullopt: it failed).
using recording_script = std::function<std::optional<conv_id>(world&)>;

/// Runs `script` in a deployment seeded with `seed`, the `k`th of a set of recordings: mirror-a's
/// first `k` pre-keys are handed out and the deployment's randomness moves on `k` draws first, so
/// that the conversation's SETUP names a pre-key no other recording of the set names, and its id
/// is its own. Nullopt when the script fails, raises an alarm, or an entry lacks mirror-a's answer.
std::optional<mirror_recording> record_for_mirror(uint64_t seed, size_t k,
                                                  const recording_script& script);

/// mirror-a of a deployment seeded with `seed` before any conversation: what every recording of
/// that seed starts from (the same identity and keys).
mirror recorded_mirror(uint64_t seed);

}  // namespace cowpi::sim

// SPDX-License-Identifier: Apache-2.0
// Conversations recorded in simulated deployments for replay against another copy of their
// mirror.
#include "cowpi/sim/mirror_replay.hpp"

#include <array>
#include <string>

namespace cowpi::sim {

namespace {

world seeded(uint64_t seed) {
  world_options o;
  o.seed = seed;
  return world(o);
}

}  // namespace

std::optional<mirror_recording> record_for_mirror(uint64_t seed, size_t k,
                                                  const recording_script& script) {
  world w = seeded(seed);
  mirror_recording out;
  out.rng = w.mirror_at(0).rng;
  for (size_t j = 0; j < k; ++j) {
    if (w.fetch("drain-" + std::to_string(j), {"mirror-a"}).size() != 1)
      return std::nullopt;
    std::array<uint8_t, 8> b{};
    w.rng().fill(b);
  }
  auto conv = script(w);
  if (!conv || !w.alarms().empty())
    return std::nullopt;
  out.conv = *conv;
  out.now = w.now();
  for (const auto& [i, se] : w.log(out.conv)) {
    if (i != out.entries.size() || se.answers.empty() || !se.answers.front())
      return std::nullopt;
    out.entries.push_back(se.e);
    out.blocks.push_back(*se.answers.front());
  }
  return out;
}

mirror recorded_mirror(uint64_t seed) {
  return seeded(seed).mirror_at(0).m.clone();
}

}  // namespace cowpi::sim

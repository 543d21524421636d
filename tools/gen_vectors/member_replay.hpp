// SPDX-License-Identifier: Apache-2.0
// A recorded member: its secrets at the start, the steps it took (envelopes it received, keys
// it fetched, messages and receipts it sent, pre-keys it made, keys it expired) and what each
// step decided. A fresh client rebuilt from the secrets must decide the same at every step:
// the vector kinds that pin accept/reject/alarm decisions (conversation.json, decisions.json)
// share this engine.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/client.hpp"

#include "json_util.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace cowpi::vectors {

/// How much a decision records. `basic` is what conversation.json pins for an envelope: the
/// accepted entries (index, type, author, VOID, T_i, plaintext), the alarms (kind, index,
/// party, halted) and the acknowledgements. `full` adds every field of an accepted entry and,
/// after each envelope, the member's conversation state (docs/protocol.md §5.1), its channels
/// (§4.4) and its keys (§4.5, §4.6).
enum class detail : uint8_t { basic, full };

/// A fresh member's secrets: its identity, pinned mirror set, pre-keys and LAST_RESORT keys.
/// REQUIRES: the member holds no conversation yet.
json export_member(const protocol::client& c);
/// The client `export_member` describes.
std::unique_ptr<protocol::client> import_member(const json& j);

/// What one step decided, and what it hands on: the message for the router (`send`,
/// `receipt`) or the upload for the directory (`make_prekeys`).
struct step_result {
  json decision;
  std::optional<protocol::outgoing> sent;
  std::optional<protocol::upload_prekeys> uploaded;
};

/// Runs one recorded step on `c`. A step is an envelope (`{"envelope": hex, "note": ...}`,
/// `"do": "receive"` optional) or an operation: `fetch` (bundles from the directory), `send`,
/// `receipt`, `make_prekeys`, `expire`. `now` is used where the step names no time; `r` serves
/// envelopes (operations carry their own `rng_seed`).
step_result run_step(protocol::client& c, crypto::rng& r, const json& step, uint64_t now, detail d);

/// Replays the recorded member `v` (`{"member", "rng_seed", "now", <steps_key>, "decisions"}`)
/// on a fresh client and compares every decision. Returns the first mismatch, named by `tag`.
std::optional<std::string> verify_replay(const json& v, const std::string& steps_key, detail d,
                                         const std::string& tag);

/// Records a member while a scenario runs: each step is run on the member and written down
/// with its decision, exactly as `verify_replay` will run it.
class recorder {
public:
  /// Starts from `member`, a fresh member's secrets (see `export_member`).
  recorder(json member, uint64_t rng_seed, uint64_t now, detail d);

  /// The recorded member (read it; change it only through `run`).
  const protocol::client& member() const noexcept { return *c_; }
  /// Runs `step` and records it; returns its result.
  step_result run(json step);
  /// How many steps so far.
  size_t steps() const noexcept { return steps_.size(); }
  /// The decision of step `k`.
  const json& decision(size_t k) const { return decisions_.at(k); }
  /// `{"member", "rng_seed", "now", <steps_key>, "decisions"}`.
  json to_json(const std::string& steps_key) const;

private:
  json member_;
  std::unique_ptr<protocol::client> c_;
  crypto::deterministic_rng r_;
  uint64_t rng_seed_;
  uint64_t now_;
  detail d_;
  json steps_ = json::array();
  json decisions_ = json::array();
};

}  // namespace cowpi::vectors

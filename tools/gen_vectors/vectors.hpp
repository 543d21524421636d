// SPDX-License-Identifier: Apache-2.0
// Seeded protocol test vectors: each kind has generate(seed) -> JSON and verify(JSON) ->
// the first mismatch, if any. tools/gen_vectors writes them; tests verify the checked-in
// files and that regenerating them from their seed gives the same bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::vectors {

/// One kind of vector file.
struct kind {
  std::string file;  // e.g. "naxos.json"
  nlohmann::json (*generate)(uint64_t seed);
  std::optional<std::string> (*verify)(const nlohmann::json& v);
};

/// NAXOS key pairs and pairwise block keys (both sides).
nlohmann::json generate_naxos(uint64_t seed);
std::optional<std::string> verify_naxos(const nlohmann::json& v);

/// Block protection: enc(block) from fixed inputs and a seeded RNG; opening it back.
nlohmann::json generate_blocks(uint64_t seed);
std::optional<std::string> verify_blocks(const nlohmann::json& v);

/// enc(C), H_C, blocks_root, D and the T chain of a small conversation.
nlohmann::json generate_transcript(uint64_t seed);
std::optional<std::string> verify_transcript(const nlohmann::json& v);

/// A recorded conversation: a member's secrets, the envelopes it received (honest and
/// tampered, in delivery order) and its accept/reject decisions, which a fresh client must
/// reproduce with the same transcript hashes.
nlohmann::json generate_conversation(uint64_t seed);
std::optional<std::string> verify_conversation(const nlohmann::json& v);

/// Author->mirror blocks and the mirror block back to the author: inputs, K, AD, enc(block),
/// opened on the other side.
nlohmann::json generate_amb(uint64_t seed);
std::optional<std::string> verify_amb(const nlohmann::json& v);

/// The client<->router handshake (LOGIN and REGISTER), the first frames of each direction and
/// the rekey every 2^20 frames.
nlohmann::json generate_transport(uint64_t seed);
std::optional<std::string> verify_transport(const nlohmann::json& v);

/// Accept/reject/alarm scenarios: recorded members whose every decision a fresh client must
/// reproduce (key commitment, block and body failures, RATCHET keys with a LAST_RESORT
/// rotation and a DIRECTORY alarm, a RECEIPT reporting a VOID, a joiner, FORK, IMPERSONATION).
nlohmann::json generate_decisions(uint64_t seed);
std::optional<std::string> verify_decisions(const nlohmann::json& v);

/// Chain blocks: a DH step and its chain key, chain blocks in every plaintext layout with each
/// derivation, a receiver opening them out of order and refusing reused, foreign and far ones.
nlohmann::json generate_chain(uint64_t seed);
std::optional<std::string> verify_chain(const nlohmann::json& v);

/// Every kind, in a fixed order.
const std::vector<kind>& all_kinds();

/// The seed the checked-in vectors are generated from.
inline constexpr uint64_t default_seed = 20261126;

}  // namespace cowpi::vectors

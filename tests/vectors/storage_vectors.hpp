// SPDX-License-Identifier: Apache-2.0
// Storage-stability vectors: the exact bytes of every key layout and record encoding of
// storage/ (keys.hpp, records.hpp, sealed blobs), from fixed inputs and a seeded RNG. A layout
// change shows up as a diff of tests/vectors/data/storage.json, regenerated only deliberately
// with gen_storage_vectors.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace cowpi::vectors::storage {

/// The seed the checked-in file is generated from.
inline constexpr uint64_t default_seed = 20260501;

/// Every key and record, as {"seed", "layout_version", "keys": [{name, hex}],
/// "records": [{name, hex}], "sealed": [{name, key, plaintext, sealed}]}.
nlohmann::json generate(uint64_t seed);

/// Checks `v` against a regeneration from its seed, and that every pinned record decodes and
/// re-encodes to exactly its pinned bytes (sealed ones after opening with the pinned key).
/// Returns the first mismatch.
std::optional<std::string> verify(const nlohmann::json& v);

}  // namespace cowpi::vectors::storage

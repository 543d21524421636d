// SPDX-License-Identifier: Apache-2.0
// The JSON spelling of protocol values in the vector files (hex bytes, members, key refs, C)
// and the comparison every verifier reports its first mismatch with.
#pragma once

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/types.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>

namespace cowpi::vectors {

using json = nlohmann::json;

inline std::string hex(byte_view b) {
  return to_hex(b);
}
template <size_t N>
std::string hex(const crypto::secret<N>& s) {
  return to_hex(s.expose());
}

/// The bytes of a hex string; empty for a damaged file (verification then fails).
bytes unhex(const json& j);

template <size_t N>
byte_array<N> unhex_array(const json& j) {
  byte_array<N> a{};
  auto b = unhex(j);
  if (b.size() == N)
    std::copy(b.begin(), b.end(), a.begin());
  return a;
}

template <size_t N>
crypto::secret<N> unhex_secret(const json& j) {
  auto b = unhex(j);
  if (b.size() != N)
    return crypto::secret<N>{};  // a damaged file: verification then fails
  return crypto::secret<N>::from(b);
}

/// Returns "<what>: expected <want>, got <got>" when they differ.
std::optional<std::string> mismatch(const std::string& what, const json& want, const json& got);

json members_json(const protocol::member_list& l);
protocol::member_list members_from(const json& a);

json ref_json(const protocol::key_ref& r);
protocol::key_ref ref_from(const json& j);

/// C with exactly the fields of its type.
json common_json(const protocol::common& c);
protocol::common common_from(const json& j);

}  // namespace cowpi::vectors

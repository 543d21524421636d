// SPDX-License-Identifier: Apache-2.0
// A provider's long-term identity key file: 32 bytes (the clamped X25519 secret), mode 0600.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/keys.hpp"

#include <filesystem>
#include <string>

namespace cowpi::actors {

/// Loads the identity of provider `id` from `path`, creating the file (mode 0600, a fresh
/// clamped key from `r`) when it does not exist. Fails with `errc::config` when the file is
/// not a regular file, gives any access to group or others, is not 32 bytes or holds an
/// unclamped key; `errc::storage` on I/O errors. The error never holds key bytes.
[[nodiscard]] expected<protocol::identity> load_or_create_identity(
    const std::filesystem::path& path, const std::string& id, crypto::rng& r);

}  // namespace cowpi::actors

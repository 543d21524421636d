// SPDX-License-Identifier: Apache-2.0
// Opening a store of one role and unlocking its sealer: the shared first step of the client and
// mirror stores' `open`.
#pragma once

#include "cowpi/storage/sealer.hpp"
#include "cowpi/storage/store.hpp"

#include <filesystem>
#include <memory>

namespace cowpi::storage::detail {

/// Opens the store at `path` for `kind`, unlocks its sealer with `key` and constructs a `Store`
/// from both (`Store(std::unique_ptr<store>, sealer, crypto::rng&)`).
template <class Store>
expected<std::unique_ptr<Store>> open_sealed(const std::filesystem::path& path, role kind,
                                             const key_source& key, crypto::rng& r,
                                             const open_options& o) {
  COWPI_TRY(auto s, open_store(path, kind, o));
  COWPI_TRY(sealer sl, unlock(*s, key, r));
  return std::make_unique<Store>(std::move(s), std::move(sl), r);
}

}  // namespace cowpi::storage::detail

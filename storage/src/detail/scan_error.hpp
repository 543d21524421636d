// SPDX-License-Identifier: Apache-2.0
// Private to storage: carries the first error out of a `store::scan` callback, which can only
// answer "stop" (false) or "go on" (true).
#pragma once

#include "cowpi/protocol/expected.hpp"

#include <optional>
#include <utility>

namespace cowpi::storage::detail {

struct scan_error {
  std::optional<error> err;
  /// Keeps `e` and returns false, so a callback can `return se.set(...)` to stop the scan.
  bool set(error e) {
    err = std::move(e);
    return false;
  }
  /// The kept error, or success.
  expected<void> result() {
    if (err)
      return unexpected{std::move(*err)};
    return {};
  }
};

}  // namespace cowpi::storage::detail

// SPDX-License-Identifier: Apache-2.0
// Private to storage: the router log's rows of one conversation, decoded, for readers that walk
// a range of them (the admin reader's log range, the audit view).
#pragma once

#include "cowpi/storage/records.hpp"
#include "cowpi/storage/store.hpp"

#include "scan_error.hpp"

#include <string_view>

namespace cowpi::storage::detail {

/// Calls `f(index, record)` for every log row with `begin <= key < end`, in index order; a key
/// or record that does not decode fails the scan with its error.
template <class F>
expected<void> scan_log(const store& s, std::string_view begin, std::string_view end, F&& f) {
  scan_error se;
  COWPI_TRY_VOID(s.scan(column::log, begin, end, [&](std::string_view key, byte_view v) {
    auto i = keys::be64_at(key, 16);
    if (!i)
      return se.set(error{errc::corruption, "log key"});
    auto rec = decode_log_record(*i, v);
    if (!rec)
      return se.set(rec.error());
    f(*i, *rec);
    return true;
  }));
  return se.result();
}

}  // namespace cowpi::storage::detail

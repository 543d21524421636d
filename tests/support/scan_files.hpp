// SPDX-License-Identifier: Apache-2.0
// Searches every file under a directory for a byte string (checks that no secret or plaintext
// reaches the disk in the clear).
#pragma once

#include "cowpi/crypto/bytes.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace cowpi::testing {

/// Returns the path of the first regular file under `dir` containing `needle`, or "".
inline std::string file_containing(const std::filesystem::path& dir, byte_view needle) {
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file())
      continue;
    std::ifstream in(f.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto* b = reinterpret_cast<const char*>(needle.data());
    if (std::search(data.begin(), data.end(), b, b + needle.size()) != data.end())
      return f.path().string();
  }
  return "";
}

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// A temporary directory removed (recursively) when the object dies.
#pragma once

#include <filesystem>
#include <string>

namespace cowpi::testing {

class temp_dir {
public:
  /// Creates a fresh directory under $TMPDIR (or /tmp) named cowpi-<prefix>-XXXXXX.
  explicit temp_dir(const std::string& prefix = "test");
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::string str() const { return path_.string(); }

private:
  std::filesystem::path path_;
};

}  // namespace cowpi::testing

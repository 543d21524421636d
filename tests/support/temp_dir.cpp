// SPDX-License-Identifier: Apache-2.0
// Temporary directories for tests.
#include "temp_dir.hpp"

#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace cowpi::testing {

temp_dir::temp_dir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/cowpi-" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

temp_dir::~temp_dir() {
  // COWPI_KEEP_TEST_DIRS=1 keeps them (logs and stores) for a failing test's post-mortem.
  if (const char* keep = std::getenv("COWPI_KEEP_TEST_DIRS"); keep != nullptr && *keep == '1') {
    return;
  }
  std::error_code ec;
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

}  // namespace cowpi::testing

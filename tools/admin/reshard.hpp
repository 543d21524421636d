// SPDX-License-Identifier: Apache-2.0
// `cowpi-admin reshard`: the offline migration of a mirror cluster to a new node list
// (docs/admin.md).
#pragma once

#include <filesystem>
#include <vector>

namespace cowpi::tools {

struct reshard_args {
  /// `--config` and `--data-dir`: one node of the cluster.
  std::filesystem::path config;
  std::filesystem::path data_dir;
  /// Every other node's config.
  std::vector<std::filesystem::path> others;
  /// The router's config (its store is read to check the plan).
  std::filesystem::path router;
  bool dry_run = false;
  bool json_out = false;
};

/// Runs the command; returns the process exit code (0 done, 1 refused or failed, 2 usage).
int run_reshard(const reshard_args& a);

}  // namespace cowpi::tools

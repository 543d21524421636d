// SPDX-License-Identifier: Apache-2.0
// Small POSIX helpers of cowpi-local: running a child process to completion with its output
// captured, the detached providers' pid file, and a stop that escalates from SIGTERM to SIGKILL.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::local {

/// What a finished child produced.
struct run_result {
  /// The exit status, or -signal, or -1 when it could not start; 124 after a timeout kill.
  int code = -1;
  std::string out;
  std::string err;
};

/// Runs `argv` (argv[0] is a path) with stdin from /dev/null and waits up to `timeout`.
run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

/// The directory of the running executable.
std::filesystem::path self_dir();

/// The pid file of a launched deployment: one "name pid" per line.
std::vector<std::pair<std::string, pid_t>> read_pids(const std::filesystem::path& file);
bool write_pids(const std::filesystem::path& file,
                const std::vector<std::pair<std::string, pid_t>>& pids);

/// True when `pid` is a live (not zombie) cowpi-provider process.
bool provider_alive(pid_t pid);

/// Sends SIGTERM and waits up to `grace` for the process to go, then SIGKILL. Returns
/// "stopped", "killed" or "not running".
std::string stop(pid_t pid, std::chrono::milliseconds grace);

}  // namespace cowpi::local

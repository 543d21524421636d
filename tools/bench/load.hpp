// SPDX-License-Identifier: Apache-2.0
// `cowpi-bench load`: the end-to-end load generator (many simulated users on one client system
// against a router and two mirrors), reached from cowpi-bench's main before Google Benchmark.
#pragma once

namespace cowpi::bench {

/// Runs `cowpi-bench load ...`; `argv[0]` is "load". Returns the process exit code: 0 when every
/// run completed without a problem, 1 when a problem was found (lost, duplicated or rejected
/// messages, alarms, a failed runtime), 2 for bad arguments or a deployment that cannot start.
int run_load(int argc, char** argv);

}  // namespace cowpi::bench

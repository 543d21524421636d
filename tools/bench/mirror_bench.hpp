// SPDX-License-Identifier: Apache-2.0
// `cowpi-bench mirror`: one mirror node in process fed many conversations at once (its
// endpoint and conversation actors on a real store), reached from cowpi-bench's main.
#pragma once

namespace cowpi::bench {

/// Runs `cowpi-bench mirror ...`; `argv[0]` is "mirror". Returns 0 when every COMMIT was
/// answered as the simulated mirror answered it, 1 otherwise, 2 for bad arguments.
int run_mirror(int argc, char** argv);

}  // namespace cowpi::bench

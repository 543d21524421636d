// SPDX-License-Identifier: Apache-2.0
// The provider daemon's main as a function: cowpi-provider runs it with no hooks; a test daemon
// (the lying router of the integration tests) runs it with its own.
#pragma once

#include "cowpi/actors/provider.hpp"

namespace cowpi::tools {

/// Parses `argv` as cowpi-provider does and runs the node until SIGTERM or SIGINT; returns the
/// process exit code.
int run_provider(int argc, char** argv, actors::provider_hooks hooks);

}  // namespace cowpi::tools

// SPDX-License-Identifier: Apache-2.0
// The last step of the router's delivery path, as a link seam: every envelope a queue actor
// streams to a user passes through `outgoing_envelopes` just before it is sent. The provider
// links `delivery_seam.cpp` (the identity); the lying-router integration test links its own
// definition into a test-only daemon to fork or reorder one user's stream in a real deployment.
// CAF-free.
#pragma once

#include "cowpi/protocol/types.hpp"

#include <string>
#include <vector>

namespace cowpi::actors::seam {

/// Returns what to send to `user` in place of `env`, in order (the honest router: `{env}`).
/// Called from queue actors on any scheduler thread; definitions must be thread-safe.
std::vector<protocol::envelope> outgoing_envelopes(const std::string& user, protocol::envelope env);

}  // namespace cowpi::actors::seam

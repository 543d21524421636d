// SPDX-License-Identifier: Apache-2.0
// The queue actor of one connected user (queue.cpp), as the registry (queues.cpp) uses it.
#pragma once

#include "client_actors.hpp"
#include <caf/all.hpp>

#include <memory>
#include <string>

namespace cowpi::actors {

/// Spawns the queue actor of `user`, streaming to `session`, from the queue `registry` (which it
/// reports to: `detach_atom` when the session goes down).
caf::actor spawn_queue(caf::event_based_actor* registry, std::string user, caf::actor session,
                       std::shared_ptr<const queue_deps> d);

/// Writes `user`'s ack of (conv, index) with nobody waiting for it (the session detached).
void write_ack_detached(storage::router_store* store, const std::string& user,
                        const protocol::conv_id& conv, uint64_t index);

}  // namespace cowpi::actors

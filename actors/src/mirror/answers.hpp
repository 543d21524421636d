// SPDX-License-Identifier: Apache-2.0
// What a mirror node's endpoint and conversation actors share: a link answer as it travels, a
// refusal, and the one safe course after a failed write.
#pragma once

#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

namespace cowpi::actors::mirror_node {

/// `r` as a link frame (versioned Cap'n Proto bytes).
inline link_frame encode(const protocol::link_response& r) {
  return link_frame{protocol::wire::encode(r)};
}

/// A REJECT naming `why`.
inline protocol::link_response reject(std::string why) {
  return protocol::link_reject{std::move(why)};
}

/// A failed synced write leaves the in-memory state ahead of the disk: the only safe course is
/// to stop, so that a restart reloads from the store. Nothing was answered.
[[noreturn]] inline void die_on_storage_error(const std::string& what) {
  spdlog::critical(
      "mirror: storage write failed ({}); exiting so that a restart reloads the "
      "last durable state",
      what);
  std::_Exit(70);
}

}  // namespace cowpi::actors::mirror_node

// SPDX-License-Identifier: Apache-2.0
// Private to the client state machine (client.cpp, client_outbox.cpp): how a message template
// is filled in, shared by building a message and rebuilding the outbox.
#pragma once

#include "cowpi/protocol/client.hpp"

#include <cstdint>
#include <string>

namespace cowpi::protocol {

struct client::build_result {
  outbox_version version;
};

namespace detail {

/// The floor our next RECEIPT's voids start above: the parent of our last ordered RECEIPT, or
/// of an earlier one among the first `before` outbox entries.
int64_t receipt_floor_for(const client_conv& cc, const std::string& self, size_t before);

/// Sets a RECEIPT template's parent, parent hash and voids above `floor` (docs/protocol.md §10).
void set_receipt_range(const client_conv& cc, common& c, int64_t floor);

/// A template of type `type` by `self` with aseq `aseq`, on the conversation's latest entry.
common ordered_template(const client_conv& cc, msg_type type, const std::string& self,
                        uint64_t aseq);

}  // namespace detail
}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// Helpers the client actor's translation units share (private to actors/src/client).
#pragma once

#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/messages.hpp"

#include <string>
#include <string_view>

namespace cowpi::actors::client_impl {

/// `c` names nothing to write.
bool no_changes(const protocol::client_changes& c);
/// A rejection as error text (never a user id).
std::string rejection_text(const protocol::rejection& r);
/// The error of an answer that is not the one a request wanted (`what`: the request).
unexpected<error> unexpected_answer(const protocol::response_body& b, std::string_view what);

}  // namespace cowpi::actors::client_impl

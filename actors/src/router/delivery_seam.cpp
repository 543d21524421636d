// SPDX-License-Identifier: Apache-2.0
// The honest definition of the delivery seam (delivery_seam.hpp). Alone in its translation
// unit so that a test daemon linking another definition first never pulls this one in.
#include "router/delivery_seam.hpp"

#include <utility>

namespace cowpi::actors::seam {

std::vector<protocol::envelope> outgoing_envelopes(const std::string& /*user*/,
                                                   protocol::envelope env) {
  std::vector<protocol::envelope> out;
  out.push_back(std::move(env));
  return out;
}

}  // namespace cowpi::actors::seam

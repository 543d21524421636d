// SPDX-License-Identifier: Apache-2.0
// Named fault points: inert unless COWPI_FAULT=<point> is set, then the process SIGKILLs
// itself there. Integration tests use them to crash a provider at an exact step, never timing.
#pragma once

#include <string_view>

namespace cowpi::actors {

/// The fault points the runtime defines (docs/design.md §4).
namespace fault {
inline constexpr std::string_view mirror_commit_before_sync = "mirror.commit.before_sync";
inline constexpr std::string_view mirror_commit_after_sync = "mirror.commit.after_sync";
inline constexpr std::string_view mirror_topup_before_answer = "mirror.topup.before_answer";
inline constexpr std::string_view router_log_before_sync = "router.log.before_sync";
inline constexpr std::string_view router_log_after_sync = "router.log.after_sync";
inline constexpr std::string_view router_answers_after_sync = "router.answers.after_sync";
inline constexpr std::string_view router_ack_after_sync = "router.ack.after_sync";
inline constexpr std::string_view client_send_after_persist = "client.send.after_persist";
inline constexpr std::string_view client_accept_before_ack = "client.accept.before_ack";
}  // namespace fault

/// SIGKILLs this process if COWPI_FAULT names `point`; otherwise does nothing. Optionally
/// COWPI_FAULT_SKIP=<n> lets the point pass n times before it fires (e.g. the 3rd commit).
void fault_point(std::string_view point);

}  // namespace cowpi::actors

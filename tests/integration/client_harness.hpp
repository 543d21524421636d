// SPDX-License-Identifier: Apache-2.0
// Integration-test harness: a real deployment (router + 2 mirrors as processes) and users on
// the client runtime in this process, with helpers to check transcripts.
#pragma once

#include "cowpi/actors/client_runtime.hpp"

#include "support.hpp"
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cowpi::testing {

/// A deployment plus users. Each user is a client_runtime with its own store under the
/// deployment's folder; the protocol clock is shared and can be moved forward.
class live_deployment {
public:
  /// Starts a router and two mirrors from `binary` (cowpi-provider, or a test build of it)
  /// with `env` added per provider name.
  /// With `wait_ready`, returns once the router's links are up and the mirrors' keys are in
  /// its directory. `configure` may change the layout (log level and format) before the start.
  explicit live_deployment(const std::string& name,
                           std::map<std::string, std::map<std::string, std::string>> env = {},
                           std::filesystem::path binary = provider_binary(), bool wait_ready = true,
                           const std::function<void(tools::local_deployment&)>& configure = {});
  ~live_deployment();

  bool ok() const { return run_.has_value(); }
  std::string error() const { return run_ ? std::string() : run_.error().message(); }
  tools::running_deployment& run() { return *run_; }
  const tools::local_deployment& layout() const { return d_; }

  /// Creates, registers and connects `id`; `tweak` may change its options first (e.g. the
  /// router nodes its deployment file lists).
  actors::client_runtime& add_user(
      const std::string& id,
      const std::function<void(actors::client_runtime_options&)>& tweak = {});
  /// The user's runtime (it must exist).
  actors::client_runtime& user(const std::string& id) { return *users_.at(id); }
  /// Closes the user's runtime (it goes offline; its store stays).
  void close_user(const std::string& id);
  /// Reopens a closed user from its store and connects it.
  actors::client_runtime& reopen_user(const std::string& id);

  /// Moves the protocol clock forward (receipt rule, key ages).
  void advance_clock(uint64_t seconds) { clock_ += seconds; }

  /// Syncs every open user until all are idle (or `timeout`); returns true when they are.
  bool settle(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  /// The verified transcript of `id` in `conv`.
  std::vector<actors::transcript_line> transcript(const std::string& id,
                                                  const protocol::conv_id& conv);
  /// Alarms raised at `id` so far.
  std::vector<protocol::alarm> alarms(const std::string& id);
  /// The HISTORY_EXPIRED notices `id` received so far (their details).
  std::vector<std::string> history_expired(const std::string& id);

  /// Restarts a provider process after it died (same config, same port).
  bool restart(const std::string& provider, const std::map<std::string, std::string>& env = {});
  /// Stops a running provider (SIGTERM, waits for it), then restarts it with `env`.
  bool restart_after_stop(const std::string& provider,
                          const std::map<std::string, std::string>& env = {});
  tools::provider_process& process(const std::string& provider);

private:
  actors::client_runtime_options options_for(const std::string& id);

  std::filesystem::path binary_;
  std::map<std::string, std::function<void(actors::client_runtime_options&)>> tweaks_;
  temp_dir dir_;
  tools::local_deployment d_;
  expected<tools::running_deployment> run_;
  std::unique_ptr<actors::client_system> sys_;
  std::map<std::string, std::unique_ptr<actors::client_runtime>> users_;
  std::atomic<uint64_t> clock_{2'000'000'000};
  std::mutex mu_;
  std::map<std::string, std::vector<protocol::alarm>> alarms_;
  std::map<std::string, std::vector<std::string>> expired_;
};

/// Checks the invariants of a conversation across users: every pair agrees on T at every
/// index both hold; each user's indices are consecutive; no (author, aseq) appears twice.
void expect_one_conversation(live_deployment& dep, const protocol::conv_id& conv,
                             const std::vector<std::string>& users);

/// Every provider process of `dep` (router first) with the store calls that may block it made
/// on a scheduler or I/O thread (`cowpi_store_blocking_calls_total`, all ops), read from its
/// admin socket; -1 when the metrics cannot be read.
std::map<std::string, double> blocking_store_calls(const live_deployment& dep);
/// Expects `blocking_store_calls` to be 0 for every provider.
void expect_no_blocking_store_calls(const live_deployment& dep);

/// The texts of the MESSAGE entries of a transcript, in order.
std::vector<std::string> texts(const std::vector<actors::transcript_line>& t);

}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// A single-threaded, in-memory stand-in for the routing provider (tests only): a TCP listener
// on 127.0.0.1 running the real transport session (`protocol::router_session`), a directory,
// and ordering through `protocol::router_conv` with in-process `protocol::mirror`s, so that a
// client runtime can be driven end to end without the CAF router.
#pragma once

#include "cowpi/config/deployment_file.hpp"
#include "cowpi/protocol/messages.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace cowpi::testing {

/// Settings of a `fake_router`.
struct fake_router_options {
  /// Mirrors of the deployment (named mirror-a, mirror-b, ...).
  size_t mirrors = 2;
  uint64_t seed = 7;
};

/// What the fake directory holds for one user.
struct fake_account {
  size_t one_time = 0;
  uint64_t last_resort_id = 0;
  uint64_t max_prekey_id = 0;
};

/// The fake router. Its thread serves every connection; the control methods are thread-safe
/// and take effect at the thread's next turn (within about 20 ms).
class fake_router {
public:
  explicit fake_router(fake_router_options o = {});
  ~fake_router();
  fake_router(const fake_router&) = delete;
  fake_router& operator=(const fake_router&) = delete;

  /// Returns the bound port (127.0.0.1).
  uint16_t port() const noexcept { return port_; }
  /// Returns the client deployment file for this router.
  config::deployment_file deployment() const;

  /// Closes every client connection (the clients see the connection drop).
  void drop_connections();
  /// false: requests are read but never answered (envelopes still flow).
  void set_answering(bool on);
  /// Returns how many HELLOs arrived so far.
  size_t hellos() const;
  /// Returns how many client connections are open now.
  size_t connections() const;
  /// Returns the directory's view of `id`, if registered.
  std::optional<fake_account> account(const std::string& id) const;
  /// Registers `id` with a fresh key nobody holds (to make an id taken).
  void take_id(const std::string& id);
  /// Removes up to `count` of `id`'s one-time pre-keys from the pool (as fetches would).
  void take_prekeys(const std::string& id, size_t count);
  /// Answers the next `count` SUBMITs of `user` with `why` instead of queueing them.
  void refuse_submits(const std::string& user, size_t count, protocol::rejection why);
  /// Sends `user`'s live session a `response{0, HISTORY_EXPIRED}`.
  void push_history_expired(const std::string& user);

  struct state;

private:
  void run();

  std::unique_ptr<state> st_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace cowpi::testing

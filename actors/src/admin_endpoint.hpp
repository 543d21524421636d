// SPDX-License-Identifier: Apache-2.0
// The provider's admin endpoint (docs/design.md §6): a Unix socket answering one JSON request per
// connection with live state gathered from named actors, served by its own thread.
#pragma once

#include "cowpi/actors/metrics.hpp"
#include "cowpi/protocol/expected.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cowpi::actors {

/// Serves `listen.admin_socket`. Each connection sends one line of JSON and gets one line back,
/// then the endpoint closes it (the format is in docs/architecture.md, "Admin endpoint"):
///
///   {"get":"status"}                       -> every section
///   {"get":"status","section":"queues"}    -> that section only
///   {"get":"sections"}                     -> the section and command names
///   {"get":"metrics"}                      -> the metrics, Prometheus text in a string
///   {"do":"audit","conv":"<hex>"}          -> the command "audit", answered by its actor
///
/// A section is a named actor answering `(stats_atom)` with a JSON object in a std::string;
/// a command is a named actor answering `(command_atom, std::string request_line)` with a JSON
/// object in a std::string. The endpoint asks either with a `caf::scoped_actor` request and a
/// timeout (`section_timeout`, `command_timeout`), so no actor ever blocks on the socket and
/// the serving thread is never blocked longer than those bounds. Connections are served one at
/// a time by the endpoint's thread, each with a 2 s deadline to send its request and take its
/// answer (plus the command's run time). Thread-safe: `add_section` and `add_command` may be
/// called from any thread at any time.
class admin_endpoint {
public:
  /// Binds `socket_path` (a stale socket file is replaced; the socket is made 0600) and starts
  /// the serving thread. `sys` must outlive the endpoint. Fails with `errc::config` for a path
  /// too long for a Unix socket or an existing non-socket file, and `errc::unavailable` when
  /// the socket cannot be created or bound.
  [[nodiscard]] static expected<std::unique_ptr<admin_endpoint>> start(
      caf::actor_system& sys, const std::filesystem::path& socket_path,
      std::chrono::milliseconds section_timeout = std::chrono::milliseconds(1000),
      std::chrono::milliseconds command_timeout = std::chrono::milliseconds(10000));

  admin_endpoint(const admin_endpoint&) = delete;
  admin_endpoint& operator=(const admin_endpoint&) = delete;
  /// Stops the thread and removes the socket file.
  ~admin_endpoint();

  /// Adds (or replaces) the section `name`; its JSON appears under `sections.<name>`.
  void add_section(std::string name, caf::actor source);

  /// Adds (or replaces) the command `name`: a request `{"do": name, ...}` is handed, as its
  /// whole request line, to `handler` as `(command_atom, std::string)`; the handler's
  /// `std::string` answer (one JSON object) is the reply. A handler that does not answer
  /// within `command_timeout` gives `{"ok":false,"error":"..."}`.
  void add_command(std::string name, caf::actor handler);

  /// Answers `{"get":"metrics"}` with `{"ok":true,"metrics":TEXT}`, TEXT being `r`'s
  /// rendering. `r` must outlive the endpoint. Without it, that request fails.
  void set_metrics(const metrics::registry* r);

  /// Stops serving: joins the thread, closes and unlinks the socket. Idempotent.
  void stop();

  /// Returns the JSON answer to one request line (what a socket client would get, without the
  /// trailing newline). For tests and for the serving thread.
  std::string answer(const std::string& request_line);

  const std::filesystem::path& path() const noexcept { return path_; }

private:
  admin_endpoint(caf::actor_system& sys, std::filesystem::path path, int listen_fd, int stop_fd[2],
                 std::chrono::milliseconds section_timeout,
                 std::chrono::milliseconds command_timeout);
  void serve();
  void serve_one(int fd);
  std::string section_json(const caf::actor& source);
  std::string command_json(const caf::actor& handler, const std::string& request_line);

  caf::actor_system& sys_;
  std::filesystem::path path_;
  int listen_fd_ = -1;
  int stop_read_ = -1;
  int stop_write_ = -1;
  std::chrono::milliseconds section_timeout_;
  std::chrono::milliseconds command_timeout_;
  std::chrono::steady_clock::time_point started_;
  std::mutex mu_;
  std::vector<std::pair<std::string, caf::actor>> sections_;
  std::vector<std::pair<std::string, caf::actor>> commands_;
  const metrics::registry* metrics_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
};

}  // namespace cowpi::actors

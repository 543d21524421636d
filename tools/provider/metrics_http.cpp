// SPDX-License-Identifier: Apache-2.0
// The scrape endpoint on cpp-httplib (Debian's libcpp-httplib-dev).
#include "metrics_http.hpp"

#include "cowpi/actors/metrics.hpp"

#include <httplib.h>

#include <atomic>
#include <thread>

namespace cowpi::tools {

struct metrics_server::impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> finished{false};
  bool stopped = false;
};

expected<std::unique_ptr<metrics_server>> metrics_server::start(
    const config::endpoint& where, std::function<std::string()> render) {
  auto p = std::make_unique<impl>();
  auto& s = p->server;
  // One worker: a scrape is a few kilobytes rendered in microseconds.
  s.new_task_queue = [] { return new httplib::ThreadPool(1); };
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_max_count(16);
  s.set_payload_max_length(4096);
  s.Get("/metrics", [render = std::move(render)](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(), std::string(metrics::content_type).c_str());
  });
  int port = where.port;
  if (where.port == 0) {
    port = s.bind_to_any_port(where.host);
  } else if (!s.bind_to_port(where.host, where.port)) {
    port = -1;
  }
  if (port <= 0) {
    return fail(errc::unavailable, "metrics: cannot listen on " + config::to_string(where)
                                       + " (in use, or not an address of this host)");
  }
  auto* raw = p.get();
  p->thread = std::thread([raw] {
    raw->server.listen_after_bind();
    raw->finished = true;
  });
  // httplib's stop() does nothing before the loop runs: wait for it, so that a stop right
  // after the start cannot leave the thread serving.
  while (!raw->server.is_running() && !raw->finished)
    std::this_thread::yield();
  return std::unique_ptr<metrics_server>(
      new metrics_server(std::move(p), static_cast<uint16_t>(port)));
}

metrics_server::metrics_server(std::unique_ptr<impl> p, uint16_t port)
    : impl_(std::move(p)), port_(port) {}

metrics_server::~metrics_server() {
  stop();
}

void metrics_server::stop() {
  if (!impl_ || impl_->stopped)
    return;
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

}  // namespace cowpi::tools

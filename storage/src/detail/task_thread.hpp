// SPDX-License-Identifier: Apache-2.0
// One thread running posted tasks in order: where a store does work its callers must not wait
// for on their own threads (reads that may touch the disk, for actors).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace cowpi::storage::detail {

class task_thread {
public:
  task_thread() : t_([this] { run(); }) {}
  task_thread(const task_thread&) = delete;
  task_thread& operator=(const task_thread&) = delete;
  /// Stops the thread; tasks not started are dropped (their callbacks never run).
  ~task_thread() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    t_.join();
  }

  void post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> g(mu_);
      q_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

private:
  void run() {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
      cv_.wait(g, [this] { return stop_ || !q_.empty(); });
      if (stop_)
        return;
      auto f = std::move(q_.front());
      q_.pop_front();
      g.unlock();
      f();
      g.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::thread t_;  // last: started once the members above exist
};

}  // namespace cowpi::storage::detail

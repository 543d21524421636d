// SPDX-License-Identifier: Apache-2.0
// Crash tests (label `crash`): cowpi-crash-child writes through the stores and is SIGKILLed at
// random points; after reopening, every write it had acknowledged is there, nothing half-applied
// is visible, and the deployment resumes with each message accepted exactly once by each
// member. Iterations per test: $COWPI_CRASH_ITERATIONS (default 200). The deployment test
// alternates block modes (docs/protocol.md §5.2) every 10 kills.
#include "cowpi/storage/router_store.hpp"

#include "durable_world.hpp"
#include "synthetic_log.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace cowpi::testing {
namespace {

int iterations() {
  const char* e = std::getenv("COWPI_CRASH_ITERATIONS");
  const int n = e != nullptr ? std::atoi(e) : 200;
  return n > 0 ? n : 200;
}

// Runs the child for `ms` milliseconds, SIGKILLs it, and returns the complete lines it printed.
std::vector<std::string> run_and_kill(const std::string& mode, const std::string& dir,
                                      uint64_t seed, int ms) {
  int fds[2];
  if (::pipe(fds) != 0)
    ADD_FAILURE() << "pipe";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    const std::string s = std::to_string(seed);
    ::execl(COWPI_CRASH_CHILD, "cowpi-crash-child", mode.c_str(), dir.c_str(), s.c_str(),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  bool eof = false;
  while (!eof) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0)
      break;
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) > 0) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0)
        eof = true;
      if (n > 0)
        out.append(buf, static_cast<size_t>(n));
    }
  }
  ::kill(pid, SIGKILL);
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child did not die of the kill (exit " << WEXITSTATUS(status) << ")";
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl = out.find('\n'); nl != std::string::npos; nl = out.find('\n', start)) {
    lines.push_back(out.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;  // a torn last line (no '\n') is not acknowledged
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string s; in >> s;)
    w.push_back(s);
  return w;
}

// Kill delays: uniform over [lo, hi] ms from a seeded stream, so a failing run can be replayed.
int delay(crypto::deterministic_rng& r, int lo, int hi) {
  uint8_t b[2];
  r.fill(b);
  return lo + (b[0] << 8 | b[1]) % (hi - lo + 1);
}

TEST(storage_crash, a_killed_deployment_loses_no_acknowledged_write_and_accepts_each_message_once) {
  const int n = iterations();
  crypto::deterministic_rng kills(0xdead);
  std::unique_ptr<temp_dir> dir;
  std::set<std::string> sent;                                         // acknowledged sends
  std::set<std::tuple<std::string, std::string, uint64_t>> accepted;  // (user, conv, i)
  std::set<std::pair<std::string, uint64_t>> logged;                  // (conv, i)
  size_t with_conv = 0;
  uint64_t checked = 0;  // acknowledged messages checked, summed over iterations
  for (int it = 0; it < n; ++it) {
    // A fresh deployment every 10 kills; in between, each child restarts on the previous one
    // (so crashes also hit recovery itself).
    if (it % 10 == 0) {
      dir = std::make_unique<temp_dir>("crash-world");
      sent.clear();
      accepted.clear();
      logged.clear();
    }
    const uint64_t seed = 1000 + static_cast<uint64_t>(it) * 2;
    // Chain mode in every other deployment: its counters and skipped keys must survive too.
    const bool chain = (it / 10) % 2 == 1;
    const auto lines =
        run_and_kill(chain ? "world-chain" : "world", dir->str(), seed, delay(kills, 30, 1500));
    for (const auto& l : lines) {
      auto w = words(l);
      if (w.size() >= 3 && w[0] == "sent")
        sent.insert(w[2]);
      if (w.size() == 4 && w[0] == "accepted")
        accepted.emplace(w[1], w[2], std::stoull(w[3]));
      if (w.size() == 3 && w[0] == "logged")
        logged.emplace(w[1], std::stoull(w[2]));
    }
    SCOPED_TRACE("iteration " + std::to_string(it) + (chain ? " (chain mode), " : ", ")
                 + std::to_string(lines.size()) + " lines");

    durable_world w(dir->path(), durable_options{seed + 1, 2, 5'000'000 + seed * 1000});
    for (const char* u : {"alice", "bob", "carol"})
      w.add_user(u);
    // On disk, before anything is resent: nothing half-applied, every acknowledged write there.
    ASSERT_EQ(w.check_consistency(), std::vector<std::string>{});
    const auto convs = w.router_db().conversations().value();
    for (const auto& [conv, i] : logged) {
      bool found = false;
      for (const auto& c : convs)
        if (conv_hex(c) == conv)
          found = w.router_db().read_entry(c, i).value().has_value();
      ASSERT_TRUE(found) << "logged entry " << i << " lost";
    }
    if (w.client("alice").convs().empty()) {
      ASSERT_TRUE(sent.empty());
      continue;
    }
    ++with_conv;
    const auto conv = w.client("alice").convs().begin()->first;
    ASSERT_EQ(w.client("alice").convs().begin()->second.st.mode(),
              chain ? protocol::block_mode::chain : protocol::block_mode::pk);
    for (const auto& [user, c, i] : accepted) {
      if (c != conv_hex(conv))
        continue;
      ASSERT_TRUE(w.client_db(user).d_at(conv, i).has_value())
          << user << " lost accepted entry " << i;
    }
    // Resume: resend what was in flight, deliver everything, and check exactly-once.
    w.recover();
    w.run();
    w.advance_time(60);
    w.receipts_due();
    w.run();
    EXPECT_TRUE(w.alarms().empty());
    EXPECT_TRUE(w.operator_alarms().empty());
    ASSERT_EQ(w.check_consistency(), std::vector<std::string>{});
    std::vector<std::string> order;
    for (const char* u : {"alice", "bob", "carol"}) {
      auto tr = w.client_db(u).transcript(conv);
      ASSERT_TRUE(tr.has_value());
      std::vector<std::string> texts;
      std::map<std::string, int> count;
      for (const auto& a : *tr) {
        if (a.type != protocol::msg_type::message)
          continue;
        texts.emplace_back(a.plaintext.begin(), a.plaintext.end());
        ++count[texts.back()];
      }
      for (const auto& [t, c] : count)
        ASSERT_EQ(c, 1) << u << " accepted " << t << " twice";
      for (const auto& s : sent)
        ASSERT_EQ(count[s], 1) << u << " never accepted " << s;
      if (order.empty())
        order = texts;
      ASSERT_EQ(texts, order) << u << " disagrees on the order";
    }
    checked += sent.size();
  }
  RecordProperty("iterations", n);
  RecordProperty("iterations_with_a_conversation", static_cast<int>(with_conv));
  RecordProperty("acknowledged_messages_checked", std::to_string(checked));
  EXPECT_GT(with_conv, static_cast<size_t>(n) / 2) << "most kills came before any conversation";
}

TEST(storage_crash, concurrent_group_committed_router_writes_survive_a_kill_whole_or_not_at_all) {
  const int n = iterations();
  crypto::deterministic_rng kills(0xbeef);
  uint64_t total_appended = 0;
  for (int it = 0; it < n; ++it) {
    temp_dir dir("crash-router");
    const uint64_t seed = 5000 + static_cast<uint64_t>(it);
    const auto lines = run_and_kill("router", dir.str(), seed, delay(kills, 20, 600));
    SCOPED_TRACE("iteration " + std::to_string(it));
    std::map<uint64_t, uint64_t> appended;  // thread -> highest index
    std::map<uint64_t, std::set<uint64_t>> answered;
    std::map<std::pair<uint64_t, std::string>, uint64_t> acked;
    for (const auto& l : lines) {
      auto w = words(l);
      if (w.size() == 3 && w[0] == "appended") {
        auto& a = appended[std::stoull(w[1])];
        a = std::max<uint64_t>(a, std::stoull(w[2]) + 1);
      }
      if (w.size() == 3 && w[0] == "answered")
        answered[std::stoull(w[1])].insert(std::stoull(w[2]));
      if (w.size() == 4 && w[0] == "acked") {
        auto& a = acked[{std::stoull(w[1]), w[2]}];
        a = std::max<uint64_t>(a, std::stoull(w[3]) + 1);
      }
    }
    auto rs = storage::router_store::open(dir.path());
    if (!rs && rs.error().code == errc::not_found)
      continue;  // killed before creating it
    ASSERT_TRUE(rs.has_value()) << rs.error().message();
    for (uint64_t t = 0; t < 4; ++t) {
      const auto conv = synthetic_conv::conv_id_from(seed * 16 + t);
      const uint64_t next = (*rs)->next_index(conv).value();
      total_appended += next;
      ASSERT_GE(next, appended[t]) << "thread " << t << " lost an acknowledged append";
      auto rc = (*rs)->load_conv(conv, {}, {});
      ASSERT_TRUE(rc.has_value()) << rc.error().message();
      if (next == 0) {
        ASSERT_FALSE(rc->has_value());
        continue;
      }
      ASSERT_TRUE(rc->has_value());
      const auto* st = (**rc).state();
      for (uint64_t i = 0; i < next; ++i) {
        auto se = (*rs)->read_entry(conv, i);
        ASSERT_TRUE(se.has_value() && se->has_value()) << "entry " << i << " below next " << next;
        const auto& e = **se;
        ASSERT_EQ(e.entry.blocks.size() + 1, e.entry.slots.size()) << "blocks of " << i;
        if (answered[t].contains(i)) {
          ASSERT_TRUE(e.complete) << "answers of " << i << " lost";
        }
        if (e.complete) {
          ASSERT_EQ(e.answers.size(), 2u);
          for (const auto& a : e.answers)
            ASSERT_TRUE(a && a->size() == e.entry.slots.size());
        } else {
          ASSERT_TRUE((**rc).in_flight().contains(i)) << i << " pending but not resumed";
          ASSERT_EQ(e.entry.ambs.size(), 2u);
        }
        if (i + 1 == next) {
          ASSERT_EQ(*st->t_at(i), e.entry.t) << "record and log disagree";
        }
      }
      ASSERT_FALSE((*rs)->read_entry(conv, next).value().has_value()) << "entry past next";
      for (const char* u : {"alice", "dave"}) {
        auto c = (*rs)->cursor(u, conv).value();
        const uint64_t want = acked[{t, u}];
        if (want == 0)
          continue;
        ASSERT_TRUE(c.has_value());
        ASSERT_GE(c->next, want) << u << "'s acknowledged cursor went back";
      }
    }
  }
  RecordProperty("iterations", n);
  EXPECT_GT(total_appended, static_cast<uint64_t>(n)) << "the children hardly wrote anything";
}

}  // namespace
}  // namespace cowpi::testing

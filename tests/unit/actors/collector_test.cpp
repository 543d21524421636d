// SPDX-License-Identifier: Apache-2.0
// The retention collector (actors/src/router/collector.cpp) on a real router store: a run goes
// over the conversations in steps of 256, answering status requests between them, and every
// `collect` command gets a whole run that starts no earlier than the command.
#include "router/collector.hpp"

#include "cowpi/storage/router_store.hpp"

#include "synthetic_log.hpp"
#include "temp_dir.hpp"
#include "type_ids.hpp"
#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace cowpi::actors {
namespace {

using namespace std::chrono_literals;

constexpr size_t conversations = 600;  // three steps

TEST(collector, status_answers_during_a_run_and_each_collect_command_gets_a_whole_run) {
  testing::temp_dir d;
  auto rs = storage::router_store::open(d.path() / "router");
  ASSERT_TRUE(rs.has_value()) << rs.error().message();
  for (size_t k = 0; k < conversations; ++k) {
    testing::synthetic_conv sc(5000 + k, {"alice", "bob"});
    ASSERT_TRUE((*rs)->append(sc.rc(), sc.setup(), 1000).has_value());
  }

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::cowpi>();
  caf::actor_system sys{cfg};
  collector_deps deps;
  deps.store = rs->get();
  deps.interval = 3600s;
  auto c = spawn_collector(sys, std::move(deps));

  // The run at start is the first message in the collector's mailbox; a status request sent
  // now is answered between its steps, before any conversation is collected.
  caf::scoped_actor self{sys};
  std::string during;
  self->request(c, 30s, stats_atom_v)
      .receive([&](const std::string& x) { during = x; },
               [](caf::error& e) { FAIL() << caf::to_string(e); });
  auto s = nlohmann::json::parse(during);
  ASSERT_TRUE(s.contains("running")) << during;
  EXPECT_EQ(s["running"].at("done").get<uint64_t>(), 0u);
  EXPECT_EQ(s["running"].at("of").get<uint64_t>(), conversations);
  EXPECT_EQ(s.at("runs").get<uint64_t>(), 0u);

  // Two commands back to back (the first may arrive during the run at start): each is answered
  // with a whole run of its own or shared with the other, never with the one under way.
  const std::string line = R"({"do":"collect"})";
  self->send(c, command_atom_v, line);
  self->send(c, command_atom_v, line);
  for (int k = 0; k < 2; ++k)
    self->receive(
        [&](const std::string& x) {
          auto j = nlohmann::json::parse(x);
          EXPECT_TRUE(j.at("ok").get<bool>()) << x;
          EXPECT_EQ(j.at("conversations").get<uint64_t>(), conversations) << x;
          EXPECT_EQ(j.at("errors").get<uint64_t>(), 0u) << x;
        },
        caf::after(30s) >> [] { FAIL() << "no answer from the collector"; });

  // Once they are answered no run is under way, and the runs are counted.
  std::string after;
  self->request(c, 30s, stats_atom_v)
      .receive([&](const std::string& x) { after = x; },
               [](caf::error& e) { FAIL() << caf::to_string(e); });
  auto a = nlohmann::json::parse(after);
  EXPECT_FALSE(a.contains("running")) << after;
  EXPECT_GE(a.at("runs").get<uint64_t>(), 2u);
  EXPECT_EQ(a.at("last_run").at("conversations").get<uint64_t>(), conversations);
  self->send_exit(c, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace cowpi::actors

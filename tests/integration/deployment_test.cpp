// SPDX-License-Identifier: Apache-2.0
// A router and two mirrors as real processes: start-up, links, restarts.
#include "support.hpp"
#include <gtest/gtest.h>

#include <csignal>

namespace cowpi::testing {
namespace {

bool links_up(const tools::local_deployment& d) {
  return tools::router_ready(d);
}

TEST(deployment, router_and_two_mirrors_start_and_the_links_come_up) {
  temp_dir dir("deploy");
  tools::local_deployment d;
  d.dir = dir.path();
  auto run = tools::start_local_deployment(d, provider_binary());
  ASSERT_TRUE(run.has_value()) << run.error().message();
  EXPECT_NE(run->router.port("clients"), 0);
  EXPECT_TRUE(eventually([&] { return links_up(d); }))
      << admin_request(d.dir / d.router / "admin.sock", {{"get", "status"}}).dump();
}

TEST(deployment, a_mirror_killed_and_restarted_is_linked_again) {
  temp_dir dir("deploy");
  tools::local_deployment d;
  d.dir = dir.path();
  auto run = tools::start_local_deployment(d, provider_binary());
  ASSERT_TRUE(run.has_value()) << run.error().message();
  ASSERT_TRUE(eventually([&] { return links_up(d); }));
  run->mirrors[0].signal(SIGKILL);
  (void)run->mirrors[0].wait(std::chrono::seconds(10));
  EXPECT_TRUE(eventually([&] { return !links_up(d); }));
  auto again = tools::restart_provider(d, d.mirrors[0], provider_binary());
  ASSERT_TRUE(again.has_value()) << again.error().message();
  run->mirrors[0] = std::move(*again);
  EXPECT_TRUE(eventually([&] { return links_up(d); }));
}

TEST(deployment, providers_stop_cleanly_on_sigterm) {
  temp_dir dir("deploy");
  tools::local_deployment d;
  d.dir = dir.path();
  auto run = tools::start_local_deployment(d, provider_binary());
  ASSERT_TRUE(run.has_value()) << run.error().message();
  run->router.signal(SIGTERM);
  EXPECT_EQ(run->router.wait(std::chrono::seconds(20)), std::optional<int>(0));
  for (auto& m : run->mirrors) {
    m.signal(SIGTERM);
    EXPECT_EQ(m.wait(std::chrono::seconds(20)), std::optional<int>(0));
  }
}

}  // namespace
}  // namespace cowpi::testing

// SPDX-License-Identifier: Apache-2.0
// Router<->mirror links with a certificate from a CA the other side does not trust, as real
// processes: the link never comes up, the router says which side refused whose certificate,
// neither process dies, and the link comes up once the right CA is back.
#include "certs.hpp"
#include "support.hpp"
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>

namespace cowpi::testing {
namespace {

namespace fs = std::filesystem;

// The router's admin section for its link to `mirror` (null when the socket does not answer).
nlohmann::json link_section(const tools::local_deployment& d, const std::string& mirror) {
  return status_section(d.dir / d.router / "admin.sock", "link:" + mirror);
}

bool link_up(const tools::local_deployment& d, const std::string& mirror) {
  const auto l = link_section(d, mirror);
  return l.is_object() && l.value("up", false);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A provider config changed through the config module (so the file stays one it accepts).
void edit_config(const tools::local_deployment& d, const std::string& provider,
                 const std::function<void(config::provider_config&)>& edit) {
  auto c = config::load_provider_config(d.config_path(provider));
  ASSERT_TRUE(c.has_value()) << c.error().message();
  edit(*c);
  std::ofstream(d.config_path(provider), std::ios::trunc) << config::to_toml(*c);
}

void stop(tools::provider_process& p) {
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(std::chrono::seconds(20)), std::optional<int>(0));
}

// One router and one mirror, linked; `rogue` holds a second CA and a certificate for the
// mirror signed by it (the project's cert helper mints both CAs the same way).
struct fixture {
  temp_dir dir{"tlslink"};
  tools::local_deployment d;
  tools::running_deployment run;
  tools::tls_files rogue;
  std::string mirror = "mirror-a";

  void start() {
    d.dir = dir.path();
    d.mirrors = {mirror};
    auto r = tools::start_local_deployment(d, provider_binary());
    ASSERT_TRUE(r.has_value()) << r.error().message();
    run = std::move(*r);
    // Linked with the deployment's own CAs first: what follows is the certificates' doing.
    ASSERT_TRUE(eventually([&] { return link_up(d, mirror); }));
    auto t = tools::make_provider_tls(d.dir / "rogue", mirror);
    ASSERT_TRUE(t.has_value()) << t.error().message();
    rogue = *t;
  }

  // Restarts the mirror from its config as it is now on disk.
  void restart_mirror() {
    auto p = tools::restart_provider(d, mirror, provider_binary());
    ASSERT_TRUE(p.has_value()) << p.error().message();
    run.mirrors[0] = std::move(*p);
  }

  // Waits until the router reports the link down with `reason` in last_error and in its log,
  // then until it has tried twice more without the link coming up. (When the mirror refuses
  // the router's certificate, CAF notices only at middleman.connection-timeout, 5 s a try.)
  void expect_refused(const std::string& reason) {
    nlohmann::json l;
    EXPECT_TRUE(eventually(
        [&] {
          l = link_section(d, mirror);
          return l.is_object() && l.value("last_error", "").find(reason) != std::string::npos;
        },
        std::chrono::seconds(60)))
        << l.dump();
    ASSERT_TRUE(l.is_object());
    EXPECT_FALSE(l.value("up", true));
    const uint64_t tries = l.value("connects", uint64_t{0});
    bool came_up = false;
    EXPECT_TRUE(eventually(
        [&] {
          l = link_section(d, mirror);
          came_up = came_up || (l.is_object() && l.value("up", false));
          return l.is_object() && l.value("connects", uint64_t{0}) >= tries + 2;
        },
        std::chrono::seconds(60)))
        << l.dump();
    EXPECT_FALSE(came_up) << l.dump();
    EXPECT_NE(l.value("last_error", "").find(reason), std::string::npos) << l.dump();

    const std::string log = read_text(d.log_path(d.router));
    EXPECT_NE(log.find("link " + mirror + ": cannot connect to 127.0.0.1:"
                       + std::to_string(run.mirrors[0].port("links"))
                       + ": TLS handshake refused: " + reason),
              std::string::npos)
        << log;
    // Neither process crashed: both run, and the mirror's admin socket still answers.
    EXPECT_TRUE(run.router.running());
    EXPECT_TRUE(run.mirrors[0].running());
    EXPECT_EQ(
        admin_request(d.dir / mirror / "admin.sock", {{"get", "sections"}}).value("ok", false),
        true);
  }
};

TEST(tls_link, a_mirror_certificate_from_a_ca_the_router_does_not_trust_is_refused_until_fixed) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start());
  const std::string good = read_text(f.d.config_path(f.mirror));
  stop(f.run.mirrors[0]);
  ASSERT_NO_FATAL_FAILURE(edit_config(f.d, f.mirror, [&](config::provider_config& c) {
    c.tls.certificate = f.rogue.node_cert;
    c.tls.key = f.rogue.node_key;
  }));
  ASSERT_NO_FATAL_FAILURE(f.restart_mirror());

  // (OpenSSL's reason follows in parentheses; it depends on how the two CAs are named.)
  f.expect_refused("the mirror's certificate is not signed by a CA in this router's tls.ca (");

  // Fixed: the mirror is restarted with its certificate from the CA the router trusts.
  stop(f.run.mirrors[0]);
  std::ofstream(f.d.config_path(f.mirror), std::ios::trunc) << good;
  ASSERT_NO_FATAL_FAILURE(f.restart_mirror());
  EXPECT_TRUE(eventually([&] { return link_up(f.d, f.mirror); }))
      << link_section(f.d, f.mirror).dump();
  EXPECT_TRUE(f.run.router.running());
}

TEST(tls_link, a_router_certificate_from_a_ca_the_mirror_does_not_trust_is_refused_until_fixed) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start());
  const std::string good = read_text(f.d.config_path(f.mirror));
  stop(f.run.mirrors[0]);
  // The mirror trusts another CA than the router's: it refuses the router's client certificate.
  ASSERT_NO_FATAL_FAILURE(
      edit_config(f.d, f.mirror, [&](config::provider_config& c) { c.tls.ca = f.rogue.ca_cert; }));
  ASSERT_NO_FATAL_FAILURE(f.restart_mirror());

  f.expect_refused(
      "the mirror refused the TLS handshake (tlsv1 alert unknown ca): its tls.ca must hold the "
      "CA that signed this router's tls.certificate");

  // Fixed: the mirror is restarted trusting the router's CA again.
  stop(f.run.mirrors[0]);
  std::ofstream(f.d.config_path(f.mirror), std::ios::trunc) << good;
  ASSERT_NO_FATAL_FAILURE(f.restart_mirror());
  EXPECT_TRUE(eventually([&] { return link_up(f.d, f.mirror); }))
      << link_section(f.d, f.mirror).dump();
  EXPECT_TRUE(f.run.router.running());
}

}  // namespace
}  // namespace cowpi::testing

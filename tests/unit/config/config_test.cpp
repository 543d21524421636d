// SPDX-License-Identifier: Apache-2.0
// The provider config and the client deployment file: the examples, every refusal with its
// FILE:LINE:COL, path resolution, defaults and render -> parse round trips.
#include "cowpi/config/deployment_file.hpp"
#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/limits.hpp"

#include "hex.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace cowpi::config {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view router_key_hex =
    "d51e87cca9e9996cfa783867889d1465d49b317f5eeed6d1bf6093e45f49f42f";
constexpr std::string_view key_a_hex =
    "f4d48feb61b03aa16520be5d99811cf9d74ae8d7f8f136e77e6df5f29a92bb5d";
constexpr std::string_view key_b_hex =
    "3e2b969c48138990270aadf694428be5dacca001c1474e20d42fecc188aee55d";

fs::path example(std::string_view name) {
  return fs::path(COWPI_SOURCE_DIR) / "config" / "examples" / std::string(name);
}

// A small valid router config; tests append to it or replace parts of it.
std::string router_text() {
  return std::string(R"([provider]
role = "router"
name = "router"
data_dir = "/srv/router"

[listen]
clients = "127.0.0.1:0"

[tls]
certificate = "tls/node.pem"
key = "tls/node.key"
ca = "tls/ca.pem"

[[mirrors]]
name = "mirror-a"
address = "127.0.0.1:7411"
public_key = ")")
         + std::string(key_a_hex) + "\"\n";
}

// A small valid mirror config.
std::string mirror_text() {
  return std::string(R"([provider]
role = "mirror"
name = "mirror-a"
data_dir = "/srv/mirror-a"

[listen]
links = "127.0.0.1:0"

[tls]
certificate = "tls/node.pem"
key = "tls/node.key"
ca = "tls/ca.pem"

[router]
name = "router"
public_key = ")")
         + std::string(router_key_hex) + "\"\n";
}

// A small valid deployment file.
std::string deployment_text() {
  return std::string(R"([router]
name = "router"
address = "127.0.0.1:7400"
public_key = ")")
         + std::string(router_key_hex) + R"("
retention_s = 86400

[[mirrors]]
name = "mirror-b"
public_key = ")"
         + std::string(key_b_hex) + R"("

[[mirrors]]
name = "mirror-a"
public_key = ")"
         + std::string(key_a_hex) + "\"\n";
}

std::string mirror_entry(std::string_view name, std::string_view address, std::string_view key) {
  return "\n[[mirrors]]\nname = \"" + std::string(name) + "\"\naddress = \"" + std::string(address)
         + "\"\npublic_key = \"" + std::string(key) + "\"\n";
}

// Returns `text` with the only occurrence of `from` replaced by `to`.
std::string replace(std::string text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "test bug: no " << from;
  EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "test bug: " << from << " twice";
  if (at != std::string::npos) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// Returns "test.toml:LINE:COL: " for the only occurrence of `needle` in `text`.
std::string at(std::string_view text, std::string_view needle,
               std::string_view source = "test.toml") {
  const size_t pos = text.find(needle);
  EXPECT_NE(pos, std::string_view::npos) << "test bug: no " << needle;
  EXPECT_EQ(text.find(needle, pos + 1), std::string_view::npos)
      << "test bug: " << needle << " twice";
  if (pos == std::string_view::npos) {
    return "?";
  }
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return std::string(source) + ":" + std::to_string(line) + ":"
         + std::to_string(pos - line_start + 1) + ": ";
}

expected<provider_config> parse(std::string_view text) {
  return parse_provider_config(text, "test.toml");
}

expected<deployment_file> parse_deployment(std::string_view text) {
  return parse_deployment_file(text, "test.toml");
}

// Succeeds iff `r` failed with errc::config, a context starting with `where` and holding `part`.
template <class T>
::testing::AssertionResult fails_with(const expected<T>& r, std::string_view where,
                                      std::string_view part) {
  if (r.has_value()) {
    return ::testing::AssertionFailure() << "parsed without an error";
  }
  if (r.error().code != errc::config) {
    return ::testing::AssertionFailure() << "code " << to_string(r.error().code);
  }
  const std::string& ctx = r.error().context;
  if (ctx.rfind(where, 0) != 0) {
    return ::testing::AssertionFailure()
           << "\"" << ctx << "\" does not start with \"" << where << "\"";
  }
  if (ctx.find(part) == std::string::npos) {
    return ::testing::AssertionFailure() << "\"" << ctx << "\" does not mention \"" << part << "\"";
  }
  return ::testing::AssertionSuccess();
}

template <class T>
T ok(expected<T> r) {
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r.has_value() ? std::move(r).value() : T{};
}

// ---------------------------------------------------------------------------------------------
// The examples.

constexpr std::array example_configs = {
    "router.toml",        "mirror-a.toml",      "mirror-b.toml",
    "mirror-c-1.toml",    "mirror-c-2.toml",    "router-with-cluster.toml",
    "router-node-1.toml", "router-node-2.toml", "router-node-3.toml"};
constexpr std::array example_deployments = {"deployment.toml", "deployment-router-cluster.toml"};

TEST(config_examples, every_example_parses) {
  for (const char* name : example_configs) {
    auto c = load_provider_config(example(name));
    EXPECT_TRUE(c.has_value()) << name << ": " << c.error().message();
  }
  for (const char* name : example_deployments) {
    auto d = load_deployment_file(example(name));
    EXPECT_TRUE(d.has_value()) << name << ": " << d.error().message();
  }
}

TEST(config_examples, router_example_holds_the_values_written) {
  const auto c = ok(load_provider_config(example("router.toml")));
  EXPECT_EQ(c.role, role::router);
  EXPECT_EQ(c.name, "router");
  EXPECT_EQ(c.data_dir, fs::path("/var/lib/cowpi/router"));
  EXPECT_EQ(c.identity_key_file, fs::path("/var/lib/cowpi/router/identity.key"));
  EXPECT_EQ(c.storage_key_file, fs::path("/var/lib/cowpi/router/storage.key"));
  EXPECT_EQ(c.clients, (endpoint{"127.0.0.1", 7400}));
  EXPECT_EQ(c.admin_socket, fs::path("/var/lib/cowpi/router/admin.sock"));
  EXPECT_EQ(c.tls.ca, fs::path("/var/lib/cowpi/router/tls/ca.pem"));
  ASSERT_EQ(c.mirrors.size(), 2u);
  EXPECT_EQ(c.mirrors[0].name, "mirror-a");
  EXPECT_EQ(c.mirrors[0].address, (endpoint{"127.0.0.1", 7411}));
  EXPECT_EQ(c.mirrors[0].public_key, testing::hex_array<32>(key_a_hex));
  EXPECT_EQ(c.mirrors[1].name, "mirror-b");
  EXPECT_EQ(c.limits, limits_config{});
  EXPECT_EQ(c.timeouts, timeouts_config{});
  EXPECT_EQ(c.retention, std::chrono::seconds(2592000));
  EXPECT_EQ(c.cluster.nodes, std::vector<std::string>{"router"});
  EXPECT_EQ(c.logging.level, log_level::info);
  EXPECT_TRUE(c.logging.file.empty());
}

TEST(config_examples, minimal_mirror_example_takes_every_default) {
  const auto c = ok(load_provider_config(example("mirror-b.toml")));
  EXPECT_EQ(c.role, role::mirror);
  EXPECT_EQ(c.identity_key_file, fs::path("/var/lib/cowpi/mirror-b/identity.key"));
  EXPECT_EQ(c.storage_key_file, fs::path("/var/lib/cowpi/mirror-b/storage.key"));
  EXPECT_EQ(c.admin_socket, fs::path("/var/lib/cowpi/mirror-b/admin.sock"));
  EXPECT_EQ(c.links, (endpoint{"127.0.0.1", 7412}));
  EXPECT_EQ(c.limits, limits_config{});
  EXPECT_EQ(c.timeouts, timeouts_config{});
  EXPECT_EQ(c.cluster.nodes, std::vector<std::string>{"mirror-b"});
  EXPECT_EQ(c.cluster.self, "mirror-b");
  EXPECT_EQ(c.logging, logging_config{});
  EXPECT_TRUE(c.mirrors.empty());
}

TEST(config_examples, examples_describe_one_consistent_deployment) {
  const auto router = ok(load_provider_config(example("router.toml")));
  const auto a = ok(load_provider_config(example("mirror-a.toml")));
  const auto b = ok(load_provider_config(example("mirror-b.toml")));
  const auto d = ok(load_deployment_file(example("deployment.toml")));
  const auto router_key = testing::hex_array<32>(router_key_hex);

  EXPECT_EQ(deployment_for(router, router_key), d);
  EXPECT_EQ(to_member_list(router.mirrors), to_member_list(d.mirrors));
  for (const auto* m : {&a, &b}) {
    EXPECT_EQ(m->router, (peer{d.router.name, d.router.public_key}));
    const auto it = std::find_if(router.mirrors.begin(), router.mirrors.end(),
                                 [&](const mirror_peer& p) { return p.name == m->name; });
    ASSERT_NE(it, router.mirrors.end()) << m->name;
    EXPECT_EQ(it->address, m->links);
  }
  EXPECT_EQ(a.logging.file, fs::path("/var/lib/cowpi/mirror-a/mirror-a.log"));
}

TEST(config_examples, the_mirror_cluster_examples_agree_with_the_router_listing_them) {
  const auto router = ok(load_provider_config(example("router-with-cluster.toml")));
  const auto a = ok(load_provider_config(example("mirror-a.toml")));
  ASSERT_EQ(router.mirrors.size(), 2u);
  EXPECT_EQ(router.mirrors[0].address, a.links);
  const auto& cluster = router.mirrors[1];
  EXPECT_EQ(cluster.name, "mirror-c");
  ASSERT_EQ(cluster.nodes.size(), 2u);
  for (size_t j = 0; j < 2; ++j) {
    const auto node =
        ok(load_provider_config(example("mirror-c-" + std::to_string(j + 1) + ".toml")));
    EXPECT_EQ(node.name, "mirror-c");
    EXPECT_EQ(node.cluster.nodes, node_ids_of(cluster));
    EXPECT_EQ(node.cluster.self, cluster.nodes[j].id);
    EXPECT_EQ(node.links, cluster.nodes[j].address);
    EXPECT_EQ(node.router, (peer{router.name, testing::hex_array<32>(router_key_hex)}));
  }
}

TEST(config_examples, the_router_cluster_examples_agree_with_one_another_and_the_deployment) {
  const auto router = ok(load_provider_config(example("router.toml")));
  const auto key = testing::hex_array<32>(router_key_hex);
  const auto d = ok(load_deployment_file(example("deployment-router-cluster.toml")));
  const std::vector<std::string> ids = {"router-1", "router-2", "router-3"};
  for (size_t k = 0; k < ids.size(); ++k) {
    const auto node =
        ok(load_provider_config(example("router-node-" + std::to_string(k + 1) + ".toml")));
    EXPECT_EQ(node.name, router.name);
    EXPECT_EQ(node.mirrors, router.mirrors);
    EXPECT_EQ(node.tls.certificate.filename(), router.tls.certificate.filename());
    EXPECT_EQ(node.cluster.nodes, ids);
    EXPECT_EQ(node.cluster.self, ids[k]);
    ASSERT_EQ(node.cluster.addresses.size(), ids.size());
    EXPECT_EQ(node.clients, node.cluster.addresses[k].clients);
    // Every node gives clients the same deployment file.
    EXPECT_EQ(deployment_for(node, key), d) << ids[k];
  }
}

TEST(config_examples, every_example_survives_render_and_parse) {
  for (const char* name : example_configs) {
    const auto c = ok(load_provider_config(example(name)));
    const std::string text = to_toml(c);
    const auto again = ok(parse_provider_config(text, "rendered.toml"));
    EXPECT_TRUE(again == c) << name << " rendered as:\n" << text;
    EXPECT_EQ(to_toml(again), text) << name;
  }
  for (const char* name : example_deployments) {
    const auto d = ok(load_deployment_file(example(name)));
    EXPECT_EQ(ok(parse_deployment_file(to_toml(d), "rendered.toml")), d) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Unknown keys and syntax.

TEST(provider_config, small_router_and_mirror_configs_parse) {
  const auto r = ok(parse(router_text()));
  EXPECT_EQ(r.clients, (endpoint{"127.0.0.1", 0}));
  EXPECT_FALSE(r.storage_key_file.has_value());
  const auto m = ok(parse(mirror_text()));
  EXPECT_EQ(m.router.name, "router");
  EXPECT_EQ(m.storage_key_file, fs::path("/srv/mirror-a/storage.key"));
}

TEST(provider_config, unknown_key_is_refused_at_its_file_line_and_column) {
  const std::string text = router_text() + "\n[limits]\nbogus = 1\n";
  const auto r = parse(text);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::config);
  EXPECT_EQ(r.error().context, "test.toml:20:1: unknown key \"bogus\" in [limits]");
  EXPECT_EQ(r.error().context, at(text, "bogus") + "unknown key \"bogus\" in [limits]");
}

TEST(provider_config, unknown_table_is_refused) {
  const std::string text = router_text() + "\n[extras]\nx = 1\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "extras"), "unknown table or key \"extras\""));
}

TEST(provider_config, unknown_key_in_a_mirror_entry_is_refused) {
  const std::string text = replace(router_text(), "address = ", "weight = 3\naddress = ");
  EXPECT_TRUE(fails_with(parse(text), at(text, "weight"), "unknown key \"weight\" in [mirrors]"));
}

TEST(provider_config, the_unknown_key_that_comes_first_in_the_file_is_reported) {
  // toml++ iterates keys alphabetically; the report must follow the file instead.
  const std::string text = router_text() + "\n[logging]\nzzz = 1\naaa = 2\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "zzz"), "\"zzz\""));
}

TEST(provider_config, toml_syntax_error_is_reported_at_its_position) {
  const std::string text = replace(router_text(), "name = \"router\"", "name = \"router");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:3:", ""));
}

TEST(provider_config, redefined_key_is_a_syntax_error) {
  const std::string text = router_text() + "\n[tls]\nca = \"x\"\n";
  EXPECT_TRUE(fails_with(parse(text), "test.toml:19:", ""));
}

TEST(provider_config, integer_beyond_64_bits_is_a_syntax_error) {
  const std::string text = router_text() + "\n[limits]\nmax_frame = 99999999999999999999\n";
  EXPECT_TRUE(fails_with(parse(text), "test.toml:20:", "64 bits"));
}

TEST(provider_config, garbage_bytes_are_an_error_not_a_crash) {
  const std::string garbage("\xff\xfe\x00\x01[[[\x80", 8);
  EXPECT_TRUE(fails_with(parse(garbage), "test.toml:", ""));
  EXPECT_TRUE(fails_with(parse(""), "test.toml:1:1: ", "missing the required table [provider]"));
}

// ---------------------------------------------------------------------------------------------
// Types and values.

TEST(provider_config, wrong_type_is_refused_at_the_value) {
  std::string text = router_text() + "\n[limits]\nmax_frame = \"big\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"big\""),
                         "limits.max_frame must be an integer, not a string"));
  text = router_text() + "\n[limits]\nmax_frame = 1.5e6\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "1.5e6"), "must be an integer, not a float"));
  text = replace(router_text(), "name = \"router\"", "name = 7");
  EXPECT_TRUE(fails_with(parse(text), at(text, "7\n"), "provider.name must be a string"));
  text = "logging = 3\n" + router_text();
  EXPECT_TRUE(fails_with(parse(text), at(text, "3\n"), "logging must be a table"));
  text = replace(router_text(), "[[mirrors]]", "[mirrors]");
  EXPECT_TRUE(fails_with(parse(text), at(text, "[mirrors]"), "mirrors must be an array"));
}

TEST(provider_config, unknown_role_is_refused) {
  const std::string text = replace(router_text(), "\"router\"\nname", "\"relay\"\nname");
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"relay\""),
                         "provider.role must be \"router\" or \"mirror\", not \"relay\""));
}

TEST(provider_config, bad_hex_public_key_is_refused_without_echoing_it) {
  const std::string short_key(key_a_hex.substr(1));
  std::string text = replace(router_text(), key_a_hex, short_key);
  auto r = parse(text);
  EXPECT_TRUE(fails_with(r, at(text, "\"" + short_key), "must be 64 hex characters"));
  EXPECT_EQ(r.error().context.find(short_key), std::string::npos);

  const std::string not_hex = "g" + short_key;
  text = replace(router_text(), key_a_hex, not_hex);
  r = parse(text);
  EXPECT_TRUE(fails_with(r, at(text, "\"" + not_hex), "not hex"));
  EXPECT_EQ(r.error().context.find(not_hex), std::string::npos);

  text = replace(router_text(), key_a_hex, std::string(64, '0'));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"" + std::string(64, '0')), "all zeros"));

  text = replace(mirror_text(), router_key_hex, std::string(router_key_hex) + "00");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:16:", "router.public_key must be 64 hex"));
}

TEST(provider_config, bad_id_is_refused) {
  std::string text = replace(router_text(), "name = \"router\"", "name = \"\"");
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"\""), "provider.name is empty"));
  text = replace(router_text(), "name = \"router\"", "name = \"" + std::string(65, 'n') + "\"");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:3:8: ", "65 bytes long"));
  text = replace(router_text(), "name = \"router\"", R"(name = "rou\u0007ter")");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:3:8: ", "not a valid id"));
  // U+202E RIGHT-TO-LEFT OVERRIDE makes ids look alike.
  text = replace(router_text(), "name = \"mirror-a\"", R"(name = "mirror\u202Ea")");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:15:8: ", "mirrors.name is not a valid id"));
  text = replace(mirror_text(), "name = \"router\"", "name = \"\"");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:15:8: ", "router.name is empty"));
}

TEST(provider_config, duplicate_mirror_name_is_refused) {
  const std::string text = router_text() + mirror_entry("mirror-a", "127.0.0.1:7412", key_b_hex);
  EXPECT_TRUE(fails_with(
      parse(text), "test.toml:20:8: ", "mirror \"mirror-a\" appears twice (first at line 14)"));
}

TEST(provider_config, duplicate_mirror_public_key_is_refused) {
  const std::string text = router_text() + mirror_entry("mirror-b", "127.0.0.1:7412", key_a_hex);
  EXPECT_TRUE(
      fails_with(parse(text), "test.toml:22:14: ", "the same as that of mirror \"mirror-a\""));
}

TEST(provider_config, mirror_named_like_the_router_is_refused) {
  const std::string text = router_text() + mirror_entry("router", "127.0.0.1:7412", key_b_hex);
  EXPECT_TRUE(
      fails_with(parse(text), "test.toml:20:8: ", "mirrors.name \"router\" is the router's name"));
  const std::string m = replace(mirror_text(), "name = \"router\"", "name = \"mirror-a\"");
  EXPECT_TRUE(fails_with(parse(m), "test.toml:15:8: ", "this mirror's own name"));
}

TEST(provider_config, mirror_set_size_is_bounded) {
  std::string text = router_text();
  for (size_t i = 1; i < protocol::max_mirrors; ++i) {
    // Distinct, nonzero keys: the index in the last byte.
    std::string key(62, '1');
    key += (i < 16 ? "0" : "") + std::string(1, "0123456789abcdef"[i % 16]);
    text += mirror_entry("m" + std::to_string(i), "127.0.0.1:7500", key);
  }
  EXPECT_EQ(ok(parse(text)).mirrors.size(), protocol::max_mirrors);
  text += mirror_entry("m-extra", "127.0.0.1:7500", key_b_hex);
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "[[mirrors]]\nname = \"m-extra\""), "more than 8 mirrors"));

  const size_t cut = router_text().find("[[mirrors]]");
  EXPECT_TRUE(
      fails_with(parse(router_text().substr(0, cut)), "test.toml:1:1: ", "missing [[mirrors]]"));
  const std::string empty = "mirrors = []\n" + router_text().substr(0, cut);
  EXPECT_TRUE(fails_with(parse(empty), "test.toml:1:11: ", "mirrors is empty"));
}

TEST(provider_config, mirrors_are_sorted_by_name) {
  const std::string text = replace(router_text(), "mirror-a", "zeta")
                           + mirror_entry("alpha", "127.0.0.1:7412", key_b_hex);
  const auto c = ok(parse(text));
  ASSERT_EQ(c.mirrors.size(), 2u);
  EXPECT_EQ(c.mirrors[0].name, "alpha");
  EXPECT_EQ(c.mirrors[1].name, "zeta");
}

// ---------------------------------------------------------------------------------------------
// Limits and timeouts.

TEST(provider_config, limits_looser_than_the_protocol_constants_are_refused) {
  std::string text = router_text() + "\n[limits]\nmax_members = 1025\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "1025"),
                         "limits.max_members = 1025 is above the maximum 1024 "
                         "(protocol::max_members; config may only be stricter)"));
  const std::string body = std::to_string(protocol::max_body + 1);
  text = router_text() + "\n[limits]\nmax_body = " + body + "\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, body), "protocol::max_body"));
  text = router_text() + "\n[limits]\nmax_members = -1\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "-1"), "is below the minimum 2"));
}

TEST(provider_config, limits_stricter_than_the_protocol_constants_are_taken) {
  const std::string text =
      router_text() + "\n[limits]\nmax_members = 16\nmax_body = 296\nmax_pending_per_author = 4\n"
      + "max_pending_per_conv = 4\nmax_connections = 3\n" + "min_update_interval_s = 60\n"
      + "max_setups_per_hour = 0\n";
  const auto c = ok(parse(text));
  EXPECT_EQ(c.limits.max_setups_per_hour, 0u);
  EXPECT_EQ(ok(parse(to_toml(c))).limits.max_setups_per_hour, 0u);
  EXPECT_EQ(ok(parse(router_text())).limits.max_setups_per_hour, 600u);
  const std::string over = router_text() + "\n[limits]\nmax_setups_per_hour = 1000001\n";
  EXPECT_TRUE(fails_with(parse(over), at(over, "1000001"), "is above the maximum"));
  const std::string mirror = mirror_text() + "\n[limits]\nmax_setups_per_hour = 5\n";
  EXPECT_FALSE(parse(mirror).has_value()) << "a router-only key";
  EXPECT_EQ(c.limits.max_members, 16u);
  EXPECT_EQ(c.limits.max_body, 296u);
  EXPECT_EQ(c.limits.max_pending_per_author, 4u);
  EXPECT_EQ(c.limits.max_connections, 3u);
  EXPECT_EQ(c.limits.min_update_interval, std::chrono::seconds(60));
}

TEST(provider_config, queue_depth_is_refused_as_removed_at_its_key) {
  // Delivery is a cursor per (user, conversation) into a log the members share: there is no
  // per-user queue for the key to bound, so an old config is refused rather than obeyed in name.
  std::string text = router_text() + "\n[limits]\nmax_frame = 1048576\nqueue_depth = 100000\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "queue_depth"),
                         "limits.queue_depth was removed: the router keeps no queue per user"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "queue_depth"), "[retention] max_age_s"));
  // Also before an unknown key, and in a mirror config (not "for the router only").
  text = router_text() + "\n[limits]\nqueue_depth = 1\nbogus = 2\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "queue_depth"), "limits.queue_depth was removed"));
  text = mirror_text() + "\n[limits]\nqueue_depth = 1\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "queue_depth"), "limits.queue_depth was removed"));
  EXPECT_EQ(to_toml(ok(parse(router_text()))).find("queue_depth"), std::string::npos);
}

TEST(provider_config, max_frame_below_the_largest_protocol_frame_is_refused) {
  const std::string small = std::to_string(protocol::max_frame_protocol - 1);
  std::string text = router_text() + "\n[limits]\nmax_frame = " + small + "\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, small), "protocol::max_frame_protocol"));
  text = mirror_text() + "\n[limits]\nmax_frame = " + small + "\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, small), "is below the minimum"));

  text = router_text() + "\n[limits]\nmax_frame = " + std::to_string(protocol::max_frame_protocol)
         + "\n";
  EXPECT_EQ(ok(parse(text)).limits.max_frame, protocol::max_frame_protocol);
  text = router_text() + "\n[limits]\nmax_frame = " + std::to_string(max_config_frame + 1) + "\n";
  EXPECT_TRUE(fails_with(parse(text), "test.toml:20:13: ", "64 MiB"));
}

TEST(provider_config, per_author_pending_above_per_conversation_pending_is_refused) {
  const std::string text = router_text() + "\n[limits]\nmax_pending_per_author = 2048\n";
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "2048"), "exceeds limits.max_pending_per_conv (1024)"));
}

TEST(provider_config, connection_timeout_must_exceed_the_heartbeat) {
  std::string text = router_text() + "\n[timeouts]\nheartbeat = 5000\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "5000"), "must exceed timeouts.heartbeat"));
  text = router_text() + "\n[timeouts]\nconnection = 500\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "500"), "must exceed"));
  text = router_text() + "\n[timeouts]\nprepare = 0\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "0\n"), "is below the minimum 1"));
  text = router_text() + "\n[timeouts]\nidle = 86400001\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "86400001"), "24 hours"));
  text = router_text() + "\n[timeouts]\nprepare = 250\ncommit = 750\n";
  const auto c = ok(parse(text));
  EXPECT_EQ(c.timeouts.prepare, std::chrono::milliseconds(250));
  EXPECT_EQ(c.timeouts.commit, std::chrono::milliseconds(750));
  EXPECT_EQ(c.timeouts.conversation_idle, std::chrono::seconds(60));
  text = mirror_text() + "\n[timeouts]\nconversation_idle = 200\n";
  EXPECT_EQ(ok(parse(text)).timeouts.conversation_idle, std::chrono::milliseconds(200));
  text = router_text() + "\n[timeouts]\nconversation_idle = 0\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "0\n"), "is below the minimum 1"));
}

TEST(provider_config, retention_must_be_positive) {
  std::string text = router_text() + "\n[retention]\nmax_age_s = 0\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "0\n"), "retention.max_age_s = 0 is below"));
  text = router_text() + "\n[retention]\nmax_age_s = 3600\n";
  EXPECT_EQ(ok(parse(text)).retention, std::chrono::seconds(3600));
}

TEST(provider_config, the_collect_interval_defaults_to_ten_minutes_and_is_bounded_by_a_day) {
  EXPECT_EQ(ok(parse(router_text())).collect_interval, std::chrono::seconds(600));
  std::string text = router_text() + "\n[retention]\ncollect_interval_s = 30\n";
  EXPECT_EQ(ok(parse(text)).collect_interval, std::chrono::seconds(30));
  text = router_text() + "\n[retention]\ncollect_interval_s = 0\n";
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "0\n"), "retention.collect_interval_s = 0 is below"));
  text = router_text() + "\n[retention]\ncollect_interval_s = 86401\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "86401\n"), "1 day"));
}

// ---------------------------------------------------------------------------------------------
// Roles and required values.

TEST(provider_config, sections_of_the_other_role_are_refused) {
  std::string text = mirror_text() + mirror_entry("mirror-b", "127.0.0.1:7412", key_b_hex);
  EXPECT_TRUE(fails_with(parse(text), "test.toml:18:3: ",
                         "[[mirrors]] is for the router only (this is a mirror config)"));
  text = router_text() + "\n[router]\nname = \"r\"\n";
  EXPECT_TRUE(fails_with(parse(text), "test.toml:19:2: ",
                         "[router] is for the mirror only (this is a router config)"));
  text = mirror_text() + "\n[retention]\nmax_age_s = 60\n";
  EXPECT_TRUE(fails_with(parse(text), "test.toml:18:2: ", "[retention] is for the router only"));
}

TEST(provider_config, keys_of_the_other_role_are_refused) {
  std::string text = replace(mirror_text(), "links = ", "clients = \"127.0.0.1:1\"\nlinks = ");
  EXPECT_TRUE(fails_with(parse(text), at(text, "clients"),
                         "listen.clients is for the router only (this is a mirror config)"));
  text = replace(router_text(), "clients = ", "links = \"127.0.0.1:1\"\nclients = ");
  EXPECT_TRUE(fails_with(parse(text), at(text, "links"), "listen.links is for the mirror only"));
  text = mirror_text() + "\n[limits]\nmax_members = 10\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "max_members"),
                         "limits.max_members is for the router only"));
  text = mirror_text() + "\n[timeouts]\nprepare = 10\n";
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "prepare"), "timeouts.prepare is for the router only"));
}

TEST(provider_config, missing_required_values_are_refused_at_their_table) {
  std::string text = replace(router_text(), "role = \"router\"\n", "");
  EXPECT_TRUE(fails_with(parse(text),
                         "test.toml:1:1: ", "[provider] is missing the required key \"role\""));
  text = replace(router_text(), "data_dir = \"/srv/router\"\n", "");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:1:1: ", "\"data_dir\""));
  text = replace(router_text(), "ca = \"tls/ca.pem\"\n", "");
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "[tls]"), "[tls] is missing the required key \"ca\""));
  text = replace(router_text(), "clients = \"127.0.0.1:0\"\n", "");
  EXPECT_TRUE(fails_with(parse(text), at(text, "[listen]"), "\"clients\""));
  text = replace(router_text(), "public_key", "public_kex");
  EXPECT_TRUE(fails_with(parse(text), at(text, "public_kex"), "unknown key \"public_kex\""));
  text = replace(router_text(), "address = \"127.0.0.1:7411\"\n", "");
  EXPECT_TRUE(fails_with(parse(text), at(text, "[[mirrors]]"),
                         "[mirrors] is missing the required key \"address\""));

  const size_t tls = router_text().find("[tls]");
  const size_t mirrors = router_text().find("[[mirrors]]");
  text = router_text().substr(0, tls) + router_text().substr(mirrors);
  EXPECT_TRUE(fails_with(parse(text), "test.toml:1:1: ", "missing the required table [tls]"));
  const size_t router = mirror_text().find("[router]");
  EXPECT_TRUE(fails_with(parse(mirror_text().substr(0, router)),
                         "test.toml:1:1: ", "missing the required table [router]"));
}

TEST(provider_config, inline_tables_and_dotted_keys_are_read_like_tables) {
  const std::string r = router_text();
  const std::string no_tls = r.substr(0, r.find("[tls]")) + r.substr(r.find("[[mirrors]]"));
  std::string text =
      "tls = { certificate = \"c.pem\", key = \"k.pem\", ca = \"ca.pem\" }\n"
      "limits.max_members = 8\n"
      + no_tls;
  const auto c = ok(parse(text));
  EXPECT_EQ(c.tls.ca, fs::path("/srv/router/ca.pem"));
  EXPECT_EQ(c.limits.max_members, 8u);
  text = "tls = { certificate = \"c.pem\", key = \"k.pem\" }\n" + no_tls;
  EXPECT_TRUE(
      fails_with(parse(text), "test.toml:1:7: ", "[tls] is missing the required key \"ca\""));
  text = "limits.bogus = 8\n" + r;
  EXPECT_TRUE(fails_with(parse(text), "test.toml:1:8: ", "unknown key \"bogus\" in [limits]"));
}

// ---------------------------------------------------------------------------------------------
// Paths.

TEST(provider_config, relative_paths_are_resolved_against_data_dir) {
  std::string text =
      replace(router_text(), "data_dir = \"/srv/router\"",
              "data_dir = \"/srv/./router\"\nidentity_key_file = \"keys/../id.key\"\n"
              "storage_key_file = \"/etc/cowpi/storage.key\"");
  text = replace(text, "[listen]\n", "[listen]\nadmin_socket = \"run/admin.sock\"\n");
  text += "\n[logging]\nfile = \"log/router.log\"\n";
  const auto c = ok(parse(text));
  EXPECT_EQ(c.data_dir, fs::path("/srv/router"));
  EXPECT_EQ(c.identity_key_file, fs::path("/srv/router/id.key"));
  EXPECT_EQ(c.storage_key_file, fs::path("/etc/cowpi/storage.key"));
  EXPECT_EQ(c.admin_socket, fs::path("/srv/router/run/admin.sock"));
  EXPECT_EQ(c.tls.certificate, fs::path("/srv/router/tls/node.pem"));
  EXPECT_EQ(c.tls.key, fs::path("/srv/router/tls/node.key"));
  EXPECT_EQ(c.tls.ca, fs::path("/srv/router/tls/ca.pem"));
  EXPECT_EQ(c.logging.file, fs::path("/srv/router/log/router.log"));
}

TEST(provider_config, logging_format_and_ids) {
  std::string text = router_text() + "\n[logging]\nformat = \"json\"\nids = true\n";
  auto c = ok(parse(text));
  EXPECT_EQ(c.logging.format, log_format::json);
  EXPECT_TRUE(c.logging.ids);
  // Rendered and parsed back unchanged.
  EXPECT_EQ(ok(parse(to_toml(c))).logging, c.logging);
  c = ok(parse(router_text()));
  EXPECT_EQ(c.logging.format, log_format::text);
  EXPECT_FALSE(c.logging.ids);
  text = router_text() + "\n[logging]\nformat = \"xml\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"xml\""), "logging.format"));
  text = router_text() + "\n[logging]\nids = \"yes\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"yes\""), "logging.ids must be true or false"));
}

TEST(provider_config, metrics_are_off_by_default_and_listen_where_the_table_says) {
  auto c = ok(parse(router_text()));
  EXPECT_FALSE(c.metrics.listen.has_value());
  EXPECT_EQ(to_toml(c).find("[metrics]"), std::string::npos);

  std::string text = router_text() + "\n[metrics]\nlisten = \"127.0.0.1:9464\"\n";
  c = ok(parse(text));
  ASSERT_TRUE(c.metrics.listen.has_value());
  EXPECT_EQ(c.metrics.listen->host, "127.0.0.1");
  EXPECT_EQ(c.metrics.listen->port, 9464);
  EXPECT_EQ(ok(parse(to_toml(c))).metrics, c.metrics);
  // A mirror has the table too; port 0 picks a free port.
  text = mirror_text() + "\n[metrics]\nlisten = \"[::1]:0\"\n";
  c = ok(parse(text));
  ASSERT_TRUE(c.metrics.listen.has_value());
  EXPECT_EQ(c.metrics.listen->host, "::1");
  EXPECT_EQ(c.metrics.listen->port, 0);

  text = router_text() + "\n[metrics]\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "[metrics]"), "listen"));
  text = router_text() + "\n[metrics]\nlisten = \"localhost\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"localhost\""), "metrics.listen"));
  text = router_text() + "\n[metrics]\nlisten = \"127.0.0.1:1\"\npath = \"/m\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "path"), "unknown"));
}

TEST(provider_config, runtime_defaults_to_sharing_on_cafs_thread_count_and_reads_both_keys) {
  auto c = ok(parse(router_text()));
  EXPECT_EQ(c.runtime.threads, 0u);
  EXPECT_EQ(c.runtime.scheduler, scheduler_policy::sharing);

  std::string text = mirror_text() + "\n[runtime]\nthreads = 3\nscheduler = \"stealing\"\n";
  c = ok(parse(text));
  EXPECT_EQ(c.runtime.threads, 3u);
  EXPECT_EQ(c.runtime.scheduler, scheduler_policy::stealing);
  EXPECT_EQ(ok(parse(to_toml(c))).runtime, c.runtime);

  text = router_text() + "\n[runtime]\nthreads = 257\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "257"), "runtime.threads"));
  text = router_text() + "\n[runtime]\nscheduler = \"fifo\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"fifo\""), "runtime.scheduler"));
  text = router_text() + "\n[runtime]\npolicy = \"sharing\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "policy"), "unknown"));
}

TEST(provider_config, relative_data_dir_is_resolved_against_the_config_directory) {
  const std::string text = replace(router_text(), "\"/srv/router\"", "\"data/router\"");
  auto c = ok(parse_provider_config(text, "test.toml", "/etc/cowpi"));
  EXPECT_EQ(c.data_dir, fs::path("/etc/cowpi/data/router"));
  EXPECT_EQ(c.identity_key_file, fs::path("/etc/cowpi/data/router/identity.key"));
  // Without a base the path stays relative (to the working directory).
  c = ok(parse(text));
  EXPECT_EQ(c.data_dir, fs::path("data/router"));
  EXPECT_EQ(c.tls.ca, fs::path("data/router/tls/ca.pem"));

  const testing::temp_dir dir("config");
  const fs::path file = dir.path() / "router.toml";
  std::ofstream(file) << text;
  c = ok(load_provider_config(file));
  EXPECT_EQ(c.data_dir, fs::absolute(dir.path()) / "data" / "router");
}

TEST(provider_config, data_dir_override_replaces_the_files_data_dir_for_every_path) {
  std::string text = replace(router_text(), "[listen]\n", "[listen]\nadmin_socket = \"a.sock\"\n");
  text += "\n[logging]\nfile = \"router.log\"\n";
  const provider_overrides over{"/var/lib/cowpi/./r1"};
  const auto c = ok(parse_provider_config(text, "test.toml", "/etc/cowpi", over));
  EXPECT_EQ(c.data_dir, fs::path("/var/lib/cowpi/r1"));
  EXPECT_EQ(c.identity_key_file, fs::path("/var/lib/cowpi/r1/identity.key"));
  EXPECT_EQ(c.admin_socket, fs::path("/var/lib/cowpi/r1/a.sock"));
  EXPECT_EQ(c.tls.ca, fs::path("/var/lib/cowpi/r1/tls/ca.pem"));
  EXPECT_EQ(c.logging.file, fs::path("/var/lib/cowpi/r1/router.log"));
  // Without the override the file's value holds, as before.
  EXPECT_EQ(ok(parse_provider_config(text, "test.toml", "/etc/cowpi")).data_dir,
            fs::path("/srv/router"));
}

TEST(provider_config, data_dir_may_be_left_out_only_with_the_override) {
  const std::string text = replace(mirror_text(), "data_dir = \"/srv/mirror-a\"\n", "");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:1:1: ", "\"data_dir\""));
  const auto c = ok(parse_provider_config(text, "test.toml", {}, provider_overrides{"/d"}));
  EXPECT_EQ(c.data_dir, fs::path("/d"));
  EXPECT_EQ(c.storage_key_file, fs::path("/d/storage.key"));
}

TEST(provider_config, a_bad_data_dir_is_refused_even_when_overridden) {
  const std::string text = replace(router_text(), "\"/srv/router\"", "7");
  EXPECT_TRUE(fails_with(parse_provider_config(text, "test.toml", {}, provider_overrides{"/d"}),
                         at(text, "7\n"), "data_dir"));
}

TEST(provider_config, an_overridden_data_dir_too_long_for_the_admin_socket_is_refused) {
  const std::string long_dir = "/" + std::string(100, 'd');
  const std::string text = replace(router_text(), "data_dir = \"/srv/router\"\n", "");
  EXPECT_TRUE(fails_with(parse_provider_config(text, "test.toml", {}, provider_overrides{long_dir}),
                         at(text, "[provider]"), "at most 107"));
}

TEST(provider_config, empty_path_is_refused) {
  const std::string text = replace(router_text(), "\"tls/ca.pem\"", "\"\"");
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"\""), "tls.ca must not be empty"));
}

TEST(provider_config, admin_socket_longer_than_a_unix_socket_path_is_refused) {
  const std::string long_dir = "/" + std::string(100, 'd');
  std::string text = replace(router_text(), "/srv/router", long_dir);
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"" + long_dir), "at most 107"));
  text = replace(router_text(), "[listen]\n",
                 "[listen]\nadmin_socket = \"" + std::string(100, 's') + "\"\n");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:7:16: ", "Unix socket path holds at most 107"));
}

TEST(provider_config, missing_file_is_reported_at_line_one) {
  const testing::temp_dir dir("config");
  const fs::path file = dir.path() / "absent.toml";
  EXPECT_TRUE(fails_with(load_provider_config(file), file.string() + ":1:1: ", "cannot open"));
  EXPECT_TRUE(fails_with(load_deployment_file(file), file.string() + ":1:1: ", "cannot open"));
}

TEST(provider_config, errors_in_a_loaded_file_name_that_file) {
  const testing::temp_dir dir("config");
  const fs::path file = dir.path() / "bad.toml";
  std::ofstream(file) << router_text() << "\n[limits]\nbogus = 1\n";
  EXPECT_TRUE(fails_with(load_provider_config(file), file.string() + ":20:1: ", "bogus"));
}

// ---------------------------------------------------------------------------------------------
// Endpoints, cluster, logging.

TEST(provider_config, endpoints_parse_host_and_port) {
  EXPECT_EQ(ok(parse_endpoint("127.0.0.1:7400")), (endpoint{"127.0.0.1", 7400}));
  EXPECT_EQ(ok(parse_endpoint("mirror-a.example:65535")), (endpoint{"mirror-a.example", 65535}));
  EXPECT_EQ(ok(parse_endpoint("[::1]:0")), (endpoint{"::1", 0}));
  EXPECT_EQ(to_string(endpoint{"::1", 7400}), "[::1]:7400");
  EXPECT_EQ(to_string(endpoint{"localhost", 1}), "localhost:1");
  for (const char* bad :
       {"127.0.0.1", ":7400", "host:", "host:65536", "host:-1", "host:7e3", "::1:7400", "[::1]7400",
        "[]:1", "[::1", "[host]:1", "ho st:1", "host:123456", ""}) {
    auto e = parse_endpoint(bad);
    EXPECT_FALSE(e.has_value()) << bad;
    if (!e.has_value()) {
      EXPECT_EQ(e.error().code, errc::config) << bad;
    }
  }
}

TEST(provider_config, bad_endpoints_are_refused_at_their_value) {
  std::string text = replace(router_text(), "\"127.0.0.1:0\"", "\"127.0.0.1\"");
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"127.0.0.1\""), "is not host:port"));
  text = replace(router_text(), "\"127.0.0.1:7411\"", "\"127.0.0.1:0\"");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:16:11: ", "mirrors.address has port 0"));
  text = replace(router_text(), "\"127.0.0.1:0\"", "\"[::]:7400\"");
  EXPECT_EQ(ok(parse(text)).clients, (endpoint{"::", 7400}));
}

TEST(provider_config, cluster_defaults_to_one_node_named_after_the_provider) {
  const auto c = ok(parse(router_text()));
  EXPECT_EQ(c.cluster.nodes, std::vector<std::string>{"router"});
  EXPECT_EQ(c.cluster.self, "router");
  const std::string text = router_text() + "\n[cluster]\nnodes = [\"node-1\"]\nself = \"node-1\"\n";
  const auto d = ok(parse(text));
  EXPECT_EQ(d.cluster.nodes, std::vector<std::string>{"node-1"});
  EXPECT_EQ(d.cluster.self, "node-1");
}

TEST(provider_config, cluster_self_may_be_left_out_and_then_names_the_one_node) {
  const auto c = ok(parse(router_text() + "\n[cluster]\nnodes = [\"node-1\"]\n"));
  EXPECT_EQ(c.cluster.nodes, std::vector<std::string>{"node-1"});
  EXPECT_EQ(c.cluster.self, "node-1");
}

// `[cluster]` of a router cluster node: `entries` are the lines of `nodes = [...]`.
std::string router_cluster_text(const std::vector<std::string>& entries,
                                std::string_view self = "router-2") {
  std::string text = router_text() + "\n[cluster]\nnodes = [\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    text += "  " + entries[i] + (i + 1 < entries.size() ? ",\n" : "\n");
  }
  text += "]\n";
  if (!self.empty()) {
    text += "self = \"" + std::string(self) + "\"\n";
  }
  return text;
}

std::string router_node(std::string_view id, std::string_view clients, std::string_view internal) {
  return "{ id = \"" + std::string(id) + "\", clients = \"" + std::string(clients)
         + "\", internal = \"" + std::string(internal) + "\" }";
}

std::vector<std::string> three_router_nodes() {
  return {router_node("router-1", "127.0.0.1:7401", "127.0.0.1:7431"),
          router_node("router-2", "127.0.0.1:7402", "127.0.0.1:7432"),
          router_node("router-3", "10.0.0.3:7400", "[fd00::3]:7430")};
}

TEST(provider_config, a_router_cluster_lists_every_node_with_its_addresses) {
  const std::string text = router_cluster_text(three_router_nodes());
  const auto c = ok(parse(text));
  EXPECT_EQ(c.cluster.nodes, (std::vector<std::string>{"router-1", "router-2", "router-3"}));
  EXPECT_EQ(c.cluster.self, "router-2");
  ASSERT_EQ(c.cluster.addresses.size(), 3u);
  EXPECT_EQ(c.cluster.addresses[0],
            (router_node_addresses{{"127.0.0.1", 7401}, {"127.0.0.1", 7431}}));
  EXPECT_EQ(c.cluster.addresses[2], (router_node_addresses{{"10.0.0.3", 7400}, {"fd00::3", 7430}}));
  // Rendered in the table form, the config reads back equal.
  const std::string rendered = to_toml(c);
  EXPECT_NE(rendered.find("{ id = \"router-3\", clients = \"10.0.0.3:7400\", internal = "
                          "\"[fd00::3]:7430\" }"),
            std::string::npos)
      << rendered;
  const auto again = ok(parse_provider_config(rendered, "again.toml"));
  EXPECT_EQ(again, c);
  EXPECT_EQ(to_toml(again), rendered);
}

TEST(provider_config, a_router_listing_its_one_node_by_id_or_as_a_table_has_addresses_only_then) {
  const auto by_id = ok(parse(router_text() + "\n[cluster]\nnodes = [\"node-1\"]\n"));
  EXPECT_TRUE(by_id.cluster.addresses.empty());
  EXPECT_EQ(to_toml(by_id).find("{ id = "), std::string::npos);
  const auto table = ok(
      parse(router_cluster_text({router_node("node-1", "127.0.0.1:7401", "127.0.0.1:7431")}, "")));
  EXPECT_EQ(table.cluster.nodes, std::vector<std::string>{"node-1"});
  EXPECT_EQ(table.cluster.self, "node-1");
  ASSERT_EQ(table.cluster.addresses.size(), 1u);
  EXPECT_EQ(ok(parse_provider_config(to_toml(table), "again.toml")), table);
}

TEST(provider_config, a_router_listing_several_node_ids_is_refused_at_the_second_node) {
  // Without their addresses the nodes could not reach one another.
  std::string text =
      router_text() + "\n[cluster]\nnodes = [\"node-1\", \"node-2\"]\nself = \"node-2\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"node-2\"]"),
                         "a router cluster lists every node as { id = ..., clients = ..., "
                         "internal = ... }: the other nodes must know where to reach each one"));
}

TEST(provider_config, a_router_cluster_mixing_ids_and_tables_is_refused_at_the_odd_entry) {
  std::string text = router_cluster_text(
      {router_node("router-1", "127.0.0.1:7401", "127.0.0.1:7431"), "\"router-2\""});
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"router-2\"\n]"),
                         "cluster.nodes mixes node ids and node tables"));
  text = router_cluster_text(
      {"\"router-2\"", router_node("router-1", "127.0.0.1:7401", "127.0.0.1:7431")});
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "{ id"), "cluster.nodes mixes node ids and node tables"));
}

TEST(provider_config, a_mirror_listing_node_tables_is_refused) {
  const std::string text = mirror_text()
                           + "\n[cluster]\nnodes = [\"m-1\", { id = \"m-2\", clients = "
                             "\"127.0.0.1:1\", internal = \"127.0.0.1:2\" }]\nself = \"m-1\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "{ id"), "mirror nodes are listed by id"));
}

TEST(provider_config, bad_router_node_tables_are_refused_at_their_value) {
  const std::string one = router_node("router-1", "127.0.0.1:7401", "127.0.0.1:7431");
  auto with_second = [&](const std::string& second) { return router_cluster_text({one, second}); };
  // The id: valid and unique.
  std::string text = with_second(router_node("", "127.0.0.1:7402", "127.0.0.1:7432"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"\""), "cluster.nodes.id is empty"));
  text = with_second(router_node("router-1", "127.0.0.1:7402", "127.0.0.1:7432"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"router-1\", clients = \"127.0.0.1:7402\""),
                         "cluster.nodes lists \"router-1\" twice"));
  // The endpoints: host:port, never port 0, never another node's.
  text = with_second(router_node("router-2", "127.0.0.1", "127.0.0.1:7432"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"127.0.0.1\""),
                         "cluster.nodes.clients = \"127.0.0.1\" is not host:port"));
  text = with_second(router_node("router-2", "127.0.0.2:0", "127.0.0.1:7432"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"127.0.0.2:0\""),
                         "cluster.nodes.clients of node \"router-2\" has port 0; write its real "
                         "port: the deployment file and the other nodes must know where to "
                         "reach it"));
  text = with_second(router_node("router-2", "127.0.0.1:7402", "127.0.0.2:0"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"127.0.0.2:0\""),
                         "cluster.nodes.internal of node \"router-2\" has port 0; write its real "
                         "port: the other nodes must know where to reach it"));
  text = with_second(router_node("router-2", "127.0.0.1:7401", "127.0.0.1:7432"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"127.0.0.1:7401\", internal = \"127.0.0.1:7432\""),
                         "router nodes \"router-1\" and \"router-2\" have the same clients "
                         "address 127.0.0.1:7401"));
  text = with_second(router_node("router-2", "127.0.0.1:7402", "127.0.0.1:7431"));
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"127.0.0.1:7431\" }\n]"),
                         "router nodes \"router-1\" and \"router-2\" have the same internal "
                         "address 127.0.0.1:7431"));
  // The keys: exactly id, clients and internal.
  text = with_second(
      "{ id = \"router-2\", clients = \"127.0.0.1:7402\", internal = \"127.0.0.1:7432\", "
      "admin = \"x\" }");
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "admin"), "unknown key \"admin\" in [cluster.nodes]"));
  text = with_second("{ id = \"router-2\", clients = \"127.0.0.1:7402\" }");
  EXPECT_TRUE(fails_with(parse(text), at(text, "{ id = \"router-2\""),
                         "[cluster.nodes] is missing the required key \"internal\""));
  // self: one of the ids, required with more than one node.
  text = router_cluster_text(three_router_nodes(), "router-4");
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"router-4\""),
                         "cluster.self \"router-4\" is not in cluster.nodes"));
  text = router_cluster_text(three_router_nodes(), "");
  EXPECT_TRUE(fails_with(parse(text), at(text, "[cluster]"), "missing the required key \"self\""));
}

TEST(provider_config, a_cluster_of_either_role_lists_at_most_max_cluster_nodes) {
  std::vector<std::string> tables;
  std::string ids;
  for (size_t i = 1; i <= max_cluster_nodes + 1; ++i) {
    const std::string n = std::to_string(i);
    tables.push_back(router_node("r-" + n, "127.0.0.1:" + std::to_string(10000 + i),
                                 "127.0.0.1:" + std::to_string(20000 + i)));
    ids += (i == 1 ? "\"m-" : ", \"m-") + n + "\"";
  }
  std::string text = router_cluster_text(tables, "r-1");
  const std::string where = at(text, "{ id = \"r-65\"");
  EXPECT_TRUE(fails_with(parse(text), where, "more than 64 nodes in one cluster"));
  tables.pop_back();
  EXPECT_EQ(ok(parse(router_cluster_text(tables, "r-64"))).cluster.nodes.size(), max_cluster_nodes);
  text = mirror_text() + "\n[cluster]\nnodes = [" + ids + "]\nself = \"m-1\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"m-65\""), "more than 64 nodes in one cluster"));
}

TEST(provider_config, a_mirror_cluster_lists_its_nodes_and_names_itself) {
  const std::string text =
      mirror_text() + "\n[cluster]\nnodes = [\"m-2\", \"m-1\", \"m-3\"]\nself = \"m-1\"\n";
  const auto c = ok(parse(text));
  EXPECT_EQ(c.cluster.nodes, (std::vector<std::string>{"m-2", "m-1", "m-3"}));
  EXPECT_EQ(c.cluster.self, "m-1");
  EXPECT_EQ(ok(parse_provider_config(to_toml(c), "again.toml")), c);
}

TEST(provider_config, bad_mirror_cluster_is_refused) {
  std::string text = mirror_text() + "\n[cluster]\nnodes = [\"m-1\", \"m-2\"]\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "[cluster]"), "missing the required key \"self\""));
  text = mirror_text() + "\n[cluster]\nnodes = [\"m-1\", \"m-2\"]\nself = \"m-3\"\n";
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "\"m-3\""), "cluster.self \"m-3\" is not in cluster.nodes"));
  text = mirror_text() + "\n[cluster]\nnodes = [\"m-1\", \"m-1\"]\nself = \"m-1\"\n";
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "cluster.nodes lists \"m-1\" twice"));
}

TEST(provider_config, a_router_reaches_a_mirror_cluster_through_its_node_list) {
  const std::string nodes =
      "nodes = [{ id = \"a-1\", address = \"127.0.0.1:7411\" },\n"
      "         { id = \"a-2\", address = \"127.0.0.1:7413\" }]";
  const std::string text = replace(router_text(), "address = \"127.0.0.1:7411\"", nodes);
  const auto c = ok(parse(text));
  ASSERT_EQ(c.mirrors.size(), 1u);
  const auto& m = c.mirrors[0];
  EXPECT_EQ(m.address, endpoint{});
  ASSERT_EQ(m.nodes.size(), 2u);
  EXPECT_EQ(m.nodes[1].id, "a-2");
  EXPECT_EQ(m.nodes[1].address, (endpoint{"127.0.0.1", 7413}));
  EXPECT_EQ(node_ids_of(m), (std::vector<std::string>{"a-1", "a-2"}));
  EXPECT_EQ(ok(parse_provider_config(to_toml(c), "again.toml")), c);
  // A mirror of one node is one node named after the mirror.
  const auto one = ok(parse(router_text()));
  EXPECT_EQ(nodes_of(one.mirrors[0]),
            (std::vector<mirror_node>{{"mirror-a", endpoint{"127.0.0.1", 7411}}}));
}

TEST(provider_config, bad_mirror_node_lists_are_refused) {
  auto with = [](const std::string& nodes) {
    return replace(router_text(), "address = \"127.0.0.1:7411\"", nodes);
  };
  std::string text = with(
      "address = \"127.0.0.1:7411\"\nnodes = [{ id = \"a-1\", address = "
      "\"127.0.0.1:1\" }]");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "mirrors.address and mirrors.nodes exclude"));
  text = with("nodes = []");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "mirrors.nodes is empty"));
  text = with("nodes = [\"a-1\"]");
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"a-1\"]"), "must be a table"));
  text = with(
      "nodes = [{ id = \"a-1\", address = \"127.0.0.1:1\" }, { id = \"a-1\", address = "
      "\"127.0.0.1:2\" }]");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "mirror node \"a-1\" appears twice"));
  text = with(
      "nodes = [{ id = \"a-1\", address = \"127.0.0.1:1\" }, { id = \"a-2\", address = "
      "\"127.0.0.1:1\" }]");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "have the same address"));
  text = with("nodes = [{ id = \"router\", address = \"127.0.0.1:1\" }]");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "is the router's name"));
  text = with("nodes = [{ id = \"a-1\", address = \"127.0.0.1:0\" }]");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "has port 0"));
  text = with("nodes = [{ id = \"a-1\", addr = \"127.0.0.1:1\" }]");
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "unknown key \"addr\""));
  // A node id is a pre-key pool in the router's directory: another mirror's name is taken.
  text = with("nodes = [{ id = \"mirror-b\", address = \"127.0.0.1:1\" }]")
         + "\n[[mirrors]]\nname = \"mirror-b\"\naddress = \"127.0.0.1:7412\"\npublic_key = \""
         + std::string(key_b_hex) + "\"\n";
  EXPECT_TRUE(fails_with(parse(text), "test.toml:", "is also a node or the name of mirror"));
}

TEST(provider_config, bad_cluster_is_refused) {
  std::string text = router_text() + "\n[cluster]\nnodes = [\"n1\"]\nself = \"n2\"\n";
  EXPECT_TRUE(
      fails_with(parse(text), at(text, "\"n2\""), "cluster.self \"n2\" is not in cluster.nodes"));
  text = router_text() + "\n[cluster]\nnodes = [\"n1\"]\nself = \"\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"\"\n"), "cluster.self is empty"));
  text = router_text() + "\n[cluster]\nnodes = [2]\nself = \"n1\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "2]"),
                         "must be strings or tables ({ id = ..., clients = ..., internal = ... }), "
                         "not an integer"));
  text = mirror_text() + "\n[cluster]\nnodes = [2]\nself = \"n1\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "2]"), "must be strings, not an integer"));
  text = router_text() + "\n[cluster]\nnodes = []\nself = \"n1\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "[]"), "cluster.nodes is empty"));
  text = router_text() + "\n[cluster]\nself = \"n1\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "[cluster]"), "missing the required key \"nodes\""));
}

TEST(provider_config, bad_log_level_is_refused) {
  const std::string text = router_text() + "\n[logging]\nlevel = \"loud\"\n";
  EXPECT_TRUE(fails_with(parse(text), at(text, "\"loud\""),
                         "logging.level must be \"trace\", \"debug\", \"info\", \"warn\", "
                         "\"error\" or \"off\", not \"loud\""));
}

// ---------------------------------------------------------------------------------------------
// Defaults and rendering.

TEST(provider_config, defaults_for_each_role) {
  const auto r = defaults_for(role::router);
  EXPECT_EQ(r.role, role::router);
  EXPECT_TRUE(r.name.empty());
  EXPECT_FALSE(r.storage_key_file.has_value());
  EXPECT_EQ(r.identity_key_file, fs::path("identity.key"));
  EXPECT_EQ(r.admin_socket, fs::path("admin.sock"));
  EXPECT_EQ(r.limits.max_frame, protocol::max_frame_protocol);
  EXPECT_EQ(r.limits.max_members, protocol::max_members);
  EXPECT_EQ(r.limits.max_body, protocol::max_body);
  EXPECT_EQ(r.retention, std::chrono::seconds(2592000));
  const auto m = defaults_for(role::mirror);
  EXPECT_EQ(m.role, role::mirror);
  EXPECT_EQ(m.storage_key_file, fs::path("storage.key"));
}

TEST(provider_config, filled_in_defaults_render_to_a_config_that_parses) {
  // What the local launcher does: take the defaults, fill in the required values, render.
  auto c = defaults_for(role::mirror);
  c.name = "mirror-\xc3\xa9";  // "mirror-é": ids are UTF-8
  c.data_dir = R"(/tmp/cowpi "quoted"\dir)";
  c.links = {"127.0.0.1", 0};
  c.tls = {"tls/m.pem", "tls/m.key", "tls/ca.pem"};
  c.router = {"router", testing::hex_array<32>(router_key_hex)};
  c.logging.level = log_level::debug;
  const auto parsed = ok(parse_provider_config(to_toml(c), "rendered.toml"));
  EXPECT_EQ(parsed.name, c.name);
  EXPECT_EQ(parsed.data_dir, c.data_dir);
  EXPECT_EQ(parsed.storage_key_file, c.data_dir / "storage.key");
  EXPECT_EQ(parsed.tls.key, c.data_dir / "tls/m.key");
  EXPECT_EQ(parsed.router, c.router);
  EXPECT_EQ(parsed.logging.level, log_level::debug);
  // Parsed once, the config is a fixed point of render -> parse.
  EXPECT_TRUE(ok(parse_provider_config(to_toml(parsed), "again.toml")) == parsed);
}

TEST(provider_config, render_writes_only_the_keys_of_its_role) {
  const auto m = ok(parse(mirror_text()));
  const std::string text = to_toml(m);
  EXPECT_EQ(text.find("[[mirrors]]"), std::string::npos);
  EXPECT_EQ(text.find("clients"), std::string::npos);
  EXPECT_EQ(text.find("max_members"), std::string::npos);
  EXPECT_EQ(text.find("[retention]"), std::string::npos);
  EXPECT_NE(text.find("[router]"), std::string::npos);
  const auto r = ok(parse(router_text() + "\n[timeouts]\nidle = 1234\n"));
  const std::string rt = to_toml(r);
  EXPECT_NE(rt.find("idle = 1234\n"), std::string::npos);
  EXPECT_EQ(rt.find("links"), std::string::npos);
  EXPECT_TRUE(ok(parse(rt)) == r);
}

// ---------------------------------------------------------------------------------------------
// The deployment file.

TEST(deployment_file, parses_and_sorts_the_pinned_mirror_set) {
  const auto d = ok(parse_deployment(deployment_text()));
  EXPECT_EQ(d.router.name, "router");
  EXPECT_EQ(d.router.address, (endpoint{"127.0.0.1", 7400}));
  EXPECT_EQ(d.router.public_key, testing::hex_array<32>(router_key_hex));
  EXPECT_EQ(d.router.retention, std::chrono::seconds(86400));
  ASSERT_EQ(d.mirrors.size(), 2u);
  EXPECT_EQ(d.mirrors[0], (peer{"mirror-a", testing::hex_array<32>(key_a_hex)}));
  EXPECT_EQ(d.mirrors[1], (peer{"mirror-b", testing::hex_array<32>(key_b_hex)}));
  const protocol::member_list ms = to_member_list(d.mirrors);
  EXPECT_TRUE(protocol::is_sorted_unique(ms));
}

TEST(deployment_file, survives_render_and_parse) {
  const auto d = ok(parse_deployment(deployment_text()));
  const std::string text = to_toml(d);
  EXPECT_EQ(ok(parse_deployment_file(text, "rendered.toml")), d);

  const testing::temp_dir dir("deployment");
  const fs::path file = dir.path() / "deployment.toml";
  std::ofstream(file) << text;
  EXPECT_EQ(ok(load_deployment_file(file)), d);
}

TEST(deployment_file, bad_files_are_refused_with_their_position) {
  const std::string base = deployment_text();
  std::string text = base + "\n[extra]\n";
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "extra"), "unknown table or key"));
  text = replace(base, "retention_s = 86400\n", "retention_s = 86400\nport = 1\n");
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "port"), "unknown key \"port\""));
  text = replace(base, "retention_s = 86400\n", "");
  EXPECT_TRUE(fails_with(parse_deployment(text), "test.toml:1:1: ",
                         "[router] is missing the required key \"retention_s\""));
  text = replace(base, "retention_s = 86400", "retention_s = 0");
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "0\n"), "retention_s = 0 is below"));
  text = replace(base, "retention_s = 86400", "retention_s = \"1d\"");
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "\"1d\""), "must be an integer"));
  text = replace(base, "127.0.0.1:7400", "127.0.0.1:0");
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "\"127.0.0.1:0\""), "port 0"));
  text = replace(base, "mirror-b", "mirror-a");
  EXPECT_TRUE(
      fails_with(parse_deployment(text), "test.toml:12:8: ", "appears twice (first at line 7)"));
  text = replace(base, "mirror-b", "router");
  EXPECT_TRUE(fails_with(parse_deployment(text), "test.toml:8:8: ", "is the router's name"));
  text = replace(base, "public_key = \"" + std::string(key_b_hex),
                 "public_key = \"" + std::string(router_key_hex));
  EXPECT_TRUE(fails_with(parse_deployment(text), "test.toml:9:14: ", "the router's public key"));
  text = replace(base, key_a_hex, "xyz");
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "\"xyz\""), "64 hex characters"));
  text = base.substr(0, base.find("[[mirrors]]"));
  EXPECT_TRUE(fails_with(parse_deployment(text), "test.toml:1:1: ", "missing [[mirrors]]"));
  text = base.substr(base.find("[[mirrors]]"));
  EXPECT_TRUE(
      fails_with(parse_deployment(text), "test.toml:1:1: ", "missing the required table [router]"));
  text = replace(base, "[[mirrors]]\nname = \"mirror-a\"",
                 "[[mirrors]]\naddress = \"127.0.0.1:1\"\nname = \"mirror-a\"");
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "address = \"127.0.0.1:1\""),
                         "unknown key \"address\" in [mirrors]"));
}

// The deployment file of a router cluster: `lines` are the entries of `[router] nodes`.
std::string deployment_with_nodes(const std::vector<std::string>& lines) {
  std::string nodes = "nodes = [\n";
  for (size_t i = 0; i < lines.size(); ++i) {
    nodes += "  " + lines[i] + (i + 1 < lines.size() ? ",\n" : "\n");
  }
  nodes += "]\n";
  return replace(deployment_text(), "retention_s = 86400\n", "retention_s = 86400\n" + nodes);
}

TEST(deployment_file, a_router_cluster_lists_its_nodes_in_order) {
  const std::string text =
      deployment_with_nodes({"{ id = \"router-2\", address = \"127.0.0.1:7402\" }",
                             "{ id = \"router-1\", address = \"[::1]:7401\" }"});
  const auto d = ok(parse_deployment(text));
  EXPECT_EQ(d.router.address, (endpoint{"127.0.0.1", 7400}));
  EXPECT_EQ(d.router.nodes, (std::vector<deployment_router_node>{{"router-2", {"127.0.0.1", 7402}},
                                                                 {"router-1", {"::1", 7401}}}));
  EXPECT_EQ(ok(parse_deployment_file(to_toml(d), "rendered.toml")), d);
  // Without nodes (a router of one node) the file renders no nodes key.
  const auto one = ok(parse_deployment(deployment_text()));
  EXPECT_TRUE(one.router.nodes.empty());
  EXPECT_EQ(to_toml(one).find("nodes"), std::string::npos);
}

TEST(deployment_file, bad_router_node_lists_are_refused_with_their_position) {
  const std::string first = "{ id = \"router-1\", address = \"127.0.0.1:7401\" }";
  std::string text =
      replace(deployment_text(), "retention_s = 86400\n", "retention_s = 86400\nnodes = []\n");
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "[]"), "router.nodes is empty"));
  text = deployment_with_nodes({first, "\"router-2\""});
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "\"router-2\""),
                         "each router.nodes entry must be a table ({ id = ..., address = ... }), "
                         "not a string"));
  text = deployment_with_nodes({first, "{ id = \"router-2\", addr = \"127.0.0.1:7402\" }"});
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "addr "),
                         "unknown key \"addr\" in [router.nodes]"));
  text = deployment_with_nodes({first, "{ id = \"router-2\" }"});
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "{ id = \"router-2\""),
                         "[router.nodes] is missing the required key \"address\""));
  text = deployment_with_nodes({first, "{ id = \"\", address = \"127.0.0.1:7402\" }"});
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "\"\""), "router.nodes.id is empty"));
  text = deployment_with_nodes({first, "{ id = \"router-1\", address = \"127.0.0.1:7402\" }"});
  EXPECT_TRUE(fails_with(parse_deployment(text),
                         at(text, "\"router-1\", address = \"127.0.0.1:7402"),
                         "router node \"router-1\" appears twice"));
  text = deployment_with_nodes({first, "{ id = \"router-2\", address = \"127.0.0.2:0\" }"});
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "\"127.0.0.2:0\""),
                         "router.nodes.address has port 0"));
  text = deployment_with_nodes({first, "{ id = \"router-2\", address = \"127.0.0.1:7401\" }"});
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "\"127.0.0.1:7401\" }\n]"),
                         "router nodes \"router-1\" and \"router-2\" have the same address"));
  std::vector<std::string> many;
  for (size_t i = 1; i <= max_cluster_nodes + 1; ++i) {
    many.push_back("{ id = \"r-" + std::to_string(i)
                   + "\", address = \"127.0.0.1:" + std::to_string(10000 + i) + "\" }");
  }
  text = deployment_with_nodes(many);
  EXPECT_TRUE(fails_with(parse_deployment(text), at(text, "{ id = \"r-65\""),
                         "more than 64 nodes in one router cluster"));
}

TEST(deployment_file, deployment_for_a_router_cluster_lists_every_node_and_its_clients_address) {
  const auto r = ok(parse(router_cluster_text(three_router_nodes())));
  const auto key = testing::hex_array<32>(router_key_hex);
  const auto d = deployment_for(r, key);
  EXPECT_EQ(d.router.name, "router");
  EXPECT_EQ(d.router.nodes,
            (std::vector<deployment_router_node>{{"router-1", {"127.0.0.1", 7401}},
                                                 {"router-2", {"127.0.0.1", 7402}},
                                                 {"router-3", {"10.0.0.3", 7400}}}));
  // The first node's address, not this node's [listen] clients.
  EXPECT_EQ(d.router.address, (endpoint{"127.0.0.1", 7401}));
  EXPECT_EQ(ok(parse_deployment_file(to_toml(d), "rendered.toml")), d);
}

TEST(deployment_file, deployment_for_a_router_config_names_its_mirror_set) {
  const auto r = ok(parse(router_text() + mirror_entry("alpha", "10.0.0.2:1", key_b_hex)
                          + "\n[retention]\nmax_age_s = 77\n"));
  const auto key = testing::hex_array<32>(router_key_hex);
  const auto d = deployment_for(r, key);
  EXPECT_EQ(d.router.name, "router");
  EXPECT_EQ(d.router.address, r.clients);
  EXPECT_EQ(d.router.public_key, key);
  EXPECT_EQ(d.router.retention, std::chrono::seconds(77));
  ASSERT_EQ(d.mirrors.size(), 2u);
  EXPECT_EQ(d.mirrors[0].name, "alpha");
  EXPECT_EQ(to_member_list(d.mirrors), to_member_list(r.mirrors));
}

}  // namespace
}  // namespace cowpi::config

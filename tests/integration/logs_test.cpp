// SPDX-License-Identifier: Apache-2.0
// The providers' logs after a real conversation at debug level in the JSON format: every line
// is one JSON object with the documented fields, and no plaintext, key or user id appears.
#include "client_harness.hpp"
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace cowpi::testing {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string hex_of(const std::string& b) {
  std::string out(b.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(b.data()),
                 b.size());
  out.pop_back();
  return out;
}

std::string base64_of(const std::string& b) {
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(b.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(b.data()),
                    b.size(), variant);
  out.resize(out.find('\0'));
  return out;
}

// What must never reach a log: the forms a key file's bytes could take there.
std::vector<std::string> secret_forms(const fs::path& key_file) {
  const std::string raw = read_all(key_file);
  std::vector<std::string> forms;
  if (raw.rfind("-----BEGIN", 0) == 0) {
    // A PEM private key: each line of its base64 body.
    std::istringstream lines(raw);
    for (std::string l; std::getline(lines, l);)
      if (l.size() >= 16 && l.rfind("-----", 0) != 0)
        forms.push_back(l);
    return forms;
  }
  if (raw.size() >= 16) {
    forms.push_back(raw);
    forms.push_back(hex_of(raw));
    forms.push_back(base64_of(raw));
  }
  return forms;
}

TEST(provider_logs, json_lines_carry_no_plaintext_key_or_user_id) {
  live_deployment dep("jsonlogs", {}, provider_binary(), true, [](tools::local_deployment& d) {
    d.log_level = config::log_level::debug;
    d.log_format = config::log_format::json;
  });
  ASSERT_TRUE(dep.ok()) << dep.error();
  const std::vector<std::string> users = {"qzuser-one", "qzuser-two", "qzuser-three"};
  for (const auto& u : users)
    dep.add_user(u);
  const std::vector<std::string> ids = {"qzuser-one", "qzuser-two", "qzuser-three",
                                        "qzuser-nobody"};
  auto conv = dep.user(users[0]).create({users[1], users[2]});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.settle());
  std::vector<std::string> plaintexts;
  for (int k = 0; k < 6; ++k) {
    plaintexts.push_back("plaintext-7c41e-" + std::to_string(k));
    auto sent = dep.user(users[static_cast<size_t>(k) % 2]).send(*conv, plaintexts.back());
    ASSERT_TRUE(sent.has_value()) << sent.error().message();
  }
  ASSERT_TRUE(dep.user(users[0]).remove(*conv, {users[2]}).has_value());
  ASSERT_TRUE(dep.settle());
  // Two authors take turns; `send` returns once queued, so the order across them may vary.
  auto got = texts(dep.transcript(users[1], *conv));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, plaintexts);
  // Some debug lines: a lookup of an unknown user, a refused creation, a closed connection.
  (void)dep.user(users[0]).lookup({"qzuser-nobody"});
  EXPECT_FALSE(dep.user(users[1]).create({"qzuser-nobody"}).has_value());
  dep.close_user(users[2]);
  // A clean stop flushes every line.
  const std::vector<std::string> providers = {"router", "mirror-a", "mirror-b"};
  for (const auto& p : providers)
    dep.process(p).signal(SIGTERM);
  for (const auto& p : providers)
    ASSERT_TRUE(dep.process(p).wait(std::chrono::seconds(20)).has_value()) << p;

  std::vector<std::string> secrets;
  for (const auto& e : fs::recursive_directory_iterator(dep.layout().dir))
    if (e.is_regular_file() && e.path().extension() == ".key")
      for (auto& f : secret_forms(e.path()))
        secrets.push_back(std::move(f));
  ASSERT_GE(secrets.size(), 10u) << "the deployment's key files were not found";

  for (const auto& p : providers) {
    const std::string log = read_all(dep.layout().log_path(p));
    std::istringstream lines(log);
    size_t n = 0;
    bool link_up = false;
    for (std::string line; std::getline(lines, line);) {
      if (line.empty())
        continue;
      ++n;
      auto j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << p << ": not a JSON object: " << line;
      for (const char* field : {"time", "level", "node", "component", "event"})
        EXPECT_TRUE(j.contains(field) && j.at(field).is_string())
            << p << " " << field << ": " << line;
      EXPECT_EQ(j.value("node", ""), p) << line;
      EXPECT_FALSE(j.contains("conv")) << "ids are off by default: " << line;
      if (j.value("component", "") == "link" && j.value("event", "") == "up")
        link_up = true;
      for (const auto& t : plaintexts)
        EXPECT_EQ(line.find(t), std::string::npos) << p << " logged a plaintext: " << line;
      for (const auto& u : ids)
        EXPECT_EQ(line.find(u), std::string::npos) << p << " logged a user id: " << line;
    }
    EXPECT_GT(n, 0u) << p << " logged nothing";
    if (p == "router") {
      EXPECT_TRUE(link_up) << "the router's log has no link-up line";
    }
    for (const auto& s : secrets)
      EXPECT_EQ(log.find(s), std::string::npos) << p << " logged key material";
  }
}

}  // namespace
}  // namespace cowpi::testing

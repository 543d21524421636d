// SPDX-License-Identifier: Apache-2.0
// Uses the installed client API: parses a deployment file, starts a client system and creates a
// user's identity and store (no network), then loads it again. Prints the user's public key.
#include <cowpi/actors/client_runtime.hpp>
#include <cowpi/config/deployment_file.hpp>
#include <cowpi/crypto/bytes.hpp>
#include <sodium.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace {

constexpr const char* deployment_toml = R"(
[router]
name = "router"
address = "127.0.0.1:7400"
public_key = "d51e87cca9e9996cfa783867889d1465d49b317f5eeed6d1bf6093e45f49f42f"
retention_s = 2592000

[[mirrors]]
name = "mirror-a"
public_key = "f4d48feb61b03aa16520be5d99811cf9d74ae8d7f8f136e77e6df5f29a92bb5d"
)";

int fail(const char* what, const cowpi::error& e) {
  std::fprintf(stderr, "consumer: %s: %s\n", what, e.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: cowpi_consumer EMPTY_DIR\n");
    return 2;
  }
  if (sodium_init() < 0) {
    return 1;
  }
  auto deployment = cowpi::config::parse_deployment_file(deployment_toml, "deployment.toml");
  if (!deployment) {
    return fail("deployment file", deployment.error());
  }
  const std::filesystem::path home = argv[1];
  cowpi::actors::client_runtime_options options;
  options.deployment = *deployment;
  options.store_path = home / "store";
  options.key = cowpi::storage::key_file{home / "storage.key"};

  cowpi::actors::client_system sys;
  std::string lpk;
  {
    auto rt = cowpi::actors::client_runtime::init(sys, "alice", options);
    if (!rt) {
      return fail("init", rt.error());
    }
    lpk = cowpi::to_hex((*rt)->lpk());
  }
  auto again = cowpi::actors::client_runtime::load(sys, options);
  if (!again) {
    return fail("load", again.error());
  }
  if ((*again)->id() != "alice" || cowpi::to_hex((*again)->lpk()) != lpk) {
    std::fprintf(stderr, "consumer: the loaded store is not alice's\n");
    return 1;
  }
  std::printf(
      "alice %s %s (%s)\n", lpk.c_str(),
      std::string(cowpi::actors::to_string((*again)->state())).c_str(),
      std::string(cowpi::actors::to_string(cowpi::actors::conversation_status::active)).c_str());
  return 0;
}

// SPDX-License-Identifier: Apache-2.0
// gen_vectors: writes the seeded protocol vectors (tests/vectors/data/*.json).
#include "vectors.hpp"
#include <CLI/CLI.hpp>
#include <sodium.h>

#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{
      "gen_vectors: regenerates cowpi's seeded protocol test vectors (NAXOS keys, blocks,\n"
      "transcript hashes, a recorded conversation, author->mirror and mirror blocks, the\n"
      "transport handshake, accept/reject/alarm decisions, chain blocks) and verifies them. The\n"
      "checked-in files change only when the protocol does: review the diff."};
  std::string out = "tests/vectors/data";
  uint64_t seed = cowpi::vectors::default_seed;
  app.add_option("--out", out, "directory to write the JSON files to")->capture_default_str();
  app.add_option("--seed", seed, "seed of every vector")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (sodium_init() < 0)
    return 1;
  for (const auto& k : cowpi::vectors::all_kinds()) {
    auto v = k.generate(seed);
    if (auto err = k.verify(v)) {
      std::cerr << k.file << ": generated vectors do not verify: " << *err << "\n";
      return 1;
    }
    std::ofstream f(out + "/" + k.file);
    if (!f) {
      std::cerr << "cannot write " << out << "/" << k.file << "\n";
      return 1;
    }
    f << v.dump(2) << "\n";
    std::cout << "wrote " << out << "/" << k.file << "\n";
  }
  return 0;
}

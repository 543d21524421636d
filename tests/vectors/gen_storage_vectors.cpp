// SPDX-License-Identifier: Apache-2.0
// gen_storage_vectors: writes tests/vectors/data/storage.json, the pinned bytes of every storage
// key and record. Run it only for a deliberate layout change, and review the diff.
#include "storage_vectors.hpp"
#include <CLI/CLI.hpp>
#include <sodium.h>

#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{
      "gen_storage_vectors: regenerates the storage-stability vectors (key layouts, record\n"
      "encodings, sealed blobs) and verifies them. The checked-in file changes only when the\n"
      "storage layout does: review the diff, and bump the layout version if old stores must\n"
      "be refused."};
  std::string out = "tests/vectors/data";
  uint64_t seed = cowpi::vectors::storage::default_seed;
  app.add_option("--out", out, "directory to write storage.json to")->capture_default_str();
  app.add_option("--seed", seed, "seed of every vector")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (sodium_init() < 0)
    return 1;
  const auto v = cowpi::vectors::storage::generate(seed);
  if (auto err = cowpi::vectors::storage::verify(v)) {
    std::cerr << "generated vectors do not verify: " << *err << "\n";
    return 1;
  }
  std::ofstream f(out + "/storage.json");
  if (!f) {
    std::cerr << "cannot write " << out << "/storage.json\n";
    return 1;
  }
  f << v.dump(2) << "\n";
  std::cout << "wrote " << out << "/storage.json\n";
  return 0;
}

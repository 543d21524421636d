// SPDX-License-Identifier: Apache-2.0
// Writes the wire fuzzer's seed corpus: one file per sample message, prefixed with the byte that
// selects its decoder in wire_fuzz.cpp. Usage: cowpi_wire_fuzz_seeds <dir>
#include "cowpi/protocol/wire.hpp"

#include "wire_samples.hpp"

#include <cstdint>
#include <cstdio>
#include <string>

namespace {

using namespace cowpi;                          // NOLINT(google-build-using-namespace)
using namespace cowpi::protocol;                // NOLINT(google-build-using-namespace)
using namespace cowpi::protocol::wire_samples;  // NOLINT(google-build-using-namespace)

bool write_seed(const std::string& dir, const char* kind, size_t n, uint8_t selector,
                const bytes& b) {
  char name[64];
  std::snprintf(name, sizeof name, "/%s-%02zu", kind, n);
  std::FILE* f = std::fopen((dir + name).c_str(), "wb");
  if (f == nullptr) {
    return false;
  }
  bool ok = std::fputc(selector, f) != EOF && std::fwrite(b.data(), 1, b.size(), f) == b.size();
  ok = std::fclose(f) == 0 && ok;
  return ok;
}

template <class T>
bool write_all(const std::string& dir, const char* kind, uint8_t selector,
               const std::vector<T>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!write_seed(dir, kind, i, selector, wire::encode(values[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = write_all(dir, "clear", 0, all_clear_frames())
            && write_all(dir, "client", 1, all_client_frames())
            && write_all(dir, "router", 2, all_router_frames())
            && write_all(dir, "link-request", 3, all_link_requests())
            && write_all(dir, "link-response", 4, all_link_responses())
            && write_seed(dir, "common", 0, 5, wire::encode_common(mk_common(msg_type::update)))
            && write_seed(dir, "envelope", 0, 6, wire::encode_envelope(mk_envelope(true)))
            && write_seed(dir, "submit", 0, 7, wire::encode_submit(mk_submit(msg_type::setup)))
            && write_seed(dir, "bundle", 0, 8,
                          wire::encode_prekey_bundle(mk_bundle(key_kind::last_resort)));
  if (!ok) {
    std::fprintf(stderr, "cannot write seeds to %s\n", dir.c_str());
    return 1;
  }
  return 0;
}

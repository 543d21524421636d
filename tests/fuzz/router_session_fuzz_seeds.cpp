// SPDX-License-Identifier: Apache-2.0
// Writes the session fuzzer's seed corpus in the input layout router_session_fuzz.cpp documents:
// real HELLOs, bad prefixes, and every sample client and router frame as a sealed payload.
// Usage: cowpi_router_session_fuzz_seeds <dir>
#include "cowpi/protocol/session.hpp"
#include "cowpi/protocol/wire.hpp"

#include "wire_samples.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using namespace cowpi;                          // NOLINT(google-build-using-namespace)
using namespace cowpi::protocol;                // NOLINT(google-build-using-namespace)
using namespace cowpi::protocol::wire_samples;  // NOLINT(google-build-using-namespace)

enum class mode : uint8_t { raw = 0, sealed = 1, client = 2, hello_ack = 3 };

bool write_seed(const std::string& dir, const char* kind, size_t n, const bytes& b) {
  char name[64];
  std::snprintf(name, sizeof name, "/%s-%02zu", kind, n);
  std::FILE* f = std::fopen((dir + name).c_str(), "wb");
  if (f == nullptr) {
    return false;
  }
  bool ok = std::fwrite(b.data(), 1, b.size(), f) == b.size();
  ok = std::fclose(f) == 0 && ok;
  return ok;
}

void put_be16(bytes& out, size_t n) {
  out.push_back(static_cast<uint8_t>(n >> 8));
  out.push_back(static_cast<uint8_t>(n));
}

/// Appends `b` as raw-mode chunks: `u8(size - 1) || size bytes`, at most 256 bytes each.
void put_chunks(bytes& out, const bytes& b) {
  for (size_t off = 0; off < b.size(); off += 256) {
    const size_t n = std::min<size_t>(256, b.size() - off);
    out.push_back(static_cast<uint8_t>(n - 1));
    out.insert(out.end(), b.begin() + static_cast<std::ptrdiff_t>(off),
               b.begin() + static_cast<std::ptrdiff_t>(off + n));
  }
}

bytes hello_payload(hello_mode m) {
  return wire::encode(
      clear_frame{hello{transport_version, m, "alice", filled<32>(0x11), filled<32>(0x22)}});
}

bytes raw_seed(const bytes& hello, uint8_t answer, const std::vector<bytes>& chunks) {
  bytes out{static_cast<uint8_t>(mode::raw), 0};
  put_be16(out, hello.size());
  out.insert(out.end(), hello.begin(), hello.end());
  if (!hello.empty()) {
    out.push_back(answer);
  }
  for (const auto& c : chunks) {
    put_chunks(out, c);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const bytes login = hello_payload(hello_mode::login);
  const bytes reg = hello_payload(hello_mode::register_user);
  bytes fake_frame{0, 0, 0, 20};
  fake_frame.resize(24, 0x5a);

  std::vector<bytes> raw{
      raw_seed(login, 0, {fake_frame}),
      raw_seed(reg, 1, {}),
      raw_seed(login, 2, {}),
      raw_seed({}, 0, {bytes{0x7f, 0xff, 0xff, 0xff}}),
      raw_seed({}, 0, {bytes{0, 0, 0, 0}}),
      raw_seed(reg, 0, {length_prefixed(reg)}),
  };

  std::vector<bytes> sealed;
  const auto client_frames = all_client_frames();
  for (size_t i = 0; i < client_frames.size(); ++i) {
    bytes out{static_cast<uint8_t>(mode::sealed), 0, static_cast<uint8_t>(i & 1)};
    const bytes f = wire::encode(client_frames[i]);
    put_be16(out, f.size());
    out.insert(out.end(), f.begin(), f.end());
    sealed.push_back(std::move(out));
  }
  {
    // Two pings, the second dripped one byte at a time.
    bytes out{static_cast<uint8_t>(mode::sealed), 1, 0};
    const bytes ping_frame = wire::encode(client_frame{1, ping{}});
    put_be16(out, ping_frame.size());
    out.insert(out.end(), ping_frame.begin(), ping_frame.end());
    put_be16(out, ping_frame.size() | 0x8000u);
    out.insert(out.end(), ping_frame.begin(), ping_frame.end());
    sealed.push_back(std::move(out));
  }

  std::vector<bytes> client;
  const auto router_frames = all_router_frames();
  for (size_t i = 0; i < router_frames.size(); ++i) {
    bytes out{static_cast<uint8_t>(mode::client), 0};
    const bytes f = wire::encode(router_frames[i]);
    put_be16(out, f.size());
    out.insert(out.end(), f.begin(), f.end());
    client.push_back(std::move(out));
  }

  std::vector<bytes> acks;
  const auto clear_frames = all_clear_frames();
  for (const auto& cf : clear_frames) {
    bytes out{static_cast<uint8_t>(mode::hello_ack), 0};
    put_chunks(out, length_prefixed(wire::encode(cf)));
    acks.push_back(std::move(out));
  }

  bool ok = true;
  for (size_t i = 0; i < raw.size(); ++i) {
    ok = ok && write_seed(dir, "raw", i, raw[i]);
  }
  for (size_t i = 0; i < sealed.size(); ++i) {
    ok = ok && write_seed(dir, "sealed", i, sealed[i]);
  }
  for (size_t i = 0; i < client.size(); ++i) {
    ok = ok && write_seed(dir, "client", i, client[i]);
  }
  for (size_t i = 0; i < acks.size(); ++i) {
    ok = ok && write_seed(dir, "hello-ack", i, acks[i]);
  }
  if (!ok) {
    std::fprintf(stderr, "cannot write seeds to %s\n", dir.c_str());
    return 1;
  }
  return 0;
}

// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for every wire decoder: the first byte picks the decoder, the rest is the
// message. A decode that succeeds must survive encode and decode again unchanged.
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/wire.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using namespace cowpi;            // NOLINT(google-build-using-namespace)
using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace)

[[noreturn]] void broken(const char* what, const char* how) {
  std::fprintf(stderr, "wire round trip broken for %s: %s\n", what, how);
  std::abort();
}

/// decode(encode(v)) == v, and encoding is deterministic: encode(decode(encode(v))) ==
/// encode(v). `v` came from a successful decode, so it is within every limit.
template <class T, class Encode, class Decode>
void round_trip(const T& v, Encode encode, Decode decode, const char* what) {
  const bytes e1 = encode(v);
  // Aliased pointers can make the input smaller than its re-encoding; past the byte limit a
  // refusal is the documented answer, not a broken round trip.
  if (e1.size() > max_frame_protocol) {
    return;
  }
  auto v2 = decode(byte_view(e1));
  if (!v2.has_value()) {
    broken(what, "re-encoding does not decode");
  }
  if (!(*v2 == v)) {
    broken(what, "decoded value differs");
  }
  if (encode(*v2) != e1) {
    broken(what, "encoding is not deterministic");
  }
}

template <class T, class Decode>
void check(byte_view in, Decode decode, const char* what) {
  auto v = decode(in);
  if (v.has_value()) {
    round_trip(
        *v, [](const T& x) { return wire::encode(x); }, decode, what);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const byte_view in(data + 1, size - 1);
  switch (data[0] % 9) {
    case 0:
      check<clear_frame>(in, wire::decode_clear_frame, "clear frame");
      break;
    case 1: {
      auto v = wire::decode_client_frame(in);
      if (v.has_value()) {
        round_trip(
            *v, [](const client_frame& x) { return wire::encode(x); }, wire::decode_client_frame,
            "client frame");
      } else if (v.error().answer && !v.error().request_id) {
        broken("client frame", "an answer without a request id");
      }
      break;
    }
    case 2:
      check<router_frame>(in, wire::decode_router_frame, "router frame");
      break;
    case 3:
      check<link_request>(in, wire::decode_link_request, "link request");
      break;
    case 4:
      check<link_response>(in, wire::decode_link_response, "link response");
      break;
    case 5: {
      auto v = wire::decode_common(in);
      if (v.has_value()) {
        round_trip(*v, wire::encode_common, wire::decode_common, "C");
      }
      break;
    }
    case 6: {
      auto v = wire::decode_envelope(in);
      if (v.has_value()) {
        round_trip(*v, wire::encode_envelope, wire::decode_envelope, "envelope");
      }
      break;
    }
    case 7: {
      auto v = wire::decode_submit(in);
      if (v.has_value()) {
        round_trip(*v, wire::encode_submit, wire::decode_submit, "submit");
      }
      break;
    }
    case 8: {
      auto v = wire::decode_prekey_bundle(in);
      if (v.has_value()) {
        round_trip(*v, wire::encode_prekey_bundle, wire::decode_prekey_bundle, "prekey bundle");
      }
      break;
    }
    default:
      break;
  }
  return 0;
}

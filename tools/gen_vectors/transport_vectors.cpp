// SPDX-License-Identifier: Apache-2.0
// transport.json: the client<->router handshake and frame stream of docs/protocol.md
// ("Transport session"): th, ikm on both sides, k_c2r/k_r2c, the first frames of each
// direction and the rekey every 2^20 frames.
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/session.hpp"
#include "cowpi/protocol/transport_crypto.hpp"
#include "cowpi/protocol/wire.hpp"

#include "json_util.hpp"
#include "vectors.hpp"

#include <variant>

namespace cowpi::vectors {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): vector tool

namespace {

// The frames each case seals: the client's proof (its first request), the router's answer and
// one more request (frame 1 of c2r).
client_frame proof_request() {
  return client_frame{1, ping{}};
}
router_frame first_answer() {
  return response{1, ok_result{}};
}
client_frame second_request() {
  return client_frame{2, fetch_prekeys{{"carol", "mirror-a"}, std::nullopt}};
}

// Frames n of the c2r direction around the rekeys: the last frame under k_c2r, the first two
// under its first rekey, and the first under the second.
constexpr uint64_t rekey_frames[] = {rekey_interval - 1, rekey_interval, rekey_interval + 1,
                                     2 * rekey_interval};

// The nonce of frame n, written out as the document states it: 16 zero bytes || be64(n mod 2^20).
bytes nonce_of(uint64_t n) {
  byte_writer w(24);
  w.raw(bytes(16, 0)).be64(n % rekey_interval);
  return std::move(w).take();
}

handshake_transcript transcript_of(uint8_t version, hello_mode mode, const identity& user,
                                   const identity& router, const naxos_keypair& x_u,
                                   const naxos_keypair& x_r) {
  handshake_transcript t;
  t.version = version;
  t.mode = mode;
  t.id_u = user.id();
  t.id_r = router.id();
  t.lpk_u = user.lpk();
  t.lpk_r = router.lpk();
  t.x_u = x_u.pub;
  t.x_r = x_r.pub;
  return t;
}

// `th`, written out as the document states it.
bytes th_of(const handshake_transcript& t) {
  byte_writer w(256);
  w.u8(t.version).u8(static_cast<uint8_t>(t.mode)).lp(t.id_u).lp(t.id_r);
  w.raw(t.lpk_u).raw(t.lpk_r).raw(t.x_u).raw(t.x_r);
  return std::move(w).take();
}

crypto::secret<32> kdf(std::string_view salt, byte_view ikm, byte_view info) {
  return crypto::hkdf32(as_bytes(label(salt)), ikm, info);
}

// One frame of a direction: AEAD(k, nonce(n), payload, L("frame")), with its length prefix.
json frame_json(uint64_t n, const crypto::secret<32>& key, const bytes& payload) {
  const bytes nonce = nonce_of(n);
  auto sealed = crypto::aead_seal(key.expose(), nonce, payload, as_bytes(label("frame")));
  return {{"n", n},
          {"key", hex(key)},
          {"nonce", hex(nonce)},
          {"ad", hex(as_bytes(label("frame")))},
          {"payload", hex(payload)},
          {"sealed", sealed ? hex(*sealed) : std::string("error")},
          {"frame", sealed ? hex(length_prefixed(*sealed)) : std::string("error")}};
}

// The sessions of one case, driven through the handshake; every output they produce.
struct handshake_run {
  bytes hello;
  bytes hello_ack;
  bytes proof;
  bytes answer;
  bytes second;
  std::string trace;  // what the sessions reported, in order
};

template <typename... Ts>
std::string names(const std::vector<std::variant<Ts...>>& events) {
  std::string out;
  for (const auto& e : events) {
    out += std::visit(
        [](const auto& x) -> std::string {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, need_lookup>) {
            return "need_lookup(" + x.id + ") ";
          } else if constexpr (std::is_same_v<T, authenticated>) {
            return "authenticated(" + x.id + ") ";
          } else if constexpr (std::is_same_v<T, incoming_request>) {
            return x.frame == proof_request() || x.frame == second_request() ? "request "
                                                                             : "other_request ";
          } else if constexpr (std::is_same_v<T, session_ready>) {
            return "ready ";
          } else if constexpr (std::is_same_v<T, router_message>) {
            return x.frame == first_answer() ? "answer " : "other_message ";
          } else if constexpr (std::is_same_v<T, send_frame>) {
            return "send ";
          } else {
            return "other ";
          }
        },
        e);
  }
  return out;
}

// Decodes a clear frame with its length prefix.
expected<clear_frame> clear_payload(const bytes& frame) {
  if (frame.size() <= frame_header_size)
    return fail(errc::malformed, "short frame");
  return wire::decode_clear_frame(byte_view(frame).subspan(frame_header_size));
}

bytes sent_bytes(const std::vector<router_event>& events) {
  for (const auto& e : events)
    if (const auto* s = std::get_if<send_frame>(&e))
      return s->data;
  return {};
}

handshake_run run_sessions(const identity& user, const identity& router, hello_mode mode,
                           uint64_t client_rng, uint64_t router_rng) {
  handshake_run out;
  client_session cs(user, router.id(), router.lpk());
  router_session rs(router);
  crypto::deterministic_rng cr(client_rng);
  crypto::deterministic_rng rr(router_rng);
  out.hello = cs.start(mode, cr).value_or(bytes{});
  out.trace += names(rs.feed(out.hello));
  auto acked = rs.resolve_lookup(lookup_result::ok, rr);
  if (acked)
    out.hello_ack = sent_bytes(*acked);
  out.trace += names(cs.feed(out.hello_ack));
  out.proof = cs.seal(proof_request()).value_or(bytes{});
  out.trace += names(rs.feed(out.proof));
  out.answer = rs.seal(first_answer()).value_or(bytes{});
  out.trace += names(cs.feed(out.answer));
  out.second = cs.seal(second_request()).value_or(bytes{});
  out.trace += names(rs.feed(out.second));
  return out;
}

}  // namespace

json generate_transport(uint64_t seed) {
  crypto::deterministic_rng r(seed);
  json cases = json::array();
  const hello_mode modes[] = {hello_mode::login, hello_mode::register_user};
  const char* users[] = {"alice",
                         "b\xc3\xb8"
                         "b"};
  const char* routers[] = {"router", "router.example"};
  for (uint64_t k = 0; k < 2; ++k) {
    identity user = identity::generate(users[k], r);
    identity router = identity::generate(routers[k], r);
    const uint64_t client_rng = seed * 10 + 2 * k;
    const uint64_t router_rng = seed * 10 + 2 * k + 1;
    crypto::deterministic_rng cr(client_rng);
    crypto::deterministic_rng rr(router_rng);
    const auto x_u_esk = cr.secret_bytes<32>();  // each session's first draw: its ephemeral
    const auto x_r_esk = rr.secret_bytes<32>();
    const naxos_keypair x_u = naxos_derive(x_u_esk, user);
    const naxos_keypair x_r = naxos_derive(x_r_esk, router);
    const handshake_transcript t =
        transcript_of(transport_version, modes[k], user, router, x_u, x_r);
    auto ikm = client_handshake_ikm(user, x_u.x, t);
    const session_keys keys = ikm ? derive_session_keys(*ikm, t) : session_keys{};
    const auto k1 = rekey_frame_key(keys.c2r);
    const auto k2 = rekey_frame_key(k1);
    const handshake_run run = run_sessions(user, router, modes[k], client_rng, router_rng);
    json rekeys = json::array();
    const bytes ping_payload = wire::encode(proof_request());
    const crypto::secret<32>* generations[] = {&keys.c2r, &k1, &k2};
    for (uint64_t n : rekey_frames)
      rekeys.push_back(frame_json(n, *generations[n / rekey_interval], ping_payload));
    cases.push_back({{"mode", static_cast<int>(modes[k])},
                     {"version", transport_version},
                     {"user", user.id()},
                     {"user_lsk", hex(user.export_secret())},
                     {"user_lpk", hex(user.lpk())},
                     {"router", router.id()},
                     {"router_lsk", hex(router.export_secret())},
                     {"router_lpk", hex(router.lpk())},
                     {"client_rng_seed", client_rng},
                     {"router_rng_seed", router_rng},
                     {"x_u_esk", hex(x_u_esk)},
                     {"x_u_secret", hex(x_u.x)},
                     {"x_u", hex(x_u.pub)},
                     {"x_r_esk", hex(x_r_esk)},
                     {"x_r_secret", hex(x_r.x)},
                     {"x_r", hex(x_r.pub)},
                     {"hello", hex(run.hello)},
                     {"hello_ack", hex(run.hello_ack)},
                     {"th", hex(encode_transcript(t))},
                     {"ikm", ikm ? hex(*ikm) : std::string("error")},
                     {"k_c2r", hex(keys.c2r)},
                     {"k_r2c", hex(keys.r2c)},
                     {"frames",
                      {frame_json(0, keys.c2r, wire::encode(proof_request())),
                       frame_json(0, keys.r2c, wire::encode(first_answer())),
                       frame_json(1, keys.c2r, wire::encode(second_request()))}},
                     {"session_frames", {hex(run.proof), hex(run.answer), hex(run.second)}},
                     {"session_trace", run.trace},
                     {"k_c2r_rekeyed_once", hex(k1)},
                     {"k_c2r_rekeyed_twice", hex(k2)},
                     {"rekey_frames", rekeys}});
  }
  return {{"kind", "transport"},
          {"seed", seed},
          {"description",
           "client<->router handshake: X_U and X_R are NAXOS keys from the first draw of "
           "deterministic_rng(client_rng_seed | router_rng_seed); th = u8(version) || u8(mode: "
           "LOGIN 1, REGISTER 2) || lp(id_U) || lp(id_R) || lpk_U || lpk_R || X_U || X_R; ikm = "
           "DH(lsk_U, X_R) || DH(x_U, lpk_R) || DH(x_U, X_R) = DH(x_R, lpk_U) || DH(lsk_R, X_U) || "
           "DH(x_R, X_U); k_c2r = HKDF(L(\"transport\"), ikm, L(\"c2r\") || th), k_r2c likewise. "
           "frames: c2r 0 (the proof), r2c 0, c2r 1, each be32(len) || AEAD(k, 0^16 || be64(n mod "
           "2^20), payload, L(\"frame\")); session_frames are what client_session and "
           "router_session send for them. Rekey: k' = HKDF(L(\"rekey\"), k, \"\") every 2^20 "
           "frames; rekey_frames seal the ping payload as c2r frames 2^20 - 1, 2^20, 2^20 + 1 "
           "and 2^21"},
          {"cases", cases}};
}

std::optional<std::string> verify_transport(const json& v) {
  size_t n = 0;
  for (const auto& c : v.at("cases")) {
    const std::string tag = "transport case " + std::to_string(n++) + " ";
    identity user = identity::from_secret(c.at("user"), unhex_secret<32>(c.at("user_lsk")));
    identity router = identity::from_secret(c.at("router"), unhex_secret<32>(c.at("router_lsk")));
    if (auto m = mismatch(tag + "user_lpk", c.at("user_lpk"), hex(user.lpk())))
      return m;
    if (auto m = mismatch(tag + "router_lpk", c.at("router_lpk"), hex(router.lpk())))
      return m;
    const auto mode = static_cast<hello_mode>(c.at("mode").get<int>());
    const uint64_t client_rng = c.at("client_rng_seed");
    const uint64_t router_rng = c.at("router_rng_seed");
    crypto::deterministic_rng cr(client_rng);
    crypto::deterministic_rng rr(router_rng);
    const auto x_u_esk = cr.secret_bytes<32>();
    const auto x_r_esk = rr.secret_bytes<32>();
    if (auto m = mismatch(tag + "x_u_esk", c.at("x_u_esk"), hex(x_u_esk)))
      return m;
    if (auto m = mismatch(tag + "x_r_esk", c.at("x_r_esk"), hex(x_r_esk)))
      return m;
    const naxos_keypair x_u = naxos_derive(x_u_esk, user);
    const naxos_keypair x_r = naxos_derive(x_r_esk, router);
    if (auto m = mismatch(tag + "x_u_secret", c.at("x_u_secret"), hex(x_u.x)))
      return m;
    if (auto m = mismatch(tag + "x_u", c.at("x_u"), hex(x_u.pub)))
      return m;
    if (auto m = mismatch(tag + "x_r_secret", c.at("x_r_secret"), hex(x_r.x)))
      return m;
    if (auto m = mismatch(tag + "x_r", c.at("x_r"), hex(x_r.pub)))
      return m;
    const handshake_transcript t =
        transcript_of(c.at("version").get<uint8_t>(), mode, user, router, x_u, x_r);
    const bytes th = th_of(t);
    if (auto m = mismatch(tag + "th", c.at("th"), hex(th)))
      return m;
    if (auto m = mismatch(tag + "th (encode_transcript)", c.at("th"), hex(encode_transcript(t))))
      return m;
    auto ikm_c = client_handshake_ikm(user, x_u.x, t);
    auto ikm_r = router_handshake_ikm(router, x_r.x, t);
    if (!ikm_c || !ikm_r)
      return tag + "handshake DH failed";
    if (auto m = mismatch(tag + "ikm (client)", c.at("ikm"), hex(*ikm_c)))
      return m;
    if (auto m = mismatch(tag + "ikm (router)", c.at("ikm"), hex(*ikm_r)))
      return m;
    byte_writer c2r_info;
    c2r_info.raw(label("c2r")).raw(th);
    byte_writer r2c_info;
    r2c_info.raw(label("r2c")).raw(th);
    const auto k_c2r = kdf("transport", ikm_c->expose(), c2r_info.data());
    const auto k_r2c = kdf("transport", ikm_c->expose(), r2c_info.data());
    if (auto m = mismatch(tag + "k_c2r", c.at("k_c2r"), hex(k_c2r)))
      return m;
    if (auto m = mismatch(tag + "k_r2c", c.at("k_r2c"), hex(k_r2c)))
      return m;
    auto client_keys = client_session_keys(user, x_u.x, t);
    auto router_keys = router_session_keys(router, x_r.x, t);
    if (!client_keys || !router_keys || !client_keys->c2r.ct_equals(k_c2r)
        || !client_keys->r2c.ct_equals(k_r2c) || !router_keys->c2r.ct_equals(k_c2r)
        || !router_keys->r2c.ct_equals(k_r2c))
      return tag + "the session key functions disagree with the formula";
    // The first frames, recomputed from their keys, numbers and payloads.
    const bytes payloads[] = {wire::encode(proof_request()), wire::encode(first_answer()),
                              wire::encode(second_request())};
    const crypto::secret<32>* frame_keys[] = {&k_c2r, &k_r2c, &k_c2r};
    const uint64_t numbers[] = {0, 0, 1};
    const json& frames = c.at("frames");
    if (frames.size() != 3)
      return tag + "expected 3 frames";
    for (size_t f = 0; f < 3; ++f) {
      if (auto m = mismatch(tag + "frame " + std::to_string(f), frames[f],
                            frame_json(numbers[f], *frame_keys[f], payloads[f])))
        return m;
    }
    // The sessions themselves: the handshake frames, then the same sealed frames.
    const handshake_run run = run_sessions(user, router, mode, client_rng, router_rng);
    if (auto m = mismatch(tag + "hello", c.at("hello"), hex(run.hello)))
      return m;
    auto hello = clear_payload(run.hello);
    const auto* h = hello ? std::get_if<protocol::hello>(&*hello) : nullptr;
    if (h == nullptr || h->mode != mode || h->id != user.id() || h->lpk != user.lpk()
        || h->x != x_u.pub || h->version != t.version)
      return tag + "HELLO does not carry (version, mode, id_U, lpk_U, X_U)";
    if (auto m = mismatch(tag + "hello_ack", c.at("hello_ack"), hex(run.hello_ack)))
      return m;
    auto ack = clear_payload(run.hello_ack);
    const auto* a = ack ? std::get_if<hello_ack>(&*ack) : nullptr;
    if (a == nullptr || a->x != x_r.pub || a->version != t.version)
      return tag + "HELLO_ACK does not carry (version, X_R)";
    const json sessions = {hex(run.proof), hex(run.answer), hex(run.second)};
    if (auto m = mismatch(tag + "session_frames", c.at("session_frames"), sessions))
      return m;
    for (size_t f = 0; f < 3; ++f)
      if (sessions[f] != frames[f].at("frame"))
        return tag + "session frame " + std::to_string(f) + " differs from the formula";
    if (auto m = mismatch(tag + "session_trace", c.at("session_trace"), run.trace))
      return m;
    // Rekeys: by the formula, and by the frame cipher the sessions use.
    const auto k1 = kdf("rekey", k_c2r.expose(), {});
    const auto k2 = kdf("rekey", k1.expose(), {});
    if (auto m = mismatch(tag + "k_c2r_rekeyed_once", c.at("k_c2r_rekeyed_once"), hex(k1)))
      return m;
    if (auto m = mismatch(tag + "k_c2r_rekeyed_twice", c.at("k_c2r_rekeyed_twice"), hex(k2)))
      return m;
    if (!rekey_frame_key(k_c2r).ct_equals(k1) || !rekey_frame_key(k1).ct_equals(k2))
      return tag + "rekey_frame_key disagrees with the formula";
    const json& rekeyed = c.at("rekey_frames");
    if (rekeyed.size() != std::size(rekey_frames))
      return tag + "expected " + std::to_string(std::size(rekey_frames)) + " rekey frames";
    for (size_t f = 0; f < std::size(rekey_frames); ++f) {
      const uint64_t fn = rekey_frames[f];
      const crypto::secret<32>* generations[] = {&k_c2r, &k1, &k2};
      const json want = frame_json(fn, *generations[fn / rekey_interval], payloads[0]);
      if (auto m = mismatch(tag + "rekey frame n=" + std::to_string(fn), rekeyed[f], want))
        return m;
      if (hex(frame_nonce(fn)) != want.at("nonce"))
        return tag + "frame_nonce disagrees at n=" + std::to_string(fn);
      frame_cipher fc(k_c2r.clone());
      fc.skip_for_test(fn);
      if (hex(fc.seal(payloads[0])) != want.at("sealed"))
        return tag + "frame_cipher seals frame n=" + std::to_string(fn) + " differently";
    }
  }
  if (n == 0)
    return std::string("transport: no cases");
  return std::nullopt;
}

}  // namespace cowpi::vectors

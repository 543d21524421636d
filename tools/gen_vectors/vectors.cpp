// SPDX-License-Identifier: Apache-2.0
// Generation and verification of the seeded protocol vectors (see vectors.hpp).
#include "vectors.hpp"

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/wire.hpp"
#include "cowpi/sim/world.hpp"

#include "json_util.hpp"
#include "member_replay.hpp"

#include <functional>
#include <map>
#include <memory>

namespace cowpi::vectors {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): vector tool

// ---------------------------------------------------------------------------
// NAXOS keys.

json generate_naxos(uint64_t seed) {
  crypto::deterministic_rng r(seed);
  json cases = json::array();
  const key_kind kinds[] = {key_kind::prekey, key_kind::last_resort, key_kind::ratchet};
  for (uint64_t k = 0; k < 6; ++k) {
    identity alice = identity::generate("alice", r);
    identity bob = identity::generate(
        "b\xc3\xb8"
        "b",
        r);  // a two-byte UTF-8 id
    auto e_esk = r.secret_bytes<32>();
    auto e = naxos_derive(e_esk, bob);
    auto x_esk = r.secret_bytes<32>();
    auto x = naxos_derive(x_esk, alice);
    conv_id conv = r.array<16>();
    const key_kind kind = kinds[k % 3];
    key_ref ref{kind, k + 1, kind == key_kind::ratchet ? public_key{} : e.pub};
    pair_context ctx{alice.id(), bob.id(), conv, ref, x.pub};
    auto key = pair_key_send(alice, x.x, bob.lpk(), e.pub, ctx);
    cases.push_back({{"sender", alice.id()},
                     {"sender_lsk", hex(alice.export_secret())},
                     {"sender_lpk", hex(alice.lpk())},
                     {"receiver", bob.id()},
                     {"receiver_lsk", hex(bob.export_secret())},
                     {"receiver_lpk", hex(bob.lpk())},
                     {"receiver_key_esk", hex(e_esk)},
                     {"receiver_key_secret", hex(e.x)},
                     {"receiver_key_pub", hex(e.pub)},
                     {"ephemeral_esk", hex(x_esk)},
                     {"ephemeral_secret", hex(x.x)},
                     {"x_s", hex(x.pub)},
                     {"conv", hex(conv)},
                     {"ref", ref_json(ref)},
                     {"info", hex(pair_info(ctx))},
                     {"key", key ? hex(*key) : std::string("error")}});
  }
  return {{"kind", "naxos"},
          {"seed", seed},
          {"description",
           "x = clamp(SHA-256(esk || lsk)), X = x*G; K = HKDF(L(\"pair\"), DH(lsk_S,E_R) || "
           "DH(x,lpk_R) || DH(x,E_R), lp(S) || lp(R) || conv || enc(ref) || X_S)"},
          {"cases", cases}};
}

std::optional<std::string> verify_naxos(const json& v) {
  size_t n = 0;
  for (const auto& c : v.at("cases")) {
    const std::string tag = "naxos case " + std::to_string(n++) + " ";
    identity s = identity::from_secret(c.at("sender"), unhex_secret<32>(c.at("sender_lsk")));
    identity r = identity::from_secret(c.at("receiver"), unhex_secret<32>(c.at("receiver_lsk")));
    if (auto m = mismatch(tag + "sender_lpk", c.at("sender_lpk"), hex(s.lpk())))
      return m;
    if (auto m = mismatch(tag + "receiver_lpk", c.at("receiver_lpk"), hex(r.lpk())))
      return m;
    auto e = naxos_derive(unhex_secret<32>(c.at("receiver_key_esk")), r);
    auto x = naxos_derive(unhex_secret<32>(c.at("ephemeral_esk")), s);
    if (auto m = mismatch(tag + "receiver_key_secret", c.at("receiver_key_secret"), hex(e.x)))
      return m;
    if (auto m = mismatch(tag + "receiver_key_pub", c.at("receiver_key_pub"), hex(e.pub)))
      return m;
    if (auto m = mismatch(tag + "ephemeral_secret", c.at("ephemeral_secret"), hex(x.x)))
      return m;
    if (auto m = mismatch(tag + "x_s", c.at("x_s"), hex(x.pub)))
      return m;
    const conv_id conv = unhex_array<16>(c.at("conv"));
    const key_ref ref = ref_from(c.at("ref"));
    pair_context ctx{s.id(), r.id(), conv, ref, x.pub};
    if (auto m = mismatch(tag + "info", c.at("info"), hex(pair_info(ctx))))
      return m;
    auto ks = pair_key_send(s, x.x, r.lpk(), e.pub, ctx);
    auto kr = pair_key_recv(r, e.x, s.lpk(), ctx);
    if (!ks || !kr)
      return tag + "key derivation failed";
    if (auto m = mismatch(tag + "sender key", c.at("key"), hex(*ks)))
      return m;
    if (auto m = mismatch(tag + "receiver key", c.at("key"), hex(*kr)))
      return m;
  }
  if (n == 0)
    return std::string("naxos: no cases");
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Blocks.

json generate_blocks(uint64_t seed) {
  crypto::deterministic_rng r(seed);
  json cases = json::array();
  for (uint64_t k = 0; k < 4; ++k) {
    identity alice = identity::generate("alice", r);
    identity bob = identity::generate("bob", r);
    auto e_esk = r.secret_bytes<32>();
    auto e = naxos_derive(e_esk, bob);
    conv_id conv = r.array<16>();
    key_ref ref{k % 2 ? key_kind::prekey : key_kind::ratchet, 7 + k, k % 2 ? e.pub : public_key{}};
    block_plaintext pt;
    if (k == 1)
      pt.seed = r.secret_bytes<32>();  // a MESSAGE author block
    pt.announced_id = 100 + k;
    pt.announced_pub = r.array<32>();
    const bytes ad(40 + k, static_cast<uint8_t>(k));
    const uint64_t rng_seed = seed * 10 + k;
    crypto::deterministic_rng br(rng_seed);
    auto b = seal_block(alice, bob.id(), bob.lpk(), conv, ref, e.pub, pt, ad, br);
    cases.push_back({{"sender_lsk", hex(alice.export_secret())},
                     {"receiver_lsk", hex(bob.export_secret())},
                     {"receiver_key_esk", hex(e_esk)},
                     {"receiver_key_pub", hex(e.pub)},
                     {"conv", hex(conv)},
                     {"ref", ref_json(ref)},
                     {"seed", hex(pt.seed)},
                     {"announced_id", pt.announced_id},
                     {"announced_pub", hex(pt.announced_pub)},
                     {"ad", hex(ad)},
                     {"rng_seed", rng_seed},
                     {"block", b ? hex(enc_block(*b)) : std::string("error")}});
  }
  return {{"kind", "blocks"},
          {"seed", seed},
          {"description",
           "enc(block) = X_S || enc(ref) || nonce || AEAD(K, nonce, seed || be64(id) || pub, "
           "AD); X_S and the nonce come from deterministic_rng(rng_seed)"},
          {"cases", cases}};
}

std::optional<std::string> verify_blocks(const json& v) {
  size_t n = 0;
  for (const auto& c : v.at("cases")) {
    const std::string tag = "block case " + std::to_string(n++) + " ";
    identity alice = identity::from_secret("alice", unhex_secret<32>(c.at("sender_lsk")));
    identity bob = identity::from_secret("bob", unhex_secret<32>(c.at("receiver_lsk")));
    auto e = naxos_derive(unhex_secret<32>(c.at("receiver_key_esk")), bob);
    const conv_id conv = unhex_array<16>(c.at("conv"));
    const key_ref ref = ref_from(c.at("ref"));
    block_plaintext pt;
    pt.seed = unhex_secret<32>(c.at("seed"));
    pt.announced_id = c.at("announced_id");
    pt.announced_pub = unhex_array<32>(c.at("announced_pub"));
    const bytes ad = unhex(c.at("ad"));
    crypto::deterministic_rng br(c.at("rng_seed").get<uint64_t>());
    auto b = seal_block(alice, "bob", bob.lpk(), conv, ref, e.pub, pt, ad, br);
    if (!b)
      return tag + "seal failed";
    if (auto m = mismatch(tag + "block", c.at("block"), hex(enc_block(*b))))
      return m;
    auto opened = open_block(bob, e.x, "alice", alice.lpk(), conv, *b, ad);
    if (!opened)
      return tag + "does not open";
    if (hex(opened->seed) != c.at("seed") || opened->announced_id != pt.announced_id
        || opened->announced_pub != pt.announced_pub)
      return tag + "opens to a different plaintext";
    block bad = *b;
    bad.ct[0] ^= 1;
    if (open_block(bob, e.x, "alice", alice.lpk(), conv, bad, ad))
      return tag + "tamper opened";
  }
  if (n == 0)
    return std::string("blocks: no cases");
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Transcript hashes.

json generate_transcript(uint64_t seed) {
  crypto::deterministic_rng r(seed);
  auto mk = [&](std::string id) { return member{std::move(id), r.array<32>()}; };
  const member_list ms = {mk("mirror-a"), mk("mirror-b")};
  member_list members = {mk("alice"), mk("bob"), mk("carol")};
  const member dave = mk("dave");
  const conv_id conv = r.array<16>();
  std::vector<common> cs;
  common setup;
  setup.conv = conv;
  setup.type = msg_type::setup;
  setup.author = "alice";
  setup.aseq = 1;
  setup.ms = ms;
  setup.members = members;
  cs.push_back(setup);
  common msg;
  msg.conv = conv;
  msg.type = msg_type::message;
  msg.author = "bob";
  msg.aseq = 1;
  msg.body_len = 40 + 256;
  msg.body_hash = r.array<32>();
  msg.body_commit = r.array<32>();
  cs.push_back(msg);
  common rcpt;
  rcpt.conv = conv;
  rcpt.type = msg_type::receipt;
  rcpt.author = "carol";
  rcpt.aseq = 1;
  rcpt.parent = 1;
  rcpt.voids = {1};
  cs.push_back(rcpt);
  common upd;
  upd.conv = conv;
  upd.type = msg_type::update;
  upd.author = "alice";
  upd.aseq = 2;
  upd.parent = 2;
  upd.ms = ms;
  upd.adds = {dave};
  upd.removes = {"carol"};
  upd.members = apply_ops(members, upd.adds, upd.removes);
  cs.push_back(upd);

  json entries = json::array();
  hash32 t = t_genesis;
  std::optional<conv_state> st;
  for (uint64_t i = 0; i < cs.size(); ++i) {
    common& c = cs[i];
    if (c.type != msg_type::setup)
      c.parent_hash = *st->t_at(c.parent);
    auto rcpts = recipients(st ? &*st : nullptr, c);
    std::vector<block_digest> dg;
    for (const auto& id : rcpts)
      dg.push_back(block_digest{id, r.array<32>()});
    auto e = enc_common(c);
    auto h_c = hash_common(c);
    const hash32 root = blocks_root(dg);
    const hash32 d = entry_digest(*h_c, root);
    const hash32 t_prev = t;
    t = transcript_hash(conv, i, t_prev, d);
    json jd = json::array();
    for (const auto& x : dg)
      jd.push_back({{"recipient", x.recipient}, {"hash", hex(x.hash)}});
    entries.push_back({{"index", i},
                       {"c", common_json(c)},
                       {"enc_c", hex(*e)},
                       {"h_c", hex(*h_c)},
                       {"block_hashes", jd},
                       {"blocks_root", hex(root)},
                       {"d", hex(d)},
                       {"t_prev", hex(t_prev)},
                       {"t", hex(t)}});
    st = advance(st ? &*st : nullptr, c, i, d);
  }
  return {{"kind", "transcript"},
          {"seed", seed},
          {"description",
           "H_C = H(L(\"C\") || enc(C)); blocks_root = H(L(\"blocks\") || be32(#R) || (lp(R) || "
           "H(block_R))...); D = H(L(\"D\") || H_C || blocks_root); T_i = H(L(\"T\") || conv || "
           "be64(i) || T_{i-1} || D_i)"},
          {"entries", entries}};
}

std::optional<std::string> verify_transcript(const json& v) {
  hash32 t = t_genesis;
  size_t n = 0;
  for (const auto& e : v.at("entries")) {
    const std::string tag = "transcript entry " + std::to_string(n++) + " ";
    const common c = common_from(e.at("c"));
    auto enc = enc_common(c);
    if (!enc)
      return tag + "enc(C) refused: " + enc.error().message();
    if (auto m = mismatch(tag + "enc_c", e.at("enc_c"), hex(*enc)))
      return m;
    auto h_c = hash_common(c);
    if (auto m = mismatch(tag + "h_c", e.at("h_c"), hex(*h_c)))
      return m;
    std::vector<block_digest> dg;
    for (const auto& x : e.at("block_hashes"))
      dg.push_back(block_digest{x.at("recipient"), unhex_array<32>(x.at("hash"))});
    const hash32 root = blocks_root(dg);
    if (auto m = mismatch(tag + "blocks_root", e.at("blocks_root"), hex(root)))
      return m;
    const hash32 d = entry_digest(*h_c, root);
    if (auto m = mismatch(tag + "d", e.at("d"), hex(d)))
      return m;
    if (auto m = mismatch(tag + "t_prev", e.at("t_prev"), hex(t)))
      return m;
    t = transcript_hash(c.conv, e.at("index").get<uint64_t>(), t, d);
    if (auto m = mismatch(tag + "t", e.at("t"), hex(t)))
      return m;
  }
  if (n == 0)
    return std::string("transcript: no entries");
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// A recorded conversation.

json generate_conversation(uint64_t seed) {
  sim::world_options o;
  o.seed = seed;
  sim::world w(o);
  for (auto u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  const json secrets = export_member(w.user("bob"));
  std::vector<envelope> honest;
  w.set_interceptor([&](sim::in_flight& m) {
    if (auto* e = std::get_if<sim::to_client_envelope>(&m); e && e->user == "bob")
      honest.push_back(e->env);
    return true;
  });
  auto conv = w.create("alice", {"bob", "carol"});
  w.run();
  (void)w.send("alice", *conv, "hello bob");
  w.run();
  (void)w.send("carol", *conv, "hello alice");
  w.run();
  // Alice equivocates: garbage in bob's block (bob VOIDs it).
  client_test_hooks h;
  h.on_block = [](const std::string& rid, slot_block& b) {
    if (rid == "bob")
      ciphertext_of(b)[5] ^= 0x40;
  };
  w.user("alice").set_hooks_for_test(h);
  (void)w.send("alice", *conv, "bob cannot read this");
  w.user("alice").set_hooks_for_test({});
  w.run();
  (void)w.update("carol", *conv, {"dave"}, {});
  w.run();
  (void)w.send("dave", *conv, "hi from dave");
  w.run();
  w.advance_time(60);
  // Bob stays a passive reader: a replaying client holds only his initial secrets, so it
  // could not verify echoes of messages it never sent.
  for (auto u : {"alice", "carol", "dave"})
    (void)w.receipt(u, *conv);
  w.run();
  w.set_interceptor(nullptr);

  // The delivery order bob sees, with a lying router's additions.
  recorder bob(secrets, seed + 1, w.now(), detail::basic);
  auto add = [&](const envelope& e, const std::string& note) {
    bob.run({{"envelope", hex(wire::encode_envelope(e))}, {"note", note}});
  };
  add(honest.at(0), "SETUP: accepted");
  envelope tampered = honest.at(1);
  if (tampered.body)
    (*tampered.body)[40] ^= 1;
  add(tampered, "alice's message with a flipped body byte: PROVIDER, not accepted");
  add(honest.at(2), "index 2, ahead of index 1: buffered");
  add(honest.at(1), "index 1 honest: accepted, then the buffered index 2");
  add(honest.at(1), "index 1 again: acknowledged and dropped");
  envelope swapped = honest.at(3);
  std::get<block>(swapped.mirror_blocks[0]).ct[0] ^= 1;
  add(swapped, "a mirror block tampered: PROVIDER, not accepted");
  for (size_t i = 3; i < honest.size(); ++i)
    add(honest[i], "honest delivery");
  json out = bob.to_json("deliveries");
  out["kind"] = "conversation";
  out["seed"] = seed;
  out["description"] =
      "bob's secrets, the wire-encoded envelopes bob receives in this order (honest and "
      "tampered), and the decisions a fresh client must reproduce";
  return out;
}

std::optional<std::string> verify_conversation(const json& v) {
  return verify_replay(v, "deliveries", detail::basic, "conversation");
}

const std::vector<kind>& all_kinds() {
  static const std::vector<kind> kinds = {
      {"naxos.json", generate_naxos, verify_naxos},
      {"blocks.json", generate_blocks, verify_blocks},
      {"transcript.json", generate_transcript, verify_transcript},
      {"conversation.json", generate_conversation, verify_conversation},
      {"amb.json", generate_amb, verify_amb},
      {"transport.json", generate_transport, verify_transport},
      {"decisions.json", generate_decisions, verify_decisions},
      {"chain.json", generate_chain, verify_chain},
  };
  return kinds;
}

}  // namespace cowpi::vectors

// SPDX-License-Identifier: Apache-2.0
// chain.json: a DH step that starts epoch e, the chain blocks after it in every plaintext layout
// with each derivation step, and a receiver opening them out of order, with skipped keys, and
// refusing a reused counter, an unknown epoch and a counter past MAX_SKIP (docs/protocol.md §4.8).
#include "cowpi/protocol/chain.hpp"
#include "cowpi/protocol/encoding.hpp"

#include "json_util.hpp"
#include "vectors.hpp"

#include <string>
#include <vector>

namespace cowpi::vectors {

using namespace cowpi::protocol;
using nlohmann::json;

namespace {

json skipped_json(const recv_chain& rc) {
  json a = json::array();
  for (const auto& [n, mk] : rc.skipped)
    a.push_back({{"n", n}, {"mk", hex(mk)}});
  return a;
}

// Everything the file records, recomputed from its inputs (`in`): generation and verification
// both call this, so verification is "the recorded outputs are what the inputs give".
json build(const json& in) {
  identity alice = identity::from_secret("alice", unhex_secret<32>(in.at("sender_lsk")));
  identity bob = identity::from_secret("bob", unhex_secret<32>(in.at("receiver_lsk")));
  const auto e = naxos_derive(unhex_secret<32>(in.at("receiver_key_esk")), bob);
  const conv_id conv = unhex_array<16>(in.at("conv"));
  const key_ref ref{key_kind::prekey, in.at("ref_id").get<uint64_t>(), e.pub};
  const auto epoch = in.at("epoch").get<uint32_t>();
  block_plaintext bpt;
  bpt.announced_id = in.at("announced_id").get<uint64_t>();
  bpt.announced_pub = unhex_array<32>(in.at("announced_pub"));
  const bytes step_slot_ad = unhex(in.at("step_slot_ad"));

  json out = in;
  crypto::deterministic_rng sr(in.at("rng_seed").get<uint64_t>());
  crypto::secret<32> k;
  const bytes step_ad = dh_step_ad(epoch, step_slot_ad);
  auto sealed =
      seal_dh_step(alice, "bob", bob.lpk(), conv, ref, e.pub, bpt, epoch, step_slot_ad, sr);
  auto opened = open_dh_step(bob, e.x, "alice", alice.lpk(), conv,
                             sealed ? sealed->step : dh_step{}, step_slot_ad);
  if (!sealed || !opened)
    return {{"error", "the DH step does not seal or open"}};
  (void)open_block(bob, e.x, "alice", alice.lpk(), conv, sealed->step.b, step_ad, &k);
  out["step_ad"] = hex(step_ad);
  out["key"] = hex(k);
  out["ck_0"] = hex(opened->chain.ck);
  out["step"] = hex(enc_dh_step(sealed->step));

  // The sender's blocks, in the order of `in.blocks` (each: slot ad, seed?, announced?).
  send_chain& sc = sealed->chain;
  json blocks = json::array();
  std::vector<chain_block> sent;
  for (const auto& b : in.at("blocks")) {
    chain_plaintext pt;
    if (b.contains("seed"))
      pt.seed = unhex_secret<32>(b.at("seed"));
    if (b.contains("announced_id"))
      pt.announced = published_key{b.at("announced_id").get<uint64_t>(),
                                   unhex_array<32>(b.at("announced_pub"))};
    const bytes slot_ad = unhex(b.at("slot_ad"));
    json rec = b;
    rec["n"] = sc.next();
    rec["ck"] = hex(sc.key());
    const auto ks = chain_step(sc.key());
    rec["mk"] = hex(ks.mk);
    rec["next_ck"] = hex(ks.next_ck);
    rec["nonce"] = hex(chain_nonce(epoch, sc.next()));
    rec["ad"] = hex(chain_block_ad(epoch, sc.next(), slot_ad));
    auto cb = sc.seal(pt, slot_ad);
    if (!cb)
      return {{"error", "a chain block does not seal"}};
    rec["block"] = hex(enc_chain_block(*cb));
    sent.push_back(*cb);
    blocks.push_back(rec);
  }
  out["blocks"] = blocks;

  // The receiver opens them in `in.receive_order` (indices into blocks), then the refusals.
  recv_chain rc = std::move(opened->chain);
  json steps = json::array();
  for (const auto& idx : in.at("receive_order")) {
    const auto i = idx.get<size_t>();
    if (i >= sent.size())
      return {{"error", "receive_order names no block"}};
    const bytes slot_ad = unhex(in.at("blocks").at(i).at("slot_ad"));
    auto o = open_chain_block(&rc, sent[i], slot_ad);
    json s = {{"block", i}};
    if (o) {
      s["opened"] = true;
      s["seed"] = o->pt.seed ? hex(*o->pt.seed) : std::string();
      s["announced_id"] = o->pt.announced ? o->pt.announced->id : 0;
      apply_chain_effects(rc, std::move(o->effects));
    } else {
      s["opened"] = false;
      s["failure"] = std::string(to_string(o.error()));
    }
    s["next"] = rc.next;
    s["ck"] = hex(rc.ck);
    s["skipped"] = skipped_json(rc);
    steps.push_back(s);
  }
  out["receive"] = steps;

  // A block of another epoch, and one MAX_SKIP + 1 past the receiver's next counter.
  json refusals = json::array();
  chain_block other = sent.front();
  other.epoch = epoch + 1;
  auto u = open_chain_block(&rc, other, unhex(in.at("blocks").at(0).at("slot_ad")));
  refusals.push_back({{"case", "another epoch"},
                      {"block", hex(enc_chain_block(other))},
                      {"failure", u ? std::string("opened") : std::string(to_string(u.error()))}});
  send_chain far(epoch, rc.ck.clone(), rc.next + chain_max_skip + 1);
  auto fb = far.seal({}, step_slot_ad);
  if (!fb)
    return {{"error", "the far block does not seal"}};
  auto f = open_chain_block(&rc, *fb, step_slot_ad);
  refusals.push_back({{"case", "past MAX_SKIP"},
                      {"block", hex(enc_chain_block(*fb))},
                      {"failure", f ? std::string("opened") : std::string(to_string(f.error()))}});
  out["refusals"] = refusals;
  return out;
}

}  // namespace

json generate_chain(uint64_t seed) {
  crypto::deterministic_rng r(seed);
  identity alice = identity::generate("alice", r);
  identity bob = identity::generate("bob", r);
  auto e_esk = r.secret_bytes<32>();
  json in = {{"sender_lsk", hex(alice.export_secret())},
             {"receiver_lsk", hex(bob.export_secret())},
             {"receiver_key_esk", hex(e_esk)},
             {"conv", hex(r.array<16>())},
             {"ref_id", 7},
             {"epoch", 3},
             {"announced_id", 11},
             {"announced_pub", hex(r.array<32>())},
             {"step_slot_ad", hex(r.array<40>())},
             {"rng_seed", seed * 10}};
  // Counters 0..4: tag only, seed, announcement, both, and a seed again; 5 and 6 are never
  // received (builds that never reached the log), 7 arrives after 3.
  json blocks = json::array();
  for (int i = 0; i < 8; ++i) {
    json b = {{"slot_ad", hex(r.array<48>())}};
    if (i == 1 || i == 3 || i >= 4)
      b["seed"] = hex(r.secret_bytes<32>());
    if (i == 2 || i == 3) {
      b["announced_id"] = 12;
      b["announced_pub"] = hex(r.array<32>());
    }
    blocks.push_back(b);
  }
  in["blocks"] = blocks;
  // In order, then 2 again (reused), 7 before 4 (4, 5, 6 skipped), 4 from the skipped keys.
  in["receive_order"] = json::array({0, 1, 3, 2, 2, 7, 4, 3});
  json out = build(in);
  out["kind"] = "chain";
  out["seed"] = seed;
  out["description"] =
      "Chain blocks (docs/protocol.md §4.8): a DH step for epoch 3 (a §4.3 block under AD_step, "
      "enc = be32(e) || enc(block), X_S and nonce from deterministic_rng(rng_seed)), K and CK_0; "
      "then chain blocks with CK_n, mk_n = HMAC(CK_n, 0x01), CK_{n+1} = HMAC(CK_n, 0x02), the "
      "nonce, AD_chain and enc(chain block) in every plaintext layout; a receiver opening them in "
      "receive_order (a reused counter, skipped keys), and refusing another epoch and a counter "
      "MAX_SKIP + 1 ahead";
  return out;
}

std::optional<std::string> verify_chain(const json& v) {
  json in = v;
  for (const char* derived : {"kind", "seed", "description"})
    in.erase(derived);
  json got = build(in);
  got["kind"] = v.value("kind", "");
  got["seed"] = v.value("seed", 0);
  got["description"] = v.value("description", "");
  if (got == v)
    return std::nullopt;
  const json d = json::diff(v, got);
  return "chain: " + (d.empty() ? std::string("differs") : d.at(0).dump());
}

}  // namespace cowpi::vectors

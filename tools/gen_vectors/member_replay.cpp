// SPDX-License-Identifier: Apache-2.0
// Replaying a recorded member step by step (see member_replay.hpp).
#include "member_replay.hpp"

#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/wire.hpp"

#include <map>
#include <set>
#include <utility>
#include <vector>

namespace cowpi::vectors {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): vector tool

json export_member(const client& c) {
  json pre = json::array();
  for (const auto& [id, slot] : c.keys().prekeys())
    pre.push_back({{"id", id},
                   {"esk", hex(slot.key.esk)},
                   {"pub", hex(slot.key.pub)},
                   {"created", slot.key.created}});
  json lr = json::array();
  for (const auto& [id, slot] : c.keys().last_resort())
    lr.push_back({{"id", id},
                  {"esk", hex(slot.key.esk)},
                  {"pub", hex(slot.key.pub)},
                  {"created", slot.key.created}});
  return {{"id", c.self().id()},
          {"lsk", hex(c.self().export_secret())},
          {"pinned_ms", members_json(c.pinned_ms())},
          {"prekeys", pre},
          {"last_resort", lr},
          {"next_prekey_id", c.keys().next_prekey_id()},
          {"next_last_resort_id", c.keys().next_last_resort_id()},
          {"current_last_resort", c.keys().current_last_resort_id()}};
}

std::unique_ptr<client> import_member(const json& j) {
  auto c =
      std::make_unique<client>(identity::from_secret(j.at("id"), unhex_secret<32>(j.at("lsk"))),
                               members_from(j.at("pinned_ms")));
  key_store& ks = c->mutable_keys();
  for (const auto& p : j.at("prekeys")) {
    owned_key k{unhex_secret<32>(p.at("esk")), unhex_array<32>(p.at("pub")), p.at("created")};
    ks.mutable_published()[{key_kind::prekey, p.at("id")}] = k.pub;
    ks.mutable_prekeys().emplace(p.at("id").get<uint64_t>(), prekey_slot{std::move(k), {}});
  }
  for (const auto& p : j.at("last_resort")) {
    owned_key k{unhex_secret<32>(p.at("esk")), unhex_array<32>(p.at("pub")), p.at("created")};
    ks.mutable_published()[{key_kind::last_resort, p.at("id")}] = k.pub;
    ks.mutable_last_resort().emplace(p.at("id").get<uint64_t>(),
                                     last_resort_slot{std::move(k), 0, {}});
  }
  ks.restore_counters(j.at("next_prekey_id"), j.at("next_last_resort_id"),
                      j.at("current_last_resort"));
  return c;
}

namespace {

std::string status_name(conv_status s) {
  switch (s) {
    case conv_status::pending_setup:
      return "pending_setup";
    case conv_status::active:
      return "active";
    case conv_status::halted:
      return "halted";
  }
  return "?";
}

json accepted_json(const accepted_entry& a, detail d) {
  json j = {
      {"index", a.index},   {"type", static_cast<int>(a.type)},
      {"author", a.author}, {"void", a.is_void},
      {"t", hex(a.t)},      {"plaintext", std::string(a.plaintext.begin(), a.plaintext.end())}};
  if (d == detail::basic)
    return j;
  j["aseq"] = a.aseq;
  j["own"] = a.own;
  j["d"] = hex(a.d);
  if (a.parent)
    j["parent"] = *a.parent;
  if (a.type == msg_type::receipt) {
    j["voids"] = a.voids;
    j["floor_before"] = a.floor_before;
  }
  if (a.type == msg_type::setup || a.type == msg_type::update) {
    j["members"] = members_json(a.members);
    j["adds"] = members_json(a.adds);
    j["removes"] = a.removes;
    j["safety_number"] = a.safety_number;
  }
  return j;
}

// The key store as docs/protocol.md §4.5-4.6 describe it: the keys still held, which
// channels still depend on each LAST_RESORT key, and which pre-keys were used up where.
json keys_json(const key_store& ks) {
  json pre = json::array();
  for (const auto& [id, slot] : ks.prekeys())
    pre.push_back(id);
  json used = json::array();
  for (const auto& [id, chan] : ks.used_prekeys())
    used.push_back({{"id", id}, {"peer", chan.peer}});
  json lr = json::array();
  for (const auto& [id, slot] : ks.last_resort()) {
    json pending = json::array();
    for (const auto& chan : slot.pending)
      pending.push_back(chan.peer);
    lr.push_back({{"id", id}, {"retired_at", slot.retired_at}, {"pending", pending}});
  }
  return {{"prekeys", pre},
          {"used_prekeys", used},
          {"last_resort", lr},
          {"current_last_resort", ks.current_last_resort_id()}};
}

// The member's record of `conv`: the state of §5.1 (unknown values as null) and, per channel,
// the RATCHET keys it holds, the one it announces and the peer's newest (§4.4).
json conv_json(const client& c, const conv_id& conv) {
  const client_conv* cc = c.find(conv);
  if (cc == nullptr)
    return {{"status", c.tombstones().contains(conv) ? "removed" : "none"}};
  const conv_state& st = cc->st;
  json members = json::array();
  for (const auto& m : st.members)
    members.push_back(m.id);
  json aseq = json::object();
  for (const auto& [id, a] : st.aseq_last)
    aseq[id] = a.known ? json(a.value) : json(nullptr);
  json floors = json::object();
  for (const auto& [id, f] : st.receipt_floor)
    floors[id] = f.known ? json(f.value) : json(nullptr);
  json t = json::object();
  for (const auto& [j, h] : st.t)
    t[std::to_string(j)] = hex(h);
  json channels = json::object();
  for (const auto& [peer, ch] : cc->channels) {
    json mine = json::array();
    for (const auto& [id, k] : ch.mine)
      mine.push_back(id);
    channels[peer] = {{"mine", mine},
                      {"announced", ch.announced},
                      {"peer_latest", ch.peer_latest ? ch.peer_latest->id : 0}};
  }
  json out = {{"status", status_name(cc->status)},
              {"next", st.next},
              {"last_update", st.last_update},
              {"members", members},
              {"aseq_last", aseq},
              {"receipt_floor", floors},
              {"t", t},
              {"voids_pending",
               json(std::vector<uint64_t>(cc->voids_pending.begin(), cc->voids_pending.end()))},
              {"channels", channels}};
  if (cc->status == conv_status::halted)
    out["halt_index"] = cc->halt_index;
  return out;
}

json receive_step(client& c, crypto::rng& r, const json& step, uint64_t now, detail d) {
  auto env = wire::decode_envelope(unhex(step.at("envelope")));
  json out = {{"decoded", env.has_value()}};
  if (!env)
    return out;
  auto res = c.receive(*env, now, r);
  json acc = json::array();
  for (const auto& a : res.accepted)
    acc.push_back(accepted_json(a, d));
  json al = json::array();
  for (const auto& a : res.alarms)
    al.push_back({{"kind", std::string(to_string(a.kind))},
                  {"index", a.index},
                  {"party", a.party},
                  {"halted", a.halted}});
  json acks = json::array();
  for (const auto& a : res.acks)
    acks.push_back(a.index);
  out["accepted"] = acc;
  out["alarms"] = al;
  out["acks"] = acks;
  if (d == detail::full) {
    out["state"] = conv_json(c, env->conv);
    out["keys"] = keys_json(c.keys());
  }
  return out;
}

json fetch_step(client& c, const json& step) {
  std::vector<prekey_bundle> bundles;
  for (const auto& b : step.at("bundles"))
    bundles.push_back(
        prekey_bundle{b.at("owner"), unhex_array<32>(b.at("lpk")), ref_from(b.at("key"))});
  auto refused = c.add_bundles(unhex_array<16>(step.at("conv")), bundles,
                               step.at("requested").get<std::vector<std::string>>());
  if (!refused)
    return {{"error", std::string(to_string(refused.error().code))}};
  return {{"refused", *refused}};
}

using ratchet_ids = std::map<std::string, std::set<uint64_t>>;

ratchet_ids held_ratchet_ids(const client& c, const conv_id& conv) {
  ratchet_ids out;
  if (const client_conv* cc = c.find(conv))
    for (const auto& [peer, ch] : cc->channels)
      for (const auto& [id, k] : ch.mine)
        out[peer].insert(id);
  return out;
}

// A sent message: its aseq, D, the SUBMIT as the wire carries it, and the RATCHET keys its
// blocks announced for the first time (their seeds, so that another implementation can take
// them as inputs instead of reproducing this one's draws).
json sent_json(const client& c, const conv_id& conv, const expected<outgoing>& out,
               const ratchet_ids& before) {
  if (!out)
    return {{"error", std::string(to_string(out.error().code))}};
  std::vector<block_digest> digests;
  for (const auto& rb : out->submit.blocks)
    digests.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
  auto h_c = hash_common(out->submit.c);
  json announced = json::array();
  if (const client_conv* cc = c.find(conv)) {
    for (const auto& [peer, ch] : cc->channels) {
      auto old = before.find(peer);
      for (const auto& [id, k] : ch.mine)
        if (old == before.end() || !old->second.contains(id))
          announced.push_back(
              {{"peer", peer}, {"id", id}, {"esk", hex(k.esk)}, {"pub", hex(k.pub)}});
    }
  }
  return {{"aseq", out->aseq},
          {"d", h_c ? hex(entry_digest(*h_c, blocks_root(digests))) : std::string("error")},
          {"submit", hex(wire::encode_submit(out->submit))},
          {"announced", announced}};
}

json published_json(const owned_key& k, uint64_t id) {
  return {{"id", id}, {"esk", hex(k.esk)}, {"pub", hex(k.pub)}, {"created", k.created}};
}

}  // namespace

step_result run_step(client& c, crypto::rng& r, const json& step, uint64_t now, detail d) {
  const std::string what = step.value("do", std::string("receive"));
  if (step.contains("now"))
    now = step.at("now").get<uint64_t>();
  step_result out;
  if (what == "receive") {
    out.decision = receive_step(c, r, step, now, d);
  } else if (what == "fetch") {
    out.decision = fetch_step(c, step);
  } else if (what == "send" || what == "receipt") {
    const conv_id conv = unhex_array<16>(step.at("conv"));
    const ratchet_ids before = held_ratchet_ids(c, conv);
    crypto::deterministic_rng sr(step.at("rng_seed").get<uint64_t>());
    expected<outgoing> sent =
        what == "send" ? c.send_message(conv, as_bytes(step.at("text").get<std::string>()), now, sr)
                       : c.send_receipt(conv, now, sr);
    out.decision = sent_json(c, conv, sent, before);
    if (sent)
      out.sent = std::move(*sent);
  } else if (what == "make_prekeys") {
    crypto::deterministic_rng kr(step.at("rng_seed").get<uint64_t>());
    upload_prekeys up = c.make_prekeys(step.at("count").get<size_t>(), now, kr);
    json one_time = json::array();
    for (const auto& k : up.one_time)
      one_time.push_back(published_json(c.keys().prekeys().at(k.id).key, k.id));
    out.decision = {{"one_time", one_time}};
    if (up.last_resort)
      out.decision["last_resort"] =
          published_json(c.keys().last_resort().at(up.last_resort->id).key, up.last_resort->id);
    out.uploaded = std::move(up);
  } else if (what == "expire") {
    const bool changed = c.expire_keys(now);
    out.decision = {{"changed", changed}, {"keys", keys_json(c.keys())}};
  } else {
    out.decision = {{"error", "unknown step " + what}};
  }
  return out;
}

std::optional<std::string> verify_replay(const json& v, const std::string& steps_key, detail d,
                                         const std::string& tag) {
  const json& steps = v.at(steps_key);
  const json& want = v.at("decisions");
  if (steps.empty())
    return tag + ": no steps";
  if (want.size() != steps.size())
    return tag + ": decision count differs";
  auto c = import_member(v.at("member"));
  // The member's published keys are NAXOS keys of its identity: each pub follows from its seed.
  for (const char* list : {"prekeys", "last_resort"}) {
    for (const auto& k : v.at("member").at(list)) {
      const public_key pub = naxos_derive(unhex_secret<32>(k.at("esk")), c->self()).pub;
      if (auto m = mismatch(tag + " member " + list + " " + k.at("id").dump() + " pub", k.at("pub"),
                            hex(pub)))
        return m;
    }
  }
  crypto::deterministic_rng r(v.at("rng_seed").get<uint64_t>());
  const uint64_t now = v.at("now");
  for (size_t k = 0; k < steps.size(); ++k) {
    json got = run_step(*c, r, steps[k], now, d).decision;
    const std::string note = steps[k].value("note", steps[k].value("do", std::string()));
    if (auto m = mismatch(tag + " step " + std::to_string(k) + " (" + note + ")", want[k], got))
      return m;
  }
  return std::nullopt;
}

recorder::recorder(json member, uint64_t rng_seed, uint64_t now, detail d)
    : member_(std::move(member)),
      c_(import_member(member_)),
      r_(rng_seed),
      rng_seed_(rng_seed),
      now_(now),
      d_(d) {}

step_result recorder::run(json step) {
  step_result res = run_step(*c_, r_, step, now_, d_);
  steps_.push_back(std::move(step));
  decisions_.push_back(res.decision);
  return res;
}

json recorder::to_json(const std::string& steps_key) const {
  return {{"member", member_},
          {"rng_seed", rng_seed_},
          {"now", now_},
          {steps_key, steps_},
          {"decisions", decisions_}};
}

}  // namespace cowpi::vectors

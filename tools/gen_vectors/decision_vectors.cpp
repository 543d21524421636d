// SPDX-License-Identifier: Apache-2.0
// decisions.json: what a member decides on entries that fail or stress acceptance
// (docs/protocol.md §4.5, §5.3, §8-§10): key-commitment failures, malformed blocks and bodies,
// RATCHET keys with a LAST_RESORT rotation and a substituted key, a RECEIPT reporting a VOID,
// a joiner's first UPDATE, and the FORK and IMPERSONATION halts. Each scenario runs a sim world
// in which the recorded members are driven only by their recorders (member_replay.hpp).
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/wire.hpp"
#include "cowpi/sim/world.hpp"

#include "json_util.hpp"
#include "member_replay.hpp"
#include "vectors.hpp"

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace cowpi::vectors {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): vector tool

namespace {

// A scenario that does not go as designed is a bug in the generator, not a mismatch.
void require(bool ok, const std::string& what) {
  if (!ok)
    throw std::logic_error("decisions: scenario went wrong: " + what);
}

constexpr uint64_t day = 24 * 3600;

// What a run of deliveries decided, merged: the accepted entries and the alarms.
struct outcome {
  json accepted = json::array();
  json alarms = json::array();

  void add(const json& decision) {
    for (const auto& a : decision.value("accepted", json::array()))
      accepted.push_back(a);
    for (const auto& a : decision.value("alarms", json::array()))
      alarms.push_back(a);
  }
  bool read(uint64_t index) const { return has_entry(index, false); }
  bool voided(uint64_t index) const { return has_entry(index, true); }
  bool has_entry(uint64_t index, bool is_void) const {
    for (const auto& a : accepted)
      if (a.at("index") == index && a.at("void") == is_void)
        return true;
    return false;
  }
  bool alarm(const std::string& kind, uint64_t index, bool halted = false) const {
    for (const auto& a : alarms)
      if (a.at("kind") == kind && a.at("index") == index && a.at("halted") == halted)
        return true;
    return false;
  }
  bool quiet() const { return accepted.empty() && alarms.empty(); }
};

// A sim world whose recorded members are offline there: the world never drives them. The
// scenario hands each its envelopes (built from the router's log) and runs its operations
// through its recorder, which writes down every step and decision.
class scenario {
public:
  /// With `lying`, every mirror attests whatever the router commits on its fork branch.
  scenario(uint64_t seed, const std::vector<std::string>& users,
           const std::vector<std::string>& recorded, bool lying = false)
      : w_([seed] {
          sim::world_options o;
          o.seed = seed;
          return o;
        }()),
        next_seed_(seed * 1000) {
    for (size_t k = 0; lying && k < w_.ms().size(); ++k)
      w_.mirror_at(k).lies = true;
    for (const auto& u : users)
      w_.add_user(u);
    for (const auto& u : recorded) {
      w_.set_online(u, false);
      order_.push_back(u);
      recs_.emplace(u, std::make_unique<recorder>(export_member(w_.user(u)), next_seed_++, w_.now(),
                                                  detail::full));
    }
  }

  sim::world& w() noexcept { return w_; }
  recorder& rec(const std::string& id) { return *recs_.at(id); }
  uint64_t fresh_seed() noexcept { return next_seed_++; }

  conv_id create(const std::string& author, const std::vector<std::string>& others) {
    auto conv = w_.create(author, others);
    require(conv.has_value(), "create");
    w_.run();
    return *conv;
  }
  // A MESSAGE of the world's member `author`, built with `hooks`, handed to the router.
  void queue(const std::string& author, const conv_id& conv, std::string_view text,
             const client_test_hooks& hooks) {
    w_.user(author).set_hooks_for_test(hooks);
    require(w_.send(author, conv, text).has_value(), "send by " + author);
    w_.user(author).set_hooks_for_test({});
  }
  // `queue`, then run the world until it is quiet.
  void send(const std::string& author, const conv_id& conv, std::string_view text,
            const client_test_hooks& hooks = {}) {
    queue(author, conv, text, hooks);
    w_.run();
  }

  // One envelope for recorded member `id`.
  json receive(const std::string& id, const envelope& e, const std::string& note) {
    return rec(id)
        .run({{"do", "receive"},
              {"envelope", hex(wire::encode_envelope(e))},
              {"note", note},
              {"now", w_.now()}})
        .decision;
  }

  // Every complete entry of `conv` from where `id` stands, as the router would deliver them
  // (entries without a slot for `id` are skipped).
  outcome catch_up(const std::string& id, const conv_id& conv, const std::string& note) {
    outcome out;
    auto& log = w_.log(conv);
    uint64_t& next = delivered_[id][conv];
    for (auto it = log.lower_bound(next); it != log.end() && !it->second.answers.empty(); ++it) {
      next = it->first + 1;
      auto env = make_envelope(it->second.e, it->second.answers, id);
      if (env)
        out.add(receive(id, *env, "#" + std::to_string(it->first) + ": " + note));
    }
    return out;
  }

  // Recorded member `id` fetches the keys it lacks, then sends (`text`) or, without text,
  // sends a RECEIPT. Returns its message for the router (not yet handed over).
  outgoing compose(const std::string& id, const conv_id& conv, std::optional<std::string> text) {
    recorder& r = rec(id);
    auto missing = r.member().missing_keys(conv);
    if (!missing.empty()) {
      json bundles = json::array();
      for (const auto& b : w_.fetch(id, missing))
        bundles.push_back({{"owner", b.owner}, {"lpk", hex(b.lpk)}, {"key", ref_json(b.key)}});
      r.run({{"do", "fetch"},
             {"conv", hex(conv)},
             {"bundles", bundles},
             {"requested", missing},
             {"note", "the directory's keys for members " + id + " has none for"}});
    }
    json step = {{"do", text ? "send" : "receipt"},
                 {"conv", hex(conv)},
                 {"now", w_.now()},
                 {"rng_seed", fresh_seed()}};
    if (text)
      step["text"] = *text;
    auto res = r.run(std::move(step));
    require(res.sent.has_value(), id + " could not send");
    return std::move(*res.sent);
  }
  // `compose`, then hand the message to the router and run the world.
  void submit(const std::string& id, const conv_id& conv, std::optional<std::string> text) {
    outgoing out = compose(id, conv, std::move(text));
    w_.network().push_back(sim::to_router{id, out.aseq, std::move(out.submit)});
    w_.run();
  }

  json make_prekeys(const std::string& id, size_t count) {
    auto res = rec(id).run({{"do", "make_prekeys"},
                            {"count", count},
                            {"now", w_.now()},
                            {"rng_seed", fresh_seed()},
                            {"note", "pre-keys (and a LAST_RESORT rotation when due)"}});
    require(res.uploaded.has_value(), "make_prekeys");
    w_.publish(id, *res.uploaded);
    return res.decision;
  }
  json expire(const std::string& id) {
    return rec(id)
        .run({{"do", "expire"}, {"now", w_.now()}, {"note", "retire expired keys"}})
        .decision;
  }

  json to_json(const std::string& name, const std::string& description) const {
    json replays = json::array();
    for (const auto& id : order_)
      replays.push_back(recs_.at(id)->to_json("steps"));
    return {{"name", name}, {"description", description}, {"replays", replays}};
  }

private:
  sim::world w_;
  uint64_t next_seed_;
  std::vector<std::string> order_;
  std::map<std::string, std::unique_ptr<recorder>> recs_;
  std::map<std::string, std::map<conv_id, uint64_t>> delivered_;
};

// Hooks that give `victim` a block sealed with another seed than everyone else's.
client_test_hooks other_seed_for(std::string victim, crypto::rng& r) {
  client_test_hooks h;
  h.on_seed = [victim = std::move(victim), &r](const std::string& rid, crypto::secret<32>& s) {
    if (rid == victim)
      s = r.secret_bytes<32>();
  };
  return h;
}

// ---------------------------------------------------------------------------------------------
// Key commitment (§5.3, §8 step 4).

json commitment(uint64_t seed) {
  scenario s(seed, {"alice", "bob", "carol"}, {"bob", "carol"});
  const conv_id conv = s.create("alice", {"bob", "carol"});
  require(s.catch_up("bob", conv, "SETUP, accepted").read(0), "bob accepts the SETUP");
  require(s.catch_up("carol", conv, "SETUP, accepted").read(0), "carol accepts the SETUP");

  client_test_hooks wrong_commit;
  wrong_commit.on_common = [](common& c) {
    if (c.type == msg_type::message)
      c.body_commit[0] ^= 1;
  };
  s.send("alice", conv, "a commitment to no seed", wrong_commit);
  const std::string no_seed =
      "a MESSAGE whose body_commit is not HKDF(seed, L(\"body-commit\")) of the seed in its "
      "blocks: VOID, SENDER";
  auto bob = s.catch_up("bob", conv, no_seed);
  require(bob.voided(1) && bob.alarm("SENDER", 1), "bob VOIDs #1");
  auto carol = s.catch_up("carol", conv, no_seed);
  require(carol.voided(1) && carol.alarm("SENDER", 1), "carol VOIDs #1");

  crypto::deterministic_rng other(seed + 7);
  s.send("alice", conv, "carol reads this, bob cannot", other_seed_for("bob", other));
  bob = s.catch_up("bob", conv,
                   "a MESSAGE whose block to bob carries another seed than the committed one "
                   "(equivocation): VOID, SENDER");
  require(bob.voided(2) && bob.alarm("SENDER", 2), "bob VOIDs #2");
  carol = s.catch_up("carol", conv,
                     "the same MESSAGE: carol's block carries the committed seed, readable");
  require(carol.read(2) && carol.alarms.empty(), "carol reads #2");
  return s.to_json(
      "commitment",
      "key commitment: a MESSAGE whose body_commit is not HKDF(seed, L(\"body-commit\")) of the "
      "seed in its blocks is VOID with a SENDER alarm at every recipient; a seed equivocated to "
      "one recipient (bob) is VOID with SENDER for that recipient only, and readable for the "
      "others");
}

// ---------------------------------------------------------------------------------------------
// Malformed blocks and bodies (§4.5, §5.3, §8 step 4).

// Hooks that reseal alice's block to bob around the same seed and key, announcing
// (`announced_id`, `announced_pub`) instead of a well-formed key.
client_test_hooks announce_for_bob(sim::world& w, uint64_t announced_id,
                                   const public_key& announced_pub) {
  struct captured {
    common c;
    crypto::secret<32> seed;
  };
  auto cap = std::make_shared<captured>();
  client_test_hooks h;
  h.on_common = [cap](common& c) { cap->c = c; };
  h.on_seed = [cap](const std::string& rid, crypto::secret<32>& s) {
    if (rid == "bob")
      cap->seed = s.clone();
  };
  h.on_block = [cap, &w, announced_id, announced_pub](const std::string& rid, slot_block& s) {
    if (rid != "bob")
      return;
    block& b = std::get<block>(s);  // a public-key conversation
    // Bob never announced a key to alice: her block names a key of his from the directory,
    // whose public key is in the ref.
    require(b.ref.kind != key_kind::ratchet, "alice's block to bob names a directory key");
    block_plaintext pt;
    pt.seed = cap->seed.clone();
    pt.announced_id = announced_id;
    pt.announced_pub = announced_pub;
    auto h_c = hash_common(cap->c);
    require(h_c.has_value(), "C is canonical");
    auto resealed =
        seal_block(w.user("alice").self(), "bob", w.user("bob").self().lpk(), cap->c.conv, b.ref,
                   b.ref.pub, pt, ad_block(*h_c, "alice", "bob"), w.rng());
    require(resealed.has_value(), "reseal");
    b = *resealed;
  };
  return h;
}

// Hooks and a body for a MESSAGE whose padded plaintext is `padded` (not pad(plaintext)),
// under a seed of the generator's; the body replaces the client's in its SUBMIT.
struct crafted_body {
  client_test_hooks hooks;
  std::shared_ptr<bytes> body = std::make_shared<bytes>();
};
crafted_body body_padded_as(sim::world& w, bytes padded) {
  crafted_body out;
  auto k = std::make_shared<crypto::secret<32>>(w.rng().secret_bytes<32>());
  out.hooks.on_seed = [k](const std::string&, crypto::secret<32>& s) { s = k->clone(); };
  out.hooks.on_common = [k, body = out.body, padded = std::move(padded), &w](common& c) {
    if (c.type != msg_type::message)
      return;
    const auto nonce = w.rng().array<24>();
    auto ct =
        crypto::aead_seal(body_key(*k).expose(), nonce, padded, ad_body(c.conv, c.author, c.aseq));
    require(ct.has_value(), "body AEAD");
    body->assign(nonce.begin(), nonce.end());
    body->insert(body->end(), ct->begin(), ct->end());
    c.body_len = body->size();
    c.body_hash = crypto::sha256(*body);
    c.body_commit = body_commit(*k);
  };
  return out;
}

// Sends a MESSAGE of alice's whose body is `crafted`.
void send_crafted(scenario& s, const conv_id& conv, const crafted_body& crafted) {
  s.queue("alice", conv, "(replaced)", crafted.hooks);
  auto* m = std::get_if<sim::to_router>(&s.w().network().back());
  require(m != nullptr && m->submit.body.has_value(), "alice's SUBMIT is queued");
  m->submit.body = *crafted.body;
  s.w().run();
}

bytes padded_text(std::string_view text, size_t size, bool marker) {
  bytes p(text.begin(), text.end());
  if (marker)
    p.push_back(0x80);
  p.resize(size, 0);
  return p;
}

json block_failures(uint64_t seed) {
  scenario s(seed, {"alice", "bob", "carol", "dave"}, {"bob"});
  const conv_id conv = s.create("alice", {"bob", "carol"});
  auto bob = s.catch_up("bob", conv, "SETUP, accepted");
  require(bob.read(0), "bob accepts the SETUP");
  crypto::deterministic_rng other(seed + 7);

  s.w().user("alice").set_hooks_for_test(other_seed_for("bob", other));
  require(s.w().receipt("alice", conv).has_value(), "alice's RECEIPT");
  s.w().user("alice").set_hooks_for_test({});
  s.w().run();
  bob = s.catch_up("bob", conv, "a RECEIPT whose block to bob carries a seed: VOID, SENDER");
  require(bob.voided(1) && bob.alarm("SENDER", 1), "a seed outside MESSAGE");

  s.send("alice", conv, "announces key id 0", announce_for_bob(s.w(), 0, other.array<32>()));
  bob = s.catch_up("bob", conv, "a MESSAGE whose block to bob announces key id 0: VOID, SENDER");
  require(bob.voided(2) && bob.alarm("SENDER", 2), "announced id 0");

  s.send("alice", conv, "announces a zero key", announce_for_bob(s.w(), 9, public_key{}));
  bob = s.catch_up("bob", conv,
                   "a MESSAGE whose block to bob announces an all-zero public key: VOID, SENDER");
  require(bob.voided(3) && bob.alarm("SENDER", 3), "announced zero pub");

  send_crafted(s, conv, body_padded_as(s.w(), padded_text("padded to 512 bytes", 512, true)));
  bob = s.catch_up("bob", conv,
                   "a MESSAGE padded to 512 bytes where 256 would do: longer padding is "
                   "accepted, readable");
  require(bob.read(4) && bob.alarms.empty(), "non-minimal padding is accepted");

  send_crafted(s, conv, body_padded_as(s.w(), padded_text("no 0x80 marker", 256, false)));
  bob = s.catch_up("bob", conv,
                   "a MESSAGE whose padded plaintext has no 0x80 before its zeros: malformed "
                   "padding, VOID, SENDER");
  require(bob.voided(5) && bob.alarm("SENDER", 5), "malformed padding");

  s.w().user("alice").set_hooks_for_test(other_seed_for("bob", other));
  require(s.w().update("alice", conv, {"dave"}, {}).has_value(), "alice's UPDATE");
  s.w().user("alice").set_hooks_for_test({});
  s.w().run();
  bob = s.catch_up("bob", conv,
                   "an UPDATE whose block to bob carries a seed: SENDER and halt (no VOID for "
                   "membership entries)");
  require(bob.alarm("SENDER", 6, true) && bob.accepted.empty(), "a seed in an UPDATE halts");

  s.send("alice", conv, "after the halt");
  bob = s.catch_up("bob", conv, "after the halt: ignored, not acknowledged");
  require(bob.quiet(), "a halted member ignores what follows");
  return s.to_json(
      "block_failures",
      "block and body failures at bob: a RECEIPT whose block carries a non-zero seed, a MESSAGE "
      "block announcing key id 0, one announcing an all-zero public key, and a body with "
      "malformed padding are each VOID with a SENDER alarm; a body padded beyond the minimum is "
      "readable; an UPDATE whose block carries a seed halts bob (SENDER) and he ignores what "
      "follows");
}

// ---------------------------------------------------------------------------------------------
// RATCHET keys, a LAST_RESORT rotation and a substituted key (§4.4-§4.6, §12).

// The key the block to `id` in the last entry of `conv` names.
key_ref named_key(scenario& s, const conv_id& conv, const std::string& id) {
  const auto& e = s.w().log(conv).rbegin()->second.e;
  for (const auto& rb : e.blocks)
    if (rb.recipient == id)
      return std::get<block>(rb.blk).ref;
  require(false, "no block for " + id);
  return {};
}
void require_names(scenario& s, const conv_id& conv, const std::string& id, key_kind kind,
                   uint64_t key, const std::string& what) {
  const key_ref r = named_key(s, conv, id);
  require(r.kind == kind && r.id == key,
          what + " (it names " + std::string(to_string(r.kind)) + " " + std::to_string(r.id) + ")");
}

// Every mirror's block to `id` in the last entry of `conv` names (kind, key).
void require_mirrors_name(scenario& s, const conv_id& conv, const std::string& id, key_kind kind,
                          uint64_t key, const std::string& what) {
  const auto& se = s.w().log(conv).rbegin()->second;
  auto env = make_envelope(se.e, se.answers, id);
  require(env.has_value(), what + ": no envelope");
  for (const auto& b : env->mirror_blocks)
    require(std::get<block>(b).ref.kind == kind && std::get<block>(b).ref.id == key, what);
}

json ratchet(uint64_t seed) {
  scenario s(seed, {"alice", "bob", "carol", "dave", "erin"}, {"bob"});
  // Bob's one-time pre-keys are all handed out: first contacts use his LAST_RESORT key.
  for (int k = 0; k < 16; ++k)
    (void)s.w().fetch("someone", {"bob"});
  const conv_id conv = s.create("alice", {"bob", "carol"});
  require_names(s, conv, "bob", key_kind::last_resort, 1, "the SETUP names LAST_RESORT 1");
  require_mirrors_name(s, conv, "bob", key_kind::last_resort, 1, "mirrors name LAST_RESORT 1");
  s.send("alice", conv, "before the rotation");

  s.w().advance_time(8 * day);
  s.make_prekeys("bob", 0);
  auto bob = s.catch_up("bob", conv,
                        "bob rotated his LAST_RESORT key while these were on their way: the "
                        "retired key 1 still opens them");
  require(bob.read(0) && bob.read(1), "entries for the retired LAST_RESORT key");

  s.send("carol", conv, "after the rotation");
  require_names(s, conv, "bob", key_kind::last_resort, 1, "carol names LAST_RESORT 1");
  bob = s.catch_up("bob", conv,
                   "carol fetched bob's LAST_RESORT key 1 before the rotation and names it "
                   "after: the retired key still opens it");
  require(bob.read(2), "the retired LAST_RESORT key");

  s.submit("bob", conv, "hello from bob");
  require_mirrors_name(s, conv, "bob", key_kind::ratchet, 1, "mirrors name bob's RATCHET 1");
  bob = s.catch_up("bob", conv,
                   "bob's own entry; the mirrors' blocks name the RATCHET key his amb announced");
  require(bob.read(3), "bob's echo");
  s.send("alice", conv, "alice names bob's RATCHET key 1");
  require_names(s, conv, "bob", key_kind::ratchet, 1, "alice names RATCHET 1");
  s.send("carol", conv, "carol names bob's RATCHET key 1");
  require_names(s, conv, "bob", key_kind::ratchet, 1, "carol names RATCHET 1");
  bob = s.catch_up("bob", conv,
                   "RATCHET refs to bob's key 1: each releases its channel from LAST_RESORT key "
                   "1");
  require(bob.read(4) && bob.read(5), "RATCHET refs");

  s.w().advance_time(31 * day);
  const json expired = s.expire("bob");
  require(expired.at("changed") == true && expired.at("keys").at("last_resort").size() == 1,
          "the retired LAST_RESORT key is deleted after its grace period");

  // The directory hands dave (not erin) a key bob never published when the joiners look bob
  // up, as they do on receiving the UPDATE that adds them.
  crypto::deterministic_rng fake(seed + 7);
  const key_ref substituted{key_kind::prekey, 4242, fake.array<32>()};
  s.w().set_directory_interceptor([&](const std::string& requester, prekey_bundle& b) {
    if (requester == "dave" && b.owner == "bob")
      b.key = substituted;
  });
  require(s.w().update("carol", conv, {"dave", "erin"}, {}).has_value(), "carol adds two");
  s.w().run();
  s.w().set_directory_interceptor(nullptr);
  bob = s.catch_up("bob", conv, "carol adds dave and erin");
  require(bob.read(6), "the UPDATE");

  s.send("erin", conv, "erin names bob's new LAST_RESORT key");
  require_names(s, conv, "bob", key_kind::last_resort, 2, "erin names LAST_RESORT 2");
  bob = s.catch_up("bob", conv, "erin fetched bob's LAST_RESORT key 2 after the rotation");
  require(bob.read(7), "the new LAST_RESORT key");

  s.send("dave", conv, "dave was handed a key bob never published");
  require_names(s, conv, "bob", key_kind::prekey, 4242, "dave names the substituted key");
  bob = s.catch_up("bob", conv,
                   "dave's block names PREKEY 4242, which bob never published: VOID, DIRECTORY "
                   "(against the router, not dave)");
  require(bob.voided(8) && bob.alarm("DIRECTORY", 8), "a substituted key");

  s.submit("bob", conv, "bob announces his RATCHET key 2");
  bob = s.catch_up("bob", conv, "bob's own entry");
  require(bob.read(9), "bob's second echo");
  s.send("alice", conv, "alice names bob's RATCHET key 2");
  require_names(s, conv, "bob", key_kind::ratchet, 2, "alice names RATCHET 2");
  bob = s.catch_up("bob", conv, "alice names RATCHET key 2: bob deletes key 1 of that channel");
  require(bob.read(10), "RATCHET key 2");
  return s.to_json(
      "ratchet",
      "bob's keys across a conversation: with his one-time pool empty, first contacts name his "
      "LAST_RESORT key 1; he rotates it (key 2) while entries for key 1 are on their way and "
      "still opens them, and carol's first block, for key 1 fetched before the rotation, too; "
      "his entry announces RATCHET keys that the mirrors, alice and carol then name, which "
      "releases the channels from key 1; after the grace period key 1 is deleted; erin, added "
      "later, names key 2; a key the directory substituted for dave (a PREKEY bob never "
      "published) makes dave's MESSAGE VOID with a DIRECTORY alarm against the router; bob's "
      "second RATCHET key, once alice names it, retires the first on that channel");
}

// ---------------------------------------------------------------------------------------------
// A RECEIPT reporting a VOID (§10).

json receipt_void(uint64_t seed) {
  scenario s(seed, {"alice", "bob", "carol"}, {"bob", "carol"});
  const conv_id conv = s.create("alice", {"bob", "carol"});
  require(s.catch_up("bob", conv, "SETUP, accepted").read(0), "bob accepts the SETUP");
  require(s.catch_up("carol", conv, "SETUP, accepted").read(0), "carol accepts the SETUP");
  client_test_hooks garbage;
  garbage.on_block = [](const std::string& rid, slot_block& b) {
    if (rid == "bob")
      ciphertext_of(b)[5] ^= 0x40;
  };
  s.send("alice", conv, "bob cannot read this", garbage);
  auto bob = s.catch_up("bob", conv, "alice's block to bob does not open: VOID, SENDER");
  require(bob.voided(1) && bob.alarm("SENDER", 1), "bob VOIDs #1");
  require(s.catch_up("carol", conv, "alice's MESSAGE, readable for carol").read(1),
          "carol reads #1");

  s.submit("bob", conv, std::nullopt);
  bob = s.catch_up("bob", conv, "bob's RECEIPT comes back: parent 1, voids [1]");
  require(bob.read(2), "bob's RECEIPT is ordered");
  auto carol = s.catch_up("carol", conv,
                          "bob's RECEIPT covers (-1, 1] and reports #1 VOID: carol records "
                          "receipt_floor[bob] = 1");
  require(carol.read(2) && carol.alarms.empty(), "carol accepts the RECEIPT");

  s.send("alice", conv, "bob reads this one");
  bob = s.catch_up("bob", conv, "alice's MESSAGE, readable");
  require(bob.read(3), "bob reads #3");
  require(s.catch_up("carol", conv, "alice's MESSAGE, readable").read(3), "carol reads #3");
  s.w().advance_time(60);
  s.submit("bob", conv, std::nullopt);
  bob = s.catch_up("bob", conv, "bob's second RECEIPT comes back: parent 3, no voids");
  require(bob.read(4), "bob's second RECEIPT");
  carol = s.catch_up("carol", conv,
                     "bob's second RECEIPT covers (1, 3] with no VOID: #3 is read by bob");
  require(carol.read(4) && carol.alarms.empty(), "carol accepts the second RECEIPT");
  return s.to_json(
      "receipt_void",
      "a RECEIPT reporting a VOID: alice's block to bob at #1 does not open, so bob VOIDs it; "
      "his next RECEIPT carries voids [1] over (receipt_floor, parent] = (-1, 1], and a later "
      "one covers (1, 3] with none; carol accepts both and her state moves bob's receipt_floor "
      "to each RECEIPT's parent");
}

// ---------------------------------------------------------------------------------------------
// A joiner's first entry (§8 step 0 (b), §9.3).

json joiner(uint64_t seed) {
  scenario s(seed, {"alice", "bob", "carol", "dave"}, {"dave"});
  const conv_id conv = s.create("alice", {"bob", "carol"});
  s.send("bob", conv, "before dave");
  s.send("alice", conv, "also before dave");
  require(s.w().update("carol", conv, {"dave"}, {}).has_value(), "carol adds dave");
  s.w().run();
  const auto& added = s.w().log(conv).at(3);
  auto honest = make_envelope(added.e, added.answers, "dave");
  require(honest.has_value() && honest->t_prev.has_value(), "the joining envelope carries T_2");
  envelope without = *honest;
  without.t_prev.reset();
  auto d =
      s.receive("dave", without, "the UPDATE adding dave without T_{u-1}: PROVIDER, not accepted");
  envelope wrong = *honest;
  wrong.t_prev = s.w().log(conv).at(1).e.t;
  auto d2 = s.receive("dave", wrong,
                      "the UPDATE adding dave with T_1 for T_{u-1}: the mirrors' blocks bind "
                      "T_u, PROVIDER, not accepted");
  outcome refused;
  refused.add(d);
  refused.add(d2);
  require(refused.accepted.empty() && refused.alarm("PROVIDER", 3) && refused.alarms.size() == 2,
          "dave refuses a joining envelope without or with a wrong T_{u-1}");
  auto dave = s.catch_up("dave", conv,
                         "dave's first entry, with T_2: accepted; he knows carol's aseq, the "
                         "others' and every receipt_floor but his own are unknown");
  require(dave.read(3), "dave joins at #3");
  s.send("bob", conv, "welcome dave");
  dave = s.catch_up("dave", conv,
                    "the first entry of bob's dave sees: bob's aseq_last, unknown so far, is "
                    "taken from it");
  require(dave.read(4) && dave.alarms.empty(), "dave accepts bob's message");
  s.w().advance_time(60);
  require(s.w().receipt("alice", conv).has_value(), "alice's RECEIPT");
  s.w().run();
  dave = s.catch_up("dave", conv,
                    "alice's RECEIPT: her receipt_floor, unknown so far, accepts any voids <= "
                    "parent and is set to its parent; her aseq_last likewise");
  require(dave.read(5) && dave.alarms.empty(), "dave accepts alice's RECEIPT");
  return s.to_json(
      "joiner",
      "a joiner's first UPDATE: dave, added by carol at #3, refuses the envelope without "
      "T_{u-1} and with a wrong one (PROVIDER), accepts it with T_2 and starts from the state "
      "that entry gives a joiner (aseq_last known for himself and the author, receipt_floor "
      "u - 1 for himself, everything else unknown until seen), then accepts later entries");
}

// ---------------------------------------------------------------------------------------------
// FORK and IMPERSONATION halts (§8 steps 3-4).

json fork(uint64_t seed) {
  scenario s(seed, {"alice", "bob", "carol"}, {"bob"}, /*lying=*/true);
  const conv_id conv = s.create("alice", {"bob", "carol"});
  s.send("alice", conv, "pay bob 10");
  s.send("carol", conv, "ok");
  auto bob = s.catch_up("bob", conv, "honest");
  require(bob.read(2), "bob accepts #0-#2");
  // The router replays alice's #1 at #3 and every mirror attests it: it breaks the aseq rule.
  s.w().branch_mirrors(1);
  log_entry e = s.w().log(conv).at(1).e;
  e.index = 3;
  e.t_prev = s.w().log(conv).at(2).e.t;
  e.t = transcript_hash(conv, 3, e.t_prev, e.d);
  const mirror_answers answers = s.w().commit_on_mirrors(e, 1);
  require(answers[0].has_value() && answers[1].has_value(), "every mirror attests the replay");
  auto env = make_envelope(e, answers, "bob");
  require(env.has_value(), "an envelope for the replay");
  outcome forked;
  forked.add(s.receive("bob", *env,
                       "alice's #1 again at #3, attested by every mirror: it breaks the aseq "
                       "rule, FORK, halt"));
  require(forked.alarm("FORK", 3, true) && forked.accepted.empty(), "FORK halts bob");
  s.send("carol", conv, "the real #3");
  bob = s.catch_up("bob", conv, "after the halt: ignored, not acknowledged");
  require(bob.quiet(), "a halted member ignores what follows");
  return s.to_json("fork",
                   "FORK: with every mirror lying, the router has alice's #1 attested again at "
                   "#3; bob, whose mirror blocks all verify, finds it breaks validate (aseq): "
                   "FORK alarm, halt at #3, and he ignores the real #3");
}

json impersonation(uint64_t seed) {
  scenario s(seed, {"alice", "bob", "carol"}, {"bob"}, /*lying=*/true);
  const conv_id conv = s.create("alice", {"bob", "carol"});
  auto bob = s.catch_up("bob", conv, "SETUP, accepted");
  require(bob.read(0), "bob accepts the SETUP");
  s.w().branch_mirrors(1);
  const router_conv before = s.w().router(conv);
  // Bob writes a message; the router orders a version of it bob never wrote (another
  // body_commit, so another D), which the lying mirrors attest.
  outgoing mine = s.compose("bob", conv, std::string("the real one"));
  sim::to_router forged{"bob", mine.aseq, mine.submit};
  forged.submit.c.body_commit[0] ^= 1;
  auto ordered = s.w().fork_order(before, forged, 1);
  require(ordered.has_value() && ordered->answers[0] && ordered->answers[1],
          "every mirror attests the forged version");
  auto env = make_envelope(ordered->e, ordered->answers, "bob");
  require(env.has_value(), "an envelope for bob");
  outcome out;
  out.add(
      s.receive("bob", *env, "bob's entry #1 with a D he never submitted: IMPERSONATION, halt"));
  require(out.alarm("IMPERSONATION", 1, true) && out.accepted.empty(), "IMPERSONATION halts bob");
  return s.to_json("impersonation",
                   "IMPERSONATION: with every mirror lying, the router orders at #1 a version of "
                   "bob's message with another body_commit (a D bob never submitted); bob, "
                   "whose mirror blocks all verify, raises IMPERSONATION and halts");
}

}  // namespace

json generate_decisions(uint64_t seed) {
  json scenarios = json::array();
  scenarios.push_back(commitment(seed + 1));
  scenarios.push_back(block_failures(seed + 2));
  scenarios.push_back(ratchet(seed + 3));
  scenarios.push_back(receipt_void(seed + 4));
  scenarios.push_back(joiner(seed + 5));
  scenarios.push_back(fork(seed + 6));
  scenarios.push_back(impersonation(seed + 7));
  return {{"kind", "decisions"},
          {"seed", seed},
          {"description",
           "accept/reject/alarm decisions a fresh member must reproduce. Each scenario holds one "
           "replay per recorded member: its secrets at the start, its steps in order (envelopes "
           "as the wire carries them; fetched keys; the messages, receipts and pre-keys it "
           "made, each with the rng_seed of its draws) and each step's decision: for an "
           "envelope the accepted entries, alarms, acknowledgements, and the member's state, "
           "channels and keys after it; for a sending step its aseq, D, SUBMIT bytes and the "
           "RATCHET keys it announced (another implementation takes these as inputs)"},
          {"scenarios", scenarios}};
}

std::optional<std::string> verify_decisions(const json& v) {
  size_t n = 0;
  for (const auto& sc : v.at("scenarios")) {
    const std::string name = sc.at("name");
    for (const auto& r : sc.at("replays")) {
      ++n;
      const std::string tag =
          "decisions " + name + " (" + r.at("member").at("id").get<std::string>() + ")";
      if (auto m = verify_replay(r, "steps", detail::full, tag))
        return m;
    }
  }
  if (n == 0)
    return std::string("decisions: no replays");
  return std::nullopt;
}

}  // namespace cowpi::vectors

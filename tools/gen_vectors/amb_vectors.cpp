// SPDX-License-Identifier: Apache-2.0
// amb.json: the author->mirror block of an entry and the mirror block back to its author
// (docs/protocol.md §5.4), from the keys and the entry's hashes to the 185 bytes, both ways.
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/keys.hpp"

#include "json_util.hpp"
#include "vectors.hpp"

namespace cowpi::vectors {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): vector tool

namespace {

// `pt = seed || be64(announced.id) || announced.pub` (docs/protocol.md §4.3).
bytes plaintext_bytes(const block_plaintext& pt) {
  byte_writer w(block_plaintext_size);
  w.raw(pt.seed.expose()).be64(pt.announced_id).raw(pt.announced_pub);
  return std::move(w).take();
}

// The receiver key a block names: a NAXOS key of the receiver (its seed `esk`).
struct receiver_key {
  key_ref ref;
  crypto::secret<32> esk;
};

// One block from `s` to `r` under `rk`, sealed with deterministic_rng(rng_seed): every
// intermediate value an implementation needs to reproduce it, and the block.
json block_json(const identity& s, const identity& r, const conv_id& conv, const receiver_key& rk,
                const block_plaintext& pt, const bytes& ad, uint64_t rng_seed) {
  const naxos_keypair e = naxos_derive(rk.esk, r);
  crypto::deterministic_rng draws(rng_seed);
  const auto eph_esk = draws.secret_bytes<32>();  // seal_block draws X_S's seed, then the nonce
  const auto nonce = draws.array<24>();
  const naxos_keypair x = naxos_derive(eph_esk, s);
  const pair_context ctx{s.id(), r.id(), conv, rk.ref, x.pub};
  auto key = pair_key_send(s, x.x, r.lpk(), e.pub, ctx);
  crypto::deterministic_rng br(rng_seed);
  auto b = seal_block(s, r.id(), r.lpk(), conv, rk.ref, e.pub, pt, ad, br);
  std::string ct = "error";
  if (key)
    if (auto sealed = crypto::aead_seal(key->expose(), nonce, plaintext_bytes(pt), ad))
      ct = hex(*sealed);
  return {{"sender", s.id()},
          {"receiver", r.id()},
          {"ref", ref_json(rk.ref)},
          {"receiver_key_esk", hex(rk.esk)},
          {"receiver_key_secret", hex(e.x)},
          {"receiver_key_pub", hex(e.pub)},
          {"seed", hex(pt.seed)},
          {"announced_id", pt.announced_id},
          {"announced_pub", hex(pt.announced_pub)},
          {"plaintext", hex(plaintext_bytes(pt))},
          {"ad", hex(ad)},
          {"rng_seed", rng_seed},
          {"ephemeral_esk", hex(eph_esk)},
          {"ephemeral_secret", hex(x.x)},
          {"x_s", hex(x.pub)},
          {"nonce", hex(nonce)},
          {"info", hex(pair_info(ctx))},
          {"key", key ? hex(*key) : std::string("error")},
          {"ct", ct},
          {"block", b ? hex(enc_block(*b)) : std::string("error")}};
}

// Recomputes every value of `j` from its inputs (`s`, `r`, conv and `ad` are already checked)
// and opens the block on the receiver's side. `wrong_ad` must not open it.
std::optional<std::string> verify_block_json(const json& j, const std::string& tag,
                                             const identity& s, const identity& r,
                                             const conv_id& conv, const bytes& ad,
                                             const bytes& wrong_ad) {
  if (auto m = mismatch(tag + "sender", j.at("sender"), s.id()))
    return m;
  if (auto m = mismatch(tag + "receiver", j.at("receiver"), r.id()))
    return m;
  if (auto m = mismatch(tag + "ad", j.at("ad"), hex(ad)))
    return m;
  const key_ref ref = ref_from(j.at("ref"));
  const naxos_keypair e = naxos_derive(unhex_secret<32>(j.at("receiver_key_esk")), r);
  if (auto m = mismatch(tag + "receiver_key_secret", j.at("receiver_key_secret"), hex(e.x)))
    return m;
  if (auto m = mismatch(tag + "receiver_key_pub", j.at("receiver_key_pub"), hex(e.pub)))
    return m;
  // A RATCHET ref names its key by id alone (pub zero on the wire); the others carry it.
  if (ref.kind == key_kind::ratchet ? !crypto::is_zero(ref.pub) : ref.pub != e.pub)
    return tag + "ref names another key";
  block_plaintext pt;
  pt.seed = unhex_secret<32>(j.at("seed"));
  pt.announced_id = j.at("announced_id");
  pt.announced_pub = unhex_array<32>(j.at("announced_pub"));
  if (auto m = mismatch(tag + "plaintext", j.at("plaintext"), hex(plaintext_bytes(pt))))
    return m;
  const uint64_t rng_seed = j.at("rng_seed");
  crypto::deterministic_rng draws(rng_seed);
  const auto eph_esk = draws.secret_bytes<32>();
  const auto nonce = draws.array<24>();
  if (auto m = mismatch(tag + "ephemeral_esk", j.at("ephemeral_esk"), hex(eph_esk)))
    return m;
  if (auto m = mismatch(tag + "nonce", j.at("nonce"), hex(nonce)))
    return m;
  const naxos_keypair x = naxos_derive(eph_esk, s);
  if (auto m = mismatch(tag + "ephemeral_secret", j.at("ephemeral_secret"), hex(x.x)))
    return m;
  if (auto m = mismatch(tag + "x_s", j.at("x_s"), hex(x.pub)))
    return m;
  const pair_context ctx{s.id(), r.id(), conv, ref, x.pub};
  if (auto m = mismatch(tag + "info", j.at("info"), hex(pair_info(ctx))))
    return m;
  auto ks = pair_key_send(s, x.x, r.lpk(), e.pub, ctx);
  auto kr = pair_key_recv(r, e.x, s.lpk(), ctx);
  if (!ks || !kr)
    return tag + "key derivation failed";
  if (auto m = mismatch(tag + "sender key", j.at("key"), hex(*ks)))
    return m;
  if (auto m = mismatch(tag + "receiver key", j.at("key"), hex(*kr)))
    return m;
  auto ct = crypto::aead_seal(ks->expose(), nonce, plaintext_bytes(pt), ad);
  if (!ct)
    return tag + "AEAD failed";
  if (auto m = mismatch(tag + "ct", j.at("ct"), hex(*ct)))
    return m;
  // enc(block) = X_S || enc(ref) || nonce || ct, and seal_block makes exactly that.
  byte_writer w(block_size);
  w.raw(x.pub).raw(enc_ref(ref)).raw(nonce).raw(*ct);
  if (auto m = mismatch(tag + "block (assembled)", j.at("block"), hex(w.data())))
    return m;
  crypto::deterministic_rng br(rng_seed);
  auto b = seal_block(s, r.id(), r.lpk(), conv, ref, e.pub, pt, ad, br);
  if (!b)
    return tag + "seal failed";
  if (auto m = mismatch(tag + "block (sealed)", j.at("block"), hex(enc_block(*b))))
    return m;
  auto decoded = decode_block(unhex(j.at("block")));
  if (!decoded)
    return tag + "block does not decode";
  auto opened = open_block(r, e.x, s.id(), s.lpk(), conv, *decoded, ad);
  if (!opened)
    return tag + "does not open on the receiver's side";
  if (hex(plaintext_bytes(*opened)) != j.at("plaintext"))
    return tag + "opens to a different plaintext";
  if (open_block(r, e.x, s.id(), s.lpk(), conv, *decoded, wrong_ad))
    return tag + "opens under another entry's AD";
  return std::nullopt;
}

json ratchet_json(uint64_t id, const crypto::secret<32>& esk, const identity& owner) {
  return {{"id", id}, {"esk", hex(esk)}, {"pub", hex(naxos_derive(esk, owner).pub)}};
}

}  // namespace

json generate_amb(uint64_t seed) {
  crypto::deterministic_rng r(seed);
  json cases = json::array();
  const key_kind kinds[] = {key_kind::prekey, key_kind::last_resort, key_kind::ratchet};
  for (uint64_t k = 0; k < 3; ++k) {
    identity author = identity::generate(k == 1 ? "\xc3\xa9lodie" : "alice", r);
    identity mirror = identity::generate("mirror-" + std::string(1, static_cast<char>('a' + k)), r);
    const conv_id conv = r.array<16>();
    const uint64_t index = k * 7;
    const hash32 t_prev = k == 0 ? t_genesis : r.array<32>();
    const hash32 h_c = r.array<32>();
    const hash32 root = r.array<32>();
    const hash32 d = entry_digest(h_c, root);
    const hash32 t = transcript_hash(conv, index, t_prev, d);
    // The key the amb names: the mirror's one-time pre-key at first contact, its LAST_RESORT
    // key when the pool is empty, or the RATCHET key it announced to the author.
    receiver_key mirror_key{key_ref{kinds[k], 1 + 2 * k, {}}, r.secret_bytes<32>()};
    if (kinds[k] != key_kind::ratchet)
      mirror_key.ref.pub = naxos_derive(mirror_key.esk, mirror).pub;
    // The amb announces the author's RATCHET key for the mirror; the mirror applies it before
    // it builds its blocks, so its block to the author names that key (§7.4).
    const uint64_t author_ratchet_id = 1 + k;
    const auto author_ratchet_esk = r.secret_bytes<32>();
    const uint64_t mirror_ratchet_id = 2 + k;
    const auto mirror_ratchet_esk = r.secret_bytes<32>();
    block_plaintext amb_pt;
    amb_pt.announced_id = author_ratchet_id;
    amb_pt.announced_pub = naxos_derive(author_ratchet_esk, author).pub;
    block_plaintext mb_pt;
    mb_pt.announced_id = mirror_ratchet_id;
    mb_pt.announced_pub = naxos_derive(mirror_ratchet_esk, mirror).pub;
    const receiver_key author_key{key_ref{key_kind::ratchet, author_ratchet_id, {}},
                                  author_ratchet_esk.clone()};
    const bytes amb_ad = ad_amb(h_c, root, author.id(), mirror.id());
    const bytes mb_ad = ad_mirror_block(conv, index, t, mirror.id(), author.id(), root);
    cases.push_back(
        {{"author", author.id()},
         {"author_lsk", hex(author.export_secret())},
         {"author_lpk", hex(author.lpk())},
         {"mirror", mirror.id()},
         {"mirror_lsk", hex(mirror.export_secret())},
         {"mirror_lpk", hex(mirror.lpk())},
         {"conv", hex(conv)},
         {"index", index},
         {"h_c", hex(h_c)},
         {"blocks_root", hex(root)},
         {"d", hex(d)},
         {"t_prev", hex(t_prev)},
         {"t", hex(t)},
         {"author_ratchet", ratchet_json(author_ratchet_id, author_ratchet_esk, author)},
         {"mirror_ratchet", ratchet_json(mirror_ratchet_id, mirror_ratchet_esk, mirror)},
         {"amb", block_json(author, mirror, conv, mirror_key, amb_pt, amb_ad, seed * 10 + 2 * k)},
         {"mirror_block",
          block_json(mirror, author, conv, author_key, mb_pt, mb_ad, seed * 10 + 2 * k + 1)}});
  }
  return {
      {"kind", "amb"},
      {"seed", seed},
      {"description",
       "author->mirror block amb_o (zero seed, AD = L(\"amb\") || H_C || blocks_root || "
       "lp(author) || lp(o)) and the mirror block back to the author (zero seed, AD = "
       "L(\"mb\") || conv || be64(i) || T_i || lp(o) || lp(author) || blocks_root, with D = "
       "H(L(\"D\") || H_C || blocks_root) and T_i = H(L(\"T\") || conv || be64(i) || T_{i-1} || "
       "D)); each with the receiver key, X_S and nonce (the first two draws of "
       "deterministic_rng(rng_seed)), info, K (both sides), ct and enc(block), opened back "
       "on the other side. The amb announces the author's RATCHET key; the mirror block "
       "names it"},
      {"cases", cases}};
}

std::optional<std::string> verify_amb(const json& v) {
  size_t n = 0;
  for (const auto& c : v.at("cases")) {
    const std::string tag = "amb case " + std::to_string(n++) + " ";
    identity author = identity::from_secret(c.at("author"), unhex_secret<32>(c.at("author_lsk")));
    identity mirror = identity::from_secret(c.at("mirror"), unhex_secret<32>(c.at("mirror_lsk")));
    if (auto m = mismatch(tag + "author_lpk", c.at("author_lpk"), hex(author.lpk())))
      return m;
    if (auto m = mismatch(tag + "mirror_lpk", c.at("mirror_lpk"), hex(mirror.lpk())))
      return m;
    const conv_id conv = unhex_array<16>(c.at("conv"));
    const uint64_t index = c.at("index");
    const hash32 h_c = unhex_array<32>(c.at("h_c"));
    const hash32 root = unhex_array<32>(c.at("blocks_root"));
    const hash32 d = entry_digest(h_c, root);
    if (auto m = mismatch(tag + "d", c.at("d"), hex(d)))
      return m;
    const hash32 t = transcript_hash(conv, index, unhex_array<32>(c.at("t_prev")), d);
    if (auto m = mismatch(tag + "t", c.at("t"), hex(t)))
      return m;
    for (const auto& [name, owner] :
         {std::pair<const char*, const identity*>{"author_ratchet", &author},
          std::pair<const char*, const identity*>{"mirror_ratchet", &mirror}}) {
      const json& kj = c.at(name);
      const auto pub = naxos_derive(unhex_secret<32>(kj.at("esk")), *owner).pub;
      if (auto m = mismatch(tag + name + " pub", kj.at("pub"), hex(pub)))
        return m;
    }
    const json& amb = c.at("amb");
    const json& mb = c.at("mirror_block");
    // What each block announces is the key the other side names next.
    if (amb.at("announced_id") != c.at("author_ratchet").at("id")
        || amb.at("announced_pub") != c.at("author_ratchet").at("pub")
        || mb.at("ref").at("id") != c.at("author_ratchet").at("id")
        || mb.at("receiver_key_esk") != c.at("author_ratchet").at("esk")
        || mb.at("announced_id") != c.at("mirror_ratchet").at("id")
        || mb.at("announced_pub") != c.at("mirror_ratchet").at("pub"))
      return tag + "the announced and named keys do not line up";
    // Neither block carries a seed: a mirror never reads the body (§5.4).
    const std::string zero_seed = hex(hash32{});
    if (amb.at("seed") != zero_seed || mb.at("seed") != zero_seed)
      return tag + "a block to or from a mirror carries a non-zero seed";
    hash32 other_root = root;
    other_root[0] ^= 1;
    if (auto m = verify_block_json(amb, tag + "amb ", author, mirror, conv,
                                   ad_amb(h_c, root, author.id(), mirror.id()),
                                   ad_amb(h_c, other_root, author.id(), mirror.id())))
      return m;
    // The author's block binds blocks_root; another member's binds H(block_U) instead.
    auto amb_block = decode_block(unhex(amb.at("block")));
    const hash32 block_u = amb_block ? block_hash(*amb_block) : hash32{};
    if (auto m =
            verify_block_json(mb, tag + "mirror block ", mirror, author, conv,
                              ad_mirror_block(conv, index, t, mirror.id(), author.id(), root),
                              ad_mirror_block(conv, index, t, mirror.id(), author.id(), block_u)))
      return m;
  }
  if (n == 0)
    return std::string("amb: no cases");
  return std::nullopt;
}

}  // namespace cowpi::vectors

// SPDX-License-Identifier: Apache-2.0
// Generation and verification of the storage-stability vectors.
#include "storage_vectors.hpp"

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/storage/keys.hpp"
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/sealer.hpp"

#include <sodium.h>

#include <functional>
#include <vector>

namespace cowpi::vectors::storage {

namespace {

using namespace cowpi::storage;  // NOLINT(google-build-using-namespace): vector tables
using protocol::key_kind;
using protocol::msg_type;

std::string hex(byte_view b) {
  return to_hex(b);
}
std::string hex(std::string_view s) {
  return to_hex(as_bytes(s));
}

// A record: its pinned encoding and a decode -> re-encode round trip of given bytes.
struct record_case {
  std::string name;
  bytes encoded;
  std::function<std::optional<bytes>(byte_view)> reencode;
};

// A sealed record: the row it is sealed for, the plaintext encoding and the round trip of a
// plaintext.
struct sealed_case {
  std::string name;
  column col = column::meta;
  std::string row_key;
  secure_bytes plaintext;
  std::function<std::optional<bytes>(byte_view)> reencode;
};

template <class T, class Enc, class Dec>
record_case clear(std::string name, const T& value, Enc enc, Dec dec) {
  return record_case{std::move(name), enc(value), [enc, dec](byte_view b) -> std::optional<bytes> {
                       auto v = dec(b);
                       if (!v)
                         return std::nullopt;
                       return enc(*v);
                     }};
}

template <class T, class Enc, class Dec>
sealed_case secret(std::string name, column c, std::string row_key, const T& value, Enc enc,
                   Dec dec) {
  return sealed_case{std::move(name), c, std::move(row_key), enc(value),
                     [enc, dec](byte_view b) -> std::optional<bytes> {
                       auto v = dec(b);
                       if (!v)
                         return std::nullopt;
                       const secure_bytes s = enc(*v);
                       return bytes(s.view().begin(), s.view().end());
                     }};
}

secure_bytes secure_copy(byte_view b) {
  secure_bytes s(b.size());
  std::copy(b.begin(), b.end(), s.data());
  return s;
}

std::optional<bytes> same_bytes(byte_view b) {
  return bytes(b.begin(), b.end());
}

// Every input is drawn from one seeded stream, in a fixed order.
struct inputs {
  explicit inputs(uint64_t seed) : r(seed) {}
  crypto::deterministic_rng r;

  protocol::block block() {
    protocol::block b;
    r.fill(b.x);
    b.ref = protocol::key_ref{key_kind::ratchet, 7, {}};
    r.fill(b.nonce);
    r.fill(b.ct);
    return b;
  }
  protocol::owned_key owned(uint64_t created) {
    protocol::owned_key k;
    k.esk = r.secret_bytes<32>();
    k.pub = r.array<32>();
    k.created = created;
    return k;
  }
};

struct tables {
  std::vector<std::pair<std::string, std::string>> keys;
  std::vector<record_case> records;
  std::vector<sealed_case> sealed;
  crypto::secret<32> seal_key;
  uint64_t seed = 0;
};

tables build(uint64_t seed) {
  inputs in(seed);
  tables t;
  t.seed = seed;
  const protocol::conv_id conv = in.r.array<16>();

  // -- Keys ----------------------------------------------------------------------------------
  auto k = [&](std::string name, std::string key) {
    t.keys.emplace_back(std::move(name), hex(key));
  };
  k("meta.layout", keys::meta_layout());
  k("meta.seal_params", keys::meta_seal_params());
  k("meta.seal_check", keys::meta_seal_check());
  k("meta.identity", keys::meta_identity());
  k("conv.header", keys::conv_row_key(conv, conv_row::header));
  k("conv.ms", keys::conv_row_key(conv, conv_row::ms));
  k("conv.members", keys::conv_row_key(conv, conv_row::members));
  k("conv.peer", keys::conv_peer(conv, "alice"));
  k("conv.t", keys::conv_indexed(conv, conv_row::t, uint64_t{1} << 32));
  k("conv.sets", keys::conv_row_key(conv, conv_row::sets));
  k("conv.retention", keys::conv_row_key(conv, conv_row::retention));
  k("conv.d_recent", keys::conv_indexed(conv, conv_row::d_recent, 255));
  k("conv.orphans", keys::conv_row_key(conv, conv_row::orphans));
  k("indexed", keys::indexed(conv, 256));
  k("author_block", keys::author_block(conv, 65536, 3));
  k("mirror_block", keys::mirror_block(conv, 0xffffffff, 1, 70000));
  k("channel", keys::channel(conv, "mirror-a"));
  k("tombstone", keys::tombstone(conv));
  k("user", keys::user("carol"));
  k("cursor", keys::cursor("bob", conv));
  k("cursor_prefix", keys::cursor_prefix("bob"));
  k("prekey", keys::prekey("mirror-b", 513));
  k("prekey_prefix", keys::prekey_prefix("mirror-b"));
  k("keys.counters", keys::key_counters());
  k("keys.prekey", keys::key_prekey(5));
  k("keys.last_resort", keys::key_last_resort(2));
  k("keys.published", keys::key_published(key_kind::last_resort, 9));
  k("keys.identity", keys::key_identity());
  for (role r : {role::router, role::mirror, role::client}) {
    std::string names;
    for (column c : columns_of(r))
      names += std::string(column_name(c)) + ",";
    k("columns." + std::string(to_string(r)), names);
  }

  // -- Fixed layouts ------------------------------------------------------------------------
  auto& rec = t.records;
  rec.push_back(
      clear("layout", layout_record{layout_version, role::mirror}, encode_layout, decode_layout));
  const hash32 h = in.r.array<32>();
  rec.push_back(clear("hash", h, encode_hash, decode_hash));
  rec.push_back(clear("u64", uint64_t{0x0102030405060708}, encode_u64, decode_u64));
  const protocol::block blk = in.block();
  rec.push_back(clear("block_row", blk, encode_block_row, decode_block_row));
  const public_key pub = in.r.array<32>();
  rec.push_back(clear("pub", pub, encode_pub, decode_pub));
  rec.push_back(
      clear("user", user_record{in.r.array<32>(), 1'700'000'000}, encode_user, decode_user));
  rec.push_back(clear("owner.empty", owner_record{in.r.array<32>(), 0, 0, std::nullopt},
                      encode_owner, decode_owner));
  rec.push_back(
      clear("owner.full",
            owner_record{in.r.array<32>(), 97, 140, protocol::published_key{3, in.r.array<32>()}},
            encode_owner, decode_owner));
  rec.push_back(
      clear("cursor.member", cursor_record{12, std::nullopt}, encode_cursor, decode_cursor));
  rec.push_back(clear("cursor.removed", cursor_record{12, 40}, encode_cursor, decode_cursor));
  protocol::member_list members = {
      {"alice", in.r.array<32>()}, {"bob", in.r.array<32>()}, {"carol", in.r.array<32>()}};
  protocol::member_list ms = {{"mirror-a", in.r.array<32>()}, {"mirror-b", in.r.array<32>()}};
  rec.push_back(clear("members", members, encode_members, decode_members));
  protocol::answer ans{300, in.r.array<32>(), {in.block(), in.block(), in.block()}};
  rec.push_back(
      clear("answer", ans, encode_answer, [](byte_view b) { return decode_answer(300, b); }));
  rec.push_back(clear("key_counters", key_counters{101, 4, 3}, encode_counters, decode_counters));
  seal_params sp;
  sp.salt = in.r.array<16>();
  sp.opslimit = 3;
  sp.memlimit = 268435456;
  rec.push_back(clear("seal_params", sp, encode_seal_params, decode_seal_params));
  rec.push_back(clear("identity_binding", identity_binding{"mirror-a", in.r.array<32>()},
                      encode_identity_binding, decode_identity_binding));

  // -- Cap'n Proto records in the clear -------------------------------------------------------
  rec.push_back(clear("router_header", router_header{40, 77, false, true, "CONFLICT at index 76"},
                      encode_router_header, decode_router_header));
  rec.push_back(clear("mirror_header", mirror_header{40, 77, true}, encode_mirror_header,
                      decode_mirror_header));
  rec.push_back(
      clear("client_header",
            client_header{40, 77, false, protocol::conv_status::halted, 76, 75, 74, 123456, 12},
            encode_client_header, decode_client_header));
  client_sets cs;
  cs.voids_pending = {41, 70};
  cs.alarmed = {76};
  rec.push_back(clear("client_sets", cs, encode_client_sets, decode_client_sets));
  peer_row router_peer;
  router_peer.aseq = protocol::aseq_value{true, 17};
  router_peer.floor = protocol::floor_value{true, -1};
  router_peer.last_ordered = std::make_pair(uint64_t{76}, in.r.array<32>());
  router_peer.last_update_time = 1'700'000'100;
  rec.push_back(clear("peer_row.router", router_peer, encode_peer_row, decode_peer_row));
  peer_row mirror_peer;
  mirror_peer.aseq = protocol::aseq_value{false, 0};
  mirror_peer.ratchet_next = 5;
  mirror_peer.member_lr = protocol::published_key{2, in.r.array<32>()};
  rec.push_back(clear("peer_row.mirror", mirror_peer, encode_peer_row, decode_peer_row));

  protocol::log_entry e;
  e.index = 77;
  e.c.conv = conv;
  e.c.type = msg_type::message;
  e.c.author = "bob";
  e.c.aseq = 18;
  e.c.parent = 76;
  e.c.parent_hash = in.r.array<32>();
  bytes body(296);
  in.r.fill(body);
  e.c.body_len = body.size();
  e.c.body_hash = crypto::sha256(body);
  e.c.body_commit = in.r.array<32>();
  e.body = body;
  e.blocks_root = in.r.array<32>();
  e.d = in.r.array<32>();
  e.t_prev = in.r.array<32>();
  e.t = in.r.array<32>();
  e.slots = {"alice", "bob", "carol"};
  rec.push_back(clear(
      "log_entry.message", e,
      [](const protocol::log_entry& x) { return encode_log_record(x, 1'700'000'200); },
      [](byte_view b) -> expected<protocol::log_entry> {
        COWPI_TRY(log_record r, decode_log_record(77, b));
        return r.entry;
      }));
  protocol::log_entry s;
  s.index = 0;
  s.c.conv = conv;
  s.c.type = msg_type::setup;
  s.c.author = "alice";
  s.c.aseq = 1;
  s.c.ms = ms;
  s.c.members = members;
  s.blocks_root = in.r.array<32>();
  s.d = in.r.array<32>();
  s.t = in.r.array<32>();
  s.slots = {"alice", "bob", "carol"};
  s.joiners = {"alice", "bob", "carol"};
  rec.push_back(clear(
      "log_entry.setup", s,
      [](const protocol::log_entry& x) { return encode_log_record(x, 1'700'000'000); },
      [](byte_view b) -> expected<protocol::log_entry> {
        COWPI_TRY(log_record r, decode_log_record(0, b));
        return r.entry;
      }));
  pending_record pend{{in.block(), in.block()},
                      {protocol::last_resort_attachment{"carol", 4, in.r.array<32>()}}};
  rec.push_back(clear("pending", pend, encode_pending, decode_pending));
  rec.push_back(clear("tombstone",
                      protocol::client_tombstone{18, {{"alice", 3}, {"mirror-a", 9}}, 41},
                      encode_tombstone, decode_tombstone));
  identity_record idr{"alice", in.r.array<32>(), bytes(73, 0x5c), ms};
  rec.push_back(clear("identity_record", idr, encode_identity_record, decode_identity_record));

  // -- Sealed records -----------------------------------------------------------------------
  t.seal_key = in.r.secret_bytes<32>();
  auto& sl = t.sealed;
  protocol::channel ch;
  ch.mine.emplace(4, in.owned(1'700'000'010));
  ch.mine.emplace(5, in.owned(1'700'000'020));
  ch.announced = 5;
  ch.announced_referenced = true;
  ch.peer_latest = protocol::published_key{8, in.r.array<32>()};
  ch.first_contact = protocol::key_ref{key_kind::prekey, 31, in.r.array<32>()};
  ch.peer_used_prekey = 12;
  ch.broken_epoch = 7;
  sl.push_back(secret("channel", column::channels, keys::channel(conv, "mirror-a"), ch,
                      encode_channel, decode_channel));
  protocol::prekey_slot ps{in.owned(1'700'000'030), protocol::channel_ref{conv, "carol"}};
  sl.push_back(secret("prekey_slot", column::keys, keys::key_prekey(5), ps, encode_prekey_slot,
                      decode_prekey_slot));
  protocol::last_resort_slot lr{
      in.owned(1'700'000'040), 1'700'000'500, {protocol::channel_ref{conv, "mirror-a"}}};
  sl.push_back(secret("last_resort_slot", column::keys, keys::key_last_resort(2), lr,
                      encode_last_resort_slot, decode_last_resort_slot));
  protocol::orphan_version orphan;
  orphan.aseq = 9;
  orphan.d = in.r.array<32>();
  orphan.plaintext = bytes{'o', 'l', 'd'};
  orphan.entry_id = 4;
  sl.push_back(secret("orphans", column::conv, keys::conv_row_key(conv, conv_row::orphans),
                      std::vector<protocol::orphan_version>{orphan}, encode_orphans,
                      decode_orphans));
  protocol::outbox_entry ob;
  ob.id = 6;
  ob.aseq = 19;
  ob.type = msg_type::message;
  ob.plaintext = bytes{'h', 'e', 'l', 'l', 'o'};
  protocol::outbox_version v;
  v.d = in.r.array<32>();
  v.submit.c = e.c;
  v.submit.body = body;
  v.submit.blocks = {protocol::recipient_block{"alice", in.block()},
                     protocol::recipient_block{"carol", in.block()}};
  v.submit.ambs = {in.block(), in.block()};
  ob.versions.push_back(v);
  ob.stale_after = 40;
  sl.push_back(secret("outbox_entry", column::outbox, keys::indexed(conv, ob.id), ob,
                      encode_outbox_entry, decode_outbox_entry));
  protocol::accepted_entry acc;
  acc.conv = conv;
  acc.index = 77;
  acc.type = msg_type::update;
  acc.author = "bob";
  acc.aseq = 18;
  acc.parent = 76;
  acc.d = in.r.array<32>();
  acc.t = in.r.array<32>();
  acc.members = members;
  acc.adds = {members[2]};
  acc.removes = {"dave"};
  acc.safety_number = protocol::safety_number(members);
  acc.floor_before = 70;
  acc.voids = {71, 73};
  sl.push_back(secret("accepted", column::transcript, keys::indexed(conv, 77), acc, encode_accepted,
                      [conv](byte_view b) { return decode_accepted(conv, 77, b); }));
  const crypto::secret<32> lsk = in.r.secret_bytes<32>();
  sl.push_back(sealed_case{"lsk", column::keys, keys::key_identity(), encode_lsk(lsk),
                           [](byte_view b) -> std::optional<bytes> {
                             auto k2 = decode_lsk(b);
                             if (!k2)
                               return std::nullopt;
                             const secure_bytes s2 = encode_lsk(*k2);
                             return bytes(s2.view().begin(), s2.view().end());
                           }});
  sl.push_back(sealed_case{"seal_check", column::meta, keys::meta_seal_check(),
                           secure_copy(as_bytes(seal_check_plaintext)), same_bytes});
  return t;
}

// The sealed-record layout spelled out: the AD built field by field, and the blob computed with
// libsodium directly, independently of `sealer`, for a key and nonce from a seeded stream.
struct layout_parts {
  crypto::secret<32> key;
  byte_array<24> nonce{};
  column col = column::outbox;
  std::string row_key;
  bytes plaintext;
};

layout_parts layout_inputs(uint64_t seed) {
  crypto::deterministic_rng r(seed ^ 0x5ea2);
  layout_parts p;
  p.key = r.secret_bytes<32>();
  p.nonce = r.array<24>();
  p.row_key = keys::indexed(r.array<16>(), 6);
  p.plaintext = bytes{'s', 'e', 'a', 'l', 'e', 'd'};
  return p;
}

bytes layout_ad(const layout_parts& p) {
  const std::string_view col = column_name(p.col);
  byte_writer w(64);
  w.raw(std::string_view("cowpi/v1/storage-seal")).u8(2);
  w.be32(static_cast<uint32_t>(col.size())).raw(col);
  w.be32(static_cast<uint32_t>(p.row_key.size())).raw(std::string_view(p.row_key));
  return std::move(w).take();
}

bytes layout_ciphertext(const layout_parts& p, const bytes& ad) {
  bytes ct(p.plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(ct.data(), &n, p.plaintext.data(), p.plaintext.size(),
                                             ad.data(), ad.size(), nullptr, p.nonce.data(),
                                             p.key.expose().data());
  return ct;
}

nlohmann::json seal_layout(uint64_t seed) {
  const layout_parts p = layout_inputs(seed);
  const bytes ad = layout_ad(p);
  const bytes ct = layout_ciphertext(p, ad);
  byte_writer blob(1 + p.nonce.size() + ct.size());
  blob.u8(2).raw(p.nonce).raw(ct);
  return {{"format", 2},
          {"column", std::string(column_name(p.col))},
          {"row_key", hex(p.row_key)},
          {"key", hex(p.key.expose())},
          {"nonce", hex(p.nonce)},
          {"plaintext", hex(p.plaintext)},
          {"ad", hex(ad)},
          {"ciphertext_and_tag", hex(ct)},
          {"sealed", hex(blob.data())}};
}

// The pinned layout is what `seal_ad` and `sealer` produce and accept: the same AD, the same
// blob from the same nonce, and no opening under another row.
std::optional<std::string> verify_seal_layout(const nlohmann::json& v, uint64_t seed) {
  if (!v.contains("seal_layout"))
    return "no seal_layout vector";
  const auto& pinned = v.at("seal_layout");
  if (pinned != seal_layout(seed))
    return "seal_layout changed";
  const layout_parts p = layout_inputs(seed);
  const bytes ad = layout_ad(p);
  if (seal_ad(p.col, p.row_key) != ad)
    return "seal_ad differs from the pinned associated data";
  // An rng that yields exactly the pinned nonce.
  struct fixed_nonce final : crypto::rng {
    byte_array<24> n;
    explicit fixed_nonce(const byte_array<24>& x) : n(x) {}
    void fill(std::span<uint8_t> out) override {
      COWPI_ASSERT(out.size() == n.size());
      std::copy(n.begin(), n.end(), out.begin());
    }
  } rng(p.nonce);
  const sealer sl(p.key);
  const auto blob = from_hex(pinned.at("sealed").get<std::string>());
  if (!blob || sl.seal(p.col, p.row_key, p.plaintext, rng) != *blob)
    return "sealer::seal does not produce the pinned sealed blob";
  auto opened = sl.open(p.col, p.row_key, *blob);
  if (!opened || bytes(opened->view().begin(), opened->view().end()) != p.plaintext)
    return "sealer::open does not open the pinned sealed blob";
  if (sl.open(column::transcript, p.row_key, *blob).has_value()
      || sl.open(p.col, p.row_key + "x", *blob).has_value())
    return "the pinned sealed blob opens under another row";
  return std::nullopt;
}

}  // namespace

nlohmann::json generate(uint64_t seed) {
  tables t = build(seed);
  nlohmann::json out;
  out["seed"] = seed;
  out["layout_version"] = layout_version;
  out["record_format"] = record_format;
  out["keys"] = nlohmann::json::array();
  for (const auto& [name, h] : t.keys)
    out["keys"].push_back({{"name", name}, {"hex", h}});
  out["records"] = nlohmann::json::array();
  for (const auto& r : t.records)
    out["records"].push_back({{"name", r.name}, {"hex", hex(r.encoded)}});
  out["seal_format"] = seal_format;
  out["sealed"] = nlohmann::json::array();
  sealer sl(t.seal_key);
  crypto::deterministic_rng nonces(seed ^ 0x5ea1);
  for (const auto& s : t.sealed)
    out["sealed"].push_back(
        {{"name", s.name},
         {"column", std::string(column_name(s.col))},
         {"row_key", hex(s.row_key)},
         {"key", hex(t.seal_key.expose())},
         {"plaintext", hex(s.plaintext.view())},
         {"sealed", hex(sl.seal(s.col, s.row_key, s.plaintext.view(), nonces))}});
  out["seal_layout"] = seal_layout(seed);
  return out;
}

std::optional<std::string> verify(const nlohmann::json& v) {
  if (!v.contains("seed") || !v.contains("keys") || !v.contains("records") || !v.contains("sealed")
      || !v.contains("seal_format"))
    return "not a storage vector file";
  const uint64_t seed = v.at("seed").get<uint64_t>();
  if (v.at("layout_version").get<uint32_t>() != layout_version)
    return "the file pins layout version " + v.at("layout_version").dump()
           + " but this build writes " + std::to_string(layout_version);
  if (v.at("seal_format").get<uint32_t>() != seal_format)
    return "the file pins sealed-record format " + v.at("seal_format").dump()
           + " but this build writes " + std::to_string(seal_format);
  const nlohmann::json fresh = generate(seed);
  for (const char* part : {"keys", "records", "sealed"}) {
    const auto& a = v.at(part);
    const auto& b = fresh.at(part);
    if (a.size() != b.size())
      return std::string(part) + ": a different number of vectors";
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i])
        return std::string(part) + " '" + b[i].at("name").get<std::string>() + "' changed";
  }
  // Pinned bytes decode and re-encode to themselves.
  tables t = build(seed);
  for (size_t i = 0; i < t.records.size(); ++i) {
    auto pinned = from_hex(v["records"][i].at("hex").get<std::string>());
    if (!pinned)
      return "records: bad hex";
    auto again = t.records[i].reencode(*pinned);
    if (!again || *again != *pinned)
      return "record '" + t.records[i].name + "' does not round-trip";
  }
  for (size_t i = 0; i < t.sealed.size(); ++i) {
    const auto& entry = v["sealed"][i];
    auto key = from_hex(entry.at("key").get<std::string>());
    auto blob = from_hex(entry.at("sealed").get<std::string>());
    auto plain = from_hex(entry.at("plaintext").get<std::string>());
    if (!key || !blob || !plain || key->size() != 32)
      return "sealed: bad hex";
    sealer sl(crypto::secret<32>::from(*key));
    auto opened = sl.open(t.sealed[i].col, t.sealed[i].row_key, *blob);
    if (!opened)
      return "sealed '" + t.sealed[i].name + "' does not open: " + opened.error().message();
    if (bytes(opened->view().begin(), opened->view().end()) != *plain)
      return "sealed '" + t.sealed[i].name + "' opens to other bytes";
    auto again = t.sealed[i].reencode(opened->view());
    if (!again || *again != *plain)
      return "sealed '" + t.sealed[i].name + "' does not round-trip";
  }
  return verify_seal_layout(v, seed);
}

}  // namespace cowpi::vectors::storage

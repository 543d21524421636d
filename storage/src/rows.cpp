// SPDX-License-Identifier: Apache-2.0
// Row images and the row cache (write only what changed), conversation-state rows and key-store
// rows shared by the mirror and client stores.
#include "detail/rows.hpp"

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/protocol/encoding.hpp"

#include <algorithm>

namespace cowpi::storage::detail {

std::string ordered_key(const std::string& prefix, uint64_t k) {
  std::string s = prefix;
  for (int i = 7; i >= 0; --i)
    s.push_back(static_cast<char>(static_cast<uint8_t>(k >> (8 * i))));
  return s;
}

void row_cache::note(column c, std::string key, byte_view clear) {
  rows_[key_type{c, std::move(key)}] = crypto::sha256(clear);
}

void row_cache::note_sealed(column c, std::string key, const hash32& fp) {
  rows_[key_type{c, std::move(key)}] = fp;
}

void row_cache::note_ordered(column c, std::string key) {
  // The count is kept per ordered range; the caller notes rows under their range's prefix,
  // which is everything but the trailing be64.
  COWPI_ASSERT(key.size() >= 8);
  ++ordered_count_[key_type{c, key.substr(0, key.size() - 8)}];
  rows_[key_type{c, std::move(key)}] = hash32{};
}

void row_cache::sync(const std::vector<key_type>& ranges, row_image image, const sealer* s,
                     crypto::rng& r, write_batch& out) {
  auto& rows = image.rows();
  std::set<key_type> present;
  for (const auto& rw : rows)
    present.emplace(rw.col, rw.key);
  for (const auto& [c, prefix] : ranges) {
    auto it = rows_.lower_bound(key_type{c, prefix});
    const auto end = rows_.lower_bound(key_type{c, keys::prefix_end(prefix)});
    while (it != end) {
      if (!present.contains(it->first)) {
        out.del(c, it->first.second);
        it = rows_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::optional<sealer::batch> key_open;  // one unprotect for the batch
  for (auto& rw : rows) {
    const hash32 d = rw.sealed ? rw.fingerprint : crypto::sha256(rw.clear);
    auto [it, inserted] = rows_.try_emplace(key_type{rw.col, rw.key}, d);
    if (!inserted) {
      if (it->second == d)
        continue;
      it->second = d;
    }
    if (rw.sealed) {
      COWPI_ASSERT(s != nullptr);
      if (!key_open)
        key_open.emplace(*s);
      const secure_bytes plain = rw.encode_secret();
      bytes sealed = s->seal(rw.col, rw.key, plain.view(), r);
      out.put(rw.col, std::move(rw.key), std::move(sealed));
    } else {
      out.put(rw.col, std::move(rw.key), std::move(rw.clear));
    }
  }
}

void row_cache::forget(column c, const std::string& prefix) {
  rows_.erase(rows_.lower_bound(key_type{c, prefix}),
              rows_.lower_bound(key_type{c, keys::prefix_end(prefix)}));
  ordered_count_.erase(ordered_count_.lower_bound(key_type{c, prefix}),
                       ordered_count_.lower_bound(key_type{c, keys::prefix_end(prefix)}));
}

// ---------------------------------------------------------------------------------------------
// Conversation state rows.

expected<void> absorb_conv_row(std::string_view rest, byte_view value, conv_rows& out) {
  if (rest.empty())
    return fail(errc::corruption, "conversation row without a kind");
  const auto kind = static_cast<conv_row>(static_cast<uint8_t>(rest[0]));
  const std::string_view suffix = rest.substr(1);
  auto indexed = [&]() -> expected<uint64_t> {
    auto j = keys::be64_at(suffix, 0);
    if (!j || suffix.size() != 8)
      return fail(errc::corruption, "conversation row: bad index");
    return *j;
  };
  switch (kind) {
    case conv_row::header:
      out.header = bytes(value.begin(), value.end());
      return {};
    case conv_row::ms: {
      COWPI_TRY(auto l, decode_members(value));
      out.ms = std::move(l);
      return {};
    }
    case conv_row::members: {
      COWPI_TRY(auto l, decode_members(value));
      out.members = std::move(l);
      return {};
    }
    case conv_row::peer: {
      if (suffix.empty())
        return fail(errc::corruption, "peer row without an id");
      COWPI_TRY(auto p, decode_peer_row(value));
      out.peers[std::string(suffix)] = std::move(p);
      return {};
    }
    case conv_row::t: {
      COWPI_TRY(uint64_t j, indexed());
      COWPI_TRY(hash32 h, decode_hash(value));
      out.t[j] = h;
      return {};
    }
    case conv_row::sets: {
      COWPI_TRY(auto s, decode_client_sets(value));
      out.sets = std::move(s);
      return {};
    }
    case conv_row::retention: {
      COWPI_TRY(uint64_t v, decode_u64(value));
      out.retention = v;
      return {};
    }
    case conv_row::orphans:
      out.orphans_sealed = bytes(value.begin(), value.end());
      return {};
    case conv_row::version: {
      COWPI_TRY(uint64_t v, decode_u64(value));
      if (v != protocol::protocol_version_chain)
        return fail(errc::corruption, "conversation version row: " + std::to_string(v));
      out.version = v;
      return {};
    }
    case conv_row::d_recent: {
      COWPI_TRY(uint64_t j, indexed());
      COWPI_TRY(hash32 h, decode_hash(value));
      out.d_recent[j] = h;
      return {};
    }
  }
  return fail(errc::corruption, "conversation row of an unknown kind");
}

expected<void> scan_conv_rows(
    const store& s, std::map<protocol::conv_id, conv_rows>& out,
    const std::function<void(std::string_view key, conv_row kind, byte_view value)>& each) {
  scan_error se;
  COWPI_TRY_VOID(s.scan(column::conv, "", "", [&](std::string_view key, byte_view v) {
    auto conv = keys::conv_of(key);
    if (!conv || key.size() < 17)
      return se.set(error{errc::corruption, "conversation row key"});
    auto r = absorb_conv_row(after_conv(key), v, out[*conv]);
    if (!r)
      return se.set(r.error());
    if (each)
      each(key, static_cast<conv_row>(static_cast<uint8_t>(key[16])), v);
    return true;
  }));
  return se.result();
}

peer_row make_peer_row(const protocol::conv_state& st, const std::string& id,
                       const peer_extras& x) {
  peer_row p;
  if (auto a = st.aseq_last.find(id); a != st.aseq_last.end())
    p.aseq = a->second;
  if (auto f = st.receipt_floor.find(id); f != st.receipt_floor.end())
    p.floor = f->second;
  if (x.last_ordered != nullptr)
    if (auto l = x.last_ordered->find(id); l != x.last_ordered->end())
      p.last_ordered = l->second;
  if (x.last_update_time != nullptr)
    if (auto l = x.last_update_time->find(id); l != x.last_update_time->end())
      p.last_update_time = l->second;
  if (x.ratchet_next != nullptr)
    if (auto l = x.ratchet_next->find(id); l != x.ratchet_next->end())
      p.ratchet_next = l->second;
  if (x.member_lr != nullptr)
    if (auto l = x.member_lr->find(id); l != x.member_lr->end())
      p.member_lr = l->second;
  return p;
}

namespace {
template <class Map>
void collect_ids(std::set<std::string>& ids, const Map* m) {
  if (m == nullptr)
    return;
  for (const auto& kv : *m)
    ids.insert(kv.first);
}
}  // namespace

void add_state_rows(row_image& image, const protocol::conv_state& st, const peer_extras& x) {
  image.put(column::conv, keys::conv_row_key(st.conv, conv_row::ms), encode_members(st.ms));
  image.put(column::conv, keys::conv_row_key(st.conv, conv_row::members),
            encode_members(st.members));
  if (st.version != protocol::protocol_version)
    image.put(column::conv, keys::conv_row_key(st.conv, conv_row::version), encode_u64(st.version));
  std::set<std::string> ids;
  collect_ids(ids, &st.aseq_last);
  collect_ids(ids, &st.receipt_floor);
  collect_ids(ids, x.last_ordered);
  collect_ids(ids, x.last_update_time);
  collect_ids(ids, x.ratchet_next);
  collect_ids(ids, x.member_lr);
  for (const auto& id : ids)
    image.put(column::conv, keys::conv_peer(st.conv, id),
              encode_peer_row(make_peer_row(st, id, x)));
}

std::vector<row_cache::key_type> state_ranges(const protocol::conv_id& conv) {
  return {{column::conv, keys::conv_row_key(conv, conv_row::ms)},
          {column::conv, keys::conv_row_key(conv, conv_row::members)},
          {column::conv, keys::conv_row_key(conv, conv_row::peer)},
          {column::conv, keys::conv_row_key(conv, conv_row::version)}};
}

void assemble_state(const protocol::conv_id& conv, conv_rows& rows, protocol::conv_state& st) {
  st.conv = conv;
  if (rows.ms)
    st.ms = std::move(*rows.ms);
  if (rows.members)
    st.members = std::move(*rows.members);
  st.version = rows.version ? static_cast<uint8_t>(*rows.version) : protocol::protocol_version;
  for (const auto& [id, p] : rows.peers) {
    if (p.aseq)
      st.aseq_last[id] = *p.aseq;
    if (p.floor)
      st.receipt_floor[id] = *p.floor;
  }
  st.t = std::move(rows.t);
}

// ---------------------------------------------------------------------------------------------
// Key store rows.

namespace {

void fp_key(byte_writer& w, const protocol::owned_key& k) {
  w.raw(k.pub).be64(k.created);
}

void fp_chan(byte_writer& w, const protocol::channel_ref& c) {
  w.raw(c.conv).lp(c.peer);
}

template <class Opt, class F>
void fp_opt(byte_writer& w, const Opt& o, F&& f) {
  w.u8(o ? 1 : 0);
  if (o)
    f(*o);
}

}  // namespace

hash32 fingerprint(const protocol::channel& ch) {
  byte_writer w(256);
  w.be32(static_cast<uint32_t>(ch.mine.size()));
  for (const auto& [id, k] : ch.mine) {
    w.be64(id);
    fp_key(w, k);
  }
  w.be64(ch.announced).u8(ch.announced_referenced ? 1 : 0);
  fp_opt(w, ch.peer_latest, [&](const auto& p) { w.be64(p.id).raw(p.pub); });
  fp_opt(w, ch.first_contact,
         [&](const auto& f) { w.u8(static_cast<uint8_t>(f.kind)).be64(f.id).raw(f.pub); });
  fp_opt(w, ch.peer_used_prekey, [&](uint64_t v) { w.be64(v); });
  fp_opt(w, ch.peer_used_last_resort, [&](uint64_t v) { w.be64(v); });
  // Chain state: positions determine the keys, so no secret enters the fingerprint.
  const protocol::chain_sender& o = ch.out;
  w.be32(o.last_epoch).u8(static_cast<uint8_t>(o.referenced_kind)).be64(o.referenced_id);
  w.be64(o.started_at).be64(o.step_aseq).u8(o.void_reported ? 1 : 0).be32(o.acked_next);
  fp_opt(w, o.chain,
         [&](const auto& c) { w.be32(c.epoch()).be32(c.next()).u8(c.usable() ? 1 : 0); });
  w.be32(static_cast<uint32_t>(o.pending.size()));
  for (const auto& p : o.pending)
    w.be64(p.aseq).raw(p.d).be32(p.chain.epoch()).be32(p.chain.next());
  fp_opt(w, ch.in, [&](const auto& c) {
    w.be32(c.epoch).be32(c.next).be32(static_cast<uint32_t>(c.skipped.size()));
    for (const auto& kv : c.skipped)
      w.be32(kv.first);
  });
  w.be32(ch.received_since_announce).be32(ch.broken_epoch);
  return crypto::sha256(w.data());
}

hash32 fingerprint(const protocol::prekey_slot& s) {
  byte_writer w(128);
  fp_key(w, s.key);
  fp_opt(w, s.bound, [&](const auto& c) { fp_chan(w, c); });
  return crypto::sha256(w.data());
}

hash32 fingerprint(const protocol::last_resort_slot& s) {
  byte_writer w(128);
  fp_key(w, s.key);
  w.be64(s.retired_at).be32(static_cast<uint32_t>(s.pending.size()));
  for (const auto& c : s.pending)
    fp_chan(w, c);
  return crypto::sha256(w.data());
}

hash32 fingerprint(const protocol::outbox_entry& e) {
  // The plaintext of an aseq never changes; every rebuild is a new version with its own D.
  byte_writer w(128);
  w.be64(e.id).be64(e.aseq).u8(static_cast<uint8_t>(e.type));
  protocol::enc_list(w, e.adds);
  w.be32(static_cast<uint32_t>(e.removes.size()));
  for (const auto& r : e.removes)
    w.lp(r);
  w.be32(static_cast<uint32_t>(e.versions.size()));
  for (const auto& v : e.versions)
    w.raw(v.d);
  fp_opt(w, e.stale_after, [&](uint64_t v) { w.be64(v); });
  return crypto::sha256(w.data());
}

hash32 fingerprint(const std::vector<protocol::orphan_version>& o) {
  // A version's plaintext never changes: (aseq, D) names it.
  byte_writer w(64);
  w.be32(static_cast<uint32_t>(o.size()));
  for (const auto& v : o)
    w.be64(v.aseq).raw(v.d).be64(v.entry_id);
  return crypto::sha256(w.data());
}

expected<secure_bytes> open_row(const sealer& s, column c, std::string_view key, byte_view sealed) {
  auto plain = s.open(c, key, sealed);
  if (plain)
    return plain;
  const std::string where = "a sealed row in column '" + std::string(column_name(c)) + "'";
  if (plain.error().code == errc::decrypt_failed)
    return fail(errc::corruption,
                where
                    + " does not open under this store's key, which did open the store's key "
                      "check: the row was damaged, or moved from another row or column");
  return fail(plain.error().code, where + ": " + plain.error().context);
}

void add_key_rows(row_image& image, const protocol::key_store& k) {
  image.put(column::keys, keys::key_counters(),
            encode_counters(key_counters{k.next_prekey_id(), k.next_last_resort_id(),
                                         k.current_last_resort_id()}));
  for (const auto& [id, slot] : k.prekeys())
    image.put_sealed(column::keys, keys::key_prekey(id), fingerprint(slot),
                     [&s = slot] { return encode_prekey_slot(s); });
  for (const auto& [id, slot] : k.last_resort())
    image.put_sealed(column::keys, keys::key_last_resort(id), fingerprint(slot),
                     [&s = slot] { return encode_last_resort_slot(s); });
}

std::vector<row_cache::key_type> key_ranges() {
  return {{column::keys, keys::key_prefix(key_row::counters)},
          {column::keys, keys::key_prefix(key_row::prekey)},
          {column::keys, keys::key_prefix(key_row::last_resort)}};
}

void sync_published(row_cache& cache, const protocol::key_store& k, write_batch& out) {
  // Published keys are kept forever and only added; one ordered range per kind.
  for (auto kind :
       {protocol::key_kind::prekey, protocol::key_kind::last_resort, protocol::key_kind::ratchet}) {
    std::map<uint64_t, public_key> of_kind;
    auto it = k.published().lower_bound({kind, 0});
    for (; it != k.published().end() && it->first.first == kind; ++it)
      of_kind.emplace(it->first.second, it->second);
    std::string prefix = keys::key_prefix(key_row::published);
    prefix.push_back(static_cast<char>(kind));
    cache.sync_ordered(
        column::keys, prefix, of_kind, [](const public_key& p) { return encode_pub(p); }, out);
  }
  // Used PREKEYs, likewise kept forever and only added (mostly at the top: ids are used about
  // in the order they were handed out).
  cache.sync_ordered(
      column::keys, keys::key_prefix(key_row::used_prekey), k.used_prekeys(),
      [](const protocol::channel_ref& c) { return encode_channel_ref(c); }, out);
}

expected<void> load_keys(const store& s, const sealer& sl, row_cache& cache,
                         protocol::key_store& out) {
  std::optional<error> err;
  key_counters counters;
  auto note_err = [&](error e) {
    err = std::move(e);
    return false;
  };
  COWPI_TRY_VOID(s.scan(column::keys, "", "", [&](std::string_view key, byte_view value) -> bool {
    if (key.empty())
      return note_err(error{errc::corruption, "empty key-store key"});
    const auto kind = static_cast<key_row>(static_cast<uint8_t>(key[0]));
    switch (kind) {
      case key_row::counters: {
        auto c = decode_counters(value);
        if (!c)
          return note_err(c.error());
        counters = *c;
        cache.note(column::keys, std::string(key), value);
        return true;
      }
      case key_row::prekey:
      case key_row::last_resort: {
        auto id = keys::be64_at(key, 1);
        if (!id || key.size() != 9)
          return note_err(error{errc::corruption, "key slot id"});
        auto plain = open_row(sl, column::keys, key, value);
        if (!plain)
          return note_err(plain.error());
        if (kind == key_row::prekey) {
          auto slot = decode_prekey_slot(plain->view());
          if (!slot)
            return note_err(slot.error());
          cache.note_sealed(column::keys, std::string(key), fingerprint(*slot));
          out.mutable_prekeys().emplace(*id, std::move(*slot));
        } else {
          auto slot = decode_last_resort_slot(plain->view());
          if (!slot)
            return note_err(slot.error());
          cache.note_sealed(column::keys, std::string(key), fingerprint(*slot));
          out.mutable_last_resort().emplace(*id, std::move(*slot));
        }
        return true;
      }
      case key_row::published: {
        auto id = keys::be64_at(key, 2);
        if (!id || key.size() != 10 || static_cast<uint8_t>(key[1]) < 1
            || static_cast<uint8_t>(key[1]) > 3)
          return note_err(error{errc::corruption, "published key id"});
        auto pub = decode_pub(value);
        if (!pub)
          return note_err(pub.error());
        out.mutable_published()[{static_cast<protocol::key_kind>(static_cast<uint8_t>(key[1])),
                                 *id}] = *pub;
        cache.note_ordered(column::keys, std::string(key));
        return true;
      }
      case key_row::used_prekey: {
        auto id = keys::be64_at(key, 1);
        if (!id || key.size() != 9)
          return note_err(error{errc::corruption, "used pre-key id"});
        auto chan = decode_channel_ref(value);
        if (!chan)
          return note_err(chan.error());
        out.restore_used_prekey(*id, std::move(*chan));
        cache.note_ordered(column::keys, std::string(key));
        return true;
      }
      case key_row::identity:
        return true;  // the client store reads it itself
    }
    return note_err(error{errc::corruption, "key-store row of an unknown kind"});
  }));
  if (err)
    return unexpected{std::move(*err)};
  out.restore_counters(counters.next_prekey, counters.next_last_resort,
                       counters.current_last_resort);
  return {};
}

}  // namespace cowpi::storage::detail

// SPDX-License-Identifier: Apache-2.0
// The client store: sealed identity, key store, channels, outbox and transcript; conversation
// records split in rows; every operation's changes and accepted entries in one synced batch.
#include "cowpi/storage/client_store.hpp"

#include "detail/open_sealed.hpp"
#include "detail/rows.hpp"
#include "detail/scan_error.hpp"

#include <map>

namespace cowpi::storage {

using protocol::conv_id;

namespace {

using detail::scan_error;

}  // namespace

expected<std::unique_ptr<client_store>> client_store::open(const std::filesystem::path& path,
                                                           const key_source& key, crypto::rng& r,
                                                           const open_options& o) {
  return detail::open_sealed<client_store>(path, role::client, key, r, o);
}

client_store::client_store(std::unique_ptr<store> s, sealer sl, crypto::rng& r)
    : s_(std::move(s)),
      sealer_(std::move(sl)),
      rng_(r),
      cache_(std::make_unique<detail::row_cache>()) {
  COWPI_ASSERT(s_ && s_->kind() == role::client);
}

client_store::~client_store() = default;

expected<bool> client_store::has_identity() const {
  COWPI_TRY(auto raw, s_->get(column::keys, keys::key_identity()));
  return raw.has_value();
}

bytes client_store::identity_row(const protocol::client& c) const {
  identity_record rec;
  rec.id = c.self().id();
  rec.lpk = c.self().lpk();
  const crypto::secret<32> lsk = c.self().export_secret();
  rec.sealed_lsk = sealer_.seal(column::keys, keys::key_identity(), encode_lsk(lsk).view(), rng_);
  rec.pinned_ms = c.pinned_ms();
  return encode_identity_record(rec);
}

expected<void> client_store::create(const protocol::client& c) {
  std::unique_lock<std::mutex> g(mu_);
  COWPI_TRY(bool exists, has_identity());
  if (exists)
    return fail(errc::already_exists, "the store already holds a client identity");
  protocol::client_changes ch;
  ch.identity = true;
  ch.keys = true;
  for (const auto& [conv, cc] : c.convs())
    ch.convs.insert(conv);
  for (const auto& [conv, t] : c.tombstones())
    ch.removed_convs.insert(conv);
  return persist_locked(c, ch, {}, g);
}

expected<protocol::client> client_store::load(protocol::client_options opts) {
  std::lock_guard<std::mutex> g(mu_);
  COWPI_TRY(auto raw_id, s_->get(column::keys, keys::key_identity()));
  if (!raw_id)
    return fail(errc::not_found, "the store holds no client identity");
  COWPI_TRY(identity_record rec, decode_identity_record(*raw_id));
  COWPI_TRY(secure_bytes lsk_plain,
            detail::open_row(sealer_, column::keys, keys::key_identity(), rec.sealed_lsk));
  COWPI_TRY(crypto::secret<32> lsk, decode_lsk(lsk_plain.view()));
  auto self = protocol::identity::from_secret(rec.id, lsk);
  if (self.lpk() != rec.lpk)
    return fail(errc::corruption, "the identity key does not match its lpk");
  protocol::client c(std::move(self), rec.pinned_ms, opts);

  auto cache = std::make_unique<detail::row_cache>();
  COWPI_TRY_VOID(detail::load_keys(*s_, sealer_, *cache, c.mutable_keys()));

  std::map<conv_id, detail::conv_rows> rows;
  COWPI_TRY_VOID(
      detail::scan_conv_rows(*s_, rows, [&](std::string_view key, conv_row kind, byte_view v) {
        if (kind == conv_row::t || kind == conv_row::d_recent) {
          cache->note_ordered(column::conv, std::string(key));
        } else if (kind != conv_row::orphans) {  // noted once opened, by fingerprint
          cache->note(column::conv, std::string(key), v);
        }
      }));

  auto& convs = c.mutable_convs();
  std::set<conv_id> known;
  for (auto& [conv, cr] : rows) {
    if (!cr.header)
      return fail(errc::corruption, "a conversation without its header row");
    COWPI_TRY(client_header h, decode_client_header(*cr.header));
    protocol::client_conv cc;
    cc.st.last_update = h.last_update;
    cc.st.next = h.next;
    cc.st.joiner = h.joiner;
    cc.status = h.status;
    cc.halt_index = h.halt_index;
    cc.last_foreign = h.last_foreign;
    cc.own_parent = h.own_parent;
    cc.last_receipt_time = h.last_receipt_time;
    cc.next_outbox_id = h.next_outbox_id;
    if (cr.sets) {
      cc.voids_pending = std::move(cr.sets->voids_pending);
      cc.alarmed = std::move(cr.sets->alarmed);
    }
    if (cr.orphans_sealed) {
      const std::string key = keys::conv_row_key(conv, conv_row::orphans);
      COWPI_TRY(secure_bytes plain,
                detail::open_row(sealer_, column::conv, key, *cr.orphans_sealed));
      COWPI_TRY(cc.orphans, decode_orphans(plain.view()));
      cache->note_sealed(column::conv, key, detail::fingerprint(cc.orphans));
    }
    for (const auto& [id, p] : cr.peers)
      if (p.ratchet_next)
        cc.ratchet_next[id] = *p.ratchet_next;
    cc.d_recent = std::move(cr.d_recent);
    detail::assemble_state(conv, cr, cc.st);
    convs.emplace(conv, std::move(cc));
    known.insert(conv);
  }

  COWPI_TRY_VOID(detail::load_channels(*s_, sealer_, *cache, convs));

  // Key order is entry-id order, which is the outbox's order (ids grow as entries are made).
  scan_error se;
  COWPI_TRY_VOID(s_->scan(column::outbox, "", "", [&](std::string_view key, byte_view v) {
    auto conv = keys::conv_of(key);
    if (!conv || key.size() != 24)
      return se.set(error{errc::corruption, "outbox row key"});
    auto it = convs.find(*conv);
    if (it == convs.end())
      return se.set(error{errc::corruption, "an outbox entry without its conversation"});
    auto plain = detail::open_row(sealer_, column::outbox, key, v);
    if (!plain)
      return se.set(plain.error());
    auto e = decode_outbox_entry(plain->view());
    if (!e)
      return se.set(e.error());
    cache->note_sealed(column::outbox, std::string(key), detail::fingerprint(*e));
    it->second.outbox.push_back(std::move(*e));
    return true;
  }));
  COWPI_TRY_VOID(se.result());

  std::set<conv_id> tombs;
  COWPI_TRY_VOID(s_->scan(column::tombstones, "", "", [&](std::string_view key, byte_view v) {
    auto conv = keys::conv_of(key);
    if (!conv || key.size() != 16)
      return se.set(error{errc::corruption, "tombstone key"});
    auto t = decode_tombstone(v);
    if (!t)
      return se.set(t.error());
    c.mutable_tombstones().emplace(*conv, std::move(*t));
    cache->note(column::tombstones, std::string(key), v);
    tombs.insert(*conv);
    return true;
  }));
  COWPI_TRY_VOID(se.result());

  cache_ = std::move(cache);
  known_convs_ = std::move(known);
  known_tombstones_ = std::move(tombs);
  return c;
}

void client_store::write_conv(const protocol::client_conv& cc, write_batch& b) {
  const conv_id& conv = cc.st.conv;
  detail::row_image img;
  img.put(column::conv, keys::conv_row_key(conv, conv_row::header),
          encode_client_header(client_header{cc.st.last_update, cc.st.next, cc.st.joiner, cc.status,
                                             cc.halt_index, cc.last_foreign, cc.own_parent,
                                             cc.last_receipt_time, cc.next_outbox_id}));
  img.put(column::conv, keys::conv_row_key(conv, conv_row::sets),
          encode_client_sets(client_sets{cc.voids_pending, cc.alarmed}));
  if (!cc.orphans.empty())
    img.put_sealed(column::conv, keys::conv_row_key(conv, conv_row::orphans),
                   detail::fingerprint(cc.orphans),
                   [&o = cc.orphans] { return encode_orphans(o); });
  detail::add_state_rows(img, cc.st,
                         detail::peer_extras{nullptr, nullptr, &cc.ratchet_next, nullptr});
  for (const auto& [peer, ch] : cc.channels)
    img.put_sealed(column::channels, keys::channel(conv, peer), detail::fingerprint(ch),
                   [&c = ch] { return encode_channel(c); });
  for (const auto& e : cc.outbox)
    img.put_sealed(column::outbox, keys::indexed(conv, e.id), detail::fingerprint(e),
                   [&x = e] { return encode_outbox_entry(x); });
  auto ranges = detail::state_ranges(conv);
  ranges.emplace_back(column::conv, keys::conv_row_key(conv, conv_row::header));
  ranges.emplace_back(column::conv, keys::conv_row_key(conv, conv_row::sets));
  ranges.emplace_back(column::conv, keys::conv_row_key(conv, conv_row::orphans));
  ranges.emplace_back(column::channels, keys::conv_prefix(conv));
  ranges.emplace_back(column::outbox, keys::conv_prefix(conv));
  cache_->sync(ranges, std::move(img), &sealer_, rng_, b);
  cache_->sync_ordered(
      column::conv, keys::conv_row_key(conv, conv_row::t), cc.st.t,
      [](const hash32& h) { return encode_hash(h); }, b);
  cache_->sync_ordered(
      column::conv, keys::conv_row_key(conv, conv_row::d_recent), cc.d_recent,
      [](const hash32& h) { return encode_hash(h); }, b);
  known_convs_.insert(conv);
}

void client_store::write_tombstone(const protocol::client& c, const conv_id& conv, write_batch& b) {
  detail::row_image img;
  auto t = c.tombstones().find(conv);
  if (t != c.tombstones().end()) {
    img.put(column::tombstones, keys::tombstone(conv), encode_tombstone(t->second));
    known_tombstones_.insert(conv);
  } else {
    known_tombstones_.erase(conv);
  }
  cache_->sync({{column::tombstones, keys::tombstone(conv)}}, std::move(img), nullptr, rng_, b);
}

expected<void> client_store::persist(const protocol::client& c,
                                     const protocol::client_changes& changes,
                                     const std::vector<protocol::accepted_entry>& accepted) {
  std::unique_lock<std::mutex> g(mu_);
  return persist_locked(c, changes, accepted, g);
}

expected<void> client_store::persist_all(const protocol::client& c,
                                         const std::vector<protocol::accepted_entry>& accepted) {
  std::unique_lock<std::mutex> g(mu_);
  protocol::client_changes ch;
  ch.keys = true;
  for (const auto& [conv, cc] : c.convs())
    ch.convs.insert(conv);
  for (const auto& conv : known_convs_)
    ch.removed_convs.insert(conv);
  for (const auto& conv : known_tombstones_)
    ch.removed_convs.insert(conv);
  for (const auto& [conv, t] : c.tombstones())
    ch.removed_convs.insert(conv);
  return persist_locked(c, ch, accepted, g);
}

expected<void> client_store::persist_locked(const protocol::client& c,
                                            const protocol::client_changes& ch,
                                            const std::vector<protocol::accepted_entry>& accepted,
                                            std::unique_lock<std::mutex>& g) {
  const sealer::batch key_open(sealer_);  // one unprotect for every row sealed below
  write_batch b;
  if (ch.identity)
    b.put(column::keys, keys::key_identity(), identity_row(c));
  std::set<conv_id> affected = ch.convs;
  affected.insert(ch.removed_convs.begin(), ch.removed_convs.end());
  for (const auto& conv : affected) {
    const protocol::client_conv* cc = c.find(conv);
    if (cc != nullptr) {
      write_conv(*cc, b);
    } else if (known_convs_.contains(conv)) {
      // Gone (removed, or replaced after someone else's SETUP took its id): wipe its
      // secrets; its transcript and D history stay.
      const std::string p = keys::conv_prefix(conv);
      const std::string end = keys::prefix_end(p);
      for (column col : {column::conv, column::channels, column::outbox}) {
        b.del_range(col, p, end);
        cache_->forget(col, p);
      }
      known_convs_.erase(conv);
    }
    write_tombstone(c, conv, b);
  }
  if (ch.keys) {
    detail::row_image img;
    detail::add_key_rows(img, c.keys());
    cache_->sync(detail::key_ranges(), std::move(img), &sealer_, rng_, b);
    detail::sync_published(*cache_, c.keys(), b);
  }
  for (const auto& a : accepted) {
    std::string key = keys::indexed(a.conv, a.index);
    bytes sealed = sealer_.seal(column::transcript, key, encode_accepted(a).view(), rng_);
    b.put(column::transcript, std::move(key), std::move(sealed));
    b.put(column::dhist, keys::indexed(a.conv, a.index), encode_hash(a.d));
  }
  g.unlock();
  if (b.empty())
    return {};
  return s_->apply(std::move(b));
}

std::optional<hash32> client_store::d_at(const conv_id& conv, uint64_t i) const {
  auto raw = s_->get(column::dhist, keys::indexed(conv, i));
  if (!raw || !*raw)
    return std::nullopt;
  auto h = decode_hash(**raw);
  if (!h)
    return std::nullopt;
  return *h;
}

expected<std::vector<protocol::accepted_entry>> client_store::transcript(const conv_id& conv,
                                                                         uint64_t from,
                                                                         uint64_t to) const {
  std::vector<protocol::accepted_entry> out;
  scan_error se;
  const std::string end = to == std::numeric_limits<uint64_t>::max()
                              ? keys::prefix_end(keys::conv_prefix(conv))
                              : keys::indexed(conv, to + 1);
  COWPI_TRY_VOID(s_->scan(column::transcript, keys::indexed(conv, from), end,
                          [&](std::string_view key, byte_view v) {
                            auto i = keys::be64_at(key, 16);
                            if (!i || key.size() != 24)
                              return se.set(error{errc::corruption, "transcript key"});
                            auto plain = detail::open_row(sealer_, column::transcript, key, v);
                            if (!plain)
                              return se.set(plain.error());
                            auto a = decode_accepted(conv, *i, plain->view());
                            if (!a)
                              return se.set(a.error());
                            out.push_back(std::move(*a));
                            return true;
                          }));
  if (se.err)
    return unexpected{std::move(*se.err)};
  return out;
}

}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// Private to storage: the row image and row cache that let the mirror and client stores write
// only the rows an operation changed, and the shared rows of a conversation state.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/state.hpp"
#include "cowpi/storage/keys.hpp"
#include "cowpi/storage/records.hpp"
#include "cowpi/storage/sealer.hpp"
#include "cowpi/storage/store.hpp"

#include "scan_error.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::storage::detail {

/// One row an entity consists of: clear bytes, or a secret record to seal. A secret row is
/// compared by a fingerprint of its public parts (which change whenever the secret parts do:
/// a new key always gets a new id or public key), so an unchanged secret is never re-encoded.
struct row {
  column col = column::meta;
  std::string key;
  bytes clear;
  bool sealed = false;
  hash32 fingerprint{};
  std::function<secure_bytes()> encode_secret;
};

/// The complete set of rows of an entity (a conversation, a key store) as it is in memory.
class row_image {
public:
  void put(column c, std::string key, bytes v) {
    rows_.push_back(row{c, std::move(key), std::move(v), false, {}, {}});
  }
  void put_sealed(column c, std::string key, const hash32& fingerprint,
                  std::function<secure_bytes()> encode) {
    rows_.push_back(row{c, std::move(key), {}, true, fingerprint, std::move(encode)});
  }
  std::vector<row>& rows() noexcept { return rows_; }

private:
  std::vector<row> rows_;
};

/// What the store last wrote (or loaded) under each key it manages through images: the
/// SHA-256 of a clear row, the fingerprint of a sealed one. An operation rebuilds the image of what
/// it touched and `sync` writes exactly the rows whose plaintext changed, seals only those, and
/// deletes rows the image no longer has. The cache runs ahead of the disk between a batch's
/// submission and its sync; a failed write poisons the store (`store::failed`), so it is never
/// reused after one. Not thread-safe: the owning store serialises access.
class row_cache {
public:
  using key_type = std::pair<column, std::string>;

  /// Records a clear row read at load.
  void note(column c, std::string key, byte_view clear);
  /// Records a sealed row read at load, by the fingerprint of what it decoded to.
  void note_sealed(column c, std::string key, const hash32& fingerprint);
  /// Records a row of an ordered map (no digest needed: its values never change).
  void note_ordered(column c, std::string key);

  /// Brings every row under the (column, prefix) `ranges` to `image`: puts new and changed
  /// rows (sealed with `s` and `r` when secret), deletes cached rows the image lacks. Rows of
  /// the image outside every range are compared and put likewise, never deleted.
  void sync(const std::vector<key_type>& ranges, row_image image, const sealer* s, crypto::rng& r,
            write_batch& out);

  /// Brings the rows `prefix || be64(k)` of column `c` to the map `m`, whose values never
  /// change for a key: rows appear at the top and disappear from the bottom (T_j, d_recent,
  /// answers, D), so only the ends are compared unless the counts disagree.
  template <class V, class Encode>
  void sync_ordered(column c, const std::string& prefix, const std::map<uint64_t, V>& m,
                    Encode&& encode, write_batch& out);

  /// Forgets every cached row under (c, prefix) (after a range delete).
  void forget(column c, const std::string& prefix);
  /// Number of cached rows.
  size_t size() const noexcept { return rows_.size(); }

private:
  std::map<key_type, hash32> rows_;
  /// Rows per ordered range, by (column, prefix).
  std::map<key_type, size_t> ordered_count_;
};

/// The rows of one conversation in the `conv` column, decoded.
struct conv_rows {
  std::optional<bytes> header;
  std::optional<protocol::member_list> ms;
  std::optional<protocol::member_list> members;
  std::map<std::string, peer_row> peers;
  std::map<uint64_t, hash32> t;
  std::optional<client_sets> sets;
  std::optional<uint64_t> retention;
  std::map<uint64_t, hash32> d_recent;
  /// Client: the sealed orphans row, opened by the client store.
  std::optional<bytes> orphans_sealed;
  /// C.version of the conversation, when not 1.
  std::optional<uint64_t> version;
};

/// Decodes one row of the `conv` column (the key without its 16-byte conversation prefix) into
/// `out`. Fails with `errc::corruption`.
[[nodiscard]] expected<void> absorb_conv_row(std::string_view key_rest, byte_view value,
                                             conv_rows& out);

/// Reads the whole `conv` column of `s` into `out` (`absorb_conv_row` per row), calling
/// `each(key, kind, value)` for every row once it is decoded (to note it in a row cache).
/// Fails with `errc::corruption` on a row key too short to name a conversation and row kind.
[[nodiscard]] expected<void> scan_conv_rows(
    const store& s, std::map<protocol::conv_id, conv_rows>& out,
    const std::function<void(std::string_view key, conv_row kind, byte_view value)>& each = {});

/// Per-id values besides aseq_last and receipt_floor that a role keeps in the peer rows.
struct peer_extras {
  const std::map<std::string, std::pair<uint64_t, hash32>>* last_ordered = nullptr;
  const std::map<std::string, uint64_t>* last_update_time = nullptr;
  const std::map<std::string, uint64_t>* ratchet_next = nullptr;
  const std::map<std::string, protocol::published_key>* member_lr = nullptr;
};

/// The peer row of `id` from the state's maps and the extras.
peer_row make_peer_row(const protocol::conv_state& st, const std::string& id, const peer_extras& x);
/// Adds the ms, members and every peer row of `st` to `image`.
void add_state_rows(row_image& image, const protocol::conv_state& st, const peer_extras& x);
/// The prefixes (in the conv column) an image from `add_state_rows` covers.
std::vector<row_cache::key_type> state_ranges(const protocol::conv_id& conv);

/// Fills `st` from decoded rows (everything but the header fields, which are role-specific).
void assemble_state(const protocol::conv_id& conv, conv_rows& rows, protocol::conv_state& st);

/// `key[16..]` as a string_view (the part of a conversation-scoped key after the conv id).
inline std::string_view after_conv(std::string_view key) {
  return key.size() < 16 ? std::string_view() : key.substr(16);
}

/// Fingerprints of the public parts of secret records (see `row`).
hash32 fingerprint(const protocol::channel& ch);
hash32 fingerprint(const protocol::prekey_slot& s);
hash32 fingerprint(const protocol::last_resort_slot& s);
hash32 fingerprint(const protocol::outbox_entry& e);
hash32 fingerprint(const std::vector<protocol::orphan_version>& o);

/// Opens the sealed row `key` of column `c` of a store whose key opened its `seal.check` record
/// at unlock: a row that does not open then was damaged or moved from another row or column,
/// and fails with `errc::corruption` naming the column (never the key, which may hold ids).
/// Other failures of `sealer::open` keep their code, with the column added to the context.
[[nodiscard]] expected<secure_bytes> open_row(const sealer& s, column c, std::string_view key,
                                              byte_view sealed);

/// The sealed image rows and the clear ones of a key store.
void add_key_rows(row_image& image, const protocol::key_store& k);
/// The prefixes (in the keys column) `add_key_rows` covers (published keys are ordered rows).
std::vector<row_cache::key_type> key_ranges();
/// Writes the published-key rows of `k` (append-only) through `cache`.
void sync_published(row_cache& cache, const protocol::key_store& k, write_batch& out);
/// Loads a key store from the `keys` column of `s` (noting every row in `cache`).
[[nodiscard]] expected<void> load_keys(const store& s, const sealer& sl, row_cache& cache,
                                       protocol::key_store& out);

/// Loads every row of the `channels` column of `s` into the `channels` map (peer -> channel) of
/// its conversation in `convs`, a map from conversation id to a record with such a map (the
/// client's and the mirror's stores keep channels alike), noting each row in `cache`. A
/// malformed key, a row that does not open or decode, or a channel whose conversation is not
/// in `convs` fails with `errc::corruption` (or the sealer's error).
template <class ConvMap>
[[nodiscard]] expected<void> load_channels(const store& s, const sealer& sl, row_cache& cache,
                                           ConvMap& convs) {
  scan_error se;
  COWPI_TRY_VOID(s.scan(column::channels, "", "", [&](std::string_view key, byte_view v) {
    auto conv = keys::conv_of(key);
    if (!conv || key.size() <= 16)
      return se.set(error{errc::corruption, "channel row key"});
    auto it = convs.find(*conv);
    if (it == convs.end())
      return se.set(error{errc::corruption, "a channel without its conversation"});
    auto plain = open_row(sl, column::channels, key, v);
    if (!plain)
      return se.set(plain.error());
    auto ch = decode_channel(plain->view());
    if (!ch)
      return se.set(ch.error());
    cache.note_sealed(column::channels, std::string(key), fingerprint(*ch));
    it->second.channels.emplace(std::string(after_conv(key)), std::move(*ch));
    return true;
  }));
  return se.result();
}

// -------------------------------------------------------------------------------------------
// Template implementation.

std::string ordered_key(const std::string& prefix, uint64_t k);

template <class V, class Encode>
void row_cache::sync_ordered(column c, const std::string& prefix, const std::map<uint64_t, V>& m,
                             Encode&& encode, write_batch& out) {
  const key_type lo{c, prefix};
  const key_type hi{c, keys::prefix_end(prefix)};
  size_t& count = ordered_count_[lo];
  auto first = rows_.lower_bound(lo);
  auto end = rows_.lower_bound(hi);
  auto k_of = [&](const std::string& key) { return *keys::be64_at(key, prefix.size()); };
  // Bottom: rows below the map's first key (all of them if the map is empty).
  while (first != end && (m.empty() || k_of(first->first.second) < m.begin()->first)) {
    out.del(c, first->first.second);
    first = rows_.erase(first);
    --count;
  }
  // Top: map keys above the last cached row.
  std::optional<uint64_t> top;
  if (first != end)
    top = k_of(std::prev(end)->first.second);
  for (auto it = top ? m.upper_bound(*top) : m.begin(); it != m.end(); ++it) {
    std::string key = ordered_key(prefix, it->first);
    out.put(c, key, encode(it->second));
    rows_.emplace(key_type{c, std::move(key)}, hash32{});
    ++count;
  }
  if (count == m.size())
    return;
  // Something changed in the middle: compare everything.
  std::set<uint64_t> cached;
  for (auto it = rows_.lower_bound(lo); it != rows_.lower_bound(hi);) {
    const uint64_t k = k_of(it->first.second);
    if (!m.contains(k)) {
      out.del(c, it->first.second);
      it = rows_.erase(it);
      continue;
    }
    cached.insert(k);
    ++it;
  }
  for (const auto& [k, v] : m) {
    if (cached.contains(k))
      continue;
    std::string key = ordered_key(prefix, k);
    out.put(c, key, encode(v));
    rows_.emplace(key_type{c, std::move(key)}, hash32{});
  }
  count = m.size();
}

}  // namespace cowpi::storage::detail

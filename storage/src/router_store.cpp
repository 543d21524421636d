// SPDX-License-Identifier: Apache-2.0
// The router store: directory, conversation records, the log stored once and addressable per
// recipient (docs/design.md §5), cursors and low-water-mark retention.
#include "cowpi/storage/router_store.hpp"

#include "detail/log_scan.hpp"
#include "detail/rows.hpp"
#include "detail/scan_error.hpp"
#include "detail/task_thread.hpp"

#include <algorithm>
#include <future>
#include <map>

namespace cowpi::storage {

using protocol::conv_id;
using protocol::log_entry;

namespace {

// The position of `id` in the sorted `slots`, if any.
std::optional<uint32_t> slot_of(const std::vector<std::string>& slots, const std::string& id) {
  auto it = std::lower_bound(slots.begin(), slots.end(), id);
  if (it == slots.end() || *it != id)
    return std::nullopt;
  return static_cast<uint32_t>(it - slots.begin());
}

// Collects the first error of a scan visitor.
using detail::scan_error;

}  // namespace

expected<std::unique_ptr<router_store>> router_store::open(const std::filesystem::path& path,
                                                           const open_options& o) {
  COWPI_TRY(auto s, open_store(path, role::router, o));
  return std::make_unique<router_store>(std::move(s));
}

router_store::router_store(std::unique_ptr<store> s)
    : s_(std::move(s)), reader_(std::make_unique<detail::task_thread>()) {
  COWPI_ASSERT(s_ && s_->kind() == role::router);
}

router_store::~router_store() {
  // The reader thread first: its tasks use the members declared after it.
  reader_.reset();
}

// ---------------------------------------------------------------------------------------------
// Directory.

expected<std::optional<owner_record>> router_store::owner(const std::string& id) const {
  COWPI_TRY(auto raw, s_->get(column::owners, keys::user(id)));
  if (!raw)
    return std::optional<owner_record>{};
  COWPI_TRY(auto o, decode_owner(*raw));
  return std::optional<owner_record>(std::move(o));
}

expected<void> router_store::register_user(const std::string& id, const public_key& lpk,
                                           uint64_t now) {
  std::lock_guard<std::mutex> g(dir_mu_);
  COWPI_TRY(auto existing, owner(id));
  if (existing)
    return fail(errc::already_exists, "the id is taken");
  write_batch b;
  b.put(column::users, keys::user(id), encode_user(user_record{lpk, now}));
  owner_record o;
  o.lpk = lpk;
  b.put(column::owners, keys::user(id), encode_owner(o));
  return s_->apply(std::move(b));
}

expected<void> router_store::register_provider(const std::string& id, const public_key& lpk) {
  std::lock_guard<std::mutex> g(dir_mu_);
  COWPI_TRY(auto user, s_->get(column::users, keys::user(id)));
  if (user)
    return fail(errc::conflict, "a provider id is registered as a user");
  COWPI_TRY(auto existing, owner(id));
  if (existing) {
    if (existing->lpk != lpk)
      return fail(errc::conflict, "a provider id with another key");
    return {};
  }
  owner_record o;
  o.lpk = lpk;
  write_batch b;
  b.put(column::owners, keys::user(id), encode_owner(o));
  return s_->apply(std::move(b));
}

expected<std::optional<user_info>> router_store::find_user(const std::string& id) const {
  COWPI_TRY(auto raw, s_->get(column::users, keys::user(id)));
  if (!raw)
    return std::optional<user_info>{};
  COWPI_TRY(auto u, decode_user(*raw));
  return std::optional<user_info>(user_info{id, u.lpk, u.registered_at});
}

expected<void> router_store::upload_prekeys(const std::string& owner_id,
                                            const protocol::upload_prekeys& up) {
  std::lock_guard<std::mutex> g(dir_mu_);
  COWPI_TRY(auto o, owner(owner_id));
  if (!o)
    return fail(errc::not_found, "unknown directory owner");
  write_batch b;
  for (const auto& k : up.one_time) {
    if (k.id <= o->max_prekey_id)
      continue;  // already uploaded (a retried upload)
    if (o->one_time_remaining >= protocol::max_prekey_pool)
      return fail(errc::too_large, "the pre-key pool is full");
    b.put(column::prekeys, keys::prekey(owner_id, k.id), encode_pub(k.pub));
    ++o->one_time_remaining;
    o->max_prekey_id = k.id;
  }
  if (up.last_resort)
    o->last_resort = up.last_resort;
  b.put(column::owners, keys::user(owner_id), encode_owner(*o));
  return s_->apply(std::move(b));
}

expected<uint64_t> router_store::retire_prekeys(const std::string& owner_id, uint64_t below) {
  std::lock_guard<std::mutex> g(dir_mu_);
  COWPI_TRY(auto o, owner(owner_id));
  if (!o)
    return fail(errc::not_found, "unknown directory owner");
  if (below <= 1)
    return uint64_t{0};  // ids start at 1
  write_batch b;
  uint64_t gone = 0;
  std::optional<error> err;
  COWPI_TRY_VOID(s_->scan(column::prekeys, keys::prekey(owner_id, 1), keys::prekey(owner_id, below),
                          [&](std::string_view key, byte_view) {
                            if (!keys::parse_prekey(key)) {
                              err = error{errc::corruption, "pre-key pool row"};
                              return false;
                            }
                            b.del(column::prekeys, std::string(key));
                            ++gone;
                            return true;
                          }));
  if (err)
    return unexpected{std::move(*err)};
  if (gone == 0)
    return uint64_t{0};
  o->one_time_remaining -= std::min(o->one_time_remaining, gone);
  b.put(column::owners, keys::user(owner_id), encode_owner(*o));
  COWPI_TRY_VOID(s_->apply(std::move(b)));
  return gone;
}

expected<std::vector<protocol::prekey_bundle>> router_store::fetch_prekeys(
    const std::vector<std::string>& owners, const std::function<bool()>& take_one_time) {
  std::lock_guard<std::mutex> g(dir_mu_);
  std::vector<protocol::prekey_bundle> out;
  write_batch b;
  // Owners may repeat: what this call took already is not yet on disk.
  std::map<std::string, std::pair<owner_record, uint64_t /*taken up to*/>> touched;
  for (const auto& id : owners) {
    auto t = touched.find(id);
    if (t == touched.end()) {
      COWPI_TRY(auto o, owner(id));
      if (!o)
        continue;
      t = touched.emplace(id, std::make_pair(std::move(*o), uint64_t{0})).first;
    }
    owner_record& o = t->second.first;
    protocol::prekey_bundle bundle;
    bundle.owner = id;
    bundle.lpk = o.lpk;
    bool got = false;
    if (o.one_time_remaining > 0 && take_one_time()) {
      std::optional<std::pair<uint64_t, public_key>> first;
      std::optional<error> err;
      COWPI_TRY_VOID(s_->scan(column::prekeys, keys::prekey(id, t->second.second + 1),
                              keys::prefix_end(keys::prekey_prefix(id)),
                              [&](std::string_view key, byte_view value) {
                                auto parsed = keys::parse_prekey(key);
                                auto pub = decode_pub(value);
                                if (!parsed || !pub) {
                                  err = error{errc::corruption, "pre-key pool row"};
                                  return false;
                                }
                                first = std::make_pair(parsed->second, *pub);
                                return false;
                              }));
      if (err)
        return unexpected{std::move(*err)};
      if (first) {
        bundle.key = protocol::key_ref{protocol::key_kind::prekey, first->first, first->second};
        b.del(column::prekeys, keys::prekey(id, first->first));
        t->second.second = first->first;
        --o.one_time_remaining;
        got = true;
      } else {
        o.one_time_remaining = 0;  // the count ran ahead of the pool: repair it
      }
    }
    if (!got) {
      if (!o.last_resort)
        continue;
      bundle.key =
          protocol::key_ref{protocol::key_kind::last_resort, o.last_resort->id, o.last_resort->pub};
    }
    out.push_back(std::move(bundle));
  }
  for (const auto& [id, t] : touched)
    b.put(column::owners, keys::user(id), encode_owner(t.first));
  if (!b.empty())
    COWPI_TRY_VOID(s_->apply(std::move(b)));
  return out;
}

expected<protocol::status_result> router_store::directory_status(const std::string& id) const {
  COWPI_TRY(auto o, owner(id));
  if (!o)
    return fail(errc::not_found, "unknown directory owner");
  return protocol::status_result{o->one_time_remaining, o->last_resort ? o->last_resort->id : 0,
                                 o->max_prekey_id};
}

expected<std::optional<protocol::published_key>> router_store::last_resort(
    const std::string& id) const {
  COWPI_TRY(auto o, owner(id));
  if (!o)
    return std::optional<protocol::published_key>{};
  return o->last_resort;
}

// ---------------------------------------------------------------------------------------------
// Conversations and the log.

write_batch router_store::append_batch(const protocol::router_conv& rc, const log_entry& e,
                                       uint64_t now) const {
  const protocol::conv_state* st = rc.state();
  COWPI_ASSERT(st != nullptr && st->next == e.index + 1);
  const conv_id& conv = e.c.conv;
  const uint64_t i = e.index;
  write_batch b;
  // Each message once, addressable per recipient (docs/design.md §5).
  b.put(column::log, keys::indexed(conv, i), encode_log_record(e, now));
  for (const auto& rb : e.blocks) {
    auto slot = slot_of(e.slots, rb.recipient);
    COWPI_ASSERT(slot.has_value());
    b.put(column::blocks, keys::author_block(conv, i, *slot), encode_block_row(rb.blk));
  }
  b.put(column::pending, keys::indexed(conv, i),
        encode_pending(pending_record{e.ambs, e.last_resort}));

  // The conversation record: header, the author's row and T_i for every entry; membership
  // rows only when membership changes.
  b.put(column::conv, keys::conv_row_key(conv, conv_row::header),
        encode_router_header(
            router_header{st->last_update, st->next, st->joiner, rc.stopped(), rc.stop_reason()}));
  const detail::peer_extras x{&rc.last_ordered(), &rc.last_update_time(), nullptr, nullptr};
  const bool membership =
      e.c.type == protocol::msg_type::setup || e.c.type == protocol::msg_type::update;
  if (membership) {
    detail::row_image image;
    detail::add_state_rows(image, *st, x);
    for (auto& r : image.rows())
      b.put(r.col, std::move(r.key), std::move(r.clear));
    // T_j is kept only for j >= last_update (= i): drop the older rows.
    b.del_range(column::conv, keys::conv_indexed(conv, conv_row::t, 0),
                keys::conv_indexed(conv, conv_row::t, st->last_update));
  } else {
    b.put(column::conv, keys::conv_peer(conv, e.c.author),
          encode_peer_row(detail::make_peer_row(*st, e.c.author, x)));
  }
  b.put(column::conv, keys::conv_indexed(conv, conv_row::t, i), encode_hash(e.t));
  return b;
}

expected<void> router_store::append(const protocol::router_conv& rc, const log_entry& e,
                                    uint64_t now) {
  return s_->apply(append_batch(rc, e, now));
}

void router_store::append_async(const protocol::router_conv& rc, const log_entry& e, uint64_t now,
                                store::done_fn done) {
  s_->apply_async(append_batch(rc, e, now), std::move(done));
}

expected<std::optional<bytes>> router_store::get_row(column c, const std::string& key,
                                                     bool* miss) const {
  if (miss == nullptr)
    return s_->get(c, key);
  COWPI_TRY(auto m, s_->get_in_memory(c, key));
  if (!m.in_memory) {
    *miss = true;
    return std::optional<bytes>{};
  }
  return std::move(m.value);
}

void router_store::persist_answers_async(const log_entry& e, const protocol::mirror_answers& a,
                                         store::done_fn done) {
  const conv_id conv = e.c.conv;
  // The caller is an actor thread: the rows the batch reads (joiners' cursors, the log start)
  // come from memory. When one is only on disk, the batch is built on the reader thread, and
  // so is every later batch of the conversation until that one is queued: the conversation's
  // answers reach the writer in order (the router ACKs the mirrors cumulatively behind them).
  auto defer = [this, conv, e, a, done]() mutable {
    reader_->post(
        [this, conv, e = std::move(e), a = std::move(a), done = std::move(done)]() mutable {
          auto queued = queue_answers(e, a, done, nullptr);
          if (!queued)
            done(unexpected{queued.error()});
          std::lock_guard<std::mutex> g(deferred_mu_);
          if (auto it = deferred_answers_.find(conv);
              it != deferred_answers_.end() && --it->second == 0)
            deferred_answers_.erase(it);
        });
  };
  {
    std::lock_guard<std::mutex> g(deferred_mu_);
    if (auto it = deferred_answers_.find(conv); it != deferred_answers_.end()) {
      ++it->second;
      defer();
      return;
    }
  }
  bool miss = false;
  auto queued = queue_answers(e, a, done, &miss);
  if (miss) {
    {
      std::lock_guard<std::mutex> g(deferred_mu_);
      ++deferred_answers_[conv];
    }
    defer();
    return;
  }
  if (!queued)
    done(unexpected{queued.error()});
}

expected<void> router_store::persist_answers(const log_entry& e,
                                             const protocol::mirror_answers& a) {
  std::promise<expected<void>> p;
  auto f = p.get_future();
  persist_answers_async(e, a, [&p](expected<void> r) { p.set_value(std::move(r)); });
  return f.get();
}

expected<void> router_store::queue_answers(const log_entry& e, const protocol::mirror_answers& a,
                                           store::done_fn& done, bool* miss) {
  const conv_id& conv = e.c.conv;
  const uint64_t i = e.index;
  write_batch b;
  for (size_t k = 0; k < a.size(); ++k) {
    COWPI_ASSERT(a[k].has_value() && a[k]->size() == e.slots.size());
    for (size_t s = 0; s < e.slots.size(); ++s)
      b.put(column::mblocks,
            keys::mirror_block(conv, i, static_cast<uint8_t>(k), static_cast<uint32_t>(s)),
            encode_block_row((*a[k])[s]));
  }
  b.del(column::pending, keys::indexed(conv, i));

  // Cursor changes go through the overlay so that concurrent acks see them.
  std::unique_lock<std::recursive_mutex> g(cursor_mu_);
  std::vector<std::string> touched;
  auto current = [&](const std::string& user) -> expected<std::optional<cursor_record>> {
    const std::string key = keys::cursor(user, conv);
    if (auto o = cursor_overlay_.find(key); o != cursor_overlay_.end())
      return std::optional<cursor_record>(o->second.first);
    COWPI_TRY(auto raw, get_row(column::cursors, key, miss));
    if (!raw)
      return std::optional<cursor_record>{};
    COWPI_TRY(auto c, decode_cursor(*raw));
    return std::optional<cursor_record>(c);
  };
  auto set = [&](const std::string& user, const cursor_record& c) {
    const std::string key = keys::cursor(user, conv);
    b.put(column::cursors, key, encode_cursor(c));
    auto& o = cursor_overlay_[key];
    o.first = c;
    ++o.second;
    touched.push_back(key);
  };
  // Read everything first, so that a failed read leaves the overlay untouched.
  uint64_t start = 0;
  if (!e.joiners.empty()) {
    COWPI_TRY(auto raw, get_row(column::conv, keys::conv_row_key(conv, conv_row::retention), miss));
    if (raw) {
      COWPI_TRY(start, decode_u64(*raw));
    }
  }
  std::vector<std::optional<cursor_record>> now;
  for (const auto& u : protocol::cursor_members(e)) {
    COWPI_TRY(auto c, current(u));
    now.push_back(std::move(c));
  }
  const auto updates = protocol::cursor_changes(e, now, start);
  if (miss != nullptr && *miss)
    return {};  // a row is only on disk: nothing changed, the caller reads it elsewhere
  for (const auto& [user, c] : updates)
    set(user, c);
  s_->apply_async(std::move(b), [this, touched, done = std::move(done)](expected<void> r) {
    release_overlay(touched);
    done(std::move(r));
  });
  return {};
}

void router_store::release_overlay(const std::vector<std::string>& keys_done) {
  std::lock_guard<std::recursive_mutex> g(cursor_mu_);
  for (const auto& k : keys_done) {
    auto it = cursor_overlay_.find(k);
    if (it != cursor_overlay_.end() && --it->second.second == 0)
      cursor_overlay_.erase(it);
  }
}

void router_store::persist_stop_async(const protocol::router_conv& rc, store::done_fn done) {
  const protocol::conv_state* st = rc.state();
  if (st == nullptr)
    return done(fail(errc::bad_state, "a conversation never logged cannot stop"));
  write_batch b;
  b.put(column::conv, keys::conv_row_key(st->conv, conv_row::header),
        encode_router_header(
            router_header{st->last_update, st->next, st->joiner, rc.stopped(), rc.stop_reason()}));
  s_->apply_async(std::move(b), std::move(done));
}

expected<void> router_store::persist_stop(const protocol::router_conv& rc) {
  std::promise<expected<void>> p;
  auto f = p.get_future();
  persist_stop_async(rc, [&p](expected<void> r) { p.set_value(std::move(r)); });
  return f.get();
}

void router_store::load_conv_async(const conv_id& conv, protocol::member_list configured_ms,
                                   protocol::intake_limits limits,
                                   std::function<void(loaded_conv)> done) {
  reader_->post([this, conv, ms = std::move(configured_ms), limits, done = std::move(done)] {
    done(std::make_shared<expected<std::optional<protocol::router_conv>>>(
        load_conv(conv, ms, limits)));
  });
}

void router_store::directory_entries_async(std::vector<std::string> ids,
                                           std::function<void(expected<directory_entries>)> done) {
  reader_->post([this, ids = std::move(ids), done = std::move(done)] {
    directory_entries out;
    for (const auto& id : ids) {
      auto user = find_user(id);
      if (!user)
        return done(unexpected<error>{std::move(user).error()});
      if (!*user) {
        out[id] = std::nullopt;
        continue;
      }
      auto k = last_resort(id);
      if (!k)
        return done(unexpected<error>{std::move(k).error()});
      out[id] = protocol::directory_entry{(*user)->lpk, *k};
    }
    done(std::move(out));
  });
}

expected<std::optional<protocol::router_conv>> router_store::load_conv(
    const conv_id& conv, protocol::member_list configured_ms,
    protocol::intake_limits limits) const {
  detail::conv_rows rows;
  scan_error se;
  COWPI_TRY_VOID(s_->scan_prefix(
      column::conv, keys::conv_prefix(conv), [&](std::string_view key, byte_view value) {
        auto r = detail::absorb_conv_row(detail::after_conv(key), value, rows);
        return r ? true : se.set(r.error());
      }));
  COWPI_TRY_VOID(se.result());
  if (!rows.header)
    return std::optional<protocol::router_conv>{};
  COWPI_TRY(router_header h, decode_router_header(*rows.header));
  protocol::conv_state st;
  st.last_update = h.last_update;
  st.next = h.next;
  st.joiner = h.joiner;
  std::map<std::string, std::pair<uint64_t, hash32>> last_ordered;
  std::map<std::string, uint64_t> last_update_time;
  for (const auto& [id, p] : rows.peers) {
    if (p.last_ordered)
      last_ordered[id] = *p.last_ordered;
    if (p.last_update_time)
      last_update_time[id] = *p.last_update_time;
  }
  detail::assemble_state(conv, rows, st);
  protocol::router_conv rc(conv, std::move(configured_ms), limits);
  rc.restore(std::move(st), h.stopped, h.stop_reason, std::move(last_ordered),
             std::move(last_update_time));

  // Entries logged but not answered by every mirror: resend COMMIT for them.
  std::vector<uint64_t> pending;
  COWPI_TRY_VOID(s_->scan_prefix(column::pending, keys::conv_prefix(conv),
                                 [&](std::string_view key, byte_view) {
                                   auto i = keys::be64_at(key, 16);
                                   if (!i || key.size() != 24)
                                     return se.set(error{errc::corruption, "pending row key"});
                                   pending.push_back(*i);
                                   return true;
                                 }));
  COWPI_TRY_VOID(se.result());
  for (uint64_t i : pending) {
    COWPI_TRY(auto se_entry, read_entry(conv, i));
    if (!se_entry)
      return fail(errc::corruption, "a pending row without its log entry");
    rc.resume(std::move(se_entry->entry), {});
  }
  return std::optional<protocol::router_conv>(std::move(rc));
}

expected<std::optional<stored_entry>> router_store::read_entry(const conv_id& conv,
                                                               uint64_t i) const {
  COWPI_TRY(auto raw, s_->get(column::log, keys::indexed(conv, i)));
  if (!raw)
    return std::optional<stored_entry>{};
  COWPI_TRY(log_record rec, decode_log_record(i, *raw));
  stored_entry out;
  out.entry = std::move(rec.entry);
  out.ordered_at = rec.ordered_at;
  log_entry& e = out.entry;
  scan_error se;
  const std::string prefix = keys::indexed(conv, i);
  COWPI_TRY_VOID(s_->scan_prefix(column::blocks, prefix, [&](std::string_view key, byte_view v) {
    auto slot = keys::be32_at(key, 24);
    if (!slot || key.size() != 28 || *slot >= e.slots.size())
      return se.set(error{errc::corruption, "author block key"});
    auto blk = decode_block_row(v);
    if (!blk)
      return se.set(blk.error());
    e.blocks.push_back(protocol::recipient_block{e.slots[*slot], *blk});
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  COWPI_TRY(auto pend, s_->get(column::pending, prefix));
  if (pend) {
    COWPI_TRY(pending_record p, decode_pending(*pend));
    e.ambs = std::move(p.ambs);
    e.last_resort = std::move(p.last_resort);
    return std::optional<stored_entry>(std::move(out));
  }
  out.complete = true;
  COWPI_TRY_VOID(s_->scan_prefix(column::mblocks, prefix, [&](std::string_view key, byte_view v) {
    auto slot = keys::be32_at(key, 25);
    if (key.size() != 29 || !slot || *slot >= e.slots.size())
      return se.set(error{errc::corruption, "mirror block key"});
    const auto k = static_cast<uint8_t>(key[24]);
    if (out.answers.size() <= k)
      out.answers.resize(size_t{k} + 1);
    auto& a = out.answers[k];
    if (!a)
      a.emplace(e.slots.size());
    auto blk = decode_block_row(v);
    if (!blk)
      return se.set(blk.error());
    (*a)[*slot] = *blk;
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  return std::optional<stored_entry>(std::move(out));
}

namespace {

// Reads one row: from the store, or (for readers that must not block) from memory only.
using row_reader = std::function<expected<std::optional<bytes>>(column, std::string_view)>;

// Entry i's envelope for `member` from its log row `raw` (the entry is complete: no pending
// row), reading the member's author block and the mirrors' blocks; nullopt when the member
// holds no slot in it.
expected<std::optional<protocol::envelope>> build_envelope(const row_reader& get,
                                                           const conv_id& conv, uint64_t i,
                                                           const std::string& member,
                                                           size_t mirrors, const bytes& raw) {
  COWPI_TRY(log_record rec, decode_log_record(i, raw));
  const log_entry& e = rec.entry;
  auto slot = slot_of(e.slots, member);
  if (!slot)
    return std::optional<protocol::envelope>{};
  protocol::envelope env;
  env.conv = conv;
  env.index = i;
  env.c = e.c;
  env.blocks_root = e.blocks_root;
  if (member != e.c.author) {
    env.body = e.body;
    COWPI_TRY(auto b, get(column::blocks, keys::author_block(conv, i, *slot)));
    if (!b)
      return fail(errc::corruption, "a recipient slot without its author block");
    COWPI_TRY(auto blk, decode_block_row(*b));
    env.block_u = blk;
  }
  for (size_t k = 0; k < mirrors; ++k) {
    COWPI_TRY(auto b,
              get(column::mblocks, keys::mirror_block(conv, i, static_cast<uint8_t>(k), *slot)));
    if (!b)
      return fail(errc::corruption, "a complete entry without a mirror block");
    COWPI_TRY(auto blk, decode_block_row(*b));
    env.mirror_blocks.push_back(blk);
  }
  if (e.c.type == protocol::msg_type::update
      && std::find(e.joiners.begin(), e.joiners.end(), member) != e.joiners.end())
    env.t_prev = e.t_prev;
  return std::optional<protocol::envelope>(std::move(env));
}

// See router_store::envelopes_from.
expected<std::vector<protocol::envelope>> read_envelopes(const row_reader& get, const conv_id& conv,
                                                         const std::string& member, uint64_t from,
                                                         size_t limit) {
  std::vector<protocol::envelope> out;
  COWPI_TRY(auto header, get(column::conv, keys::conv_row_key(conv, conv_row::header)));
  if (!header || limit == 0)
    return out;
  COWPI_TRY(router_header h, decode_router_header(*header));
  if (from >= h.next)
    return out;
  // The mirror set is fixed for the conversation's life: read once, not per entry.
  COWPI_TRY(auto ms, get(column::conv, keys::conv_row_key(conv, conv_row::ms)));
  if (!ms)
    return out;
  COWPI_TRY(auto ms_list, decode_members(*ms));
  for (uint64_t i = from; i < h.next && out.size() < limit; ++i) {
    COWPI_TRY(auto raw, get(column::log, keys::indexed(conv, i)));
    if (!raw)
      break;
    COWPI_TRY(auto pend, get(column::pending, keys::indexed(conv, i)));
    if (pend)
      break;
    COWPI_TRY(auto env, build_envelope(get, conv, i, member, ms_list.size(), *raw));
    if (env)
      out.push_back(std::move(*env));
  }
  return out;
}

}  // namespace

expected<std::optional<protocol::envelope>> router_store::envelope_for(
    const conv_id& conv, uint64_t i, const std::string& member) const {
  COWPI_TRY(auto ms, s_->get(column::conv, keys::conv_row_key(conv, conv_row::ms)));
  if (!ms)
    return std::optional<protocol::envelope>{};
  COWPI_TRY(auto ms_list, decode_members(*ms));
  COWPI_TRY(auto raw, s_->get(column::log, keys::indexed(conv, i)));
  if (!raw)
    return std::optional<protocol::envelope>{};
  COWPI_TRY(auto pend, s_->get(column::pending, keys::indexed(conv, i)));
  if (pend)
    return std::optional<protocol::envelope>{};
  return build_envelope([this](column c, std::string_view k) { return s_->get(c, k); }, conv, i,
                        member, ms_list.size(), *raw);
}

expected<std::vector<protocol::envelope>> router_store::envelopes_from(const conv_id& conv,
                                                                       const std::string& member,
                                                                       uint64_t from,
                                                                       size_t limit) const {
  return read_envelopes([this](column c, std::string_view k) { return s_->get(c, k); }, conv,
                        member, from, limit);
}

expected<std::optional<std::vector<protocol::envelope>>> router_store::envelopes_in_memory(
    const conv_id& conv, const std::string& member, uint64_t from, size_t limit) const {
  bool missed = false;
  auto r = read_envelopes(
      [this, &missed](column c, std::string_view k) -> expected<std::optional<bytes>> {
        COWPI_TRY(store::memory_read m, s_->get_in_memory(c, k));
        if (!m.in_memory) {
          missed = true;
          return fail(errc::unavailable, "not in memory");
        }
        return std::move(m.value);
      },
      conv, member, from, limit);
  if (missed)
    return std::optional<std::vector<protocol::envelope>>{};
  if (!r)
    return unexpected{std::move(r).error()};
  return std::optional<std::vector<protocol::envelope>>(std::move(*r));
}

void router_store::envelopes_from_async(const conv_id& conv, const std::string& member,
                                        uint64_t from, size_t limit, envelopes_fn done) {
  reader_->post([this, conv, member, from, limit, done = std::move(done)] {
    done(envelopes_from(conv, member, from, limit));
  });
}

void router_store::cursors_async(const std::string& user, user_cursors_fn done) {
  reader_->post([this, user, done = std::move(done)] {
    auto cursors = cursors_of(user);
    if (!cursors)
      return done(unexpected<error>{std::move(cursors).error()});
    user_cursors out;
    for (const auto& [conv, c] : *cursors) {
      auto start = log_start(conv);
      if (!start)
        return done(unexpected<error>{std::move(start).error()});
      out.log_starts.push_back(*start);
    }
    out.cursors = std::move(*cursors);
    done(std::move(out));
  });
}

void router_store::cursor_async(const std::string& user, const conv_id& conv,
                                user_cursors_fn done) {
  reader_->post([this, user, conv, done = std::move(done)] {
    auto c = cursor(user, conv);
    if (!c)
      return done(unexpected<error>{std::move(c).error()});
    user_cursors out;
    if (*c) {
      auto start = log_start(conv);
      if (!start)
        return done(unexpected<error>{std::move(start).error()});
      out.cursors.emplace_back(conv, **c);
      out.log_starts.push_back(*start);
    }
    done(std::move(out));
  });
}

expected<bool> router_store::has_users() const {
  bool any = false;
  COWPI_TRY_VOID(s_->scan(column::users, "", "", [&](std::string_view, byte_view) {
    any = true;
    return false;
  }));
  return any;
}

expected<std::vector<conv_id>> router_store::conversations() const {
  std::vector<conv_id> out;
  scan_error se;
  COWPI_TRY_VOID(s_->scan(column::conv, "", "", [&](std::string_view key, byte_view) {
    auto conv = keys::conv_of(key);
    if (!conv || key.size() < 17)
      return se.set(error{errc::corruption, "conversation row key"});
    if (static_cast<conv_row>(static_cast<uint8_t>(key[16])) == conv_row::header)
      out.push_back(*conv);
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  return out;
}

expected<uint64_t> router_store::log_start(const conv_id& conv) const {
  COWPI_TRY(auto raw, s_->get(column::conv, keys::conv_row_key(conv, conv_row::retention)));
  if (!raw)
    return uint64_t{0};
  return decode_u64(*raw);
}

expected<std::optional<uint64_t>> router_store::log_start_in_memory(const conv_id& conv) const {
  bool miss = false;
  COWPI_TRY(auto raw, get_row(column::conv, keys::conv_row_key(conv, conv_row::retention), &miss));
  if (miss)
    return std::optional<uint64_t>{};
  if (!raw)
    return std::optional<uint64_t>{0};
  COWPI_TRY(auto start, decode_u64(*raw));
  return std::optional<uint64_t>{start};
}

void router_store::log_start_async(const conv_id& conv,
                                   std::function<void(expected<uint64_t>)> done) {
  reader_->post([this, conv, done = std::move(done)] { done(log_start(conv)); });
}

expected<uint64_t> router_store::next_index(const conv_id& conv) const {
  COWPI_TRY(auto raw, s_->get(column::conv, keys::conv_row_key(conv, conv_row::header)));
  if (!raw)
    return uint64_t{0};
  COWPI_TRY(router_header h, decode_router_header(*raw));
  return h.next;
}

expected<router_store::audit_rows> router_store::audit_view(const conv_id& conv) const {
  audit_rows out;
  COWPI_TRY(out.next, next_index(conv));
  COWPI_TRY(out.log_start, log_start(conv));
  const std::string prefix = keys::conv_prefix(conv);
  COWPI_TRY_VOID(
      detail::scan_log(*s_, prefix, keys::prefix_end(prefix),
                       [&](uint64_t i, const log_record& rec) { out.d.emplace(i, rec.entry.d); }));
  detail::scan_error se;
  COWPI_TRY_VOID(s_->scan_prefix(column::pending, prefix, [&](std::string_view key, byte_view) {
    auto i = keys::be64_at(key, 16);
    if (!i)
      return se.set(error{errc::corruption, "pending key"});
    out.in_flight.insert(*i);
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cursors.

expected<std::optional<cursor_record>> router_store::cursor(const std::string& user,
                                                            const conv_id& conv) const {
  {
    std::lock_guard<std::recursive_mutex> g(cursor_mu_);
    if (auto o = cursor_overlay_.find(keys::cursor(user, conv)); o != cursor_overlay_.end())
      return std::optional<cursor_record>(o->second.first);
  }
  COWPI_TRY(auto raw, s_->get(column::cursors, keys::cursor(user, conv)));
  if (!raw)
    return std::optional<cursor_record>{};
  COWPI_TRY(auto c, decode_cursor(*raw));
  return std::optional<cursor_record>(c);
}

expected<std::vector<std::pair<conv_id, cursor_record>>> router_store::cursors_of(
    const std::string& user) const {
  std::vector<std::pair<conv_id, cursor_record>> out;
  scan_error se;
  COWPI_TRY_VOID(s_->scan_prefix(column::cursors, keys::cursor_prefix(user),
                                 [&](std::string_view key, byte_view v) {
                                   auto k = keys::parse_cursor(key);
                                   auto c = decode_cursor(v);
                                   if (!k || !c)
                                     return se.set(error{errc::corruption, "cursor"});
                                   out.emplace_back(k->second, *c);
                                   return true;
                                 }));
  COWPI_TRY_VOID(se.result());
  // Writes not yet synced win over what is on disk.
  std::lock_guard<std::recursive_mutex> g(cursor_mu_);
  for (auto& [conv, c] : out)
    if (auto o = cursor_overlay_.find(keys::cursor(user, conv)); o != cursor_overlay_.end())
      c = o->second.first;
  return out;
}

void router_store::ack_async(const std::string& user, const conv_id& conv, uint64_t index,
                             store::done_fn done) {
  queue_ack(user, conv, index, std::move(done), true);
}

void router_store::queue_ack(const std::string& user, const conv_id& conv, uint64_t index,
                             store::done_fn done, bool from_memory) {
  const std::string key = keys::cursor(user, conv);
  std::unique_lock<std::recursive_mutex> g(cursor_mu_);
  bool miss = false;
  // The newest value: queued but unsynced first, else the stored row.
  auto current = [&]() -> expected<cursor_record> {
    if (auto o = cursor_overlay_.find(key); o != cursor_overlay_.end())
      return o->second.first;
    COWPI_TRY(auto raw, get_row(column::cursors, key, from_memory ? &miss : nullptr));
    if (miss)
      return cursor_record{};
    if (!raw)
      return fail(errc::not_found, "the conversation is not in the user's set");
    return decode_cursor(*raw);
  };
  auto found = current();
  if (miss) {
    // The row is only on disk: the reader thread reads it and queues the write. Acks only
    // move a cursor forward, so one overtaking another changes nothing.
    g.unlock();
    reader_->post([this, user, conv, index, done = std::move(done)]() mutable {
      queue_ack(user, conv, index, std::move(done), false);
    });
    return;
  }
  if (!found || index < found->next) {
    g.unlock();
    // A failed read, or a stale or repeated ack (nothing to write).
    done(found ? expected<void>{} : expected<void>{unexpected{found.error()}});
    return;
  }
  cursor_record c = *found;
  c.next = index + 1;
  write_batch b;
  b.put(column::cursors, key, encode_cursor(c));
  // Nothing is acknowledged on a cursor's advance, and a cursor that a power loss set back
  // only repeats deliveries (clients drop indexes they hold); retention's synced deletions
  // sync it first (docs/storage.md §6).
  b.set_lazy();
  auto& o = cursor_overlay_[key];
  o.first = c;
  ++o.second;
  s_->apply_async(std::move(b), [this, key, done = std::move(done)](expected<void> r) mutable {
    release_overlay({key});
    done(std::move(r));
  });
}

expected<void> router_store::ack(const std::string& user, const conv_id& conv, uint64_t index) {
  std::promise<expected<void>> p;
  auto f = p.get_future();
  ack_async(user, conv, index, [&p](expected<void> r) { p.set_value(std::move(r)); });
  return f.get();
}

expected<bool> router_store::history_expired(const std::string& user, const conv_id& conv) const {
  COWPI_TRY(auto c, cursor(user, conv));
  if (!c)
    return false;
  COWPI_TRY(uint64_t start, log_start(conv));
  return c->next < start;
}

// ---------------------------------------------------------------------------------------------
// Retention.

expected<gc_result> router_store::collect(const conv_id& conv, uint64_t now,
                                          uint64_t retention_cap) {
  COWPI_TRY(uint64_t start, log_start(conv));
  std::map<std::string, std::optional<cursor_record>> cursors;
  uint64_t upto = start;
  std::optional<error> err;
  auto deletable = [&](const log_record& rec) -> expected<bool> {
    COWPI_TRY(auto pend, s_->get(column::pending, keys::indexed(conv, rec.entry.index)));
    if (pend)
      return false;  // not yet answered: nobody has it
    if (now >= rec.ordered_at && now - rec.ordered_at >= retention_cap)
      return true;
    for (const auto& s : rec.entry.slots) {
      auto it = cursors.find(s);
      if (it == cursors.end()) {
        COWPI_TRY(auto c, cursor(s, conv));
        it = cursors.emplace(s, c).first;
      }
      if (!it->second || it->second->next <= rec.entry.index)
        return false;
    }
    return true;
  };
  COWPI_TRY_VOID(s_->scan(column::log, keys::indexed(conv, start),
                          keys::prefix_end(keys::conv_prefix(conv)),
                          [&](std::string_view key, byte_view v) {
                            auto i = keys::be64_at(key, 16);
                            if (!i || *i != upto) {
                              err = error{errc::corruption, "a gap in the log"};
                              return false;
                            }
                            auto rec = decode_log_record(*i, v);
                            if (!rec) {
                              err = rec.error();
                              return false;
                            }
                            auto ok = deletable(*rec);
                            if (!ok) {
                              err = ok.error();
                              return false;
                            }
                            if (!*ok)
                              return false;
                            ++upto;
                            return true;
                          }));
  if (err)
    return unexpected{std::move(*err)};
  if (upto == start)
    return gc_result{start, 0};
  write_batch b;
  const std::string lo = keys::indexed(conv, start);
  const std::string hi = keys::indexed(conv, upto);
  b.del_range(column::log, lo, hi);
  b.del_range(column::blocks, lo, hi);
  b.del_range(column::mblocks, lo, hi);
  b.put(column::conv, keys::conv_row_key(conv, conv_row::retention), encode_u64(upto));
  COWPI_TRY_VOID(s_->apply(std::move(b)));
  return gc_result{upto, upto - start};
}

}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// Admin read paths over a secondary or read-only instance: clear rows only, no storage key.
#include "cowpi/storage/admin.hpp"

#include "cowpi/storage/records.hpp"

#include "detail/log_scan.hpp"
#include "detail/rows.hpp"
#include "detail/scan_error.hpp"

#include <map>

namespace cowpi::storage {

using protocol::conv_id;

namespace {

using detail::scan_error;

// Counts the rows of `c` per conversation (keys start with the conv id).
expected<std::map<conv_id, uint64_t>> count_per_conv(const store& s, column c) {
  std::map<conv_id, uint64_t> out;
  COWPI_TRY_VOID(s.scan(c, "", "", [&](std::string_view key, byte_view) {
    if (auto conv = keys::conv_of(key))
      ++out[*conv];
    return true;
  }));
  return out;
}

}  // namespace

expected<std::unique_ptr<admin_reader>> admin_reader::open(const std::filesystem::path& path,
                                                           const open_options& o) {
  COWPI_TRY(auto s, open_existing(path, o));
  return std::make_unique<admin_reader>(std::move(s));
}

expected<void> admin_reader::require(role r) const {
  if (s_->kind() != r)
    return fail(errc::bad_state, "this read needs a " + std::string(to_string(r)) + " store, not a "
                                     + std::string(to_string(s_->kind())));
  return {};
}

expected<std::vector<conv_summary>> admin_reader::conversations() const {
  std::map<conv_id, detail::conv_rows> rows;
  COWPI_TRY_VOID(detail::scan_conv_rows(*s_, rows));
  std::map<conv_id, uint64_t> pending;
  if (s_->kind() == role::router) {
    COWPI_TRY(pending, count_per_conv(*s_, column::pending));
  } else if (s_->kind() == role::mirror) {
    COWPI_TRY(pending, count_per_conv(*s_, column::answers));
  }
  std::vector<conv_summary> out;
  for (auto& [conv, cr] : rows) {
    conv_summary s;
    s.conv = conv;
    if (cr.header) {
      switch (s_->kind()) {
        case role::router: {
          COWPI_TRY(router_header h, decode_router_header(*cr.header));
          s.next = h.next;
          s.last_update = h.last_update;
          s.stopped = h.stopped;
          s.stop_reason = h.stop_reason;
          break;
        }
        case role::mirror: {
          COWPI_TRY(mirror_header h, decode_mirror_header(*cr.header));
          s.next = h.next;
          s.last_update = h.last_update;
          break;
        }
        case role::client: {
          COWPI_TRY(client_header h, decode_client_header(*cr.header));
          s.next = h.next;
          s.last_update = h.last_update;
          break;
        }
      }
    }
    s.members = cr.members ? cr.members->size() : 0;
    s.mirrors = cr.ms ? cr.ms->size() : 0;
    s.log_start = cr.retention.value_or(0);
    if (auto p = pending.find(conv); p != pending.end())
      s.pending = p->second;
    out.push_back(std::move(s));
  }
  return out;
}

expected<std::vector<log_summary>> admin_reader::log_range(const conv_id& conv, uint64_t from,
                                                           uint64_t to) const {
  COWPI_TRY_VOID(require(role::router));
  std::vector<log_summary> out;
  if (to < from)
    return out;
  const std::string end =
      to == UINT64_MAX ? keys::prefix_end(keys::conv_prefix(conv)) : keys::indexed(conv, to + 1);
  COWPI_TRY_VOID(
      detail::scan_log(*s_, keys::indexed(conv, from), end, [&](uint64_t i, const log_record& rec) {
        const auto& e = rec.entry;
        log_summary l;
        l.index = i;
        l.type = e.c.type;
        l.author = e.c.author;
        l.aseq = e.c.aseq;
        l.d = e.d;
        l.t = e.t;
        l.slots = e.slots.size();
        l.body_len = e.c.body_len;
        l.ordered_at = rec.ordered_at;
        out.push_back(std::move(l));
      }));
  for (auto& l : out) {
    COWPI_TRY(auto pend, s_->get(column::pending, keys::indexed(conv, l.index)));
    l.complete = !pend.has_value();
  }
  return out;
}

expected<std::vector<std::pair<uint64_t, hash32>>> admin_reader::d_range(const conv_id& conv,
                                                                         uint64_t from,
                                                                         uint64_t to) const {
  std::vector<std::pair<uint64_t, hash32>> out;
  if (s_->kind() == role::router) {
    COWPI_TRY(auto rows, log_range(conv, from, to));
    for (const auto& l : rows)
      out.emplace_back(l.index, l.d);
    return out;
  }
  if (to < from)
    return out;
  scan_error se;
  const std::string end =
      to == UINT64_MAX ? keys::prefix_end(keys::conv_prefix(conv)) : keys::indexed(conv, to + 1);
  COWPI_TRY_VOID(s_->scan(column::dhist, keys::indexed(conv, from), end,
                          [&](std::string_view key, byte_view v) {
                            auto i = keys::be64_at(key, 16);
                            auto d = decode_hash(v);
                            if (!i || !d)
                              return se.set(error{errc::corruption, "D history row"});
                            out.emplace_back(*i, *d);
                            return true;
                          }));
  COWPI_TRY_VOID(se.result());
  return out;
}

expected<std::vector<queue_depth>> admin_reader::queue_depths() const {
  COWPI_TRY_VOID(require(role::router));
  std::vector<queue_depth> out;
  scan_error se;
  COWPI_TRY_VOID(s_->scan(column::cursors, "", "", [&](std::string_view key, byte_view v) {
    auto k = keys::parse_cursor(key);
    auto c = decode_cursor(v);
    if (!k || !c)
      return se.set(error{errc::corruption, "cursor row"});
    queue_depth q;
    q.user = k->first;
    q.conv = k->second;
    q.cursor = c->next;
    q.last = c->last;
    out.push_back(std::move(q));
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  std::map<conv_id, std::pair<uint64_t, uint64_t>> conv_info;  // next, log start
  for (auto& q : out) {
    auto it = conv_info.find(q.conv);
    if (it == conv_info.end()) {
      uint64_t next = 0;
      uint64_t start = 0;
      COWPI_TRY(auto h, s_->get(column::conv, keys::conv_row_key(q.conv, conv_row::header)));
      if (h) {
        COWPI_TRY(router_header rh, decode_router_header(*h));
        next = rh.next;
      }
      COWPI_TRY(auto r, s_->get(column::conv, keys::conv_row_key(q.conv, conv_row::retention)));
      if (r) {
        COWPI_TRY(start, decode_u64(*r));
      }
      it = conv_info.emplace(q.conv, std::make_pair(next, start)).first;
    }
    const uint64_t end = q.last ? std::min(it->second.first, *q.last + 1) : it->second.first;
    q.depth = end > q.cursor ? end - q.cursor : 0;
    q.expired = q.cursor < it->second.second;
  }
  return out;
}

expected<std::vector<user_summary>> admin_reader::users() const {
  COWPI_TRY_VOID(require(role::router));
  std::vector<user_summary> out;
  scan_error se;
  COWPI_TRY_VOID(s_->scan(column::users, "", "", [&](std::string_view key, byte_view v) {
    auto u = decode_user(v);
    if (!u)
      return se.set(u.error());
    out.push_back(user_summary{std::string(key), u->lpk, u->registered_at});
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  return out;
}

expected<std::vector<pool_level>> admin_reader::prekey_pools() const {
  COWPI_TRY_VOID(require(role::router));
  std::vector<pool_level> out;
  scan_error se;
  COWPI_TRY_VOID(s_->scan(column::owners, "", "", [&](std::string_view key, byte_view v) {
    auto o = decode_owner(v);
    if (!o)
      return se.set(o.error());
    pool_level p;
    p.owner = std::string(key);
    p.one_time_remaining = o->one_time_remaining;
    p.last_resort_id = o->last_resort ? o->last_resort->id : 0;
    p.max_prekey_id = o->max_prekey_id;
    out.push_back(std::move(p));
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  for (auto& p : out) {
    COWPI_TRY(auto u, s_->get(column::users, keys::user(p.owner)));
    p.is_user = u.has_value();
  }
  return out;
}

}  // namespace cowpi::storage

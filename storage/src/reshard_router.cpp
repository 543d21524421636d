// SPDX-License-Identifier: Apache-2.0
// Offline resharding of a router cluster (docs/admin.md, `reshard`): conversations move to their
// owner node, users to their home node, under the new node list.
#include "cowpi/protocol/shard.hpp"
#include "cowpi/storage/reshard.hpp"
#include "cowpi/storage/router_store.hpp"
#include "cowpi/storage/shard_map.hpp"

#include "detail/reshard_lists.hpp"
#include "detail/scan_error.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

namespace cowpi::storage {

using protocol::conv_id;

namespace {

// The columns holding a router conversation's rows keyed `conv || ...`; its members' cursors
// are keyed by user first (`cursors`).
constexpr column conv_columns[] = {column::conv, column::log, column::blocks, column::mblocks,
                                   column::pending};
// Rows per synced batch while copying.
constexpr size_t copy_batch_rows = 4096;

// What one node holds.
struct holdings {
  std::optional<std::vector<std::string>> map;
  std::set<conv_id> convs;
  std::vector<std::string> users;
  /// Cursor keys by conversation.
  std::map<conv_id, std::vector<std::string>> cursors;
};

expected<holdings> read_holdings(router_store& s) {
  holdings h;
  COWPI_TRY(h.map, read_shard_map(s.raw()));
  COWPI_TRY(auto convs, s.conversations());
  h.convs.insert(convs.begin(), convs.end());
  detail::scan_error se;
  COWPI_TRY_VOID(s.raw().scan(column::users, "", "", [&](std::string_view key, byte_view) {
    h.users.emplace_back(key);
    return true;
  }));
  COWPI_TRY_VOID(s.raw().scan(column::cursors, "", "", [&](std::string_view key, byte_view) {
    auto uc = keys::parse_cursor(key);
    if (!uc)
      return se.set(error{errc::corruption, "a cursor key"});
    h.cursors[uc->second].emplace_back(key);
    // A cursor of a conversation whose record is gone still moves with the conversation id.
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  return h;
}

// Copies the rows of `c` with `prefix` (or the single `key` when `exact`) from `from` to `to`,
// in synced batches; returns how many.
expected<uint64_t> copy_rows(store& from, store& to, column c, std::string_view prefix,
                             bool exact = false) {
  uint64_t copied = 0;
  write_batch b;
  detail::scan_error se;
  auto visit = [&](std::string_view key, byte_view v) {
    if (exact && key != prefix)
      return false;
    b.put(c, std::string(key), bytes(v.begin(), v.end()));
    ++copied;
    if (b.size() >= copy_batch_rows)
      if (auto r = to.apply(std::exchange(b, write_batch{})); !r)
        return se.set(std::move(r).error());
    return exact ? false : true;
  };
  if (exact)
    COWPI_TRY_VOID(from.scan(c, prefix, "", visit));
  else
    COWPI_TRY_VOID(from.scan_prefix(c, prefix, visit));
  COWPI_TRY_VOID(se.result());
  if (!b.empty())
    COWPI_TRY_VOID(to.apply(std::move(b)));
  return copied;
}

expected<uint64_t> move_conversation(store& from, store& to, const conv_id& conv,
                                     const std::vector<std::string>& cursor_keys) {
  const std::string prefix = keys::conv_prefix(conv);
  uint64_t rows = 0;
  // The header row (in `conv`) last: the conversation exists on `to` once it is synced.
  for (column c : {column::log, column::blocks, column::mblocks, column::pending, column::conv}) {
    COWPI_TRY(uint64_t n, copy_rows(from, to, c, prefix));
    rows += n;
  }
  for (const auto& k : cursor_keys) {
    COWPI_TRY(uint64_t n, copy_rows(from, to, column::cursors, k, true));
    rows += n;
  }
  write_batch drop;
  for (column c : conv_columns)
    drop.del_range(c, prefix, keys::prefix_end(prefix));
  for (const auto& k : cursor_keys)
    drop.del(column::cursors, k);
  COWPI_TRY_VOID(from.apply(std::move(drop)));
  return rows;
}

expected<uint64_t> move_user(store& from, store& to, const std::string& id) {
  uint64_t rows = 0;
  const std::string key = keys::user(id);
  const std::string pool = keys::prekey_prefix(id);
  COWPI_TRY(uint64_t n, copy_rows(from, to, column::prekeys, pool));
  rows += n;
  COWPI_TRY(n, copy_rows(from, to, column::owners, key, true));
  rows += n;
  COWPI_TRY(n, copy_rows(from, to, column::users, key, true));
  rows += n;
  write_batch drop;
  drop.del(column::users, key);
  drop.del(column::owners, key);
  drop.del_range(column::prekeys, pool, keys::prefix_end(pool));
  COWPI_TRY_VOID(from.apply(std::move(drop)));
  return rows;
}

}  // namespace

expected<router_reshard_report> reshard_router_cluster(
    const std::vector<router_reshard_node>& nodes, bool dry_run) {
  router_reshard_report rep;
  rep.dry_run = dry_run;
  COWPI_TRY(rep.new_nodes, detail::new_node_list(nodes));
  std::vector<holdings> st;
  std::vector<std::optional<std::vector<std::string>>> maps;
  for (const auto& n : nodes) {
    COWPI_TRY(auto h, read_holdings(*n.store));
    maps.push_back(h.map);
    st.push_back(std::move(h));
  }
  COWPI_TRY(rep.old_nodes, detail::old_node_list(rep.new_nodes, maps, rep.new_nodes));

  // The plan. A conversation (or user) held by its owner and another node is one an earlier
  // run copied and did not drop yet: the other copy is moved again (the same rows) and dropped.
  rep.held.assign(nodes.size(), 0);
  rep.homed.assign(nodes.size(), 0);
  std::set<conv_id> all_convs;
  std::set<std::string> all_users;
  for (size_t k = 0; k < nodes.size(); ++k) {
    std::set<conv_id> convs = st[k].convs;
    for (const auto& [conv, keys_of] : st[k].cursors)
      convs.insert(conv);
    for (const auto& conv : convs) {
      all_convs.insert(conv);
      const size_t owner = protocol::conv_owner(rep.new_nodes, conv);
      if (owner != k)
        rep.moves.push_back(
            reshard_move{conv, nodes[k].id, nodes[owner].id, 0, st[owner].convs.contains(conv)});
    }
    for (const auto& u : st[k].users) {
      all_users.insert(u);
      const size_t home = protocol::user_owner(rep.new_nodes, u);
      if (home != k)
        rep.users.emplace_back(u, nodes[k].id, nodes[home].id);
    }
  }
  for (const auto& conv : all_convs)
    ++rep.held[protocol::conv_owner(rep.new_nodes, conv)];
  for (const auto& u : all_users)
    ++rep.homed[protocol::user_owner(rep.new_nodes, u)];
  if (dry_run)
    return rep;

  auto index_of = [&](const std::string& id) {
    return static_cast<size_t>(
        std::find_if(nodes.begin(), nodes.end(),
                     [&](const router_reshard_node& n) { return n.id == id; })
        - nodes.begin());
  };
  for (const auto& mv : rep.moves) {
    const size_t from = index_of(mv.from);
    auto it = st[from].cursors.find(mv.conv);
    static const std::vector<std::string> none;
    COWPI_TRY(uint64_t rows,
              move_conversation(nodes[from].store->raw(), nodes[index_of(mv.to)].store->raw(),
                                mv.conv, it == st[from].cursors.end() ? none : it->second));
    rep.rows_copied += rows;
  }
  for (const auto& [id, from, to] : rep.users) {
    COWPI_TRY(uint64_t rows,
              move_user(nodes[index_of(from)].store->raw(), nodes[index_of(to)].store->raw(), id));
    rep.rows_copied += rows;
  }
  for (const auto& n : nodes)
    COWPI_TRY_VOID(write_shard_map(n.store->raw(), rep.new_nodes));
  return rep;
}

}  // namespace cowpi::storage

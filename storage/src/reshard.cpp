// SPDX-License-Identifier: Apache-2.0
// Offline resharding of a mirror cluster: the row-level moves of mirror_store and the plan that
// drives them.
#include "cowpi/storage/reshard.hpp"

#include "cowpi/protocol/shard.hpp"
#include "cowpi/storage/router_store.hpp"
#include "cowpi/storage/shard_map.hpp"

#include "detail/reshard_lists.hpp"
#include "detail/scan_error.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <variant>

namespace cowpi::storage {

using protocol::conv_id;

namespace {

// The columns holding a mirror conversation's rows, each keyed `conv || ...`. Only `channels`
// is sealed (mirror_store::conv_rows).
constexpr column conv_columns[] = {column::conv, column::channels, column::answers, column::dhist};

}  // namespace

expected<std::vector<conv_id>> mirror_store::held_conversations() const {
  std::vector<conv_id> out;
  detail::scan_error se;
  COWPI_TRY_VOID(s_->scan(column::conv, "", "", [&](std::string_view key, byte_view) {
    auto conv = keys::conv_of(key);
    if (!conv || key.size() < 17)
      return se.set(error{errc::corruption, "a conversation row key"});
    if (key == keys::conv_row_key(*conv, conv_row::header))
      out.push_back(*conv);
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  return out;
}

expected<std::optional<uint64_t>> mirror_store::next_index(const conv_id& conv) const {
  COWPI_TRY(auto raw, s_->get(column::conv, keys::conv_row_key(conv, conv_row::header)));
  if (!raw)
    return std::optional<uint64_t>{};
  COWPI_TRY(mirror_header h, decode_mirror_header(*raw));
  return std::optional<uint64_t>{h.next};
}

expected<std::optional<identity_binding>> mirror_store::bound_identity() const {
  COWPI_TRY(auto raw, s_->get(column::meta, keys::meta_identity()));
  if (!raw)
    return std::optional<identity_binding>{};
  COWPI_TRY(identity_binding b, decode_identity_binding(*raw));
  return std::optional<identity_binding>{std::move(b)};
}

expected<void> mirror_store::bind_identity(const identity_binding& b) {
  COWPI_TRY(auto have, bound_identity());
  if (have)
    return *have == b ? expected<void>{}
                      : fail(errc::bad_state, "the store is bound to another mirror identity");
  write_batch batch;
  batch.put(column::meta, keys::meta_identity(), encode_identity_binding(b));
  return s_->apply(std::move(batch));
}

expected<uint64_t> mirror_store::copy_conversation(const mirror_store& from, const conv_id& conv) {
  const std::string prefix = keys::conv_prefix(conv);
  uint64_t copied = 0;
  // The D history first, in bounded batches: without the header row below, rows of a
  // conversation in `dhist` are not a conversation this store holds.
  write_batch b;
  detail::scan_error se;
  COWPI_TRY_VOID(
      from.s_->scan_prefix(column::dhist, prefix, [&](std::string_view key, byte_view v) {
        b.put(column::dhist, std::string(key), bytes(v.begin(), v.end()));
        ++copied;
        if (b.size() >= copy_batch_rows) {
          if (auto r = s_->apply(std::exchange(b, write_batch{})); !r)
            return se.set(std::move(r).error());
        }
        return true;
      }));
  COWPI_TRY_VOID(se.result());
  if (!b.empty())
    COWPI_TRY_VOID(s_->apply(std::exchange(b, write_batch{})));

  // Then everything else in one batch: the conversation exists here once it is synced.
  const sealer::batch from_open(from.sealer_);
  const sealer::batch key_open(sealer_);
  for (column c : {column::conv, column::channels, column::answers}) {
    COWPI_TRY_VOID(from.s_->scan_prefix(c, prefix, [&](std::string_view key, byte_view v) {
      if (c == column::channels) {
        auto plain = from.sealer_.open(c, key, v);
        if (!plain)
          return se.set(std::move(plain).error());
        b.put(c, std::string(key), sealer_.seal(c, key, plain->view(), rng_));
      } else {
        b.put(c, std::string(key), bytes(v.begin(), v.end()));
      }
      ++copied;
      return true;
    }));
    COWPI_TRY_VOID(se.result());
  }
  COWPI_TRY_VOID(s_->apply(std::move(b)));
  return copied;
}

expected<void> mirror_store::drop_conversation(const conv_id& conv) {
  const std::string prefix = keys::conv_prefix(conv);
  write_batch b;
  for (column c : conv_columns)
    b.del_range(c, prefix, keys::prefix_end(prefix));
  return s_->apply(std::move(b));
}

namespace {

struct node_state {
  std::optional<std::vector<std::string>> map;
  std::optional<identity_binding> identity;
  std::vector<conv_id> held;
};

expected<void> refuse(std::string why) {
  return fail(errc::config, std::move(why) + "; nothing was changed");
}

std::string hex_of(const conv_id& conv) {
  return to_hex(byte_view(conv.data(), conv.size()));
}

// The key of the mirror's own key store a block to it names, if any: a §4.3 block (or the block
// of a DH step) naming a PREKEY or LAST_RESORT key; a RATCHET key and a chain block belong to
// the conversation's channel.
std::optional<protocol::key_ref> key_store_ref(const protocol::slot_block& b) {
  const protocol::block* blk = std::get_if<protocol::block>(&b);
  if (const auto* step = std::get_if<protocol::dh_step>(&b))
    blk = &step->b;
  if (blk == nullptr || blk->ref.kind == protocol::key_kind::ratchet)
    return std::nullopt;
  return blk->ref;
}

// Refuses the plan when the router logged an entry of a conversation that changes node, beyond
// what its old node committed (a SETUP no node committed: from index 0), whose block to the
// mirror names a key of the old node's key store.
expected<void> check_router(const reshard_router& router, const reshard_report& rep,
                            const std::map<conv_id, std::vector<size_t>>& holders,
                            const std::vector<reshard_node>& nodes) {
  COWPI_TRY(auto convs, router.store->conversations());
  for (const auto& conv : convs) {
    // Where the conversation is now, and how far that node committed it.
    std::string from;
    uint64_t committed = 0;
    if (auto h = holders.find(conv); h != holders.end()) {
      from = nodes[h->second.front()].id;
      COWPI_TRY(auto next, nodes[h->second.front()].store->next_index(conv));
      committed = next.value_or(0);
    } else if (!rep.old_nodes.empty()) {
      from = rep.old_nodes[protocol::conv_owner(rep.old_nodes, conv)];
    } else {
      continue;  // no node holds it and no other list was persisted: nothing moves
    }
    if (from == rep.new_nodes[protocol::conv_owner(rep.new_nodes, conv)])
      continue;
    COWPI_TRY(auto rc, router.store->load_conv(conv, router.configured_ms, {}));
    if (!rc || rc->state() == nullptr)
      continue;
    const auto& ms = rc->state()->ms;
    const auto k = std::find_if(ms.begin(), ms.end(),
                                [&](const protocol::member& m) { return m.id == router.mirror; });
    if (k == ms.end())
      continue;  // a conversation of other mirrors
    const auto pos = static_cast<size_t>(k - ms.begin());
    // An entry with every mirror answer persisted was committed by every mirror; the others
    // are the router's in-flight entries, loaded with their blocks to the mirrors.
    for (const auto& [i, e] : rc->in_flight()) {
      if (i < committed || pos >= e.ambs.size())
        continue;
      if (auto ref = key_store_ref(e.ambs[pos]))
        return refuse("conversation " + hex_of(conv) + ": the router logged entry " +
                      std::to_string(i) + ", which " + from +
                      " has not committed, and its block to " + router.mirror + " names " +
                      from + "'s " +
                      (ref->kind == protocol::key_kind::prekey ? "PREKEY " : "LAST_RESORT ") +
                      std::to_string(ref->id) +
                      ", which does not move: start the nodes on the old node list and the "
                      "router until the router has every mirror answer of that conversation "
                      "(cowpi-admin conversations: no entries pending), stop the router, then "
                      "the nodes, and run reshard again");
    }
  }
  return {};
}

}  // namespace

expected<reshard_report> reshard_mirror(const std::vector<reshard_node>& nodes,
                                        const reshard_router* router, bool dry_run) {
  reshard_report rep;
  rep.dry_run = dry_run;
  COWPI_TRY(rep.new_nodes, detail::new_node_list(nodes));

  // What every node holds, and the list and identity it persisted.
  std::vector<node_state> st(nodes.size());
  std::vector<std::optional<std::vector<std::string>>> maps;
  for (size_t k = 0; k < nodes.size(); ++k) {
    COWPI_TRY(st[k].map, read_shard_map(nodes[k].store->raw()));
    COWPI_TRY(st[k].identity, nodes[k].store->bound_identity());
    COWPI_TRY(st[k].held, nodes[k].store->held_conversations());
    maps.push_back(st[k].map);
  }
  COWPI_TRY(rep.old_nodes, detail::old_node_list(rep.new_nodes, maps, rep.new_nodes));
  std::optional<identity_binding> identity;
  for (size_t k = 0; k < nodes.size(); ++k) {
    const auto& s = st[k];
    if (s.identity) {
      if (identity && !(*identity == *s.identity))
        COWPI_TRY_VOID(refuse("node " + nodes[k].id + " belongs to another mirror identity ("
                              + s.identity->id + ") than the others (" + identity->id + ")"));
      identity = s.identity;
    }
  }

  // The plan: every conversation held by a node that does not own it under the new list. A
  // conversation held twice is one an earlier run copied to its owner and did not drop yet.
  std::map<conv_id, std::vector<size_t>> holders;
  for (size_t k = 0; k < nodes.size(); ++k)
    for (const auto& conv : st[k].held)
      holders[conv].push_back(k);
  for (const auto& [conv, at] : holders) {
    const size_t owner = protocol::conv_owner(rep.new_nodes, conv);
    const bool owner_holds = std::find(at.begin(), at.end(), owner) != at.end();
    const std::string hex = hex_of(conv);
    if (at.size() > 2 || (at.size() == 2 && !owner_holds))
      COWPI_TRY_VOID(refuse("conversation " + hex + " is held by " + std::to_string(at.size())
                            + " nodes, not by its owner and at most one other"));
    std::optional<uint64_t> owner_next;
    if (owner_holds) {
      COWPI_TRY(owner_next, nodes[owner].store->next_index(conv));
    }
    for (size_t k : at) {
      if (k == owner)
        continue;
      reshard_move mv{conv, nodes[k].id, nodes[owner].id, 0, owner_holds};
      COWPI_TRY(auto next, nodes[k].store->next_index(conv));
      mv.next = next.value_or(0);
      if (owner_holds && owner_next != next)
        COWPI_TRY_VOID(refuse("conversation " + hex + " is held by " + nodes[k].id + " (length "
                              + std::to_string(mv.next) + ") and by " + nodes[owner].id
                              + " (length " + std::to_string(owner_next.value_or(0)) + ")"));
      rep.moves.push_back(std::move(mv));
    }
  }
  rep.held.assign(nodes.size(), 0);
  for (const auto& [conv, at] : holders)
    ++rep.held[protocol::conv_owner(rep.new_nodes, conv)];
  if (router != nullptr)
    COWPI_TRY_VOID(check_router(*router, rep, holders, nodes));
  if (dry_run)
    return rep;

  // A new node takes the cluster's identity binding, as its first load would.
  if (identity)
    for (size_t k = 0; k < nodes.size(); ++k)
      if (!st[k].identity)
        COWPI_TRY_VOID(nodes[k].store->bind_identity(*identity));
  auto store_of = [&](const std::string& id) {
    return std::find_if(nodes.begin(), nodes.end(),
                        [&](const reshard_node& n) { return n.id == id; })
        ->store;
  };
  for (const auto& mv : rep.moves) {
    if (!mv.resumed) {
      COWPI_TRY(uint64_t rows, store_of(mv.to)->copy_conversation(*store_of(mv.from), mv.conv));
      rep.rows_copied += rows;
    }
    COWPI_TRY_VOID(store_of(mv.from)->drop_conversation(mv.conv));
  }
  for (const auto& n : nodes)
    COWPI_TRY_VOID(write_shard_map(n.store->raw(), rep.new_nodes));
  return rep;
}

}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// The persisted cluster node list (meta `shard.map`).
#include "cowpi/storage/shard_map.hpp"

#include "cowpi/storage/mirror_store.hpp"
#include "cowpi/storage/router_store.hpp"

namespace cowpi::storage {

expected<std::optional<std::vector<std::string>>> read_shard_map(const store& s) {
  COWPI_TRY(auto raw, s.get(column::meta, keys::meta_shard_map()));
  if (!raw)
    return std::optional<std::vector<std::string>>{};
  const std::string text(raw->begin(), raw->end());
  if (text.empty() || text.back() != '\n')
    return fail(errc::corruption, "meta shard.map: not a list of node ids each ended by a newline");
  std::vector<std::string> nodes;
  size_t from = 0;
  while (from < text.size()) {
    const size_t end = text.find('\n', from);
    if (end == from)
      return fail(errc::corruption, "meta shard.map: an empty node id");
    nodes.push_back(text.substr(from, end - from));
    from = end + 1;
  }
  return std::optional<std::vector<std::string>>{std::move(nodes)};
}

expected<void> write_shard_map(store& s, const std::vector<std::string>& nodes) {
  std::string text;
  for (const auto& n : nodes) {
    if (n.empty() || n.find('\n') != std::string::npos)
      return fail(errc::invalid_argument, "a node id is not empty and holds no newline");
    text += n;
    text += '\n';
  }
  write_batch b;
  b.put(column::meta, keys::meta_shard_map(), bytes(text.begin(), text.end()));
  return s.apply(std::move(b));
}

expected<void> check_shard_map(store& s, const std::vector<std::string>& nodes, bool holds_data) {
  COWPI_TRY(auto have, read_shard_map(s));
  if (have && *have == nodes)
    return {};
  if (have && holds_data)
    return fail(errc::config, "the cluster node list differs from the one persisted at first "
                              "start (configured: "
                                  + describe_nodes(nodes) + "; persisted: " + describe_nodes(*have)
                                  + "); resharding a node that holds data is an offline "
                                    "migration (cowpi-admin reshard, docs/admin.md)");
  return write_shard_map(s, nodes);
}

expected<void> router_store::check_shard_map(const std::vector<std::string>& nodes,
                                             bool holds_data) {
  return storage::check_shard_map(*s_, nodes, holds_data);
}

expected<void> mirror_store::check_shard_map(const std::vector<std::string>& nodes,
                                             bool holds_data) {
  return storage::check_shard_map(*s_, nodes, holds_data);
}

std::string describe_nodes(const std::vector<std::string>& nodes) {
  std::string out;
  for (const auto& n : nodes)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace cowpi::storage

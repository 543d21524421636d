// SPDX-License-Identifier: Apache-2.0
// Key builders and parsers for every column family (the layouts are documented in keys.hpp).
#include "cowpi/storage/keys.hpp"

#include "cowpi/protocol/expected.hpp"

#include <array>

namespace cowpi::storage {

std::string_view to_string(role r) noexcept {
  switch (r) {
    case role::router:
      return "router";
    case role::mirror:
      return "mirror";
    case role::client:
      return "client";
  }
  return "unknown";
}

std::string_view column_name(column c) noexcept {
  switch (c) {
    case column::meta:
      return "default";
    case column::users:
      return "users";
    case column::owners:
      return "owners";
    case column::prekeys:
      return "prekeys";
    case column::conv:
      return "conv";
    case column::log:
      return "log";
    case column::blocks:
      return "blocks";
    case column::mblocks:
      return "mblocks";
    case column::pending:
      return "pending";
    case column::cursors:
      return "cursors";
    case column::channels:
      return "channels";
    case column::dhist:
      return "dhist";
    case column::answers:
      return "answers";
    case column::keys:
      return "keys";
    case column::outbox:
      return "outbox";
    case column::transcript:
      return "transcript";
    case column::tombstones:
      return "tombstones";
  }
  return "unknown";
}

namespace {
constexpr std::array all_columns{
    column::meta,       column::users,     column::owners,  column::prekeys, column::conv,
    column::log,        column::blocks,    column::mblocks, column::pending, column::cursors,
    column::channels,   column::dhist,     column::answers, column::keys,    column::outbox,
    column::transcript, column::tombstones};
constexpr std::array router_columns{
    column::meta, column::users,  column::owners,  column::prekeys, column::conv,
    column::log,  column::blocks, column::mblocks, column::pending, column::cursors};
constexpr std::array mirror_columns{column::meta,  column::conv,    column::channels,
                                    column::dhist, column::answers, column::keys};
constexpr std::array client_columns{column::meta,       column::conv,      column::channels,
                                    column::dhist,      column::keys,      column::outbox,
                                    column::transcript, column::tombstones};

void put_be(std::string& s, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i)
    s.push_back(static_cast<char>(static_cast<uint8_t>(v >> (8 * i))));
}

void put_conv(std::string& s, const protocol::conv_id& conv) {
  s.append(reinterpret_cast<const char*>(conv.data()), conv.size());
}

// `u8(len) || id`. Ids are at most 64 bytes (docs/design.md); a longer one is a caller bug.
void put_short(std::string& s, std::string_view id) {
  COWPI_ASSERT(id.size() <= 255);
  s.push_back(static_cast<char>(static_cast<uint8_t>(id.size())));
  s.append(id);
}
}  // namespace

std::optional<column> column_by_name(std::string_view name) noexcept {
  for (column c : all_columns)
    if (column_name(c) == name)
      return c;
  return std::nullopt;
}

std::span<const column> columns_of(role r) noexcept {
  switch (r) {
    case role::router:
      return router_columns;
    case role::mirror:
      return mirror_columns;
    case role::client:
      return client_columns;
  }
  return {};
}

namespace keys {

std::string meta_layout() {
  return "layout";
}
std::string meta_seal_params() {
  return "seal.params";
}
std::string meta_seal_check() {
  return "seal.check";
}
std::string meta_identity() {
  return "identity";
}

std::string meta_shard_map() {
  return "shard.map";
}

std::string conv_prefix(const protocol::conv_id& conv) {
  std::string s;
  put_conv(s, conv);
  return s;
}

std::string conv_row_key(const protocol::conv_id& conv, conv_row kind) {
  std::string s = conv_prefix(conv);
  s.push_back(static_cast<char>(kind));
  return s;
}

std::string conv_peer(const protocol::conv_id& conv, std::string_view id) {
  std::string s = conv_row_key(conv, conv_row::peer);
  s.append(id);
  return s;
}

std::string conv_indexed(const protocol::conv_id& conv, conv_row kind, uint64_t j) {
  std::string s = conv_row_key(conv, kind);
  put_be(s, j, 8);
  return s;
}

std::string indexed(const protocol::conv_id& conv, uint64_t i) {
  std::string s = conv_prefix(conv);
  put_be(s, i, 8);
  return s;
}

std::string author_block(const protocol::conv_id& conv, uint64_t i, uint32_t slot) {
  std::string s = indexed(conv, i);
  put_be(s, slot, 4);
  return s;
}

std::string mirror_block(const protocol::conv_id& conv, uint64_t i, uint8_t mirror, uint32_t slot) {
  std::string s = indexed(conv, i);
  s.push_back(static_cast<char>(mirror));
  put_be(s, slot, 4);
  return s;
}

std::string channel(const protocol::conv_id& conv, std::string_view peer) {
  std::string s = conv_prefix(conv);
  s.append(peer);
  return s;
}

std::string tombstone(const protocol::conv_id& conv) {
  return conv_prefix(conv);
}

std::string user(std::string_view id) {
  return std::string(id);
}

std::string cursor(std::string_view user, const protocol::conv_id& conv) {
  std::string s = cursor_prefix(user);
  put_conv(s, conv);
  return s;
}

std::string cursor_prefix(std::string_view user) {
  std::string s;
  put_short(s, user);
  return s;
}

std::string prekey(std::string_view owner, uint64_t id) {
  std::string s = prekey_prefix(owner);
  put_be(s, id, 8);
  return s;
}

std::string prekey_prefix(std::string_view owner) {
  std::string s;
  put_short(s, owner);
  return s;
}

std::string key_counters() {
  return key_prefix(key_row::counters);
}

std::string key_prekey(uint64_t id) {
  std::string s = key_prefix(key_row::prekey);
  put_be(s, id, 8);
  return s;
}

std::string key_last_resort(uint64_t id) {
  std::string s = key_prefix(key_row::last_resort);
  put_be(s, id, 8);
  return s;
}

std::string key_published(protocol::key_kind kind, uint64_t id) {
  std::string s = key_prefix(key_row::published);
  s.push_back(static_cast<char>(kind));
  put_be(s, id, 8);
  return s;
}

std::string key_prefix(key_row kind) {
  return std::string(1, static_cast<char>(kind));
}

std::string key_identity() {
  return key_prefix(key_row::identity);
}

std::string prefix_end(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(s.back());
    if (last != 0xff) {
      ++last;
      return s;
    }
    s.pop_back();
  }
  return s;
}

std::optional<protocol::conv_id> conv_of(std::string_view key) {
  protocol::conv_id c{};
  if (key.size() < c.size())
    return std::nullopt;
  for (size_t i = 0; i < c.size(); ++i)
    c[i] = static_cast<uint8_t>(key[i]);
  return c;
}

namespace {
std::optional<uint64_t> be_at(std::string_view key, size_t offset, size_t n) {
  if (key.size() < offset + n)
    return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v = (v << 8) | static_cast<uint8_t>(key[offset + i]);
  return v;
}
}  // namespace

std::optional<uint64_t> be64_at(std::string_view key, size_t offset) {
  return be_at(key, offset, 8);
}

std::optional<uint32_t> be32_at(std::string_view key, size_t offset) {
  auto v = be_at(key, offset, 4);
  if (!v)
    return std::nullopt;
  return static_cast<uint32_t>(*v);
}

std::optional<std::pair<std::string, protocol::conv_id>> parse_cursor(std::string_view key) {
  if (key.empty())
    return std::nullopt;
  const size_t len = static_cast<uint8_t>(key[0]);
  if (key.size() != 1 + len + 16)
    return std::nullopt;
  auto conv = conv_of(key.substr(1 + len));
  if (!conv)
    return std::nullopt;
  return std::make_pair(std::string(key.substr(1, len)), *conv);
}

std::optional<std::pair<std::string, uint64_t>> parse_prekey(std::string_view key) {
  if (key.empty())
    return std::nullopt;
  const size_t len = static_cast<uint8_t>(key[0]);
  if (key.size() != 1 + len + 8)
    return std::nullopt;
  auto id = be64_at(key, 1 + len);
  if (!id)
    return std::nullopt;
  return std::make_pair(std::string(key.substr(1, len)), *id);
}

}  // namespace keys
}  // namespace cowpi::storage

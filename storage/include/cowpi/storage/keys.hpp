// SPDX-License-Identifier: Apache-2.0
// Every on-disk key layout of cowpi's RocksDB stores in one place: the layout version, the column
// families of each role, and the builders and parsers of every key (docs/storage.md).
//
// Integers in keys are big-endian, so bytewise key order is numeric order. A key never contains a
// length-prefixed field followed by nothing else: a variable-length id that ends a key is written
// raw (rows of one prefix then sort by id, bytewise, like docs/design.md's id order); one followed
// by more fields is written `u8(len) || id`, which keeps prefixes of different ids disjoint.
#pragma once

#include "cowpi/protocol/types.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cowpi::storage {

/// The layout version this build reads and writes. The `meta` column family's `layout` row
/// records it; `open_store` refuses a store whose version differs (`errc::unsupported_layout`).
/// Bump it for any change an older build must not silently misread.
inline constexpr uint32_t layout_version = 1;

/// Which party a store belongs to; recorded next to the layout version. A store of one role is
/// never opened as another.
enum class role : uint8_t { router = 1, mirror = 2, client = 3 };

/// Returns "router", "mirror" or "client".
std::string_view to_string(role r) noexcept;

/// The column families ("columns") of all roles. A store holds exactly the columns of its role
/// (`columns_of`); the numbers are not stored anywhere, only the names are.
enum class column : uint8_t {
  meta = 0,    // every role: layout record, sealer parameters and check, identity binding
  users,       // router: id -> user_record
  owners,      // router: id -> owner_record (directory entry of a user or a mirror)
  prekeys,     // router: u8(len) || owner || be64(key id) -> pub (the one-time pool)
  conv,        // every role: conversation records, split in rows (conv_row)
  log,         // router: conv || be64(i) -> log entry
  blocks,      // router: conv || be64(i) || be32(slot) -> author block for that slot
  mblocks,     // router: conv || be64(i) || u8(mirror) || be32(slot) -> mirror block
  pending,     // router: conv || be64(i) -> amb_o and LAST_RESORT keys until all answers persist
  cursors,     // router: u8(len) || user || conv -> delivery cursor (and the user's conv set)
  channels,    // mirror, client: conv || peer -> sealed channel
  dhist,       // mirror, client: conv || be64(i) -> D_i, kept forever
  answers,     // mirror: conv || be64(i) -> answer, until the router acknowledges it
  keys,        // mirror, client: key store rows (key_row) and the client's identity
  outbox,      // client: conv || be64(entry id) -> sealed outbox entry
  transcript,  // client: conv || be64(i) -> sealed accepted entry
  tombstones,  // client: conv -> tombstone
};

/// The RocksDB column family name of `c` ("default" for `meta`).
std::string_view column_name(column c) noexcept;
/// Returns the column with that name, if it is one of ours.
std::optional<column> column_by_name(std::string_view name) noexcept;
/// The columns a store of role `r` holds, `meta` first.
std::span<const column> columns_of(role r) noexcept;

/// The rows of one conversation in the `conv` column: `conv || u8(kind) [|| suffix]`.
enum class conv_row : uint8_t {
  header = 1,     // role-specific header (next, last_update, ...)
  ms = 2,         // the mirror set MS
  members = 3,    // the members
  peer = 4,       // || id: aseq_last, receipt_floor and the role's per-id values
  t = 5,          // || be64(j): T_j for j >= last_update
  sets = 6,       // client: VOIDs pending, alarmed indices, orphan versions
  retention = 7,  // router: the first index still held by the log (low-water GC)
  d_recent = 8,   // client: || be64(i): the D window of the duplicate check
  orphans = 9,    // client: sealed orphan versions (they carry plaintext)
  version = 10,   // every role: C.version when not 1 (a chain-mode conversation); absent: 1
};

/// The rows of the `keys` column: `u8(kind) [|| suffix]`.
enum class key_row : uint8_t {
  counters = 1,     // next PREKEY id, next LAST_RESORT id, current LAST_RESORT id
  prekey = 2,       // || be64(id): sealed PREKEY slot
  last_resort = 3,  // || be64(id): sealed LAST_RESORT slot
  published = 4,    // || u8(kind) || be64(id): public key ever published
  identity = 5,     // client: id, lpk, sealed lsk, pinned mirror set
  used_prekey = 6,  // || be64(id): the channel that used a PREKEY since deleted (clear)
};

namespace keys {

// -- meta ------------------------------------------------------------------------------------
/// "layout": the layout record (format, version, role).
std::string meta_layout();
/// "seal.params": the passphrase KDF salt and limits (clients and mirrors with a passphrase).
std::string meta_seal_params();
/// "seal.check": a sealed known value that tells a wrong storage key at open.
std::string meta_seal_check();
/// "identity": the mirror's (id, lpk) this data directory belongs to.
std::string meta_identity();
/// "shard.map": the provider's cluster node list persisted at first start (one id per line).
std::string meta_shard_map();

// -- conversation-scoped keys ----------------------------------------------------------------
/// The 16 bytes of `conv`: the prefix of every row of that conversation in a column.
std::string conv_prefix(const protocol::conv_id& conv);
/// `conv || u8(kind)`: the header, ms, members, sets and retention rows, and the prefix of the
/// peer, t and d_recent rows.
std::string conv_row_key(const protocol::conv_id& conv, conv_row kind);
/// `conv || 4 || id`.
std::string conv_peer(const protocol::conv_id& conv, std::string_view id);
/// `conv || kind || be64(j)` for kind t or d_recent.
std::string conv_indexed(const protocol::conv_id& conv, conv_row kind, uint64_t j);
/// `conv || be64(i)`: log, pending, dhist, answers, transcript (i = index) and outbox (i = the
/// entry's stable id).
std::string indexed(const protocol::conv_id& conv, uint64_t i);
/// `conv || be64(i) || be32(slot)`.
std::string author_block(const protocol::conv_id& conv, uint64_t i, uint32_t slot);
/// `conv || be64(i) || u8(mirror) || be32(slot)`; `mirror` is the position in MS.
std::string mirror_block(const protocol::conv_id& conv, uint64_t i, uint8_t mirror, uint32_t slot);
/// `conv || peer`.
std::string channel(const protocol::conv_id& conv, std::string_view peer);
/// `conv`.
std::string tombstone(const protocol::conv_id& conv);

// -- user-scoped keys ------------------------------------------------------------------------
/// `id` (users and owners columns).
std::string user(std::string_view id);
/// `u8(len) || user || conv`.
std::string cursor(std::string_view user, const protocol::conv_id& conv);
/// `u8(len) || user`: the prefix of every cursor of `user`.
std::string cursor_prefix(std::string_view user);
/// `u8(len) || owner || be64(id)`.
std::string prekey(std::string_view owner, uint64_t id);
/// `u8(len) || owner`.
std::string prekey_prefix(std::string_view owner);

// -- key store -------------------------------------------------------------------------------
std::string key_counters();
std::string key_prekey(uint64_t id);
std::string key_last_resort(uint64_t id);
std::string key_published(protocol::key_kind kind, uint64_t id);
/// `u8(kind)`: the prefix of every row of that kind.
std::string key_prefix(key_row kind);
std::string key_identity();

// -- parsing and ranges ----------------------------------------------------------------------
/// The smallest key greater than every key starting with `prefix` (for an exclusive upper
/// bound), or "" when there is none (`prefix` empty or all 0xff).
std::string prefix_end(std::string_view prefix);
/// The conversation id a conversation-scoped key starts with.
std::optional<protocol::conv_id> conv_of(std::string_view key);
/// Reads the big-endian u64 at `offset`, if the key is long enough.
std::optional<uint64_t> be64_at(std::string_view key, size_t offset);
/// Reads the big-endian u32 at `offset`, if the key is long enough.
std::optional<uint32_t> be32_at(std::string_view key, size_t offset);
/// Splits a cursor key into (user, conv).
std::optional<std::pair<std::string, protocol::conv_id>> parse_cursor(std::string_view key);
/// Splits a pre-key pool key into (owner, id).
std::optional<std::pair<std::string, uint64_t>> parse_prekey(std::string_view key);

}  // namespace keys
}  // namespace cowpi::storage

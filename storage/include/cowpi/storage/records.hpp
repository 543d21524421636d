// SPDX-License-Identifier: Apache-2.0
// The byte encodings of every stored record (docs/storage.md; pinned by tests/vectors).
//
// Two serialisations only: fixed layouts of a few integers, hashes and blocks are written with
// `byte_writer` and start with the format byte `record_format`; variable-shape records are
// Cap'n Proto structs of the storage-private schema (storage/schema/records.capnp), which evolve
// by appending fields. Where the protocol has a canonical encoding it is reused: member lists
// are `enc_list`, blocks `enc(block)`, C and SUBMIT their wire encodings.
//
// Decoders take bytes read from disk: they never throw or abort, and fail with
// `errc::corruption` (context: the record kind) on anything malformed, or
// `errc::unsupported_layout` for a fixed-layout record with an unknown format byte.
// Records holding secrets are encoded into `secure_bytes` and stored only sealed.
#pragma once

#include "cowpi/protocol/channel.hpp"
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/events.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/protocol/state.hpp"
#include "cowpi/storage/keys.hpp"
#include "cowpi/storage/secure_bytes.hpp"

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::storage {

using crypto::public_key;

/// The first byte of every fixed-layout record (and of a sealed blob).
inline constexpr uint8_t record_format = 1;

// ---------------------------------------------------------------------------------------------
// Fixed layouts (byte_writer).

/// meta "layout": `u8(1) || be32(version) || u8(role)`.
struct layout_record {
  uint32_t version = layout_version;
  role r = role::router;
  friend bool operator==(const layout_record&, const layout_record&) = default;
};
bytes encode_layout(const layout_record& l);
/// Fails with `errc::unsupported_layout` for a record this build cannot read at all.
[[nodiscard]] expected<layout_record> decode_layout(byte_view b);

/// T_j, D_i and d_recent rows: `u8(1) || hash[32]`.
bytes encode_hash(const hash32& h);
[[nodiscard]] expected<hash32> decode_hash(byte_view b);

/// The router's retention row (first index the log still holds): `u8(1) || be64(v)`.
bytes encode_u64(uint64_t v);
[[nodiscard]] expected<uint64_t> decode_u64(byte_view b);

/// Author and mirror block rows: `u8(1) || enc(slot)` (186 bytes for a §4.3 block).
bytes encode_block_row(const protocol::slot_block& b);
[[nodiscard]] expected<protocol::slot_block> decode_block_row(byte_view b);

/// Pre-key pool and published-key rows: `u8(1) || pub[32]`.
bytes encode_pub(const public_key& pub);
/// A used PREKEY's channel (key_row::used_prekey): a ChannelRef Cap'n Proto record.
bytes encode_channel_ref(const protocol::channel_ref& c);
[[nodiscard]] expected<protocol::channel_ref> decode_channel_ref(byte_view b);
[[nodiscard]] expected<public_key> decode_pub(byte_view b);

/// users: `u8(1) || lpk[32] || be64(registered_at)`.
struct user_record {
  public_key lpk{};
  uint64_t registered_at = 0;
  friend bool operator==(const user_record&, const user_record&) = default;
};
bytes encode_user(const user_record& u);
[[nodiscard]] expected<user_record> decode_user(byte_view b);

/// owners (a directory entry, user or mirror): `u8(1) || lpk[32] || be64(one_time_remaining)
/// || be64(max_prekey_id) || u8(has LAST_RESORT) || be64(lr id) || lr pub[32]`.
struct owner_record {
  public_key lpk{};
  uint64_t one_time_remaining = 0;
  /// Highest one-time id ever uploaded (0: none).
  uint64_t max_prekey_id = 0;
  std::optional<protocol::published_key> last_resort;
  friend bool operator==(const owner_record&, const owner_record&) = default;
};
bytes encode_owner(const owner_record& o);
[[nodiscard]] expected<owner_record> decode_owner(byte_view b);

/// cursors: `u8(1) || be64(next) || u8(has last) || be64(last)`. `next` is the first index the
/// user has not acknowledged; `last`, once set, the last index it holds a slot in (it was removed
/// there).
using cursor_record = protocol::delivery_cursor;
bytes encode_cursor(const cursor_record& c);
[[nodiscard]] expected<cursor_record> decode_cursor(byte_view b);

/// ms and members rows: `u8(1) || enc_list(L)` (docs/design.md §3.10). REQUIRES: sorted.
bytes encode_members(const protocol::member_list& l);
[[nodiscard]] expected<protocol::member_list> decode_members(byte_view b);

/// answers: `u8(1) || T_i[32] || be32(#blocks) || enc(block)...` (index in the key).
bytes encode_answer(const protocol::answer& a);
[[nodiscard]] expected<protocol::answer> decode_answer(uint64_t index, byte_view b);

/// keys "counters": `u8(1) || be64(next prekey id) || be64(next lr id) || be64(current lr id)`.
struct key_counters {
  uint64_t next_prekey = 1;
  uint64_t next_last_resort = 1;
  uint64_t current_last_resort = 0;
  friend bool operator==(const key_counters&, const key_counters&) = default;
};
bytes encode_counters(const key_counters& k);
[[nodiscard]] expected<key_counters> decode_counters(byte_view b);

/// meta "seal.params": `u8(1) || salt[16] || be64(opslimit) || be64(memlimit)` (argon2id).
struct seal_params {
  byte_array<16> salt{};
  uint64_t opslimit = 0;
  uint64_t memlimit = 0;
  friend bool operator==(const seal_params&, const seal_params&) = default;
};
bytes encode_seal_params(const seal_params& p);
[[nodiscard]] expected<seal_params> decode_seal_params(byte_view b);

/// meta "identity" (mirror): `u8(1) || lp(id) || lpk[32]`.
struct identity_binding {
  std::string id;
  public_key lpk{};
  friend bool operator==(const identity_binding&, const identity_binding&) = default;
};
bytes encode_identity_binding(const identity_binding& b);
[[nodiscard]] expected<identity_binding> decode_identity_binding(byte_view b);

// ---------------------------------------------------------------------------------------------
// Cap'n Proto records in the clear.

/// The router's conversation header row.
struct router_header {
  uint64_t last_update = 0;
  uint64_t next = 0;
  bool joiner = false;
  bool stopped = false;
  std::string stop_reason;
  friend bool operator==(const router_header&, const router_header&) = default;
};
bytes encode_router_header(const router_header& h);
[[nodiscard]] expected<router_header> decode_router_header(byte_view b);

/// The mirror's conversation header row.
struct mirror_header {
  uint64_t last_update = 0;
  uint64_t next = 0;
  bool joiner = false;
  friend bool operator==(const mirror_header&, const mirror_header&) = default;
};
bytes encode_mirror_header(const mirror_header& h);
[[nodiscard]] expected<mirror_header> decode_mirror_header(byte_view b);

/// The client's conversation header row.
struct client_header {
  uint64_t last_update = 0;
  uint64_t next = 0;
  bool joiner = false;
  protocol::conv_status status = protocol::conv_status::active;
  uint64_t halt_index = 0;
  int64_t last_foreign = -1;
  int64_t own_parent = -1;
  uint64_t last_receipt_time = 0;
  uint64_t next_outbox_id = 1;
  friend bool operator==(const client_header&, const client_header&) = default;
};
bytes encode_client_header(const client_header& h);
[[nodiscard]] expected<client_header> decode_client_header(byte_view b);

/// The client's small per-conversation sets.
struct client_sets {
  std::set<uint64_t> voids_pending;
  std::set<uint64_t> alarmed;
  friend bool operator==(const client_sets&, const client_sets&) = default;
};
bytes encode_client_sets(const client_sets& s);
[[nodiscard]] expected<client_sets> decode_client_sets(byte_view b);

/// One id's row: its entries in every per-member map of the conversation record.
struct peer_row {
  std::optional<protocol::aseq_value> aseq;
  std::optional<protocol::floor_value> floor;
  std::optional<std::pair<uint64_t, hash32>> last_ordered;
  std::optional<uint64_t> last_update_time;
  std::optional<uint64_t> ratchet_next;
  std::optional<protocol::published_key> member_lr;
  friend bool operator==(const peer_row&, const peer_row&) = default;
};
bytes encode_peer_row(const peer_row& p);
[[nodiscard]] expected<peer_row> decode_peer_row(byte_view b);

/// The router's log row at (conv, i): the entry without its author blocks (own rows), amb_o
/// and LAST_RESORT attachments (the pending row).
struct log_record {
  protocol::log_entry entry;
  uint64_t ordered_at = 0;
};
bytes encode_log_record(const protocol::log_entry& e, uint64_t ordered_at);
[[nodiscard]] expected<log_record> decode_log_record(uint64_t index, byte_view b);

/// What a log entry keeps until every mirror's COMMIT answer is persisted.
struct pending_record {
  std::vector<protocol::slot_block> ambs;
  std::vector<protocol::last_resort_attachment> last_resort;
  friend bool operator==(const pending_record&, const pending_record&) = default;
};
bytes encode_pending(const pending_record& p);
[[nodiscard]] expected<pending_record> decode_pending(byte_view b);

bytes encode_tombstone(const protocol::client_tombstone& t);
[[nodiscard]] expected<protocol::client_tombstone> decode_tombstone(byte_view b);

/// The client's identity row: the public parts in the clear, `lsk` sealed.
struct identity_record {
  std::string id;
  public_key lpk{};
  bytes sealed_lsk;
  protocol::member_list pinned_ms;
  friend bool operator==(const identity_record&, const identity_record&) = default;
};
bytes encode_identity_record(const identity_record& r);
[[nodiscard]] expected<identity_record> decode_identity_record(byte_view b);

// ---------------------------------------------------------------------------------------------
// Cap'n Proto records holding secrets: their plaintext lives in guarded memory and is stored
// only sealed. `decode_*` read such a plaintext (after `sealer::open`).

secure_bytes encode_channel(const protocol::channel& ch);
[[nodiscard]] expected<protocol::channel> decode_channel(byte_view b);

secure_bytes encode_prekey_slot(const protocol::prekey_slot& s);
[[nodiscard]] expected<protocol::prekey_slot> decode_prekey_slot(byte_view b);

secure_bytes encode_last_resort_slot(const protocol::last_resort_slot& s);
[[nodiscard]] expected<protocol::last_resort_slot> decode_last_resort_slot(byte_view b);

/// The client's orphan versions (their plaintexts make the row secret).
secure_bytes encode_orphans(const std::vector<protocol::orphan_version>& o);
[[nodiscard]] expected<std::vector<protocol::orphan_version>> decode_orphans(byte_view b);

secure_bytes encode_outbox_entry(const protocol::outbox_entry& e);
[[nodiscard]] expected<protocol::outbox_entry> decode_outbox_entry(byte_view b);

/// The transcript row of one accepted entry (conv and index live in the key).
secure_bytes encode_accepted(const protocol::accepted_entry& a);
[[nodiscard]] expected<protocol::accepted_entry> decode_accepted(const protocol::conv_id& conv,
                                                                 uint64_t index, byte_view b);

/// The plaintext sealed in `identity_record::sealed_lsk`: `u8(1) || lsk[32]`.
secure_bytes encode_lsk(const crypto::secret<32>& lsk);
[[nodiscard]] expected<crypto::secret<32>> decode_lsk(byte_view b);

}  // namespace cowpi::storage

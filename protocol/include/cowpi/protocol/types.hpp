// SPDX-License-Identifier: Apache-2.0
// The plain value types of the conversation protocol (docs/design.md §2-§3): ids,
// members, key references, blocks, the common part C, SUBMIT and ENVELOPE.
#pragma once

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/crypto/primitives.hpp"

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cowpi::protocol {

using crypto::public_key;

/// A conversation id: 16 random bytes, never reused.
using conv_id = byte_array<16>;

/// Returns true iff `id` is a well-formed id: 1-64 bytes of UTF-8 with no
/// overlongs, surrogates or code points above U+10FFFF, and none of the
/// controls and invisible or bidi characters docs/design.md lists.
[[nodiscard]] bool valid_id(std::string_view id) noexcept;

/// An (id, long-term public key) pair; lists of them are sorted by id
/// (bytewise, unsigned) and strictly increasing.
struct member {
  std::string id;
  public_key lpk{};
  friend bool operator==(const member&, const member&) = default;
};
using member_list = std::vector<member>;

/// Returns true iff `l` is strictly increasing by id (no duplicate ids).
[[nodiscard]] bool is_sorted_unique(const member_list& l) noexcept;
/// Returns true iff `l` is strictly increasing (bytewise) with no duplicates.
[[nodiscard]] bool is_sorted_unique(const std::vector<std::string>& l) noexcept;
/// Returns the entry of `l` with `id`, or nullptr. `l` must be sorted.
[[nodiscard]] const member* find_member(const member_list& l, std::string_view id) noexcept;

/// Which receiver key a block names (docs/design.md §2).
enum class key_kind : uint8_t { prekey = 1, last_resort = 2, ratchet = 3 };

/// Returns "prekey", "last_resort" or "ratchet".
std::string_view to_string(key_kind k) noexcept;

/// `ref = (kind, id, pub)`: the receiver key a block was made for. For
/// RATCHET keys `pub` is 32 zero bytes on the wire (the id names it).
struct key_ref {
  key_kind kind = key_kind::prekey;
  uint64_t id = 0;
  public_key pub{};
  friend bool operator==(const key_ref&, const key_ref&) = default;
};

inline constexpr size_t enc_ref_size = 41;
inline constexpr size_t block_plaintext_size = 72;
inline constexpr size_t block_ct_size = block_plaintext_size + crypto::aead_tag_size;  // 88
inline constexpr size_t block_size = 32 + enc_ref_size + 24 + block_ct_size;           // 185

/// A pairwise block `{X_S, ref, nonce, ct}` (docs/design.md §2, `enc(block)` §3.10).
struct block {
  public_key x{};
  key_ref ref;
  byte_array<24> nonce{};
  byte_array<block_ct_size> ct{};
  friend bool operator==(const block&, const block&) = default;
};

/// A chain block (docs/protocol.md §4.8): `be32(e) || be32(n) || ct`, `ct` of 16, 48, 56 or
/// 88 bytes.
struct chain_block {
  uint32_t epoch = 0;
  uint32_t n = 0;
  bytes ct;
  friend bool operator==(const chain_block&, const chain_block&) = default;
};

/// A DH step (docs/protocol.md §4.8): `be32(e) || enc(block)`, a §4.3 block that starts epoch
/// `e` of its channel.
struct dh_step {
  uint32_t epoch = 0;
  block b;
  friend bool operator==(const dh_step&, const dh_step&) = default;
};

/// How a conversation's pairwise blocks are made, fixed by its SETUP (docs/protocol.md §5.2:
/// it is the `version` byte of every C of the conversation).
enum class block_mode : uint8_t {
  /// Every block is a self-contained §4.3 block (185 bytes).
  pk = 1,
  /// DH steps and chain blocks (§4.8).
  chain = 2,
};

/// Returns "public-key" or "chain".
std::string_view to_string(block_mode m) noexcept;

/// One pairwise block slot of an entry (an author block, an author->mirror block or a mirror
/// block): a §4.3 block in a public-key conversation, a DH step or a chain block in a chain
/// one. Its kind follows from its encoded length (185, 189, or 24/56/64/96 bytes).
using slot_block = std::variant<block, dh_step, chain_block>;

/// The mode of a conversation whose C.version is `v` (2: chain; anything else: public-key).
[[nodiscard]] constexpr block_mode mode_of_version(uint8_t v) noexcept {
  return v == 2 ? block_mode::chain : block_mode::pk;
}

/// The mode a slot belongs to.
[[nodiscard]] block_mode mode_of(const slot_block& s) noexcept;
/// The §4.3 block a slot holds (itself, or a DH step's), or nullptr for a chain block.
[[nodiscard]] const block* block_of(const slot_block& s) noexcept;
[[nodiscard]] block* block_of(slot_block& s) noexcept;
/// The AEAD ciphertext (with its tag) a slot carries, whatever its kind.
[[nodiscard]] std::span<uint8_t> ciphertext_of(slot_block& s) noexcept;

/// Message types; the numbers are those of `enc(C)`.
enum class msg_type : uint8_t { setup = 1, message = 2, receipt = 3, update = 4 };

/// Returns "SETUP", "MESSAGE", "RECEIPT" or "UPDATE".
std::string_view to_string(msg_type t) noexcept;

/// The common part C of a conversation message (docs/design.md §3.2). Only the
/// fields of `type` are meaningful; the others stay at their defaults, and
/// `enc(C)` refuses a C where they do not.
struct common {
  uint8_t version = 1;
  conv_id conv{};
  msg_type type = msg_type::message;
  std::string author;
  uint64_t aseq = 0;
  // Every type but SETUP.
  uint64_t parent = 0;
  hash32 parent_hash{};
  // MESSAGE.
  uint64_t body_len = 0;
  hash32 body_hash{};
  hash32 body_commit{};
  // RECEIPT: strictly increasing.
  std::vector<uint64_t> voids;
  // SETUP and UPDATE.
  member_list ms;
  member_list members;
  // UPDATE.
  member_list adds;
  std::vector<std::string> removes;

  friend bool operator==(const common&, const common&) = default;
};

/// One recipient's entry in blocks_root: its id and H(block_R).
struct block_digest {
  std::string recipient;
  hash32 hash{};
  friend bool operator==(const block_digest&, const block_digest&) = default;
};

/// One recipient's author block, as carried in a SUBMIT.
struct recipient_block {
  std::string recipient;
  slot_block blk;
  friend bool operator==(const recipient_block&, const recipient_block&) = default;
};

/// SUBMIT (client -> router): C, the body (MESSAGE only), one block per
/// recipient sorted by id, and one author->mirror block per mirror in MS order.
struct submit_msg {
  common c;
  std::optional<bytes> body;
  std::vector<recipient_block> blocks;
  std::vector<slot_block> ambs;
  /// Set only on a SUBMIT read from the wire in its names-free form (chain mode,
  /// docs/wire.md "The names-free SUBMIT"): `blocks` then carry no recipient ids, in Recipients(C)
  /// order, and this is the blocks_root the author computed over the named blocks. The router names
  /// them
  /// (`router_conv::submit`) and clears it.
  std::optional<hash32> names_free_root;
  friend bool operator==(const submit_msg&, const submit_msg&) = default;
};

/// ENVELOPE (router -> member U) for index `index` (docs/design.md §3.10).
struct envelope {
  conv_id conv{};
  uint64_t index = 0;
  common c;
  /// MESSAGE only; left out of the author's own echo.
  std::optional<bytes> body;
  /// U's author block; absent for the author.
  std::optional<slot_block> block_u;
  hash32 blocks_root{};
  /// One mirror block per entry of MS, in MS order.
  std::vector<slot_block> mirror_blocks;
  /// T_{index-1}; present iff U is added at `index` by an UPDATE.
  std::optional<hash32> t_prev;
  friend bool operator==(const envelope&, const envelope&) = default;
};

}  // namespace cowpi::protocol

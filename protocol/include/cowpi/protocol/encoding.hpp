// SPDX-License-Identifier: Apache-2.0
// The canonical byte encodings every hash depends on (docs/design.md §3.10) and the
// hashes built from them: H_C, blocks_root, D, T_i, the safety number.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/types.hpp"

#include <array>
#include <string>
#include <string_view>

namespace cowpi::protocol {

/// `L(n)`: "cowpi/v1/" + n, as raw ASCII bytes.
std::string label(std::string_view n);

/// Returns `enc(C)`. Fails with `errc::not_canonical` when a list is unsorted
/// or holds a duplicate id, an id is malformed, a field that does not belong
/// to `c.type` is set, or a count exceeds the protocol limits; fails with
/// `errc::unsupported_version` for a version other than 1. Never sorts.
[[nodiscard]] expected<bytes> enc_common(const common& c);

/// `enc_list(L) = be32(#L) || (lp(id) || lpk)...`. REQUIRES: sorted (not checked).
void enc_list(byte_writer& w, const member_list& l);

/// `enc(ref)`: 41 bytes.
std::array<uint8_t, enc_ref_size> enc_ref(const key_ref& r) noexcept;
/// `enc(block)`: 185 bytes.
std::array<uint8_t, block_size> enc_block(const block& b) noexcept;
/// Parses `enc(block)`. Fails with `errc::bad_length` unless exactly 185
/// bytes, `errc::malformed` for an unknown key kind.
[[nodiscard]] expected<block> decode_block(byte_view b) noexcept;
/// `H(block) = SHA-256(enc(block))`.
hash32 block_hash(const block& b) noexcept;

/// `enc(slot)`: `enc(block)` (185 bytes), `enc(DH step)` (189) or `enc(chain block)` (24-96).
bytes enc_slot(const slot_block& s);
/// Parses a slot by its length: 185 bytes is a §4.3 block, 189 a DH step, 24, 56, 64 or 96 a
/// chain block. Fails with `errc::bad_length` for any other length, else as the decoder of
/// that kind.
[[nodiscard]] expected<slot_block> decode_slot(byte_view in);
/// True iff `n` is the length of some slot kind.
[[nodiscard]] bool valid_slot_size(size_t n) noexcept;
/// `H(slot) = SHA-256(enc(slot))` (for a §4.3 block, `block_hash`).
hash32 slot_hash(const slot_block& s) noexcept;
/// `H(slot)`, under the name every caller of `H(block_R)` uses.
inline hash32 block_hash(const slot_block& s) noexcept {
  return slot_hash(s);
}

/// `H_C = H(L("C") || enc(C))`. Fails as `enc_common`.
[[nodiscard]] expected<hash32> hash_common(const common& c);

/// `blocks_root = H(L("blocks") || be32(#R) || (lp(R) || H(block_R))...)`.
/// REQUIRES: `d` sorted by recipient (checked by callers through `validate`).
hash32 blocks_root(const std::vector<block_digest>& d);

/// `D = H(L("D") || H_C || blocks_root)`.
hash32 entry_digest(const hash32& h_c, const hash32& root);

/// `T_i = H(L("T") || conv || be64(i) || T_{i-1} || D_i)`.
hash32 transcript_hash(const conv_id& conv, uint64_t i, const hash32& t_prev, const hash32& d);

/// `T_{-1}`: 32 zero bytes.
inline constexpr hash32 t_genesis{};

/// The safety number `S = H(L("safety") || enc_list(members))`, rendered as
/// three lines of four 5-digit groups (docs/design.md §3.6).
std::string safety_number(const member_list& members);

/// Author block AD: `L("block") || H_C || lp(author) || lp(R)`.
bytes ad_block(const hash32& h_c, std::string_view author, std::string_view recipient);
/// Author->mirror block AD: `L("amb") || H_C || blocks_root || lp(author) || lp(o)`.
bytes ad_amb(const hash32& h_c, const hash32& root, std::string_view author,
             std::string_view mirror);
/// Mirror block AD: `L("mb") || conv || be64(i) || T_i || lp(o) || lp(U) || bind`,
/// where `bind` is blocks_root for the author and H(block_U) for others.
bytes ad_mirror_block(const conv_id& conv, uint64_t i, const hash32& t_i, std::string_view mirror,
                      std::string_view member, const hash32& bind);
/// Body AD: `L("body") || conv || lp(author) || be64(aseq)`.
bytes ad_body(const conv_id& conv, std::string_view author, uint64_t aseq);

/// `body_key = HKDF(k, L("body-key"))`.
crypto::secret<32> body_key(const crypto::secret<32>& seed);
/// `body_commit = HKDF(k, L("body-commit"))` (key commitment).
hash32 body_commit(const crypto::secret<32>& seed);
/// `body = nonce || AEAD(body_key, nonce, pad(plaintext), ad_body)`.
bytes seal_body(const crypto::secret<32>& seed, const conv_id& conv, std::string_view author,
                uint64_t aseq, byte_view plaintext, crypto::rng& r);
/// Opens a body: AEAD then padding. Fails with `errc::bad_length`,
/// `errc::decrypt_failed` or `errc::malformed` (padding).
[[nodiscard]] expected<bytes> open_body(const crypto::secret<32>& seed, const conv_id& conv,
                                        std::string_view author, uint64_t aseq, byte_view body);

/// `pad(p)`: p || 0x80 || 0x00... to the smallest multiple of 256 >= len(p)+1.
bytes pad(byte_view p);
/// Undoes `pad`: strips trailing zeros and one 0x80. Fails with
/// `errc::malformed` if the bytes do not end in 0x80 followed by zeros.
[[nodiscard]] expected<bytes> unpad(byte_view p);

}  // namespace cowpi::protocol

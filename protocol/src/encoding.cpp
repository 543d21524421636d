// SPDX-License-Identifier: Apache-2.0
// Canonical encodings (docs/design.md §3.10) and the hashes over them.
#include "cowpi/protocol/encoding.hpp"

#include "cowpi/protocol/chain.hpp"
#include "cowpi/protocol/limits.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace cowpi::protocol {

std::string label(std::string_view n) {
  std::string s = "cowpi/v1/";
  s += n;
  return s;
}

bool valid_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > max_id_len)
    return false;
  const auto* p = reinterpret_cast<const uint8_t*>(id.data());
  size_t n = id.size();
  size_t i = 0;
  while (i < n) {
    uint32_t cp = 0;
    uint8_t b0 = p[i];
    size_t len = 0;
    if (b0 < 0x80) {
      cp = b0;
      len = 1;
    } else if ((b0 & 0xE0) == 0xC0) {
      cp = b0 & 0x1Fu;
      len = 2;
    } else if ((b0 & 0xF0) == 0xE0) {
      cp = b0 & 0x0Fu;
      len = 3;
    } else if ((b0 & 0xF8) == 0xF0) {
      cp = b0 & 0x07u;
      len = 4;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80)
        return false;
      cp = cp << 6 | (p[i + k] & 0x3Fu);
    }
    // Overlong forms.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
      return false;
    if (cp > 0x10FFFF)
      return false;
    if (cp >= 0xD800 && cp <= 0xDFFF)
      return false;  // surrogates
    // Controls and invisible or bidi formatting characters.
    if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F))
      return false;
    if ((cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E)
        || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF)
      return false;
    i += len;
  }
  return true;
}

namespace {
// Ids compare as unsigned bytes; std::string's char_traits<char>::compare is
// specified to compare as unsigned char, so operator< already does this.
bool id_less(std::string_view a, std::string_view b) noexcept {
  return a < b;
}
}  // namespace

bool is_sorted_unique(const member_list& l) noexcept {
  for (size_t i = 1; i < l.size(); ++i)
    if (!id_less(l[i - 1].id, l[i].id))
      return false;
  return true;
}

bool is_sorted_unique(const std::vector<std::string>& l) noexcept {
  for (size_t i = 1; i < l.size(); ++i)
    if (!id_less(l[i - 1], l[i]))
      return false;
  return true;
}

const member* find_member(const member_list& l, std::string_view id) noexcept {
  auto it = std::lower_bound(l.begin(), l.end(), id,
                             [](const member& m, std::string_view v) { return id_less(m.id, v); });
  if (it != l.end() && it->id == id)
    return &*it;
  return nullptr;
}

std::string_view to_string(key_kind k) noexcept {
  switch (k) {
    case key_kind::prekey:
      return "prekey";
    case key_kind::last_resort:
      return "last_resort";
    case key_kind::ratchet:
      return "ratchet";
  }
  return "unknown";
}

std::string_view to_string(msg_type t) noexcept {
  switch (t) {
    case msg_type::setup:
      return "SETUP";
    case msg_type::message:
      return "MESSAGE";
    case msg_type::receipt:
      return "RECEIPT";
    case msg_type::update:
      return "UPDATE";
  }
  return "UNKNOWN";
}

void enc_list(byte_writer& w, const member_list& l) {
  w.be32(static_cast<uint32_t>(l.size()));
  for (const auto& m : l)
    w.lp(m.id).raw(m.lpk);
}

namespace {

expected<void> check_list(const member_list& l, size_t max, const char* what) {
  if (l.size() > max)
    return fail(errc::not_canonical, std::string(what) + " over limit");
  for (const auto& m : l)
    if (!valid_id(m.id))
      return fail(errc::not_canonical, std::string(what) + ": malformed id");
  if (!is_sorted_unique(l))
    return fail(errc::not_canonical, std::string(what) + " not strictly sorted");
  return {};
}

bool is_zero32(const hash32& h) noexcept {
  return std::all_of(h.begin(), h.end(), [](uint8_t b) { return b == 0; });
}

// Fields that do not belong to c.type must be at their defaults, so that no
// two distinct structs share one enc(C) and thus one H_C.
expected<void> check_shape(const common& c) {
  const bool setup = c.type == msg_type::setup;
  const bool message = c.type == msg_type::message;
  const bool receipt = c.type == msg_type::receipt;
  const bool update = c.type == msg_type::update;
  if (setup && (c.parent != 0 || !is_zero32(c.parent_hash)))
    return fail(errc::not_canonical, "SETUP has a parent");
  if (!message && (c.body_len != 0 || !is_zero32(c.body_hash) || !is_zero32(c.body_commit)))
    return fail(errc::not_canonical, "body fields outside MESSAGE");
  if (!receipt && !c.voids.empty())
    return fail(errc::not_canonical, "voids outside RECEIPT");
  if (!setup && !update && (!c.ms.empty() || !c.members.empty()))
    return fail(errc::not_canonical, "member lists outside SETUP/UPDATE");
  if (!update && (!c.adds.empty() || !c.removes.empty()))
    return fail(errc::not_canonical, "ops outside UPDATE");
  return {};
}

}  // namespace

expected<bytes> enc_common(const common& c) {
  if (c.version != protocol_version && c.version != protocol_version_chain)
    return fail(errc::unsupported_version, "C.version");
  if (c.type < msg_type::setup || c.type > msg_type::update)
    return fail(errc::not_canonical, "unknown type");
  if (!valid_id(c.author))
    return fail(errc::not_canonical, "malformed author id");
  COWPI_TRY_VOID(check_shape(c));
  byte_writer w(256);
  w.u8(c.version).raw(c.conv).u8(static_cast<uint8_t>(c.type)).lp(c.author).be64(c.aseq);
  if (c.type != msg_type::setup)
    w.be64(c.parent).raw(c.parent_hash);
  switch (c.type) {
    case msg_type::message:
      w.be64(c.body_len).raw(c.body_hash).raw(c.body_commit);
      break;
    case msg_type::receipt:
      if (c.voids.size() > max_voids)
        return fail(errc::not_canonical, "voids over limit");
      for (size_t i = 1; i < c.voids.size(); ++i)
        if (c.voids[i - 1] >= c.voids[i])
          return fail(errc::not_canonical, "voids not strictly increasing");
      w.be32(static_cast<uint32_t>(c.voids.size()));
      for (uint64_t v : c.voids)
        w.be64(v);
      break;
    case msg_type::setup:
      COWPI_TRY_VOID(check_list(c.ms, max_mirrors, "MS"));
      COWPI_TRY_VOID(check_list(c.members, max_members, "members"));
      enc_list(w, c.ms);
      enc_list(w, c.members);
      break;
    case msg_type::update:
      COWPI_TRY_VOID(check_list(c.ms, max_mirrors, "MS"));
      COWPI_TRY_VOID(check_list(c.adds, max_ops, "adds"));
      if (c.removes.size() > max_ops)
        return fail(errc::not_canonical, "removes over limit");
      if (c.adds.size() + c.removes.size() > max_ops)
        return fail(errc::not_canonical, "ops over limit");
      for (const auto& r : c.removes)
        if (!valid_id(r))
          return fail(errc::not_canonical, "removes: malformed id");
      if (!is_sorted_unique(c.removes))
        return fail(errc::not_canonical, "removes not strictly sorted");
      COWPI_TRY_VOID(check_list(c.members, max_members, "members"));
      enc_list(w, c.ms);
      enc_list(w, c.adds);
      w.be32(static_cast<uint32_t>(c.removes.size()));
      for (const auto& r : c.removes)
        w.lp(r);
      enc_list(w, c.members);
      break;
  }
  return std::move(w).take();
}

std::array<uint8_t, enc_ref_size> enc_ref(const key_ref& r) noexcept {
  std::array<uint8_t, enc_ref_size> out{};
  out[0] = static_cast<uint8_t>(r.kind);
  for (int i = 0; i < 8; ++i)
    out[1 + static_cast<size_t>(i)] = static_cast<uint8_t>(r.id >> (56 - 8 * i));
  std::copy(r.pub.begin(), r.pub.end(), out.begin() + 9);
  return out;
}

std::array<uint8_t, block_size> enc_block(const block& b) noexcept {
  std::array<uint8_t, block_size> out{};
  auto it = std::copy(b.x.begin(), b.x.end(), out.begin());
  auto r = enc_ref(b.ref);
  it = std::copy(r.begin(), r.end(), it);
  it = std::copy(b.nonce.begin(), b.nonce.end(), it);
  std::copy(b.ct.begin(), b.ct.end(), it);
  return out;
}

expected<block> decode_block(byte_view in) noexcept {
  if (in.size() != block_size)
    return fail(errc::bad_length, "block must be 185 bytes");
  block b;
  byte_reader r(in);
  uint8_t kind = 0;
  (void)r.raw(b.x);
  (void)r.u8(kind);
  if (kind < 1 || kind > 3)
    return fail(errc::malformed, "unknown key kind");
  b.ref.kind = static_cast<key_kind>(kind);
  (void)r.be64(b.ref.id);
  (void)r.raw(b.ref.pub);
  (void)r.raw(b.nonce);
  (void)r.raw(b.ct);
  return b;
}

hash32 block_hash(const block& b) noexcept {
  auto e = enc_block(b);
  return crypto::sha256(e);
}

std::string_view to_string(block_mode m) noexcept {
  return m == block_mode::chain ? "chain" : "public-key";
}

block_mode mode_of(const slot_block& s) noexcept {
  return std::holds_alternative<block>(s) ? block_mode::pk : block_mode::chain;
}

const block* block_of(const slot_block& s) noexcept {
  if (const auto* b = std::get_if<block>(&s))
    return b;
  if (const auto* d = std::get_if<dh_step>(&s))
    return &d->b;
  return nullptr;
}

block* block_of(slot_block& s) noexcept {
  return const_cast<block*>(block_of(std::as_const(s)));
}

std::span<uint8_t> ciphertext_of(slot_block& s) noexcept {
  if (block* b = block_of(s))
    return b->ct;
  auto& c = std::get<chain_block>(s);
  return std::span<uint8_t>(c.ct.data(), c.ct.size());
}

bytes enc_slot(const slot_block& s) {
  if (const auto* b = std::get_if<block>(&s)) {
    auto e = enc_block(*b);
    return bytes(e.begin(), e.end());
  }
  if (const auto* d = std::get_if<dh_step>(&s)) {
    auto e = enc_dh_step(*d);
    return bytes(e.begin(), e.end());
  }
  return enc_chain_block(std::get<chain_block>(s));
}

bool valid_slot_size(size_t n) noexcept {
  return n == block_size || n == dh_step_size || n == chain_header_size + 16
         || n == chain_header_size + 48 || n == chain_header_size + 56
         || n == chain_header_size + 88;
}

expected<slot_block> decode_slot(byte_view in) {
  if (in.size() == block_size) {
    COWPI_TRY(block b, decode_block(in));
    return slot_block{b};
  }
  if (in.size() == dh_step_size) {
    COWPI_TRY(dh_step d, decode_dh_step(in));
    return slot_block{d};
  }
  if (!valid_slot_size(in.size()))
    return fail(errc::bad_length, "a block slot of " + std::to_string(in.size())
                                      + " bytes (185, 189, 24, 56, 64 or 96 expected)");
  COWPI_TRY(chain_block c, decode_chain_block(in));
  return slot_block{std::move(c)};
}

hash32 slot_hash(const slot_block& s) noexcept {
  if (const auto* b = std::get_if<block>(&s))
    return block_hash(*b);
  if (const auto* d = std::get_if<dh_step>(&s)) {
    auto e = enc_dh_step(*d);
    return crypto::sha256(e);
  }
  const auto& c = std::get<chain_block>(s);
  // enc(chain block) is at most 96 bytes: hash it from the stack.
  std::array<uint8_t, chain_header_size + block_ct_size> buf{};
  const size_t len = chain_header_size + c.ct.size();
  if (len > buf.size())
    return crypto::sha256(enc_chain_block(c));
  for (int i = 0; i < 4; ++i) {
    buf[static_cast<size_t>(i)] = static_cast<uint8_t>(c.epoch >> (24 - 8 * i));
    buf[4 + static_cast<size_t>(i)] = static_cast<uint8_t>(c.n >> (24 - 8 * i));
  }
  std::copy(c.ct.begin(), c.ct.end(), buf.begin() + chain_header_size);
  return crypto::sha256(byte_view(buf.data(), len));
}

expected<hash32> hash_common(const common& c) {
  COWPI_TRY(bytes e, enc_common(c));
  crypto::sha256_stream h;
  h.update(as_bytes(label("C"))).update(e);
  return h.finish();
}

hash32 blocks_root(const std::vector<block_digest>& d) {
  byte_writer w(16 + d.size() * 80);
  w.raw(label("blocks")).be32(static_cast<uint32_t>(d.size()));
  for (const auto& e : d)
    w.lp(e.recipient).raw(e.hash);
  return crypto::sha256(w.data());
}

hash32 entry_digest(const hash32& h_c, const hash32& root) {
  byte_writer w(96);
  w.raw(label("D")).raw(h_c).raw(root);
  return crypto::sha256(w.data());
}

hash32 transcript_hash(const conv_id& conv, uint64_t i, const hash32& t_prev, const hash32& d) {
  byte_writer w(128);
  w.raw(label("T")).raw(conv).be64(i).raw(t_prev).raw(d);
  return crypto::sha256(w.data());
}

std::string safety_number(const member_list& members) {
  byte_writer w(64 + members.size() * 100);
  w.raw(label("safety"));
  enc_list(w, members);
  hash32 s = crypto::sha256(w.data());
  std::vector<uint64_t> groups;
  for (size_t j = 0; j < 6; ++j) {
    uint64_t v = 0;
    for (size_t k = 0; k < 5; ++k)
      v = v << 8 | s[5 * j + k];
    groups.push_back((v >> 20) % 100000);
    groups.push_back((v & ((uint64_t{1} << 20) - 1)) % 100000);
  }
  std::string out;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (g > 0)
      out += (g % 4 == 0) ? '\n' : ' ';
    char buf[8];
    std::snprintf(buf, sizeof buf, "%05u", static_cast<unsigned>(groups[g]));
    out += buf;
  }
  return out;
}

bytes ad_block(const hash32& h_c, std::string_view author, std::string_view recipient) {
  byte_writer w(64 + author.size() + recipient.size());
  w.raw(label("block")).raw(h_c).lp(author).lp(recipient);
  return std::move(w).take();
}

bytes ad_amb(const hash32& h_c, const hash32& root, std::string_view author,
             std::string_view mirror) {
  byte_writer w(96 + author.size() + mirror.size());
  w.raw(label("amb")).raw(h_c).raw(root).lp(author).lp(mirror);
  return std::move(w).take();
}

bytes ad_mirror_block(const conv_id& conv, uint64_t i, const hash32& t_i, std::string_view mirror,
                      std::string_view member, const hash32& bind) {
  byte_writer w(128 + mirror.size() + member.size());
  w.raw(label("mb")).raw(conv).be64(i).raw(t_i).lp(mirror).lp(member).raw(bind);
  return std::move(w).take();
}

bytes ad_body(const conv_id& conv, std::string_view author, uint64_t aseq) {
  byte_writer w(48 + author.size());
  w.raw(label("body")).raw(conv).lp(author).be64(aseq);
  return std::move(w).take();
}

crypto::secret<32> body_key(const crypto::secret<32>& seed) {
  return crypto::hkdf32({}, seed.expose(), as_bytes(label("body-key")));
}

hash32 body_commit(const crypto::secret<32>& seed) {
  auto c = crypto::hkdf32({}, seed.expose(), as_bytes(label("body-commit")));
  hash32 out{};
  std::copy_n(c.expose().data(), 32, out.begin());
  return out;
}

bytes seal_body(const crypto::secret<32>& seed, const conv_id& conv, std::string_view author,
                uint64_t aseq, byte_view plaintext, crypto::rng& r) {
  auto key = body_key(seed);
  auto nonce = r.array<24>();
  bytes padded = pad(plaintext);
  bytes body(24 + padded.size() + crypto::aead_tag_size);
  std::copy(nonce.begin(), nonce.end(), body.begin());
  auto ad = ad_body(conv, author, aseq);
  auto ok =
      crypto::aead_seal_into(std::span<uint8_t>(body).subspan(24), key.expose(), nonce, padded, ad);
  COWPI_ASSERT(ok.has_value());
  sodium_memzero(padded.data(), padded.size());
  return body;
}

expected<bytes> open_body(const crypto::secret<32>& seed, const conv_id& conv,
                          std::string_view author, uint64_t aseq, byte_view body) {
  if (body.size() < 24 + crypto::aead_tag_size)
    return fail(errc::bad_length, "body too short");
  auto key = body_key(seed);
  auto ad = ad_body(conv, author, aseq);
  COWPI_TRY(bytes padded, crypto::aead_open(key.expose(), body.first(24), body.subspan(24), ad));
  auto out = unpad(padded);
  sodium_memzero(padded.data(), padded.size());
  return out;
}

bytes pad(byte_view p) {
  size_t n = (p.size() + 1 + pad_block - 1) / pad_block * pad_block;
  bytes out(n, 0);
  std::copy(p.begin(), p.end(), out.begin());
  out[p.size()] = 0x80;
  return out;
}

expected<bytes> unpad(byte_view p) {
  size_t end = p.size();
  while (end > 0 && p[end - 1] == 0)
    --end;
  if (end == 0 || p[end - 1] != 0x80)
    return fail(errc::malformed, "malformed padding");
  return bytes(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(end - 1));
}

}  // namespace cowpi::protocol

// SPDX-License-Identifier: Apache-2.0
// The wire codec's shared part: message framing and the values several messages carry
// (members, blocks, C, SUBMIT, ENVELOPE, pre-keys, error frames).
#include "cowpi/protocol/wire.hpp"

#include "codec.hpp"
#include <capnp/serialize.h>

namespace cowpi::protocol::wire {
namespace detail {

// ---------------------------------------------------------------------------------------------
// Framing.

bytes to_bytes(capnp::MessageBuilder& mb) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(mb);
  auto b = words.asBytes();
  return bytes(b.begin(), b.end());
}

kj::Array<capnp::word> copy_words(read_ctx& ctx, byte_view b) {
  if (b.empty()) {
    ctx.fail(errc::malformed, "empty message");
    return {};
  }
  if (b.size() % sizeof(capnp::word) != 0) {
    ctx.fail(errc::malformed, "length " + std::to_string(b.size()) + " is not a multiple of 8");
    return {};
  }
  if (b.size() > max_frame_protocol) {
    ctx.fail(errc::too_large, "message of " + std::to_string(b.size()) + " bytes");
    return {};
  }
  // The segment table starts with the segment count minus one (little-endian u32). Refusing a
  // large count here keeps the reader from allocating its segment array from a forged table.
  const uint32_t count_minus_one = static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8
                                   | static_cast<uint32_t>(b[2]) << 16
                                   | static_cast<uint32_t>(b[3]) << 24;
  if (count_minus_one >= max_segments) {
    ctx.fail(errc::malformed,
             "segment table claims " + std::to_string(uint64_t{count_minus_one} + 1) + " segments");
    return {};
  }
  // Untrusted bytes need not be word-aligned; capnp reads them in place, so copy.
  auto words = kj::heapArray<capnp::word>(b.size() / sizeof(capnp::word));
  std::memcpy(words.asBytes().begin(), b.data(), b.size());
  return words;
}

capnp::ReaderOptions reader_options(size_t words) noexcept {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = 2 * uint64_t{words} + traversal_slack_words;
  o.nestingLimit = nesting_limit;
  return o;
}

void record(read_ctx& ctx, const kj::Exception& e) {
  std::string d = e.getDescription().cStr();
  constexpr size_t max_description = 200;
  if (d.size() > max_description) {
    d.resize(max_description);
  }
  ctx.fail(errc::malformed, "capnp: " + d);
}

bool check_wire_version(read_ctx& ctx, uint8_t v, std::string_view what) {
  if (v == wire_version) {
    return true;
  }
  return ctx.fail(errc::unsupported_version,
                  std::string(what) + ": wire version " + std::to_string(unsigned{v}));
}

bool unknown_tag(read_ctx& ctx, std::string_view what, unsigned tag) {
  return ctx.fail(errc::malformed, std::string(what) + ": unknown union tag " + std::to_string(tag)
                                       + " (from a newer sender?)");
}

// ---------------------------------------------------------------------------------------------
// Leaves.

bool check_count(read_ctx& ctx, size_t n, size_t max, std::string_view what) {
  if (n <= max) {
    return true;
  }
  return ctx.fail(errc::too_large, std::string(what) + ": " + std::to_string(n) + " entries, limit "
                                       + std::to_string(max));
}

bool read_id(read_ctx& ctx, capnp::Data::Reader d, std::string& out, std::string_view what) {
  if (d.size() > max_id_len) {
    return ctx.fail(errc::too_large, std::string(what) + ": id of " + std::to_string(d.size())
                                         + " bytes, limit " + std::to_string(max_id_len));
  }
  out.assign(reinterpret_cast<const char*>(d.begin()), d.size());
  return true;
}

bool read_text(read_ctx& ctx, capnp::Text::Reader t, std::string& out, std::string_view what) {
  if (t.size() > max_text_len) {
    return ctx.fail(errc::too_large, std::string(what) + ": text of " + std::to_string(t.size())
                                         + " bytes, limit " + std::to_string(max_text_len));
  }
  out.assign(t.cStr(), t.size());
  return true;
}

bool read_block(read_ctx& ctx, capnp::Data::Reader d, slot_block& out, std::string_view what) {
  auto b = decode_slot(byte_view(d.begin(), d.size()));
  if (b.has_value()) {
    out = std::move(*b);
    return true;
  }
  const bool wrong_size = b.error().code == errc::bad_length;
  std::string context =
      std::string(what)
      + (wrong_size ? ": block of " + std::to_string(d.size()) + " bytes, expected "
                          + std::to_string(block_size) + " (or 189, 24, 56, 64, 96 in chain mode)"
                    : std::string(": unknown key kind"));
  if (!ctx.soft_blocks) {
    return ctx.fail(errc::malformed, std::move(context));
  }
  // Router intake (docs/design.md §3.4 step 1): a bad block is answered, the connection survives.
  if (!ctx.block_error) {
    ctx.block_error = error{errc::malformed, std::move(context)};
    ctx.block_answer =
        rejection{rejection_kind::bad_block_size, 0, wrong_size ? std::string() : "key kind"};
  }
  out = block{};
  return true;
}

// ---------------------------------------------------------------------------------------------
// Lists.

bool read_members(read_ctx& ctx, capnp::List<schema::Member>::Reader l, size_t max,
                  member_list& out, std::string_view what) {
  if (!check_count(ctx, l.size(), max, what)) {
    return false;
  }
  const std::string lpk_what = std::string(what) + " lpk";
  out.clear();
  out.reserve(l.size());
  for (auto m : l) {
    member v;
    if (!read_id(ctx, m.getId(), v.id, what) || !read_fixed(ctx, m.getLpk(), v.lpk, lpk_what)) {
      return false;
    }
    out.push_back(std::move(v));
  }
  return true;
}

bool read_ids(read_ctx& ctx, capnp::List<capnp::Data>::Reader l, size_t max,
              std::vector<std::string>& out, std::string_view what) {
  if (!check_count(ctx, l.size(), max, what)) {
    return false;
  }
  out.clear();
  out.reserve(l.size());
  for (auto d : l) {
    std::string id;
    if (!read_id(ctx, d, id, what)) {
      return false;
    }
    out.push_back(std::move(id));
  }
  return true;
}

bool read_blocks(read_ctx& ctx, capnp::List<capnp::Data>::Reader l, size_t max,
                 std::vector<slot_block>& out, std::string_view what) {
  if (!check_count(ctx, l.size(), max, what)) {
    return false;
  }
  out.clear();
  out.reserve(l.size());
  for (auto d : l) {
    slot_block b;
    if (!read_block(ctx, d, b, what)) {
      return false;
    }
    out.push_back(std::move(b));
  }
  return true;
}

void write_members(capnp::List<schema::Member>::Builder l, const member_list& m) {
  for (unsigned i = 0; i < l.size(); ++i) {
    auto b = l[i];
    b.setId(as_data(m[i].id));
    b.setLpk(as_data(m[i].lpk));
  }
}

void write_ids(capnp::List<capnp::Data>::Builder l, const std::vector<std::string>& ids) {
  for (unsigned i = 0; i < l.size(); ++i) {
    l.set(i, as_data(ids[i]));
  }
}

void write_blocks(capnp::List<capnp::Data>::Builder l, const std::vector<slot_block>& blocks) {
  for (unsigned i = 0; i < l.size(); ++i) {
    const auto e = enc_slot(blocks[i]);
    l.set(i, as_data(e));
  }
}

// ---------------------------------------------------------------------------------------------
// C.

namespace {

bool read_parent(read_ctx& ctx, uint64_t parent, capnp::Data::Reader hash, common& out) {
  out.parent = parent;
  return read_fixed(ctx, hash, out.parent_hash, "C.parent_hash");
}

}  // namespace

bool read_common(read_ctx& ctx, schema::Common::Reader r, common& out) {
  out = common{};
  out.version = r.getVersion();
  if (out.version != protocol_version && out.version != protocol_version_chain) {
    return ctx.fail(errc::unsupported_version,
                    "C.version " + std::to_string(unsigned{out.version}));
  }
  if (!read_fixed(ctx, r.getConv(), out.conv, "C.conv")
      || !read_id(ctx, r.getAuthor(), out.author, "C.author")) {
    return false;
  }
  out.aseq = r.getAseq();
  switch (r.which()) {
    case schema::Common::SETUP: {
      auto g = r.getSetup();
      out.type = msg_type::setup;
      return read_members(ctx, g.getMs(), max_mirrors, out.ms, "C.ms")
             && read_members(ctx, g.getMembers(), max_members, out.members, "C.members");
    }
    case schema::Common::MESSAGE: {
      auto g = r.getMessage();
      out.type = msg_type::message;
      out.body_len = g.getBodyLen();
      return read_parent(ctx, g.getParent(), g.getParentHash(), out)
             && read_fixed(ctx, g.getBodyHash(), out.body_hash, "C.body_hash")
             && read_fixed(ctx, g.getBodyCommit(), out.body_commit, "C.body_commit");
    }
    case schema::Common::RECEIPT: {
      auto g = r.getReceipt();
      out.type = msg_type::receipt;
      if (!read_parent(ctx, g.getParent(), g.getParentHash(), out)) {
        return false;
      }
      auto v = g.getVoids();
      if (!check_count(ctx, v.size(), max_voids, "C.voids")) {
        return false;
      }
      out.voids.reserve(v.size());
      for (uint64_t x : v) {
        out.voids.push_back(x);
      }
      return true;
    }
    case schema::Common::UPDATE: {
      auto g = r.getUpdate();
      out.type = msg_type::update;
      if (!read_parent(ctx, g.getParent(), g.getParentHash(), out)
          || !read_members(ctx, g.getMs(), max_mirrors, out.ms, "C.ms")
          || !read_members(ctx, g.getAdds(), max_ops, out.adds, "C.adds")
          || !read_ids(ctx, g.getRemoves(), max_ops, out.removes, "C.removes")
          || !check_count(ctx, out.adds.size() + out.removes.size(), max_ops, "C ops")) {
        return false;
      }
      return read_members(ctx, g.getMembers(), max_members, out.members, "C.members");
    }
  }
  return unknown_tag(ctx, "C type", r.which());
}

void write_common(schema::Common::Builder b, const common& c) {
  b.setVersion(c.version);
  b.setConv(as_data(c.conv));
  b.setAuthor(as_data(c.author));
  b.setAseq(c.aseq);
  switch (c.type) {
    case msg_type::setup: {
      auto g = b.initSetup();
      write_members(g.initMs(list_size(c.ms.size())), c.ms);
      write_members(g.initMembers(list_size(c.members.size())), c.members);
      return;
    }
    case msg_type::message: {
      auto g = b.initMessage();
      g.setParent(c.parent);
      g.setParentHash(as_data(c.parent_hash));
      g.setBodyLen(c.body_len);
      g.setBodyHash(as_data(c.body_hash));
      g.setBodyCommit(as_data(c.body_commit));
      return;
    }
    case msg_type::receipt: {
      auto g = b.initReceipt();
      g.setParent(c.parent);
      g.setParentHash(as_data(c.parent_hash));
      auto v = g.initVoids(list_size(c.voids.size()));
      for (unsigned i = 0; i < v.size(); ++i) {
        v.set(i, c.voids[i]);
      }
      return;
    }
    case msg_type::update: {
      auto g = b.initUpdate();
      g.setParent(c.parent);
      g.setParentHash(as_data(c.parent_hash));
      write_members(g.initMs(list_size(c.ms.size())), c.ms);
      write_members(g.initAdds(list_size(c.adds.size())), c.adds);
      write_ids(g.initRemoves(list_size(c.removes.size())), c.removes);
      write_members(g.initMembers(list_size(c.members.size())), c.members);
      return;
    }
  }
  constexpr bool known_msg_type = false;  // trusted input: any other value is a caller bug
  COWPI_ASSERT(known_msg_type);
}

// ---------------------------------------------------------------------------------------------
// SUBMIT and ENVELOPE.

namespace {

bool read_body(read_ctx& ctx, bool present, capnp::Data::Reader d, std::optional<bytes>& out,
               std::string_view what) {
  out.reset();
  if (!present) {
    return true;
  }
  if (d.size() > max_body) {
    return ctx.fail(errc::too_large, std::string(what) + ": body of " + std::to_string(d.size())
                                         + " bytes, limit " + std::to_string(max_body));
  }
  out.emplace(d.begin(), d.end());
  return true;
}

}  // namespace

bool read_submit(read_ctx& ctx, schema::Submit::Reader r, submit_msg& out) {
  if (!r.hasC()) {
    return ctx.fail(errc::malformed, "SUBMIT: no C");
  }
  if (!read_common(ctx, r.getC(), out.c)
      || !read_body(ctx, r.hasBody(), r.getBody(), out.body, "SUBMIT")) {
    return false;
  }
  out.blocks.clear();
  out.names_free_root.reset();
  if (r.hasBlocksRoot()) {
    // The names-free form (chain mode): slots without ids, in Recipients(C) order.
    hash32 root{};
    if (!read_fixed(ctx, r.getBlocksRoot(), root, "SUBMIT blocks_root")) {
      return false;
    }
    if (r.getBlocks().size() != 0) {
      return ctx.fail(errc::malformed, "SUBMIT: blocks with ids beside the names-free slots");
    }
    out.names_free_root = root;
    const auto all = r.getSlots();
    size_t at = 0;
    while (at < all.size()) {
      if (!check_count(ctx, out.blocks.size() + 1, max_recipients, "SUBMIT slots")) {
        return false;
      }
      const size_t len = all[at];
      if (all.size() - at - 1 < len) {
        return ctx.fail(errc::malformed, "SUBMIT slots: a slot runs past the end");
      }
      recipient_block v;
      if (!read_block(ctx, capnp::Data::Reader(all.begin() + at + 1, len), v.blk, "SUBMIT slot")) {
        return false;
      }
      out.blocks.push_back(std::move(v));
      at += 1 + len;
    }
    return read_blocks(ctx, r.getAmbs(), max_mirrors, out.ambs, "SUBMIT amb");
  }
  auto blocks = r.getBlocks();
  if (!check_count(ctx, blocks.size(), max_recipients, "SUBMIT blocks")) {
    return false;
  }
  out.blocks.reserve(blocks.size());
  for (auto rb : blocks) {
    recipient_block v;
    if (!read_id(ctx, rb.getRecipient(), v.recipient, "SUBMIT block recipient")
        || !read_block(ctx, rb.getBlock(), v.blk, "SUBMIT block")) {
      return false;
    }
    out.blocks.push_back(std::move(v));
  }
  return read_blocks(ctx, r.getAmbs(), max_mirrors, out.ambs, "SUBMIT amb");
}

void write_submit(schema::Submit::Builder b, const submit_msg& s, bool names_free) {
  write_common(b.initC(), s.c);
  if (s.body) {
    b.setBody(as_data(*s.body));
  }
  if (names_free || s.names_free_root) {
    // The names-free form (docs/wire.md "The names-free SUBMIT"): the router knows Recipients(C).
    std::vector<block_digest> digests;
    digests.reserve(s.blocks.size());
    bytes all;
    for (const auto& rb : s.blocks) {
      digests.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
      const auto e = enc_slot(rb.blk);
      all.push_back(static_cast<uint8_t>(e.size()));
      all.insert(all.end(), e.begin(), e.end());
    }
    b.setSlots(as_data(all));
    b.setBlocksRoot(as_data(s.names_free_root ? *s.names_free_root : blocks_root(digests)));
    write_blocks(b.initAmbs(list_size(s.ambs.size())), s.ambs);
    return;
  }
  auto l = b.initBlocks(list_size(s.blocks.size()));
  for (unsigned i = 0; i < l.size(); ++i) {
    auto rb = l[i];
    rb.setRecipient(as_data(s.blocks[i].recipient));
    const auto e = enc_slot(s.blocks[i].blk);
    rb.setBlock(as_data(e));
  }
  write_blocks(b.initAmbs(list_size(s.ambs.size())), s.ambs);
}

bool read_envelope(read_ctx& ctx, schema::Envelope::Reader r, envelope& out) {
  if (!read_fixed(ctx, r.getConv(), out.conv, "ENVELOPE conv")) {
    return false;
  }
  out.index = r.getIndex();
  if (!r.hasC()) {
    return ctx.fail(errc::malformed, "ENVELOPE: no C");
  }
  if (!read_common(ctx, r.getC(), out.c)
      || !read_body(ctx, r.hasBody(), r.getBody(), out.body, "ENVELOPE")) {
    return false;
  }
  out.block_u.reset();
  if (r.hasBlockU()) {
    slot_block b;
    if (!read_block(ctx, r.getBlockU(), b, "ENVELOPE block_u")) {
      return false;
    }
    out.block_u = std::move(b);
  }
  if (!read_fixed(ctx, r.getBlocksRoot(), out.blocks_root, "ENVELOPE blocks_root")
      || !read_blocks(ctx, r.getMirrorBlocks(), max_mirrors, out.mirror_blocks,
                      "ENVELOPE mirror blocks")) {
    return false;
  }
  out.t_prev.reset();
  if (r.hasTPrev()) {
    hash32 t{};
    if (!read_fixed(ctx, r.getTPrev(), t, "ENVELOPE t_prev")) {
      return false;
    }
    out.t_prev = t;
  }
  return true;
}

void write_envelope(schema::Envelope::Builder b, const envelope& e) {
  b.setConv(as_data(e.conv));
  b.setIndex(e.index);
  write_common(b.initC(), e.c);
  if (e.body) {
    b.setBody(as_data(*e.body));
  }
  if (e.block_u) {
    const auto enc = enc_slot(*e.block_u);
    b.setBlockU(as_data(enc));
  }
  b.setBlocksRoot(as_data(e.blocks_root));
  write_blocks(b.initMirrorBlocks(list_size(e.mirror_blocks.size())), e.mirror_blocks);
  if (e.t_prev) {
    b.setTPrev(as_data(*e.t_prev));
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-keys and error frames.

bool read_published_key(read_ctx& ctx, schema::PublishedKey::Reader r, published_key& out,
                        std::string_view what) {
  out.id = r.getId();
  return read_fixed(ctx, r.getPub(), out.pub, what);
}

bool read_published_keys(read_ctx& ctx, capnp::List<schema::PublishedKey>::Reader l,
                         std::vector<published_key>& out, std::string_view what) {
  if (!check_count(ctx, l.size(), max_prekey_batch, what)) {
    return false;
  }
  out.clear();
  out.reserve(l.size());
  for (auto k : l) {
    published_key v;
    if (!read_published_key(ctx, k, v, what)) {
      return false;
    }
    out.push_back(v);
  }
  return true;
}

void write_published_key(schema::PublishedKey::Builder b, const published_key& k) {
  b.setId(k.id);
  b.setPub(as_data(k.pub));
}

void write_published_keys(capnp::List<schema::PublishedKey>::Builder l,
                          const std::vector<published_key>& keys) {
  for (unsigned i = 0; i < l.size(); ++i) {
    write_published_key(l[i], keys[i]);
  }
}

namespace {

bool read_key_ref(read_ctx& ctx, schema::KeyRef::Reader r, key_ref& out) {
  switch (r.getKind()) {
    case schema::KeyKind::PREKEY:
      out.kind = key_kind::prekey;
      break;
    case schema::KeyKind::LAST_RESORT:
      out.kind = key_kind::last_resort;
      break;
    case schema::KeyKind::RATCHET:
      out.kind = key_kind::ratchet;
      break;
    case schema::KeyKind::UNSPECIFIED:
    default:
      return ctx.fail(errc::malformed, "key ref: unknown key kind "
                                           + std::to_string(static_cast<unsigned>(r.getKind())));
  }
  out.id = r.getId();
  return read_fixed(ctx, r.getPub(), out.pub, "key ref pub");
}

schema::KeyKind to_schema(key_kind k) {
  switch (k) {
    case key_kind::prekey:
      return schema::KeyKind::PREKEY;
    case key_kind::last_resort:
      return schema::KeyKind::LAST_RESORT;
    case key_kind::ratchet:
      return schema::KeyKind::RATCHET;
  }
  constexpr bool known_key_kind = false;  // trusted input: any other value is a caller bug
  COWPI_ASSERT(known_key_kind);
  return schema::KeyKind::UNSPECIFIED;
}

}  // namespace

bool read_prekey_bundle(read_ctx& ctx, schema::PrekeyBundle::Reader r, prekey_bundle& out) {
  return read_id(ctx, r.getOwner(), out.owner, "prekey bundle owner")
         && read_fixed(ctx, r.getLpk(), out.lpk, "prekey bundle lpk")
         && read_key_ref(ctx, r.getKey(), out.key);
}

void write_prekey_bundle(schema::PrekeyBundle::Builder b, const prekey_bundle& p) {
  b.setOwner(as_data(p.owner));
  b.setLpk(as_data(p.lpk));
  auto k = b.initKey();
  k.setKind(to_schema(p.key.kind));
  k.setId(p.key.id);
  k.setPub(as_data(p.key.pub));
}

bool read_error_frame(read_ctx& ctx, schema::ErrorFrame::Reader r, error_frame& out) {
  using C = schema::ErrorCode;
  switch (r.getCode()) {
    case C::MALFORMED:
      out.code = frame_error_code::malformed;
      break;
    case C::TOO_LARGE:
      out.code = frame_error_code::too_large;
      break;
    case C::UNSUPPORTED_VERSION:
      out.code = frame_error_code::unsupported_version;
      break;
    case C::UNKNOWN_USER:
      out.code = frame_error_code::unknown_user;
      break;
    case C::ID_TAKEN:
      out.code = frame_error_code::id_taken;
      break;
    case C::BAD_HANDSHAKE:
      out.code = frame_error_code::bad_handshake;
      break;
    case C::BUSY:
      out.code = frame_error_code::busy;
      break;
    case C::INTERNAL:
      out.code = frame_error_code::internal;
      break;
    case C::PROTOCOL_VIOLATION:
      out.code = frame_error_code::protocol_violation;
      break;
    case C::UNSPECIFIED:
    default:
      return ctx.fail(errc::malformed, "ERROR frame: unknown code "
                                           + std::to_string(static_cast<unsigned>(r.getCode())));
  }
  return read_text(ctx, r.getMessage(), out.message, "ERROR frame message");
}

void write_error_frame(schema::ErrorFrame::Builder b, const error_frame& e) {
  using C = schema::ErrorCode;
  C code = C::UNSPECIFIED;
  switch (e.code) {
    case frame_error_code::malformed:
      code = C::MALFORMED;
      break;
    case frame_error_code::too_large:
      code = C::TOO_LARGE;
      break;
    case frame_error_code::unsupported_version:
      code = C::UNSUPPORTED_VERSION;
      break;
    case frame_error_code::unknown_user:
      code = C::UNKNOWN_USER;
      break;
    case frame_error_code::id_taken:
      code = C::ID_TAKEN;
      break;
    case frame_error_code::bad_handshake:
      code = C::BAD_HANDSHAKE;
      break;
    case frame_error_code::busy:
      code = C::BUSY;
      break;
    case frame_error_code::internal:
      code = C::INTERNAL;
      break;
    case frame_error_code::protocol_violation:
      code = C::PROTOCOL_VIOLATION;
      break;
  }
  COWPI_ASSERT(code != C::UNSPECIFIED);
  b.setCode(code);
  b.setMessage(text(e.message));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Public entry points for the standalone values.

bytes encode_common(const common& c) {
  capnp::MallocMessageBuilder mb;
  detail::write_common(mb.initRoot<schema::Common>(), c);
  return detail::to_bytes(mb);
}

bytes encode_envelope(const envelope& e) {
  capnp::MallocMessageBuilder mb;
  detail::write_envelope(mb.initRoot<schema::Envelope>(), e);
  return detail::to_bytes(mb);
}

bytes encode_submit(const submit_msg& s) {
  capnp::MallocMessageBuilder mb;
  detail::write_submit(mb.initRoot<schema::Submit>(), s, false);
  return detail::to_bytes(mb);
}

bytes encode_prekey_bundle(const prekey_bundle& b) {
  capnp::MallocMessageBuilder mb;
  detail::write_prekey_bundle(mb.initRoot<schema::PrekeyBundle>(), b);
  return detail::to_bytes(mb);
}

expected<common> decode_common(byte_view b) {
  detail::read_ctx ctx;
  common out;
  detail::read_message<schema::Common>(
      ctx, b, [&](schema::Common::Reader r) { (void)detail::read_common(ctx, r, out); });
  return detail::finish(ctx, std::move(out));
}

expected<envelope> decode_envelope(byte_view b) {
  detail::read_ctx ctx;
  envelope out;
  detail::read_message<schema::Envelope>(
      ctx, b, [&](schema::Envelope::Reader r) { (void)detail::read_envelope(ctx, r, out); });
  return detail::finish(ctx, std::move(out));
}

expected<submit_msg> decode_submit(byte_view b) {
  detail::read_ctx ctx;
  submit_msg out;
  detail::read_message<schema::Submit>(
      ctx, b, [&](schema::Submit::Reader r) { (void)detail::read_submit(ctx, r, out); });
  return detail::finish(ctx, std::move(out));
}

expected<prekey_bundle> decode_prekey_bundle(byte_view b) {
  detail::read_ctx ctx;
  prekey_bundle out;
  detail::read_message<schema::PrekeyBundle>(ctx, b, [&](schema::PrekeyBundle::Reader r) {
    (void)detail::read_prekey_bundle(ctx, r, out);
  });
  return detail::finish(ctx, std::move(out));
}

bytes encode_directory_entries(const directory_entries& d) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<schema::DirectoryEntries>();
  root.setVersion(wire_version);
  auto l = root.initEntries(static_cast<unsigned>(d.size()));
  for (unsigned i = 0; i < l.size(); ++i) {
    const auto& [id, entry] = d[i];
    l[i].setId(detail::as_data(std::string_view(id)));
    l[i].setRegistered(entry.has_value());
    if (!entry)
      continue;
    l[i].setLpk(detail::as_data(entry->lpk));
    if (entry->last_resort)
      detail::write_published_key(l[i].initLastResort(), *entry->last_resort);
  }
  return detail::to_bytes(mb);
}

expected<directory_entries> decode_directory_entries(byte_view b) {
  detail::read_ctx ctx;
  directory_entries out;
  detail::read_message<schema::DirectoryEntries>(ctx, b, [&](schema::DirectoryEntries::Reader r) {
    if (r.getVersion() != wire_version) {
      ctx.fail(errc::unsupported_version, "directory entries version");
      return;
    }
    auto l = r.getEntries();
    if (!detail::check_count(ctx, l.size(), max_members, "directory entries"))
      return;
    for (auto e : l) {
      std::pair<std::string, std::optional<directory_entry>> v;
      if (!detail::read_id(ctx, e.getId(), v.first, "directory entry id"))
        return;
      if (e.getRegistered()) {
        directory_entry de;
        if (!detail::read_fixed(ctx, e.getLpk(), de.lpk, "directory entry lpk"))
          return;
        if (e.hasLastResort()) {
          published_key k;
          if (!detail::read_published_key(ctx, e.getLastResort(), k, "directory entry key"))
            return;
          de.last_resort = k;
        }
        v.second = de;
      }
      out.push_back(std::move(v));
    }
  });
  return detail::finish(ctx, std::move(out));
}

}  // namespace cowpi::protocol::wire

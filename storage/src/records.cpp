// SPDX-License-Identifier: Apache-2.0
// Record encodings: fixed layouts with byte_writer, the rest as Cap'n Proto structs of
// storage/schema/records.capnp. The only file that sees the generated record code.
#include "cowpi/storage/records.hpp"

#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/protocol/wire.hpp"

#include "records.capnp.h"
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <cstring>
#include <string_view>

namespace cowpi::storage {

namespace sc = schema;
using protocol::block;
using protocol::member_list;
using protocol::published_key;

namespace {

// ---------------------------------------------------------------------------------------------
// Fixed layouts.

// Starts a fixed-layout record with its format byte.
byte_writer start(size_t reserve) {
  byte_writer w(reserve);
  w.u8(record_format);
  return w;
}

// Checks the format byte of a fixed-layout record.
expected<void> check_format(byte_reader& r, const char* what) {
  uint8_t f = 0;
  if (!r.u8(f))
    return fail(errc::corruption, std::string(what) + ": empty record");
  if (f != record_format)
    return fail(errc::unsupported_layout,
                std::string(what) + ": unknown record format " + std::to_string(f));
  return {};
}

expected<void> check_end(const byte_reader& r, const char* what) {
  if (!r.at_end())
    return fail(errc::corruption, std::string(what) + ": trailing bytes");
  return {};
}

expected<void> corrupt_if(bool bad, const char* what) {
  if (bad)
    return fail(errc::corruption, std::string(what) + ": truncated or malformed");
  return {};
}

// ---------------------------------------------------------------------------------------------
// Cap'n Proto helpers.

// A malformed stored record; thrown inside a decoder and turned into errc::corruption at its
// boundary (`read_capnp`), like the kj::Exception the generated readers may throw.
struct corrupt_field {
  const char* field;
};

capnp::Data::Reader as_data(byte_view b) {
  return {b.data(), b.size()};
}
capnp::Data::Reader as_data(std::string_view s) {
  return {reinterpret_cast<const kj::byte*>(s.data()), s.size()};
}
capnp::Text::Reader text(const std::string& s) {
  return {s.c_str(), s.size()};
}

unsigned list_size(size_t n) {
  COWPI_ASSERT(n < (size_t{1} << 29));
  return static_cast<unsigned>(n);
}

template <size_t N>
byte_array<N> fixed(capnp::Data::Reader d, const char* field) {
  if (d.size() != N)
    throw corrupt_field{field};
  byte_array<N> a{};
  std::memcpy(a.data(), d.begin(), N);
  return a;
}

crypto::secret<32> secret32(capnp::Data::Reader d, const char* field) {
  if (d.size() != 32)
    throw corrupt_field{field};
  return crypto::secret<32>::from(byte_view(d.begin(), d.size()));
}

std::string id_of(capnp::Data::Reader d, const char* field) {
  if (d.size() == 0 || d.size() > protocol::max_id_len)
    throw corrupt_field{field};
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

bytes bytes_of(capnp::Data::Reader d) {
  return bytes(d.begin(), d.end());
}

protocol::msg_type msg_type_of(uint8_t t) {
  if (t < 1 || t > 4)
    throw corrupt_field{"type"};
  return static_cast<protocol::msg_type>(t);
}

protocol::key_kind key_kind_of(uint8_t k) {
  if (k < 1 || k > 3)
    throw corrupt_field{"kind"};
  return static_cast<protocol::key_kind>(k);
}

bytes flat(capnp::MessageBuilder& mb) {
  auto words = capnp::messageToFlatArray(mb);
  auto b = words.asBytes();
  return bytes(b.begin(), b.end());
}

// Builds a secret-bearing record inside guarded memory: the builder's first segment is a
// zeroed secure buffer sized from `estimate` (wiped when it goes), and the serialised message
// is written straight into the returned buffer. A record larger than the estimate spills into
// heap segments; estimates below are generous so that does not happen.
template <class Root, class Fill>
secure_bytes build_secret(size_t estimate, Fill&& fill) {
  const size_t words = estimate / sizeof(capnp::word) + 128;
  secure_bytes scratch(words * sizeof(capnp::word));
  capnp::MallocMessageBuilder mb(
      kj::arrayPtr(reinterpret_cast<capnp::word*>(scratch.data()), words));
  fill(mb.initRoot<Root>());
  const size_t n = capnp::computeSerializedSizeInWords(mb) * sizeof(capnp::word);
  secure_bytes out(n);
  kj::ArrayOutputStream os(kj::arrayPtr(out.data(), n));
  capnp::writeMessage(os, mb);
  return out;
}

template <class Root, class Fill>
bytes build_clear(Fill&& fill) {
  capnp::MallocMessageBuilder mb;
  fill(mb.initRoot<Root>());
  return flat(mb);
}

// Reads a stored Cap'n Proto record of type `Root` and converts it with `f`. Secret records
// arrive in aligned guarded memory and are read in place; clear ones are copied to aligned
// heap words when needed.
template <class Root, class F>
auto read_capnp(byte_view b, const char* what, F&& f)
    -> expected<std::invoke_result_t<F, typename Root::Reader>> {
  if (b.empty() || b.size() % sizeof(capnp::word) != 0)
    return fail(errc::corruption, std::string(what) + ": not a Cap'n Proto message");
  const size_t words = b.size() / sizeof(capnp::word);
  kj::Array<capnp::word> copy;
  const capnp::word* ptr = nullptr;
  if (reinterpret_cast<uintptr_t>(b.data()) % alignof(capnp::word) == 0) {
    ptr = reinterpret_cast<const capnp::word*>(b.data());
  } else {
    copy = kj::heapArray<capnp::word>(words);
    std::memcpy(copy.begin(), b.data(), b.size());
    ptr = copy.begin();
  }
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = words * 4 + 64;
  opts.nestingLimit = 16;
  try {
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(ptr, words), opts);
    return f(reader.getRoot<Root>());
  } catch (const corrupt_field& c) {
    return fail(errc::corruption, std::string(what) + ": bad field " + c.field);
  } catch (const kj::Exception&) {
    return fail(errc::corruption, std::string(what) + ": malformed Cap'n Proto message");
  }
}

void put_member_list(capnp::List<sc::Member>::Builder l, const member_list& m) {
  for (size_t i = 0; i < m.size(); ++i) {
    l[list_size(i)].setId(as_data(m[i].id));
    l[list_size(i)].setLpk(as_data(m[i].lpk));
  }
}

member_list get_member_list(capnp::List<sc::Member>::Reader l) {
  member_list out;
  out.reserve(l.size());
  for (auto m : l)
    out.push_back(
        protocol::member{id_of(m.getId(), "member id"), fixed<32>(m.getLpk(), "member lpk")});
  return out;
}

void put_ids(capnp::List<capnp::Data>::Builder l, const std::vector<std::string>& ids) {
  for (size_t i = 0; i < ids.size(); ++i)
    l.set(list_size(i), as_data(ids[i]));
}

std::vector<std::string> get_ids(capnp::List<capnp::Data>::Reader l) {
  std::vector<std::string> out;
  out.reserve(l.size());
  for (auto d : l)
    out.push_back(id_of(d, "id"));
  return out;
}

void put_published(sc::PublishedKey::Builder b, const published_key& k) {
  b.setId(k.id);
  b.setPub(as_data(k.pub));
}

published_key get_published(sc::PublishedKey::Reader r) {
  return published_key{r.getId(), fixed<32>(r.getPub(), "published key")};
}

void put_owned(sc::OwnedKey::Builder b, const protocol::owned_key& k) {
  b.setEsk(as_data(byte_view(k.esk.expose())));
  b.setPub(as_data(k.pub));
  b.setCreated(k.created);
}

protocol::owned_key get_owned(sc::OwnedKey::Reader r) {
  protocol::owned_key k;
  k.esk = secret32(r.getEsk(), "esk");
  k.pub = fixed<32>(r.getPub(), "owned key pub");
  k.created = r.getCreated();
  return k;
}

void put_chan_ref(sc::ChannelRef::Builder b, const protocol::channel_ref& c) {
  b.setConv(as_data(c.conv));
  b.setPeer(as_data(c.peer));
}

protocol::channel_ref get_chan_ref(sc::ChannelRef::Reader r) {
  return protocol::channel_ref{fixed<16>(r.getConv(), "channel conv"),
                               id_of(r.getPeer(), "channel peer")};
}

// Generous upper bounds of encoded sizes (bytes), for secret scratch segments.
size_t member_list_estimate(const member_list& l) {
  return l.size() * (protocol::max_id_len + 64);
}

// Every protocol struct storage persists, field by field. Adding a field to one of them stops the
// build here: storage must learn to persist it (or record why not) before it ships, instead of
// silently losing it across a restart. Classes with private state (key_store, client, mirror,
// router_conv) are restored through their accessors and checked by the reload tests instead.
[[maybe_unused]] void field_inventory(
    const protocol::client_tombstone& tomb, const protocol::outbox_entry& ob,
    const protocol::outbox_version& ov, const protocol::orphan_version& orph,
    const protocol::client_conv& cc, const protocol::accepted_entry& acc,
    const protocol::channel& ch, const protocol::owned_key& ok, const protocol::prekey_slot& ps,
    const protocol::last_resort_slot& lrs, const protocol::conv_state& st,
    const protocol::mirror_conv& mc, const protocol::log_entry& le, const protocol::answer& an,
    const protocol::last_resort_attachment& lra, const protocol::published_key& pk,
    const protocol::key_ref& kr, const protocol::member& mem, const protocol::aseq_value& av,
    const protocol::floor_value& fv, const protocol::channel_ref& cr) {
  [[maybe_unused]] const auto& [t1, t2, t3] = tomb;
  [[maybe_unused]] const auto& [o1, o2, o3, o4, o5, o6, o7, o8] = ob;
  [[maybe_unused]] const auto& [v1, v2] = ov;
  [[maybe_unused]] const auto& [p1, p2, p3, p4] = orph;
  [[maybe_unused]] const auto& [c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14] = cc;
  [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
                                a16, a17] = acc;
  [[maybe_unused]] const auto& [h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11] = ch;
  [[maybe_unused]] const auto& [k1, k2, k3] = ok;
  [[maybe_unused]] const auto& [s1, s2] = ps;
  [[maybe_unused]] const auto& [l1, l2, l3] = lrs;
  [[maybe_unused]] const auto& [e1, e2, e3, e4, e5, e6, e7, e8, e9, e10] = st;
  [[maybe_unused]] const auto& [m1, m2, m3, m4, m5] = mc;
  [[maybe_unused]] const auto& [g1, g2, g3, g4, g5, g6, g7, g8, g9, g10, g11, g12] = le;
  [[maybe_unused]] const auto& [n1, n2, n3] = an;
  [[maybe_unused]] const auto& [r1, r2, r3] = lra;
  [[maybe_unused]] const auto& [q1, q2] = pk;
  [[maybe_unused]] const auto& [f1, f2, f3] = kr;
  [[maybe_unused]] const auto& [b1, b2] = mem;
  [[maybe_unused]] const auto& [x1, x2] = av;
  [[maybe_unused]] const auto& [y1, y2] = fv;
  [[maybe_unused]] const auto& [z1, z2] = cr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fixed layouts.

bytes encode_layout(const layout_record& l) {
  byte_writer w = start(6);
  w.be32(l.version).u8(static_cast<uint8_t>(l.r));
  return std::move(w).take();
}

expected<layout_record> decode_layout(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "layout record"));
  layout_record l;
  uint8_t role_byte = 0;
  if (!r.be32(l.version) || !r.u8(role_byte) || !r.at_end())
    return fail(errc::unsupported_layout, "layout record: unreadable");
  if (role_byte < 1 || role_byte > 3)
    return fail(errc::unsupported_layout,
                "layout record: unknown role " + std::to_string(role_byte));
  l.r = static_cast<role>(role_byte);
  return l;
}

bytes encode_hash(const hash32& h) {
  byte_writer w = start(33);
  w.raw(h);
  return std::move(w).take();
}

expected<hash32> decode_hash(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "hash record"));
  hash32 h{};
  COWPI_TRY_VOID(corrupt_if(!r.raw(h), "hash record"));
  COWPI_TRY_VOID(check_end(r, "hash record"));
  return h;
}

bytes encode_u64(uint64_t v) {
  byte_writer w = start(9);
  w.be64(v);
  return std::move(w).take();
}

expected<uint64_t> decode_u64(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "integer record"));
  uint64_t v = 0;
  COWPI_TRY_VOID(corrupt_if(!r.be64(v), "integer record"));
  COWPI_TRY_VOID(check_end(r, "integer record"));
  return v;
}

bytes encode_block_row(const protocol::slot_block& blk) {
  const bytes e = protocol::enc_slot(blk);
  byte_writer w = start(1 + e.size());
  w.raw(e);
  return std::move(w).take();
}

expected<protocol::slot_block> decode_block_row(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "block record"));
  byte_view body;
  COWPI_TRY_VOID(corrupt_if(!r.view(r.remaining(), body), "block record"));
  auto blk = protocol::decode_slot(body);
  if (!blk)
    return fail(errc::corruption, "block record: " + blk.error().message());
  return std::move(*blk);
}

bytes encode_channel_ref(const protocol::channel_ref& c) {
  return build_clear<sc::ChannelRef>([&](sc::ChannelRef::Builder b) { put_chan_ref(b, c); });
}

expected<protocol::channel_ref> decode_channel_ref(byte_view b) {
  return read_capnp<sc::ChannelRef>(b, "channel ref",
                                    [](sc::ChannelRef::Reader r) { return get_chan_ref(r); });
}

bytes encode_pub(const public_key& pub) {
  byte_writer w = start(33);
  w.raw(pub);
  return std::move(w).take();
}

expected<public_key> decode_pub(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "public key record"));
  public_key k{};
  COWPI_TRY_VOID(corrupt_if(!r.raw(k), "public key record"));
  COWPI_TRY_VOID(check_end(r, "public key record"));
  return k;
}

bytes encode_user(const user_record& u) {
  byte_writer w = start(41);
  w.raw(u.lpk).be64(u.registered_at);
  return std::move(w).take();
}

expected<user_record> decode_user(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "user record"));
  user_record u;
  COWPI_TRY_VOID(corrupt_if(!r.raw(u.lpk) || !r.be64(u.registered_at), "user record"));
  COWPI_TRY_VOID(check_end(r, "user record"));
  return u;
}

bytes encode_owner(const owner_record& o) {
  byte_writer w = start(90);
  w.raw(o.lpk).be64(o.one_time_remaining).be64(o.max_prekey_id);
  w.u8(o.last_resort ? 1 : 0);
  w.be64(o.last_resort ? o.last_resort->id : 0);
  w.raw(o.last_resort ? o.last_resort->pub : public_key{});
  return std::move(w).take();
}

expected<owner_record> decode_owner(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "owner record"));
  owner_record o;
  uint8_t has_lr = 0;
  published_key lr;
  COWPI_TRY_VOID(corrupt_if(!r.raw(o.lpk) || !r.be64(o.one_time_remaining)
                                || !r.be64(o.max_prekey_id) || !r.u8(has_lr) || !r.be64(lr.id)
                                || !r.raw(lr.pub) || has_lr > 1,
                            "owner record"));
  COWPI_TRY_VOID(check_end(r, "owner record"));
  if (has_lr == 1)
    o.last_resort = lr;
  return o;
}

bytes encode_cursor(const cursor_record& c) {
  byte_writer w = start(18);
  w.be64(c.next).u8(c.last ? 1 : 0).be64(c.last.value_or(0));
  return std::move(w).take();
}

expected<cursor_record> decode_cursor(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "cursor record"));
  cursor_record c;
  uint8_t has_last = 0;
  uint64_t last = 0;
  COWPI_TRY_VOID(corrupt_if(!r.be64(c.next) || !r.u8(has_last) || !r.be64(last) || has_last > 1,
                            "cursor record"));
  COWPI_TRY_VOID(check_end(r, "cursor record"));
  if (has_last == 1)
    c.last = last;
  return c;
}

bytes encode_members(const member_list& l) {
  byte_writer w = start(5 + l.size() * 48);
  protocol::enc_list(w, l);
  return std::move(w).take();
}

expected<member_list> decode_members(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "member list"));
  uint32_t n = 0;
  COWPI_TRY_VOID(corrupt_if(!r.be32(n) || n > r.remaining() / 37, "member list"));
  member_list out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    byte_view id;
    protocol::member m;
    COWPI_TRY_VOID(
        corrupt_if(!r.lp(id, protocol::max_id_len) || id.empty() || !r.raw(m.lpk), "member list"));
    m.id.assign(reinterpret_cast<const char*>(id.data()), id.size());
    out.push_back(std::move(m));
  }
  COWPI_TRY_VOID(check_end(r, "member list"));
  return out;
}

constexpr uint32_t answer_variable = 0x80000000U;

// `t || be32(n) || enc(block)...` when every slot is a 185-byte block (public-key mode, the
// original layout); else `t || be32(n | 2^31) || (u8(len) || enc(slot))...` (chain mode).
bytes encode_answer(const protocol::answer& a) {
  const bool fixed = std::all_of(a.mirror_blocks.begin(), a.mirror_blocks.end(),
                                 [](const auto& s) { return std::holds_alternative<block>(s); });
  const auto n = static_cast<uint32_t>(a.mirror_blocks.size());
  byte_writer w = start(37 + a.mirror_blocks.size() * (protocol::block_size + 1));
  w.raw(a.t).be32(fixed ? n : n | answer_variable);
  for (const auto& blk : a.mirror_blocks) {
    const bytes e = protocol::enc_slot(blk);
    if (!fixed)
      w.u8(static_cast<uint8_t>(e.size()));
    w.raw(e);
  }
  return std::move(w).take();
}

expected<protocol::answer> decode_answer(uint64_t index, byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "answer record"));
  protocol::answer a;
  a.index = index;
  uint32_t n = 0;
  COWPI_TRY_VOID(corrupt_if(!r.raw(a.t) || !r.be32(n), "answer record"));
  const bool fixed = (n & answer_variable) == 0;
  n &= ~answer_variable;
  COWPI_TRY_VOID(corrupt_if(n > r.remaining() / (fixed ? protocol::block_size : 25)
                                || (fixed && n != r.remaining() / protocol::block_size),
                            "answer record"));
  a.mirror_blocks.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t len = protocol::block_size;
    if (!fixed)
      COWPI_TRY_VOID(corrupt_if(!r.u8(len), "answer record"));
    byte_view v;
    COWPI_TRY_VOID(corrupt_if(!r.view(len, v), "answer record"));
    auto blk = protocol::decode_slot(v);
    if (!blk)
      return fail(errc::corruption, "answer record: " + blk.error().message());
    a.mirror_blocks.push_back(std::move(*blk));
  }
  COWPI_TRY_VOID(check_end(r, "answer record"));
  return a;
}

bytes encode_counters(const key_counters& k) {
  byte_writer w = start(25);
  w.be64(k.next_prekey).be64(k.next_last_resort).be64(k.current_last_resort);
  return std::move(w).take();
}

expected<key_counters> decode_counters(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "key counters"));
  key_counters k;
  COWPI_TRY_VOID(corrupt_if(
      !r.be64(k.next_prekey) || !r.be64(k.next_last_resort) || !r.be64(k.current_last_resort),
      "key counters"));
  COWPI_TRY_VOID(check_end(r, "key counters"));
  return k;
}

bytes encode_seal_params(const seal_params& p) {
  byte_writer w = start(33);
  w.raw(p.salt).be64(p.opslimit).be64(p.memlimit);
  return std::move(w).take();
}

expected<seal_params> decode_seal_params(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "seal parameters"));
  seal_params p;
  COWPI_TRY_VOID(
      corrupt_if(!r.raw(p.salt) || !r.be64(p.opslimit) || !r.be64(p.memlimit), "seal parameters"));
  COWPI_TRY_VOID(check_end(r, "seal parameters"));
  return p;
}

bytes encode_identity_binding(const identity_binding& b) {
  byte_writer w = start(5 + b.id.size() + 32);
  w.lp(b.id).raw(b.lpk);
  return std::move(w).take();
}

expected<identity_binding> decode_identity_binding(byte_view b) {
  byte_reader r(b);
  COWPI_TRY_VOID(check_format(r, "identity binding"));
  identity_binding out;
  byte_view id;
  COWPI_TRY_VOID(
      corrupt_if(!r.lp(id, protocol::max_id_len) || !r.raw(out.lpk), "identity binding"));
  COWPI_TRY_VOID(check_end(r, "identity binding"));
  out.id.assign(reinterpret_cast<const char*>(id.data()), id.size());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cap'n Proto records in the clear.

bytes encode_router_header(const router_header& h) {
  return build_clear<sc::RouterConvHeader>([&](sc::RouterConvHeader::Builder b) {
    b.setLastUpdate(h.last_update);
    b.setNext(h.next);
    b.setJoiner(h.joiner);
    b.setStopped(h.stopped);
    b.setStopReason(text(h.stop_reason));
  });
}

expected<router_header> decode_router_header(byte_view b) {
  return read_capnp<sc::RouterConvHeader>(b, "router header", [](sc::RouterConvHeader::Reader r) {
    router_header h;
    h.last_update = r.getLastUpdate();
    h.next = r.getNext();
    h.joiner = r.getJoiner();
    h.stopped = r.getStopped();
    h.stop_reason = r.getStopReason().cStr();
    return h;
  });
}

bytes encode_mirror_header(const mirror_header& h) {
  return build_clear<sc::MirrorConvHeader>([&](sc::MirrorConvHeader::Builder b) {
    b.setLastUpdate(h.last_update);
    b.setNext(h.next);
    b.setJoiner(h.joiner);
  });
}

expected<mirror_header> decode_mirror_header(byte_view b) {
  return read_capnp<sc::MirrorConvHeader>(b, "mirror header", [](sc::MirrorConvHeader::Reader r) {
    return mirror_header{r.getLastUpdate(), r.getNext(), r.getJoiner()};
  });
}

bytes encode_client_header(const client_header& h) {
  return build_clear<sc::ClientConvHeader>([&](sc::ClientConvHeader::Builder b) {
    b.setLastUpdate(h.last_update);
    b.setNext(h.next);
    b.setJoiner(h.joiner);
    b.setStatus(static_cast<uint8_t>(h.status));
    b.setHaltIndex(h.halt_index);
    b.setLastForeign(h.last_foreign);
    b.setOwnParent(h.own_parent);
    b.setLastReceiptTime(h.last_receipt_time);
    b.setNextOutboxId(h.next_outbox_id);
  });
}

expected<client_header> decode_client_header(byte_view b) {
  return read_capnp<sc::ClientConvHeader>(b, "client header", [](sc::ClientConvHeader::Reader r) {
    client_header h;
    h.last_update = r.getLastUpdate();
    h.next = r.getNext();
    h.joiner = r.getJoiner();
    const uint8_t s = r.getStatus();
    if (s < 1 || s > 3)
      throw corrupt_field{"status"};
    h.status = static_cast<protocol::conv_status>(s);
    h.halt_index = r.getHaltIndex();
    h.last_foreign = r.getLastForeign();
    h.own_parent = r.getOwnParent();
    h.last_receipt_time = r.getLastReceiptTime();
    h.next_outbox_id = r.getNextOutboxId();
    return h;
  });
}

bytes encode_client_sets(const client_sets& s) {
  return build_clear<sc::ClientConvSets>([&](sc::ClientConvSets::Builder b) {
    auto v = b.initVoidsPending(list_size(s.voids_pending.size()));
    unsigned i = 0;
    for (uint64_t x : s.voids_pending)
      v.set(i++, x);
    auto a = b.initAlarmed(list_size(s.alarmed.size()));
    i = 0;
    for (uint64_t x : s.alarmed)
      a.set(i++, x);
  });
}

expected<client_sets> decode_client_sets(byte_view b) {
  return read_capnp<sc::ClientConvSets>(b, "client sets", [](sc::ClientConvSets::Reader r) {
    client_sets s;
    for (uint64_t x : r.getVoidsPending())
      s.voids_pending.insert(x);
    for (uint64_t x : r.getAlarmed())
      s.alarmed.insert(x);
    return s;
  });
}

bytes encode_peer_row(const peer_row& p) {
  return build_clear<sc::PeerRow>([&](sc::PeerRow::Builder b) {
    if (p.aseq) {
      auto a = b.initAseq();
      a.setKnown(p.aseq->known);
      a.setValue(p.aseq->value);
    }
    if (p.floor) {
      auto f = b.initFloor();
      f.setKnown(p.floor->known);
      f.setValue(p.floor->value);
    }
    if (p.last_ordered) {
      auto l = b.initLastOrdered();
      l.setIndex(p.last_ordered->first);
      l.setHash(as_data(p.last_ordered->second));
    }
    if (p.last_update_time)
      b.initLastUpdateTime().setValue(*p.last_update_time);
    if (p.ratchet_next)
      b.initRatchetNext().setValue(*p.ratchet_next);
    if (p.member_lr)
      put_published(b.initMemberLr(), *p.member_lr);
  });
}

expected<peer_row> decode_peer_row(byte_view b) {
  return read_capnp<sc::PeerRow>(b, "peer row", [](sc::PeerRow::Reader r) {
    peer_row p;
    if (r.hasAseq())
      p.aseq = protocol::aseq_value{r.getAseq().getKnown(), r.getAseq().getValue()};
    if (r.hasFloor())
      p.floor = protocol::floor_value{r.getFloor().getKnown(), r.getFloor().getValue()};
    if (r.hasLastOrdered())
      p.last_ordered = std::make_pair(r.getLastOrdered().getIndex(),
                                      fixed<32>(r.getLastOrdered().getHash(), "last ordered D"));
    if (r.hasLastUpdateTime())
      p.last_update_time = r.getLastUpdateTime().getValue();
    if (r.hasRatchetNext())
      p.ratchet_next = r.getRatchetNext().getValue();
    if (r.hasMemberLr())
      p.member_lr = get_published(r.getMemberLr());
    return p;
  });
}

bytes encode_log_record(const protocol::log_entry& e, uint64_t ordered_at) {
  return build_clear<sc::LogEntry>([&](sc::LogEntry::Builder b) {
    b.setCommon(as_data(protocol::wire::encode_common(e.c)));
    if (e.body)
      b.setBody(as_data(*e.body));
    b.setBlocksRoot(as_data(e.blocks_root));
    b.setD(as_data(e.d));
    b.setTPrev(as_data(e.t_prev));
    b.setT(as_data(e.t));
    put_ids(b.initSlots(list_size(e.slots.size())), e.slots);
    put_ids(b.initJoiners(list_size(e.joiners.size())), e.joiners);
    b.setOrderedAt(ordered_at);
  });
}

expected<log_record> decode_log_record(uint64_t index, byte_view b) {
  return read_capnp<sc::LogEntry>(b, "log entry", [&](sc::LogEntry::Reader r) {
    log_record out;
    out.entry.index = index;
    auto c = protocol::wire::decode_common(byte_view(r.getCommon().begin(), r.getCommon().size()));
    if (!c)
      throw corrupt_field{"common"};
    out.entry.c = std::move(*c);
    if (r.hasBody())
      out.entry.body = bytes_of(r.getBody());
    out.entry.blocks_root = fixed<32>(r.getBlocksRoot(), "blocks_root");
    out.entry.d = fixed<32>(r.getD(), "d");
    out.entry.t_prev = fixed<32>(r.getTPrev(), "t_prev");
    out.entry.t = fixed<32>(r.getT(), "t");
    out.entry.slots = get_ids(r.getSlots());
    out.entry.joiners = get_ids(r.getJoiners());
    out.ordered_at = r.getOrderedAt();
    return out;
  });
}

bytes encode_pending(const pending_record& p) {
  return build_clear<sc::PendingCommit>([&](sc::PendingCommit::Builder b) {
    auto a = b.initAmbs(list_size(p.ambs.size()));
    for (size_t i = 0; i < p.ambs.size(); ++i) {
      const auto enc = protocol::enc_slot(p.ambs[i]);
      a.set(list_size(i), as_data(enc));
    }
    auto l = b.initLastResort(list_size(p.last_resort.size()));
    for (size_t i = 0; i < p.last_resort.size(); ++i) {
      l[list_size(i)].setMember(as_data(p.last_resort[i].member));
      l[list_size(i)].setKeyId(p.last_resort[i].key_id);
      l[list_size(i)].setPub(as_data(p.last_resort[i].pub));
    }
  });
}

expected<pending_record> decode_pending(byte_view b) {
  return read_capnp<sc::PendingCommit>(b, "pending commit", [](sc::PendingCommit::Reader r) {
    pending_record p;
    for (auto a : r.getAmbs()) {
      auto blk = protocol::decode_slot(byte_view(a.begin(), a.size()));
      if (!blk)
        throw corrupt_field{"amb"};
      p.ambs.push_back(std::move(*blk));
    }
    for (auto l : r.getLastResort())
      p.last_resort.push_back(
          protocol::last_resort_attachment{id_of(l.getMember(), "last resort member"), l.getKeyId(),
                                           fixed<32>(l.getPub(), "last resort pub")});
    return p;
  });
}

bytes encode_tombstone(const protocol::client_tombstone& t) {
  return build_clear<sc::Tombstone>([&](sc::Tombstone::Builder b) {
    b.setOwnAseq(t.own_aseq);
    auto l = b.initRatchetNext(list_size(t.ratchet_next.size()));
    unsigned i = 0;
    for (const auto& [id, v] : t.ratchet_next) {
      l[i].setId(as_data(id));
      l[i].setValue(v);
      ++i;
    }
    b.setNext(t.next);
  });
}

expected<protocol::client_tombstone> decode_tombstone(byte_view b) {
  return read_capnp<sc::Tombstone>(b, "tombstone", [](sc::Tombstone::Reader r) {
    protocol::client_tombstone t;
    t.own_aseq = r.getOwnAseq();
    for (auto p : r.getRatchetNext())
      t.ratchet_next[id_of(p.getId(), "peer")] = p.getValue();
    t.next = r.getNext();
    return t;
  });
}

bytes encode_identity_record(const identity_record& rec) {
  return build_clear<sc::IdentityRecord>([&](sc::IdentityRecord::Builder b) {
    b.setId(as_data(rec.id));
    b.setLpk(as_data(rec.lpk));
    b.setSealedLsk(as_data(rec.sealed_lsk));
    put_member_list(b.initPinnedMs(list_size(rec.pinned_ms.size())), rec.pinned_ms);
  });
}

expected<identity_record> decode_identity_record(byte_view b) {
  return read_capnp<sc::IdentityRecord>(b, "identity record", [](sc::IdentityRecord::Reader r) {
    identity_record rec;
    rec.id = id_of(r.getId(), "id");
    rec.lpk = fixed<32>(r.getLpk(), "lpk");
    rec.sealed_lsk = bytes_of(r.getSealedLsk());
    rec.pinned_ms = get_member_list(r.getPinnedMs());
    return rec;
  });
}

// ---------------------------------------------------------------------------------------------
// Secret-bearing records.

secure_bytes encode_channel(const protocol::channel& ch) {
  return build_secret<sc::Channel>(512 + ch.mine.size() * 96, [&](sc::Channel::Builder b) {
    auto mine = b.initMine(list_size(ch.mine.size()));
    unsigned i = 0;
    for (const auto& [id, k] : ch.mine) {
      mine[i].setId(id);
      put_owned(mine[i].initKey(), k);
      ++i;
    }
    b.setAnnounced(ch.announced);
    b.setAnnouncedReferenced(ch.announced_referenced);
    if (ch.peer_latest)
      put_published(b.initPeerLatest(), *ch.peer_latest);
    if (ch.first_contact) {
      auto f = b.initFirstContact();
      f.setKind(static_cast<uint8_t>(ch.first_contact->kind));
      f.setId(ch.first_contact->id);
      f.setPub(as_data(ch.first_contact->pub));
    }
    if (ch.peer_used_prekey)
      b.initPeerUsedPrekey().setValue(*ch.peer_used_prekey);
    if (ch.peer_used_last_resort)
      b.initPeerUsedLastResort().setValue(*ch.peer_used_last_resort);
    const protocol::chain_sender& o = ch.out;
    auto put_chain = [](sc::SendChain::Builder sc, const protocol::send_chain& c) {
      sc.setEpoch(c.epoch());
      sc.setNext(c.next());
      sc.setCk(as_data(byte_view(c.key().expose())));
      sc.setSpent(!c.usable());
    };
    if (o.last_epoch != 0 || o.chain) {
      auto cb = b.initChainOut();
      cb.setLastEpoch(o.last_epoch);
      if (o.chain)
        put_chain(cb.initChain(), *o.chain);
      auto pl = cb.initPending(list_size(o.pending.size()));
      for (unsigned k = 0; k < o.pending.size(); ++k) {
        const auto& p = o.pending[k];
        pl[k].setAseq(p.aseq);
        pl[k].setD(as_data(p.d));
        put_chain(pl[k].initChain(), p.chain);
        pl[k].setReferencedKind(static_cast<uint8_t>(p.referenced_kind));
        pl[k].setReferencedId(p.referenced_id);
        pl[k].setStartedAt(p.started_at);
      }
      cb.setReferencedKind(static_cast<uint8_t>(o.referenced_kind));
      cb.setReferencedId(o.referenced_id);
      cb.setStartedAt(o.started_at);
      cb.setStepAseq(o.step_aseq);
      cb.setVoidReported(o.void_reported);
      cb.setAckedNext(o.acked_next);
    }
    if (ch.in) {
      auto ib = b.initChainIn();
      ib.setEpoch(ch.in->epoch);
      ib.setNext(ch.in->next);
      ib.setCk(as_data(byte_view(ch.in->ck.expose())));
      auto sk = ib.initSkipped(list_size(ch.in->skipped.size()));
      unsigned k = 0;
      for (const auto& [n, mk] : ch.in->skipped) {
        sk[k].setN(n);
        sk[k].setMk(as_data(byte_view(mk.expose())));
        ++k;
      }
    }
    b.setReceivedSinceAnnounce(ch.received_since_announce);
    b.setBrokenEpoch(ch.broken_epoch);
  });
}

expected<protocol::channel> decode_channel(byte_view b) {
  return read_capnp<sc::Channel>(b, "channel", [](sc::Channel::Reader r) {
    protocol::channel ch;
    for (auto m : r.getMine())
      ch.mine.emplace(m.getId(), get_owned(m.getKey()));
    ch.announced = r.getAnnounced();
    ch.announced_referenced = r.getAnnouncedReferenced();
    if (r.hasPeerLatest())
      ch.peer_latest = get_published(r.getPeerLatest());
    if (r.hasFirstContact()) {
      auto f = r.getFirstContact();
      ch.first_contact = protocol::key_ref{key_kind_of(f.getKind()), f.getId(),
                                           fixed<32>(f.getPub(), "first contact pub")};
    }
    if (r.hasPeerUsedPrekey())
      ch.peer_used_prekey = r.getPeerUsedPrekey().getValue();
    if (r.hasPeerUsedLastResort())
      ch.peer_used_last_resort = r.getPeerUsedLastResort().getValue();
    if (r.hasChainOut()) {
      auto o = r.getChainOut();
      ch.out.last_epoch = o.getLastEpoch();
      auto get_chain = [](sc::SendChain::Reader sc) {
        return protocol::send_chain(sc.getEpoch(), secret32(sc.getCk(), "send chain key"),
                                    sc.getNext(), sc.getSpent());
      };
      if (o.hasChain())
        ch.out.chain.emplace(get_chain(o.getChain()));
      for (auto p : o.getPending()) {
        if (!p.hasChain())
          throw corrupt_field{"pending chain step"};
        ch.out.pending.push_back(protocol::pending_step{
            p.getAseq(), fixed<32>(p.getD(), "pending step D"), get_chain(p.getChain()),
            key_kind_of(p.getReferencedKind()), p.getReferencedId(), p.getStartedAt()});
      }
      ch.out.referenced_kind = key_kind_of(o.getReferencedKind());
      ch.out.referenced_id = o.getReferencedId();
      ch.out.started_at = o.getStartedAt();
      ch.out.step_aseq = o.getStepAseq();
      ch.out.void_reported = o.getVoidReported();
      ch.out.acked_next = o.getAckedNext();
    }
    if (r.hasChainIn()) {
      auto i = r.getChainIn();
      protocol::recv_chain rc;
      rc.epoch = i.getEpoch();
      rc.next = i.getNext();
      rc.ck = secret32(i.getCk(), "receive chain key");
      if (i.getSkipped().size() > protocol::chain_max_skip)
        throw corrupt_field{"skipped chain keys"};
      for (auto s : i.getSkipped())
        rc.skipped.emplace(s.getN(), secret32(s.getMk(), "skipped message key"));
      ch.in = std::move(rc);
    }
    ch.received_since_announce = r.getReceivedSinceAnnounce();
    ch.broken_epoch = r.getBrokenEpoch();
    return ch;
  });
}

secure_bytes encode_prekey_slot(const protocol::prekey_slot& s) {
  return build_secret<sc::PrekeySlot>(512, [&](sc::PrekeySlot::Builder b) {
    put_owned(b.initKey(), s.key);
    if (s.bound)
      put_chan_ref(b.initBound(), *s.bound);
  });
}

expected<protocol::prekey_slot> decode_prekey_slot(byte_view b) {
  return read_capnp<sc::PrekeySlot>(b, "prekey slot", [](sc::PrekeySlot::Reader r) {
    protocol::prekey_slot s;
    s.key = get_owned(r.getKey());
    if (r.hasBound())
      s.bound = get_chan_ref(r.getBound());
    return s;
  });
}

secure_bytes encode_last_resort_slot(const protocol::last_resort_slot& s) {
  return build_secret<sc::LastResortSlot>(512 + s.pending.size() * (protocol::max_id_len + 64),
                                          [&](sc::LastResortSlot::Builder b) {
                                            put_owned(b.initKey(), s.key);
                                            b.setRetiredAt(s.retired_at);
                                            auto l = b.initPending(list_size(s.pending.size()));
                                            unsigned i = 0;
                                            for (const auto& c : s.pending)
                                              put_chan_ref(l[i++], c);
                                          });
}

expected<protocol::last_resort_slot> decode_last_resort_slot(byte_view b) {
  return read_capnp<sc::LastResortSlot>(b, "last resort slot", [](sc::LastResortSlot::Reader r) {
    protocol::last_resort_slot s;
    s.key = get_owned(r.getKey());
    s.retired_at = r.getRetiredAt();
    for (auto c : r.getPending())
      s.pending.insert(get_chan_ref(c));
    return s;
  });
}

secure_bytes encode_orphans(const std::vector<protocol::orphan_version>& o) {
  size_t estimate = 256;
  for (const auto& v : o)
    estimate += 96 + v.plaintext.size();
  return build_secret<sc::ClientOrphans>(estimate, [&](sc::ClientOrphans::Builder b) {
    auto l = b.initOrphans(list_size(o.size()));
    for (size_t k = 0; k < o.size(); ++k) {
      l[list_size(k)].setAseq(o[k].aseq);
      l[list_size(k)].setD(as_data(o[k].d));
      l[list_size(k)].setPlaintext(as_data(o[k].plaintext));
      l[list_size(k)].setEntryId(o[k].entry_id);
    }
  });
}

expected<std::vector<protocol::orphan_version>> decode_orphans(byte_view b) {
  return read_capnp<sc::ClientOrphans>(b, "orphans", [](sc::ClientOrphans::Reader r) {
    std::vector<protocol::orphan_version> out;
    for (auto o : r.getOrphans()) {
      protocol::orphan_version v;
      v.aseq = o.getAseq();
      v.d = fixed<32>(o.getD(), "orphan d");
      v.plaintext = bytes_of(o.getPlaintext());
      v.entry_id = o.getEntryId();
      out.push_back(std::move(v));
    }
    return out;
  });
}

secure_bytes encode_outbox_entry(const protocol::outbox_entry& e) {
  std::vector<bytes> submits;
  submits.reserve(e.versions.size());
  size_t estimate = 1024 + e.plaintext.size() + member_list_estimate(e.adds)
                    + e.removes.size() * (protocol::max_id_len + 16);
  for (const auto& v : e.versions) {
    submits.push_back(protocol::wire::encode_submit(v.submit));
    estimate += submits.back().size() + 64;
  }
  return build_secret<sc::OutboxEntry>(estimate, [&](sc::OutboxEntry::Builder b) {
    b.setId(e.id);
    b.setAseq(e.aseq);
    b.setType(static_cast<uint8_t>(e.type));
    b.setPlaintext(as_data(e.plaintext));
    put_member_list(b.initAdds(list_size(e.adds.size())), e.adds);
    put_ids(b.initRemoves(list_size(e.removes.size())), e.removes);
    auto vs = b.initVersions(list_size(e.versions.size()));
    for (size_t i = 0; i < e.versions.size(); ++i) {
      vs[list_size(i)].setD(as_data(e.versions[i].d));
      vs[list_size(i)].setSubmit(as_data(submits[i]));
    }
    if (e.stale_after)
      b.initStaleAfter().setValue(*e.stale_after);
  });
}

expected<protocol::outbox_entry> decode_outbox_entry(byte_view b) {
  return read_capnp<sc::OutboxEntry>(b, "outbox entry", [](sc::OutboxEntry::Reader r) {
    protocol::outbox_entry e;
    e.id = r.getId();
    e.aseq = r.getAseq();
    e.type = msg_type_of(r.getType());
    e.plaintext = bytes_of(r.getPlaintext());
    e.adds = get_member_list(r.getAdds());
    e.removes = get_ids(r.getRemoves());
    for (auto v : r.getVersions()) {
      protocol::outbox_version ov;
      ov.d = fixed<32>(v.getD(), "version d");
      auto s =
          protocol::wire::decode_submit(byte_view(v.getSubmit().begin(), v.getSubmit().size()));
      if (!s)
        throw corrupt_field{"submit"};
      ov.submit = std::move(*s);
      e.versions.push_back(std::move(ov));
    }
    if (r.hasStaleAfter())
      e.stale_after = r.getStaleAfter().getValue();
    return e;
  });
}

secure_bytes encode_accepted(const protocol::accepted_entry& a) {
  const size_t estimate = 1024 + a.plaintext.size() + member_list_estimate(a.members)
                          + member_list_estimate(a.adds)
                          + a.removes.size() * (protocol::max_id_len + 16) + a.voids.size() * 8
                          + a.safety_number.size();
  return build_secret<sc::AcceptedEntry>(estimate, [&](sc::AcceptedEntry::Builder b) {
    b.setType(static_cast<uint8_t>(a.type));
    b.setAuthor(as_data(a.author));
    b.setAseq(a.aseq);
    if (a.parent)
      b.initParent().setValue(*a.parent);
    b.setD(as_data(a.d));
    b.setT(as_data(a.t));
    b.setOwn(a.own);
    b.setIsVoid(a.is_void);
    b.setPlaintext(as_data(a.plaintext));
    put_member_list(b.initMembers(list_size(a.members.size())), a.members);
    put_member_list(b.initAdds(list_size(a.adds.size())), a.adds);
    put_ids(b.initRemoves(list_size(a.removes.size())), a.removes);
    b.setSafetyNumber(text(a.safety_number));
    b.setFloorBefore(a.floor_before);
    auto v = b.initVoids(list_size(a.voids.size()));
    for (size_t i = 0; i < a.voids.size(); ++i)
      v.set(list_size(i), a.voids[i]);
  });
}

expected<protocol::accepted_entry> decode_accepted(const protocol::conv_id& conv, uint64_t index,
                                                   byte_view b) {
  return read_capnp<sc::AcceptedEntry>(b, "transcript entry", [&](sc::AcceptedEntry::Reader r) {
    protocol::accepted_entry a;
    a.conv = conv;
    a.index = index;
    a.type = msg_type_of(r.getType());
    a.author = id_of(r.getAuthor(), "author");
    a.aseq = r.getAseq();
    if (r.hasParent())
      a.parent = r.getParent().getValue();
    a.d = fixed<32>(r.getD(), "d");
    a.t = fixed<32>(r.getT(), "t");
    a.own = r.getOwn();
    a.is_void = r.getIsVoid();
    a.plaintext = bytes_of(r.getPlaintext());
    a.members = get_member_list(r.getMembers());
    a.adds = get_member_list(r.getAdds());
    a.removes = get_ids(r.getRemoves());
    a.safety_number = r.getSafetyNumber().cStr();
    a.floor_before = r.getFloorBefore();
    for (uint64_t v : r.getVoids())
      a.voids.push_back(v);
    return a;
  });
}

secure_bytes encode_lsk(const crypto::secret<32>& lsk) {
  secure_bytes out(33);
  out.data()[0] = record_format;
  std::memcpy(out.data() + 1, lsk.expose().data(), 32);
  return out;
}

expected<crypto::secret<32>> decode_lsk(byte_view b) {
  if (b.size() != 33)
    return fail(errc::corruption, "identity key: wrong length");
  if (b[0] != record_format)
    return fail(errc::unsupported_layout, "identity key: unknown record format");
  return crypto::secret<32>::from(b.subspan(1));
}

}  // namespace cowpi::storage

// SPDX-License-Identifier: Apache-2.0
// The wire codec for router<->mirror link messages (docs/design.md §3.4, §3.10).
#include "cowpi/protocol/wire.hpp"

#include "codec.hpp"

namespace cowpi::protocol::wire {
namespace detail {
namespace {

bool read_link_hello(read_ctx& ctx, schema::LinkHello::Reader r, link_hello& out) {
  out.version = r.getVersion();
  return read_id(ctx, r.getId(), out.id, "link HELLO id")
         && read_fixed(ctx, r.getLpk(), out.lpk, "link HELLO lpk");
}

void write_link_hello(schema::LinkHello::Builder b, const link_hello& h) {
  b.setId(as_data(h.id));
  b.setLpk(as_data(h.lpk));
  b.setVersion(h.version);
}

bool read_prepare(read_ctx& ctx, schema::Prepare::Reader r, prepare_msg& out) {
  if (!r.hasC()) {
    return ctx.fail(errc::malformed, "PREPARE: no C");
  }
  if (!read_common(ctx, r.getC(), out.c)) {
    return false;
  }
  auto hashes = r.getBlockHashes();
  if (!check_count(ctx, hashes.size(), max_recipients, "PREPARE block hashes")) {
    return false;
  }
  out.block_hashes.reserve(hashes.size());
  for (auto h : hashes) {
    block_digest d;
    if (!read_id(ctx, h.getRecipient(), d.recipient, "PREPARE block hash recipient")
        || !read_fixed(ctx, h.getHash(), d.hash, "PREPARE block hash")) {
      return false;
    }
    out.block_hashes.push_back(std::move(d));
  }
  if (!read_block(ctx, r.getAmb(), out.amb, "PREPARE amb")) {
    return false;
  }
  auto lr = r.getLastResort();
  if (!check_count(ctx, lr.size(), max_members, "PREPARE last resort keys")) {
    return false;
  }
  out.last_resort.reserve(lr.size());
  for (auto a : lr) {
    last_resort_attachment v;
    v.key_id = a.getKeyId();
    if (!read_id(ctx, a.getMember(), v.member, "PREPARE last resort member")
        || !read_fixed(ctx, a.getPub(), v.pub, "PREPARE last resort pub")) {
      return false;
    }
    out.last_resort.push_back(std::move(v));
  }
  return true;
}

void write_prepare(schema::Prepare::Builder b, const prepare_msg& p) {
  write_common(b.initC(), p.c);
  auto hashes = b.initBlockHashes(list_size(p.block_hashes.size()));
  for (unsigned i = 0; i < hashes.size(); ++i) {
    auto h = hashes[i];
    h.setRecipient(as_data(p.block_hashes[i].recipient));
    h.setHash(as_data(p.block_hashes[i].hash));
  }
  const auto amb = enc_slot(p.amb);
  b.setAmb(as_data(amb));
  auto lr = b.initLastResort(list_size(p.last_resort.size()));
  for (unsigned i = 0; i < lr.size(); ++i) {
    auto a = lr[i];
    a.setMember(as_data(p.last_resort[i].member));
    a.setKeyId(p.last_resort[i].key_id);
    a.setPub(as_data(p.last_resort[i].pub));
  }
}

bool read_mirror_prekeys(read_ctx& ctx, schema::MirrorPrekeys::Reader r, mirror_prekeys& out) {
  if (!read_published_keys(ctx, r.getOneTime(), out.one_time, "mirror PREKEYS one-time")) {
    return false;
  }
  if (r.hasLastResort()) {
    published_key k;
    if (!read_published_key(ctx, r.getLastResort(), k, "mirror PREKEYS last resort")) {
      return false;
    }
    out.last_resort = k;
  }
  return true;
}

bool read_audit_answer(read_ctx& ctx, schema::AuditAnswer::Reader r, audit_answer& out) {
  out.from = r.getFrom();
  auto l = r.getD();
  if (!check_count(ctx, l.size(), max_audit_batch, "AUDIT answer")) {
    return false;
  }
  out.d.reserve(l.size());
  for (auto d : l) {
    hash32 h{};
    if (!read_fixed(ctx, d, h, "AUDIT answer D")) {
      return false;
    }
    out.d.push_back(h);
  }
  return true;
}

void read_link_request(read_ctx& ctx, schema::LinkRequest::Reader r, link_request& out) {
  if (!check_wire_version(ctx, r.getVersion(), "link request")) {
    return;
  }
  switch (r.which()) {
    case schema::LinkRequest::HELLO: {
      link_hello v;
      if (read_link_hello(ctx, r.getHello(), v)) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkRequest::PREPARE: {
      prepare_msg v;
      if (read_prepare(ctx, r.getPrepare(), v)) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkRequest::COMMIT: {
      auto c = r.getCommit();
      commit_msg v;
      v.index = c.getIndex();
      if (read_fixed(ctx, c.getD(), v.d, "COMMIT d")
          && read_prepare(ctx, c.getPayload(), v.payload)) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkRequest::ACK: {
      auto a = r.getAck();
      link_ack v;
      v.index = a.getIndex();
      if (read_fixed(ctx, a.getConv(), v.conv, "link ACK conv")) {
        out = v;
      }
      return;
    }
    case schema::LinkRequest::STATUS: {
      status_query v;
      if (read_fixed(ctx, r.getStatus().getConv(), v.conv, "STATUS conv")) {
        out = v;
      }
      return;
    }
    case schema::LinkRequest::TOPUP:
      out = topup{r.getTopup().getCount()};
      return;
    case schema::LinkRequest::AUDIT: {
      auto a = r.getAudit();
      audit_query v;
      v.from = a.getFrom();
      v.to = a.getTo();
      if (read_fixed(ctx, a.getConv(), v.conv, "AUDIT conv")) {
        out = v;
      }
      return;
    }
  }
  unknown_tag(ctx, "link request", r.which());
}

void write_link_request(schema::LinkRequest::Builder root, const link_request& m) {
  std::visit(overloaded{
                 [&](const link_hello& v) { write_link_hello(root.initHello(), v); },
                 [&](const prepare_msg& v) { write_prepare(root.initPrepare(), v); },
                 [&](const commit_msg& v) {
                   auto c = root.initCommit();
                   c.setIndex(v.index);
                   c.setD(as_data(v.d));
                   write_prepare(c.initPayload(), v.payload);
                 },
                 [&](const link_ack& v) {
                   auto a = root.initAck();
                   a.setConv(as_data(v.conv));
                   a.setIndex(v.index);
                 },
                 [&](const status_query& v) { root.initStatus().setConv(as_data(v.conv)); },
                 [&](const topup& v) { root.initTopup().setCount(v.count); },
                 [&](const audit_query& v) {
                   auto a = root.initAudit();
                   a.setConv(as_data(v.conv));
                   a.setFrom(v.from);
                   a.setTo(v.to);
                 },
             },
             m);
}

void read_link_response(read_ctx& ctx, schema::LinkResponse::Reader r, link_response& out) {
  if (!check_wire_version(ctx, r.getVersion(), "link response")) {
    return;
  }
  switch (r.which()) {
    case schema::LinkResponse::HELLO: {
      link_hello v;
      if (read_link_hello(ctx, r.getHello(), v)) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkResponse::PREPARED: {
      prepared v;
      if (read_fixed(ctx, r.getPrepared().getD(), v.d, "PREPARED d")) {
        out = v;
      }
      return;
    }
    case schema::LinkResponse::REJECT: {
      link_reject v;
      if (read_text(ctx, r.getReject().getReason(), v.reason, "REJECT reason")) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkResponse::ANSWER: {
      auto a = r.getAnswer();
      answer v;
      v.index = a.getIndex();
      if (read_fixed(ctx, a.getT(), v.t, "ANSWER t")
          && read_blocks(ctx, a.getMirrorBlocks(), max_slots, v.mirror_blocks,
                         "ANSWER mirror blocks")) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkResponse::ALREADY_ANSWERED:
      out = already_answered{r.getAlreadyAnswered().getIndex()};
      return;
    case schema::LinkResponse::CONFLICT: {
      auto c = r.getConflict();
      conflict v;
      v.index = c.getIndex();
      if (read_fixed(ctx, c.getD(), v.d, "CONFLICT d")) {
        out = v;
      }
      return;
    }
    case schema::LinkResponse::GAP:
      out = gap{r.getGap().getNext()};
      return;
    case schema::LinkResponse::STATUS: {
      auto s = r.getStatus();
      status_answer v;
      v.known = s.getKnown();
      v.next = s.getNext();
      if (read_fixed(ctx, s.getTLast(), v.t_last, "STATUS answer t_last")) {
        out = v;
      }
      return;
    }
    case schema::LinkResponse::PREKEYS: {
      mirror_prekeys v;
      if (read_mirror_prekeys(ctx, r.getPrekeys(), v)) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkResponse::AUDIT: {
      audit_answer v;
      if (read_audit_answer(ctx, r.getAudit(), v)) {
        out = std::move(v);
      }
      return;
    }
    case schema::LinkResponse::ACKED:
      (void)r.getAcked();
      out = acked{};
      return;
  }
  unknown_tag(ctx, "link response", r.which());
}

void write_link_response(schema::LinkResponse::Builder root, const link_response& m) {
  std::visit(overloaded{
                 [&](const link_hello& v) { write_link_hello(root.initHello(), v); },
                 [&](const prepared& v) { root.initPrepared().setD(as_data(v.d)); },
                 [&](const link_reject& v) { root.initReject().setReason(text(v.reason)); },
                 [&](const answer& v) {
                   auto a = root.initAnswer();
                   a.setIndex(v.index);
                   a.setT(as_data(v.t));
                   write_blocks(a.initMirrorBlocks(list_size(v.mirror_blocks.size())),
                                v.mirror_blocks);
                 },
                 [&](const already_answered& v) { root.initAlreadyAnswered().setIndex(v.index); },
                 [&](const conflict& v) {
                   auto c = root.initConflict();
                   c.setIndex(v.index);
                   c.setD(as_data(v.d));
                 },
                 [&](const gap& v) { root.initGap().setNext(v.next); },
                 [&](const status_answer& v) {
                   auto s = root.initStatus();
                   s.setKnown(v.known);
                   s.setNext(v.next);
                   s.setTLast(as_data(v.t_last));
                 },
                 [&](const mirror_prekeys& v) {
                   auto p = root.initPrekeys();
                   write_published_keys(p.initOneTime(list_size(v.one_time.size())), v.one_time);
                   if (v.last_resort) {
                     write_published_key(p.initLastResort(), *v.last_resort);
                   }
                 },
                 [&](const audit_answer& v) {
                   auto a = root.initAudit();
                   a.setFrom(v.from);
                   auto l = a.initD(list_size(v.d.size()));
                   for (unsigned i = 0; i < l.size(); ++i) {
                     l.set(i, as_data(v.d[i]));
                   }
                 },
                 [&](const acked&) { root.initAcked(); },
             },
             m);
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Public entry points.

bytes encode(const link_request& m) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<schema::LinkRequest>();
  root.setVersion(wire_version);
  detail::write_link_request(root, m);
  return detail::to_bytes(mb);
}

bytes encode(const link_response& m) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<schema::LinkResponse>();
  root.setVersion(wire_version);
  detail::write_link_response(root, m);
  return detail::to_bytes(mb);
}

expected<link_request> decode_link_request(byte_view b) {
  detail::read_ctx ctx;
  link_request out;
  detail::read_message<schema::LinkRequest>(
      ctx, b, [&](schema::LinkRequest::Reader r) { detail::read_link_request(ctx, r, out); });
  return detail::finish(ctx, std::move(out));
}

expected<link_response> decode_link_response(byte_view b) {
  detail::read_ctx ctx;
  link_response out;
  detail::read_message<schema::LinkResponse>(
      ctx, b, [&](schema::LinkResponse::Reader r) { detail::read_link_response(ctx, r, out); });
  return detail::finish(ctx, std::move(out));
}

}  // namespace cowpi::protocol::wire

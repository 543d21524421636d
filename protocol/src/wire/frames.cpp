// SPDX-License-Identifier: Apache-2.0
// The wire codec for client<->router frames: clear handshake frames, client requests and
// router responses, pushes and errors.
#include "cowpi/protocol/wire.hpp"

#include "codec.hpp"

namespace cowpi::protocol::wire {
namespace detail {
namespace {

// ---------------------------------------------------------------------------------------------
// Clear frames.

bool read_hello(read_ctx& ctx, schema::Hello::Reader r, hello& out) {
  out.version = r.getVersion();
  switch (r.getMode()) {
    case schema::HelloMode::LOGIN:
      out.mode = hello_mode::login;
      break;
    case schema::HelloMode::REGISTER:
      out.mode = hello_mode::register_user;
      break;
    case schema::HelloMode::UNSPECIFIED:
    default:
      return ctx.fail(errc::malformed,
                      "HELLO: unknown mode " + std::to_string(static_cast<unsigned>(r.getMode())));
  }
  return read_id(ctx, r.getId(), out.id, "HELLO id")
         && read_fixed(ctx, r.getLpk(), out.lpk, "HELLO lpk")
         && read_fixed(ctx, r.getX(), out.x, "HELLO x");
}

void write_hello(schema::Hello::Builder b, const hello& h) {
  b.setVersion(h.version);
  switch (h.mode) {
    case hello_mode::login:
      b.setMode(schema::HelloMode::LOGIN);
      break;
    case hello_mode::register_user:
      b.setMode(schema::HelloMode::REGISTER);
      break;
  }
  COWPI_ASSERT(b.getMode() != schema::HelloMode::UNSPECIFIED);
  b.setId(as_data(h.id));
  b.setLpk(as_data(h.lpk));
  b.setX(as_data(h.x));
}

void read_clear_frame(read_ctx& ctx, schema::ClearFrame::Reader r, clear_frame& out) {
  if (!check_wire_version(ctx, r.getVersion(), "clear frame")) {
    return;
  }
  switch (r.which()) {
    case schema::ClearFrame::HELLO: {
      hello h;
      if (read_hello(ctx, r.getHello(), h)) {
        out = std::move(h);
      }
      return;
    }
    case schema::ClearFrame::HELLO_ACK: {
      auto a = r.getHelloAck();
      hello_ack v;
      v.version = a.getVersion();
      if (read_fixed(ctx, a.getX(), v.x, "HELLO_ACK x")) {
        out = v;
      }
      return;
    }
    case schema::ClearFrame::ERROR: {
      error_frame e;
      if (read_error_frame(ctx, r.getError(), e)) {
        out = std::move(e);
      }
      return;
    }
  }
  unknown_tag(ctx, "clear frame", r.which());
}

// ---------------------------------------------------------------------------------------------
// Client -> router.

void read_client_request(read_ctx& ctx, schema::ClientFrame::Reader r, client_request& out) {
  switch (r.which()) {
    case schema::ClientFrame::SUBMIT: {
      submit_msg s;
      if (!read_submit(ctx, r.getSubmit(), s)) {
        return;
      }
      // One form per mode (docs/wire.md "The names-free SUBMIT"), as `write_client_request`
      // writes it: a chain-mode SUBMIT names-free, any other named.
      if (s.names_free_root.has_value() != (s.c.version == protocol_version_chain)) {
        (void)ctx.fail(errc::malformed, s.names_free_root
                                            ? "SUBMIT: names-free outside chain mode"
                                            : "SUBMIT: a chain-mode SUBMIT must be names-free");
        return;
      }
      out = std::move(s);
      return;
    }
    case schema::ClientFrame::ACK: {
      auto a = r.getAck();
      ack_msg v;
      v.index = a.getIndex();
      if (read_fixed(ctx, a.getConv(), v.conv, "ACK conv")) {
        out = v;
      }
      return;
    }
    case schema::ClientFrame::UPLOAD_PREKEYS: {
      auto u = r.getUploadPrekeys();
      upload_prekeys v;
      if (!read_published_keys(ctx, u.getOneTime(), v.one_time, "UPLOAD_PREKEYS one-time")) {
        return;
      }
      if (u.hasLastResort()) {
        published_key k;
        if (!read_published_key(ctx, u.getLastResort(), k, "UPLOAD_PREKEYS last resort")) {
          return;
        }
        v.last_resort = k;
      }
      out = std::move(v);
      return;
    }
    case schema::ClientFrame::FETCH_PREKEYS: {
      fetch_prekeys v;
      if (read_ids(ctx, r.getFetchPrekeys().getOwners(), max_fetch_owners, v.owners,
                   "FETCH_PREKEYS owners")) {
        out = std::move(v);
      }
      return;
    }
    case schema::ClientFrame::FETCH_PREKEYS_FOR: {
      fetch_prekeys v;
      const auto f = r.getFetchPrekeysFor();
      conv_id c{};
      if (read_ids(ctx, f.getOwners(), max_fetch_owners, v.owners, "FETCH_PREKEYS owners")
          && read_fixed(ctx, f.getConv(), c, "FETCH_PREKEYS conv")) {
        v.conv = c;
        out = std::move(v);
      }
      return;
    }
    case schema::ClientFrame::LOOKUP_USERS: {
      lookup_users v;
      if (read_ids(ctx, r.getLookupUsers().getIds(), max_members, v.ids, "LOOKUP_USERS ids")) {
        out = std::move(v);
      }
      return;
    }
    // The empty requests are still read, so a bad pointer in their slot is caught.
    case schema::ClientFrame::ACCOUNT_STATUS:
      (void)r.getAccountStatus();
      out = account_status{};
      return;
    case schema::ClientFrame::SUBSCRIBE:
      (void)r.getSubscribe();
      out = subscribe{};
      return;
    case schema::ClientFrame::PING:
      (void)r.getPing();
      out = ping{};
      return;
    case schema::ClientFrame::DRAIN:
      (void)r.getDrain();
      out = drain{};
      return;
    case schema::ClientFrame::RETIRE_PREKEYS:
      out = retire_prekeys{r.getRetirePrekeys().getBelow()};
      return;
  }
  unknown_tag(ctx, "client frame", r.which());
}

void write_client_request(schema::ClientFrame::Builder b, const client_request& req) {
  std::visit(overloaded{
                 [&](const submit_msg& s) {
                   // In chain mode a SUBMIT travels names-free (docs/wire.md "The names-free
                   // SUBMIT").
                   write_submit(b.initSubmit(), s, s.c.version == protocol_version_chain);
                 },
                 [&](const ack_msg& a) {
                   auto v = b.initAck();
                   v.setConv(as_data(a.conv));
                   v.setIndex(a.index);
                 },
                 [&](const upload_prekeys& u) {
                   auto v = b.initUploadPrekeys();
                   write_published_keys(v.initOneTime(list_size(u.one_time.size())), u.one_time);
                   if (u.last_resort) {
                     write_published_key(v.initLastResort(), *u.last_resort);
                   }
                 },
                 [&](const fetch_prekeys& f) {
                   if (!f.conv) {
                     write_ids(b.initFetchPrekeys().initOwners(list_size(f.owners.size())),
                               f.owners);
                     return;
                   }
                   auto v = b.initFetchPrekeysFor();
                   write_ids(v.initOwners(list_size(f.owners.size())), f.owners);
                   v.setConv(as_data(*f.conv));
                 },
                 [&](const lookup_users& l) {
                   write_ids(b.initLookupUsers().initIds(list_size(l.ids.size())), l.ids);
                 },
                 [&](const account_status&) { b.initAccountStatus(); },
                 [&](const subscribe&) { b.initSubscribe(); },
                 [&](const ping&) { b.initPing(); },
                 [&](const drain&) { b.initDrain(); },
                 [&](const retire_prekeys& rp) { b.initRetirePrekeys().setBelow(rp.below); },
             },
             req);
}

// ---------------------------------------------------------------------------------------------
// Router -> client.

bool read_rejection(read_ctx& ctx, schema::Rejection::Reader r, rejection& out) {
  using K = schema::RejectionKind;
  switch (r.getKind()) {
    case K::STALE:
      out.kind = rejection_kind::stale;
      break;
    case K::ASEQ_GAP:
      out.kind = rejection_kind::aseq_gap;
      break;
    case K::ALREADY_ORDERED:
      out.kind = rejection_kind::already_ordered;
      break;
    case K::NOT_MEMBER:
      out.kind = rejection_kind::not_member;
      break;
    case K::LIMIT:
      out.kind = rejection_kind::limit;
      break;
    case K::BAD_BLOCK_SIZE:
      out.kind = rejection_kind::bad_block_size;
      break;
    case K::BAD_BODY:
      out.kind = rejection_kind::bad_body;
      break;
    case K::UNKNOWN_MIRROR:
      out.kind = rejection_kind::unknown_mirror;
      break;
    case K::MIRROR_REJECT:
      out.kind = rejection_kind::mirror_reject;
      break;
    case K::INVALID:
      out.kind = rejection_kind::invalid;
      break;
    case K::UNAVAILABLE:
      out.kind = rejection_kind::unavailable;
      break;
    case K::STOPPED:
      out.kind = rejection_kind::stopped;
      break;
    case K::HISTORY_EXPIRED:
      out.kind = rejection_kind::history_expired;
      break;
    case K::UNKNOWN_USER:
      out.kind = rejection_kind::unknown_user;
      break;
    case K::UNSPECIFIED:
    default:
      return ctx.fail(errc::malformed, "rejection: unknown kind "
                                           + std::to_string(static_cast<unsigned>(r.getKind())));
  }
  out.value = r.getValue();
  return read_text(ctx, r.getDetail(), out.detail, "rejection detail");
}

schema::RejectionKind to_schema(rejection_kind k) {
  using K = schema::RejectionKind;
  switch (k) {
    case rejection_kind::stale:
      return K::STALE;
    case rejection_kind::aseq_gap:
      return K::ASEQ_GAP;
    case rejection_kind::already_ordered:
      return K::ALREADY_ORDERED;
    case rejection_kind::not_member:
      return K::NOT_MEMBER;
    case rejection_kind::limit:
      return K::LIMIT;
    case rejection_kind::bad_block_size:
      return K::BAD_BLOCK_SIZE;
    case rejection_kind::bad_body:
      return K::BAD_BODY;
    case rejection_kind::unknown_mirror:
      return K::UNKNOWN_MIRROR;
    case rejection_kind::mirror_reject:
      return K::MIRROR_REJECT;
    case rejection_kind::invalid:
      return K::INVALID;
    case rejection_kind::unavailable:
      return K::UNAVAILABLE;
    case rejection_kind::stopped:
      return K::STOPPED;
    case rejection_kind::history_expired:
      return K::HISTORY_EXPIRED;
    case rejection_kind::unknown_user:
      return K::UNKNOWN_USER;
  }
  constexpr bool known_rejection_kind = false;  // trusted input: any other value is a caller bug
  COWPI_ASSERT(known_rejection_kind);
  return K::UNSPECIFIED;
}

void read_response(read_ctx& ctx, schema::Response::Reader r, response& out) {
  out.request_id = r.getRequestId();
  switch (r.which()) {
    case schema::Response::OK:
      (void)r.getOk();
      out.body = ok_result{};
      return;
    case schema::Response::REJECTION: {
      rejection v;
      if (read_rejection(ctx, r.getRejection(), v)) {
        out.body = std::move(v);
      }
      return;
    }
    case schema::Response::PREKEYS: {
      auto l = r.getPrekeys().getBundles();
      if (!check_count(ctx, l.size(), max_fetch_owners, "prekeys result")) {
        return;
      }
      prekeys_result v;
      v.bundles.reserve(l.size());
      for (auto b : l) {
        prekey_bundle p;
        if (!read_prekey_bundle(ctx, b, p)) {
          return;
        }
        v.bundles.push_back(std::move(p));
      }
      out.body = std::move(v);
      return;
    }
    case schema::Response::USERS: {
      auto u = r.getUsers();
      users_result v;
      if (read_members(ctx, u.getUsers(), max_members, v.users, "users result")
          && read_ids(ctx, u.getUnknown(), max_members, v.unknown, "users result unknown")) {
        out.body = std::move(v);
      }
      return;
    }
    case schema::Response::STATUS: {
      auto s = r.getStatus();
      out.body = status_result{s.getOneTimeRemaining(), s.getLastResortId(), s.getMaxPrekeyId()};
      return;
    }
  }
  unknown_tag(ctx, "response", r.which());
}

void write_response(schema::Response::Builder b, const response& r) {
  b.setRequestId(r.request_id);
  std::visit(overloaded{
                 [&](const ok_result&) { b.initOk(); },
                 [&](const rejection& v) {
                   auto j = b.initRejection();
                   j.setKind(to_schema(v.kind));
                   j.setValue(v.value);
                   j.setDetail(text(v.detail));
                 },
                 [&](const prekeys_result& v) {
                   auto l = b.initPrekeys().initBundles(list_size(v.bundles.size()));
                   for (unsigned i = 0; i < l.size(); ++i) {
                     write_prekey_bundle(l[i], v.bundles[i]);
                   }
                 },
                 [&](const users_result& v) {
                   auto u = b.initUsers();
                   write_members(u.initUsers(list_size(v.users.size())), v.users);
                   write_ids(u.initUnknown(list_size(v.unknown.size())), v.unknown);
                 },
                 [&](const status_result& v) {
                   auto s = b.initStatus();
                   s.setOneTimeRemaining(v.one_time_remaining);
                   s.setLastResortId(v.last_resort_id);
                   s.setMaxPrekeyId(v.max_prekey_id);
                 },
             },
             r.body);
}

void read_router_frame(read_ctx& ctx, schema::RouterFrame::Reader r, router_frame& out) {
  if (!check_wire_version(ctx, r.getVersion(), "router frame")) {
    return;
  }
  switch (r.which()) {
    case schema::RouterFrame::RESPONSE: {
      response v;
      read_response(ctx, r.getResponse(), v);
      if (ctx.ok()) {
        out = std::move(v);
      }
      return;
    }
    case schema::RouterFrame::ENVELOPE: {
      envelope v;
      if (read_envelope(ctx, r.getEnvelope(), v)) {
        out = std::move(v);
      }
      return;
    }
    case schema::RouterFrame::ERROR: {
      error_frame v;
      if (read_error_frame(ctx, r.getError(), v)) {
        out = std::move(v);
      }
      return;
    }
  }
  unknown_tag(ctx, "router frame", r.which());
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Public entry points.

bytes encode(const clear_frame& f) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<schema::ClearFrame>();
  root.setVersion(wire_version);
  std::visit(detail::overloaded{
                 [&](const hello& h) { detail::write_hello(root.initHello(), h); },
                 [&](const hello_ack& a) {
                   auto b = root.initHelloAck();
                   b.setVersion(a.version);
                   b.setX(detail::as_data(a.x));
                 },
                 [&](const error_frame& e) { detail::write_error_frame(root.initError(), e); },
             },
             f);
  return detail::to_bytes(mb);
}

bytes encode(const client_frame& f) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<schema::ClientFrame>();
  root.setVersion(wire_version);
  root.setRequestId(f.request_id);
  detail::write_client_request(root, f.body);
  return detail::to_bytes(mb);
}

bytes encode(const router_frame& f) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<schema::RouterFrame>();
  root.setVersion(wire_version);
  std::visit(detail::overloaded{
                 [&](const response& r) { detail::write_response(root.initResponse(), r); },
                 [&](const envelope& e) { detail::write_envelope(root.initEnvelope(), e); },
                 [&](const error_frame& e) { detail::write_error_frame(root.initError(), e); },
             },
             f);
  return detail::to_bytes(mb);
}

expected<clear_frame> decode_clear_frame(byte_view b) {
  detail::read_ctx ctx;
  clear_frame out;
  detail::read_message<schema::ClearFrame>(
      ctx, b, [&](schema::ClearFrame::Reader r) { detail::read_clear_frame(ctx, r, out); });
  return detail::finish(ctx, std::move(out));
}

expected<client_frame, frame_problem> decode_client_frame(byte_view b) {
  detail::read_ctx ctx;
  ctx.soft_blocks = true;
  client_frame out;
  std::optional<uint64_t> request_id;
  detail::read_message<schema::ClientFrame>(ctx, b, [&](schema::ClientFrame::Reader r) {
    // Read first, so that every later failure can still be answered under this id.
    request_id = r.getRequestId();
    out.request_id = *request_id;
    if (!detail::check_wire_version(ctx, r.getVersion(), "client frame")) {
      return;
    }
    detail::read_client_request(ctx, r, out.body);
  });
  if (!ctx.ok()) {
    return unexpected<frame_problem>{frame_problem{*ctx.err(), request_id, {}}};
  }
  if (ctx.block_error) {
    return unexpected<frame_problem>{frame_problem{*ctx.block_error, request_id, ctx.block_answer}};
  }
  return out;
}

expected<router_frame> decode_router_frame(byte_view b) {
  detail::read_ctx ctx;
  router_frame out;
  detail::read_message<schema::RouterFrame>(
      ctx, b, [&](schema::RouterFrame::Reader r) { detail::read_router_frame(ctx, r, out); });
  return detail::finish(ctx, std::move(out));
}

}  // namespace cowpi::protocol::wire

// SPDX-License-Identifier: Apache-2.0
// The session worker of one client connection: runs protocol::router_session (handshake DH,
// frame AEAD, decoding) off the I/O thread and turns requests into messages to the directory,
// the conversation registry and the delivery queues.
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/session.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "client_actors.hpp"
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <variant>

namespace cowpi::actors {

namespace {

struct worker_state {
  connection_deps_ptr d;
  caf::actor broker;
  std::optional<protocol::router_session> session;
  crypto::system_rng rng;
  /// Session events not yet acted on: they wait while a lookup or a registration commit is
  /// outstanding (`blocked`), so that requests are never handled before the session counts.
  std::deque<protocol::router_event> backlog;
  bool blocked = false;
  /// The authenticated user: the only one this connection acts for.
  std::string user;
  bool attached = false;
  /// Requests sent to other actors and not yet answered.
  size_t inflight = 0;
  bool paused = false;
  bool done = false;
  /// DRAINs waiting for the queues of several nodes: how many have not answered.
  std::map<uint64_t, size_t> drains;
  static inline const char* name = "cowpi.session";
};

using worker = caf::stateful_actor<worker_state>;

caf::actor handle_of(worker* self) {
  return caf::actor_cast<caf::actor>(self);
}

/// Asks the broker to stop reading while too much is in progress, and to go on once half of
/// it is done (the backpressure of the read direction).
void update_flow(worker* self) {
  auto& st = self->state;
  const size_t load = st.inflight + st.backlog.size();
  const size_t high = st.d->max_inflight_requests;
  if (!st.paused && load >= high) {
    st.paused = true;
    self->send(st.broker, pause_atom_v);
  } else if (st.paused && load <= high / 2) {
    st.paused = false;
    self->send(st.broker, resume_atom_v);
  }
}

/// Ends the worker: the broker writes what it was given and closes; the queue stops.
void finish(worker* self, bool tell_broker) {
  auto& st = self->state;
  if (st.done) {
    return;
  }
  st.done = true;
  if (st.attached) {
    self->send(st.d->queues, detach_atom_v, st.user, handle_of(self));
    if (st.d->cluster_actor)
      self->send(st.d->cluster_actor, detach_atom_v, st.user, handle_of(self));
  }
  if (tell_broker) {
    self->send(st.broker, caf::close_atom_v);
  }
  self->quit();
}

void drain(worker* self);

void handle_events(worker* self, std::vector<protocol::router_event>&& events) {
  auto& st = self->state;
  for (auto& e : events) {
    st.backlog.push_back(std::move(e));
  }
  drain(self);
}

/// Sends ERROR{code, text} and closes. Frames already sealed go out first: their counters
/// precede the ERROR's. Requests not yet handled are dropped.
void shut_down(worker* self, protocol::frame_error_code code, std::string_view text) {
  auto& st = self->state;
  if (st.done) {
    return;
  }
  for (auto& e : st.backlog) {
    if (auto* f = std::get_if<protocol::send_frame>(&e)) {
      self->send(st.broker, write_atom_v, std::move(f->data));
    }
  }
  st.backlog.clear();
  st.blocked = false;
  auto events = st.session->shut_down(code, text);
  if (events.empty()) {
    // The session had closed already; make sure the connection does too.
    finish(self, true);
    return;
  }
  handle_events(self, std::move(events));
}

void write_frame(worker* self, bytes&& frame) {
  self->send(self->state.broker, write_atom_v, std::move(frame));
}

/// Seals `f` onto `out`. A frame that cannot be sealed (over max_frame: not possible for
/// anything the router sends with a conforming max_frame) ends the session: false.
bool seal_onto(worker* self, const protocol::router_frame& f, bytes& out) {
  auto sealed = self->state.session->seal(f);
  if (!sealed) {
    spdlog::warn("session: cannot seal a frame: {}", sealed.error().message());
    shut_down(self, protocol::frame_error_code::internal, "internal: frame too large");
    return false;
  }
  if (out.empty()) {
    out = std::move(sealed).value();
  } else {
    out.insert(out.end(), sealed->begin(), sealed->end());
  }
  return true;
}

/// Seals `f` and writes it.
void seal_and_write(worker* self, const protocol::router_frame& f) {
  auto& st = self->state;
  if (st.done || !st.session->is_established()) {
    return;
  }
  bytes out;
  if (seal_onto(self, f, out)) {
    write_frame(self, std::move(out));
  }
}

/// Seals a run of envelopes into one write: the frames back to back, as the client reads them.
void seal_and_write_all(worker* self, std::vector<protocol::envelope>& envs) {
  auto& st = self->state;
  if (st.done || !st.session->is_established()) {
    return;
  }
  bytes out;
  for (auto& env : envs) {
    if (!seal_onto(self, protocol::router_frame{std::move(env)}, out)) {
      return;
    }
  }
  if (!out.empty()) {
    write_frame(self, std::move(out));
  }
}

void reply(worker* self, uint64_t request_id, protocol::response_body body) {
  self->state.d->metrics->response(body)->inc();
  seal_and_write(self, protocol::router_frame{protocol::response{request_id, std::move(body)}});
}

protocol::rejection unavailable() {
  return protocol::rejection{protocol::rejection_kind::unavailable, 0, {}};
}

/// Has node `node` answer `body` (this node's actors, or another node's through the
/// cluster) and hands `k` the answer, or rejection{unavailable} when nobody answered in time.
void forward(worker* self, size_t node, uint64_t request_id, protocol::client_request body,
             std::function<void(protocol::response_body)> k) {
  auto& st = self->state;
  ++st.inflight;
  update_flow(self);
  auto done = [self, k = std::move(k)](protocol::response_body b) {
    --self->state.inflight;
    k(std::move(b));
    update_flow(self);
  };
  const auto& view = *st.d->cluster;
  if (node == view.self()) {
    answer_locally(self, st.d->directory, st.d->registry, st.d->request_timeout, st.user,
                   request_id, handle_of(self), std::move(body), std::move(done));
    return;
  }
  node_msg m;
  m.kind = node_kind::client;
  m.id = st.user;
  auto enc = protocol::wire::encode(protocol::client_frame{request_id, std::move(body)});
  m.bytes.assign(enc.begin(), enc.end());
  m.actor = handle_of(self);
  ask_node(self, view, node, st.d->request_timeout, std::move(m),
           [done = std::move(done)](std::optional<node_msg> a) {
             if (!a)
               return done(unavailable());
             auto f =
                 protocol::wire::decode_router_frame(byte_view(a->bytes.data(), a->bytes.size()));
             auto* r = f ? std::get_if<protocol::response>(&*f) : nullptr;
             if (r == nullptr)
               return done(unavailable());
             done(std::move(r->body));
           });
}

/// `forward` with the answer sent to the client.
void forward_reply(worker* self, size_t node, uint64_t request_id, protocol::client_request body) {
  forward(self, node, request_id, std::move(body),
          [self, request_id](protocol::response_body b) { reply(self, request_id, std::move(b)); });
}

/// Answers the parts of one request held by different nodes, then `merge`s their answers
/// (in the order of `parts`); the first rejection among them is the answer.
void fan_out(worker* self, uint64_t request_id,
             std::vector<std::pair<size_t, protocol::client_request>> parts,
             std::function<protocol::response_body(std::vector<protocol::response_body>&)> merge) {
  struct gather {
    std::vector<protocol::response_body> answers;
    size_t pending = 0;
  };
  auto g = std::make_shared<gather>();
  g->answers.resize(parts.size());
  g->pending = parts.size();
  for (size_t i = 0; i < parts.size(); ++i) {
    forward(self, parts[i].first, request_id, std::move(parts[i].second),
            [self, request_id, g, i, merge](protocol::response_body b) {
              g->answers[i] = std::move(b);
              if (--g->pending > 0)
                return;
              for (auto& a : g->answers)
                if (std::holds_alternative<protocol::rejection>(a))
                  return reply(self, request_id, std::move(a));
              reply(self, request_id, merge(g->answers));
            });
  }
}

/// FETCH_PREKEYS: each owner's keys come from the node holding its pool.
void fetch(worker* self, uint64_t id, protocol::fetch_prekeys f) {
  const auto& view = *self->state.d->cluster;
  std::map<size_t, protocol::fetch_prekeys> by_node;
  if (f.owners.size() <= protocol::max_fetch_owners)
    for (const auto& o : f.owners) {
      auto& part = by_node[view.pool_home(o, f.conv)];
      part.owners.push_back(o);
      part.conv = f.conv;
    }
  if (by_node.size() <= 1) {
    const size_t node = by_node.empty() ? view.self() : by_node.begin()->first;
    return forward_reply(self, node, id, std::move(f));
  }
  std::vector<std::pair<size_t, protocol::client_request>> parts;
  for (auto& [node, part] : by_node)
    parts.emplace_back(node, std::move(part));
  fan_out(self, id, std::move(parts), [owners = f.owners](auto& answers) {
    protocol::prekeys_result out;
    for (auto& a : answers)
      for (auto& b : std::get<protocol::prekeys_result>(a).bundles)
        out.bundles.push_back(std::move(b));
    // In the order the client named the owners, as one node would answer.
    auto pos = [&owners](const std::string& o) {
      return std::find(owners.begin(), owners.end(), o) - owners.begin();
    };
    std::stable_sort(out.bundles.begin(), out.bundles.end(),
                     [&](const auto& a, const auto& b) { return pos(a.owner) < pos(b.owner); });
    return protocol::response_body{std::move(out)};
  });
}

/// LOOKUP_USERS: each id is looked up on its home node.
void users(worker* self, uint64_t id, protocol::lookup_users q) {
  const auto& view = *self->state.d->cluster;
  std::map<size_t, protocol::lookup_users> by_node;
  if (q.ids.size() <= protocol::max_members)
    for (const auto& u : q.ids)
      by_node[view.home_of(u)].ids.push_back(u);
  if (by_node.size() <= 1) {
    const size_t node = by_node.empty() ? view.self() : by_node.begin()->first;
    return forward_reply(self, node, id, std::move(q));
  }
  std::vector<std::pair<size_t, protocol::client_request>> parts;
  for (auto& [node, part] : by_node)
    parts.emplace_back(node, std::move(part));
  fan_out(self, id, std::move(parts), [](auto& answers) {
    protocol::users_result out;
    for (auto& a : answers) {
      auto& r = std::get<protocol::users_result>(a);
      std::move(r.users.begin(), r.users.end(), std::back_inserter(out.users));
      std::move(r.unknown.begin(), r.unknown.end(), std::back_inserter(out.unknown));
    }
    std::sort(out.users.begin(), out.users.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    std::sort(out.unknown.begin(), out.unknown.end());
    return protocol::response_body{std::move(out)};
  });
}

/// Sends `m` (not a request) to node `node`'s cluster actor; dropped when no link is up.
void tell_node(worker* self, size_t node, node_msg m) {
  if (auto peer = self->state.d->cluster->peer(node))
    self->send(peer, nsend_atom_v, std::move(m));
}

void attach(worker* self) {
  auto& st = self->state;
  st.attached = true;
  self->send(st.d->queues, attach_atom_v, st.user, handle_of(self));
  // Every other node's queue streams this user's conversations held there.
  if (st.d->cluster_actor)
    self->send(st.d->cluster_actor, attach_atom_v, st.user, handle_of(self));
}

/// DRAIN: answered once the queue of every node whose link is up has sent what it had.
void drain_request(worker* self, uint64_t id) {
  auto& st = self->state;
  if (!st.attached)
    return reply(self, id, protocol::ok_result{});
  const auto& view = *st.d->cluster;
  size_t asked = 1;
  self->send(st.d->queues, drain_atom_v, st.user, handle_of(self), id);
  for (size_t i = 0; i < view.size(); ++i) {
    if (i == view.self() || !view.peer(i))
      continue;
    node_msg m;
    m.kind = node_kind::drain;
    m.id = st.user;
    m.number = id;
    m.actor = handle_of(self);
    tell_node(self, i, std::move(m));
    ++asked;
  }
  st.drains[id] += asked;
  if (asked > 1)
    self->delayed_send(self, st.d->request_timeout, deadline_atom_v, id);
}

void handle_request(worker* self, protocol::client_frame&& f) {
  auto& st = self->state;
  const uint64_t id = f.request_id;
  const auto& view = *st.d->cluster;
  // The session's user is authoritative: every request acts for it, whatever it names.
  std::visit(
      [&](auto&& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, protocol::submit_msg>) {
          forward_reply(self, view.owner_of(body.c.conv), id, std::move(body));
        } else if constexpr (std::is_same_v<T, protocol::ack_msg>) {
          // Not answered: a client sends one per conversation per batch it accepted, and one
          // that is lost only makes the router send the envelopes again (docs/protocol.md).
          const size_t node = view.owner_of(body.conv);
          if (node == view.self()) {
            self->send(st.d->queues, cack_atom_v, st.user, body.conv, body.index);
          } else {
            node_msg m;
            m.kind = node_kind::cack;
            m.id = st.user;
            m.bytes.assign(body.conv.begin(), body.conv.end());
            m.number = body.index;
            tell_node(self, node, std::move(m));
          }
        } else if constexpr (
            std::is_same_v<
                T,
                protocol::
                    upload_prekeys> || std::is_same_v<T, protocol::retire_prekeys> || std::is_same_v<T, protocol::account_status>) {
          forward_reply(self, view.home_of(st.user), id, std::move(body));
        } else if constexpr (std::is_same_v<T, protocol::fetch_prekeys>) {
          fetch(self, id, std::move(body));
        } else if constexpr (std::is_same_v<T, protocol::lookup_users>) {
          users(self, id, std::move(body));
        } else if constexpr (std::is_same_v<T, protocol::subscribe>) {
          attach(self);  // the queue restarts from the cursors: unacknowledged ones come again
          reply(self, id, protocol::ok_result{});
        } else if constexpr (std::is_same_v<T, protocol::drain>) {
          drain_request(self, id);
        } else {
          static_assert(std::is_same_v<T, protocol::ping>);
          reply(self, id, protocol::ok_result{});
        }
      },
      std::move(f.body));
}

protocol::lookup_result to_protocol(lookup_result r) {
  switch (r) {
    case lookup_result::ok:
      return protocol::lookup_result::ok;
    case lookup_result::unknown_user:
      return protocol::lookup_result::unknown_user;
    case lookup_result::id_taken:
      return protocol::lookup_result::id_taken;
  }
  return protocol::lookup_result::unknown_user;
}

void resolve_lookup(worker* self, lookup_result r);

void on_lookup(worker* self, const protocol::need_lookup& q) {
  auto& st = self->state;
  st.blocked = true;
  const auto& view = *st.d->cluster;
  if (const size_t home = view.home_of(q.id); home != view.self()) {
    node_msg m;
    m.kind = node_kind::lookup;
    m.id = q.id;
    m.bytes.assign(q.lpk.begin(), q.lpk.end());
    m.number = static_cast<uint64_t>(q.mode);
    ask_node(self, view, home, st.d->request_timeout, std::move(m),
             [self](std::optional<node_msg> a) {
               if (!a || a->number < 1 || a->number > 3) {
                 spdlog::info("session: the user's home node did not answer its lookup");
                 shut_down(self, protocol::frame_error_code::busy, "busy: directory unavailable");
                 return;
               }
               resolve_lookup(self, static_cast<lookup_result>(a->number));
             });
    return;
  }
  self->request(st.d->directory, st.d->request_timeout, lookup_atom_v, q.id, q.lpk, q.mode)
      .then([self](lookup_result r) { resolve_lookup(self, r); },
            [self](caf::error& err) {
              spdlog::info("session: directory lookup failed: {}", self->system().render(err));
              shut_down(self, protocol::frame_error_code::busy, "busy: directory unavailable");
            });
}

void resolve_lookup(worker* self, lookup_result r) {
  {
    {
      auto& s = self->state;
      s.blocked = false;
      auto events = s.session->resolve_lookup(to_protocol(r), s.rng);
      if (!events) {
        spdlog::warn("session: lookup answer refused: {}", events.error().message());
        shut_down(self, protocol::frame_error_code::internal, "internal: lookup");
        return;
      }
      handle_events(self, std::move(events).value());
    }
  }
}

void registered(worker* self, bool registered);

void on_authenticated(worker* self, const protocol::authenticated& a) {
  auto& st = self->state;
  st.user = a.id;
  if (a.mode != protocol::hello_mode::register_user) {
    self->send(st.broker, authed_atom_v);
    attach(self);
    return;
  }
  // docs/design.md §2: a REGISTER counts only now that the first encrypted frame proved
  // possession of lsk_U; the directory commits it (and may have lost a race meanwhile).
  st.blocked = true;
  const auto& view = *st.d->cluster;
  if (const size_t home = view.home_of(a.id); home != view.self()) {
    node_msg m;
    m.kind = node_kind::reg;
    m.id = a.id;
    m.bytes.assign(a.lpk.begin(), a.lpk.end());
    ask_node(self, view, home, st.d->request_timeout, std::move(m),
             [self](std::optional<node_msg> ans) {
               if (!ans) {
                 spdlog::info("session: the user's home node did not answer its registration");
                 shut_down(self, protocol::frame_error_code::busy, "busy: directory unavailable");
                 return;
               }
               registered(self, ans->number == 1);
             });
    return;
  }
  self->request(st.d->directory, st.d->request_timeout, register_atom_v, a.id, a.lpk)
      .then([self](bool ok) { registered(self, ok); },
            [self](caf::error& err) {
              spdlog::info("session: registration failed: {}", self->system().render(err));
              shut_down(self, protocol::frame_error_code::busy, "busy: directory unavailable");
            });
}

void registered(worker* self, bool registered) {
  {
    {
      auto& s = self->state;
      if (!registered) {
        shut_down(self, protocol::frame_error_code::id_taken, "id_taken: id taken");
        return;
      }
      s.blocked = false;
      self->send(s.broker, authed_atom_v);
      attach(self);
      drain(self);
    }
  }
}

void drain(worker* self) {
  auto& st = self->state;
  while (!st.blocked && !st.done && !st.backlog.empty()) {
    protocol::router_event e = std::move(st.backlog.front());
    st.backlog.pop_front();
    std::visit(
        [&](auto&& ev) {
          using T = std::decay_t<decltype(ev)>;
          if constexpr (std::is_same_v<T, protocol::send_frame>) {
            write_frame(self, std::move(ev.data));
          } else if constexpr (std::is_same_v<T, protocol::close_connection>) {
            spdlog::debug("session: closed with {}: {}", to_string(ev.code), ev.cause.message());
            finish(self, true);
          } else if constexpr (std::is_same_v<T, protocol::need_lookup>) {
            on_lookup(self, ev);
          } else if constexpr (std::is_same_v<T, protocol::authenticated>) {
            on_authenticated(self, ev);
          } else if constexpr (std::is_same_v<T, protocol::incoming_request>) {
            handle_request(self, std::move(ev.frame));
          } else {
            static_assert(std::is_same_v<T, protocol::refused_request>);
            spdlog::debug("session: refused a request: {}", ev.cause.message());
          }
        },
        std::move(e));
  }
  if (!st.done) {
    update_flow(self);
  }
}

caf::behavior session_worker(worker* self, caf::actor broker, connection_deps_ptr d) {
  auto& st = self->state;
  st.d = d;
  st.broker = broker;
  st.session.emplace(*d->router, d->max_frame);
  self->monitor(broker);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.broker) {
      finish(self, false);
    }
  });
  return {
      [self](frame_atom, const bytes& payload) {
        auto& s = self->state;
        if (s.done) {
          return;
        }
        handle_events(self, s.session->on_frame(payload));
      },
      [self](shutdown_atom, protocol::frame_error_code code, const std::string& text) {
        shut_down(self, code, text);
      },
      [self](deliver_atom, std::vector<protocol::envelope>& envs) {
        seal_and_write_all(self, envs);
      },
      [self](reject_atom, late_rejection& r) { reply(self, r.request_id, std::move(r.why)); },
      [self](drain_atom, uint64_t request_id) {
        auto& s = self->state;
        auto it = s.drains.find(request_id);
        if (it == s.drains.end())
          return;  // answered already (a node's queue was too late)
        if (--it->second > 0)
          return;
        s.drains.erase(it);
        reply(self, request_id, protocol::ok_result{});
      },
      [self](deadline_atom, uint64_t request_id) {
        // A node whose link went down meanwhile never answers: the DRAIN is retryable.
        if (self->state.drains.erase(request_id) > 0)
          reply(self, request_id, unavailable());
      },
      [self](nsend_atom, node_msg& m) {
        // Another node's queue or conversation, through its stub for this session.
        if (m.kind == node_kind::deliver) {
          std::vector<protocol::envelope> envs;
          envs.reserve(m.items.size());
          for (const auto& item : m.items) {
            auto e = protocol::wire::decode_envelope(byte_view(item.data(), item.size()));
            if (!e) {
              spdlog::warn("session: a node sent an unreadable envelope: {}", e.error().message());
              return;
            }
            envs.push_back(std::move(e).value());
          }
          seal_and_write_all(self, envs);
        } else if (m.kind == node_kind::rejected) {
          auto f = protocol::wire::decode_router_frame(byte_view(m.bytes.data(), m.bytes.size()));
          if (auto* r = f ? std::get_if<protocol::response>(&*f) : nullptr)
            reply(self, r->request_id, std::move(r->body));
        }
      },
  };
}

}  // namespace

caf::actor spawn_session_worker(caf::actor_system& sys, caf::actor broker, connection_deps_ptr d) {
  return sys.spawn(session_worker, std::move(broker), std::move(d));
}

}  // namespace cowpi::actors

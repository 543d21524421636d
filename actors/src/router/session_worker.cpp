// SPDX-License-Identifier: Apache-2.0
// The session worker of one client connection: runs protocol::router_session (handshake DH,
// frame AEAD, decoding) off the I/O thread and turns requests into messages to the directory,
// the conversation registry and the delivery queues.
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/session.hpp"

#include "../type_ids.hpp"
#include "client_actors.hpp"
#include <spdlog/spdlog.h>

#include <deque>
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

/// Sends a request to `dest` with the configured timeout; its answer (a response_body) or
/// rejection{unavailable} on a timeout or error goes back to the client under `request_id`.
template <class... Ts>
void ask(worker* self, const caf::actor& dest, uint64_t request_id, Ts&&... xs) {
  auto& st = self->state;
  if (!dest) {
    reply(self, request_id, unavailable());  // not wired (a node still starting)
    return;
  }
  ++st.inflight;
  update_flow(self);
  self->request(dest, st.d->request_timeout, std::forward<Ts>(xs)...)
      .then(
          [self, request_id](protocol::response_body& body) {
            --self->state.inflight;
            reply(self, request_id, std::move(body));
            update_flow(self);
          },
          [self, request_id](caf::error& err) {
            --self->state.inflight;
            spdlog::debug("session: request failed: {}", self->system().render(err));
            reply(self, request_id, unavailable());
            update_flow(self);
          });
}

void attach(worker* self) {
  auto& st = self->state;
  st.attached = true;
  self->send(st.d->queues, attach_atom_v, st.user, handle_of(self));
}

void handle_request(worker* self, protocol::client_frame&& f) {
  auto& st = self->state;
  const uint64_t id = f.request_id;
  // The session's user is authoritative: every request acts for it, whatever it names.
  std::visit(
      [&](auto&& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, protocol::submit_msg>) {
          ask(self, st.d->registry, id, submit_atom_v,
              submit_request{st.user, id, handle_of(self), std::move(body)});
        } else if constexpr (std::is_same_v<T, protocol::ack_msg>) {
          // Not answered: a client sends one per conversation per batch it accepted, and one
          // that is lost only makes the router send the envelopes again (docs/protocol.md).
          self->send(st.d->queues, cack_atom_v, st.user, body.conv, body.index);
        } else if constexpr (std::is_same_v<T, protocol::upload_prekeys>) {
          ask(self, st.d->directory, id, upload_atom_v, st.user, std::move(body));
        } else if constexpr (std::is_same_v<T, protocol::fetch_prekeys>) {
          ask(self, st.d->directory, id, fetch_atom_v, st.user, std::move(body));
        } else if constexpr (std::is_same_v<T, protocol::lookup_users>) {
          ask(self, st.d->directory, id, users_atom_v, std::move(body.ids));
        } else if constexpr (std::is_same_v<T, protocol::retire_prekeys>) {
          ask(self, st.d->directory, id, retire_atom_v, st.user, body.below);
        } else if constexpr (std::is_same_v<T, protocol::account_status>) {
          ask(self, st.d->directory, id, status_atom_v, st.user);
        } else if constexpr (std::is_same_v<T, protocol::subscribe>) {
          attach(self);  // the queue restarts from the cursors: unacknowledged ones come again
          reply(self, id, protocol::ok_result{});
        } else if constexpr (std::is_same_v<T, protocol::drain>) {
          if (st.attached) {
            // The user's queue answers `(drain_atom, id)` after the envelopes it has to send.
            self->send(st.d->queues, drain_atom_v, st.user, handle_of(self), id);
          } else {
            reply(self, id, protocol::ok_result{});
          }
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

void on_lookup(worker* self, const protocol::need_lookup& q) {
  auto& st = self->state;
  st.blocked = true;
  self->request(st.d->directory, st.d->request_timeout, lookup_atom_v, q.id, q.lpk, q.mode)
      .then(
          [self](lookup_result r) {
            auto& s = self->state;
            s.blocked = false;
            auto events = s.session->resolve_lookup(to_protocol(r), s.rng);
            if (!events) {
              spdlog::warn("session: lookup answer refused: {}", events.error().message());
              shut_down(self, protocol::frame_error_code::internal, "internal: lookup");
              return;
            }
            handle_events(self, std::move(events).value());
          },
          [self](caf::error& err) {
            spdlog::info("session: directory lookup failed: {}", self->system().render(err));
            shut_down(self, protocol::frame_error_code::busy, "busy: directory unavailable");
          });
}

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
  self->request(st.d->directory, st.d->request_timeout, register_atom_v, a.id, a.lpk)
      .then(
          [self](bool registered) {
            auto& s = self->state;
            if (!registered) {
              shut_down(self, protocol::frame_error_code::id_taken, "id_taken: id taken");
              return;
            }
            s.blocked = false;
            self->send(s.broker, authed_atom_v);
            attach(self);
            drain(self);
          },
          [self](caf::error& err) {
            spdlog::info("session: registration failed: {}", self->system().render(err));
            shut_down(self, protocol::frame_error_code::busy, "busy: directory unavailable");
          });
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
      [self](drain_atom, uint64_t request_id) { reply(self, request_id, protocol::ok_result{}); },
  };
}

}  // namespace

caf::actor spawn_session_worker(caf::actor_system& sys, caf::actor broker, connection_deps_ptr d) {
  return sys.spawn(session_worker, std::move(broker), std::move(d));
}

}  // namespace cowpi::actors

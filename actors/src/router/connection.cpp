// SPDX-License-Identifier: Apache-2.0
// The acceptor broker and one connection broker per client: framing, timers and backpressure
// on CAF's single I/O thread; everything that costs a DH or an AEAD runs in the session worker.
#include "cowpi/protocol/session.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "client_actors.hpp"
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <span>

namespace cowpi::actors {

namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long a broker waits for its worker to produce the ERROR frame it asked for.
constexpr auto close_grace = 1s;
// When a resumed connection triggers its scribe once more (see `resume_atom`).
constexpr auto rearm_delay = 2ms;

/// Sends `x` to `self` after `delay`, without a sender. A sender would be a strong reference
/// from the broker's own mailbox to itself: CAF 0.17 leaves a message that reaches a broker
/// after its end in the mailbox, and the broker would then never be freed.
template <class Self, class Atom>
void schedule(Self* self, std::chrono::milliseconds delay, Atom x) {
  caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), delay, x);
}

struct conn_state {
  connection_deps_ptr d;
  caf::io::connection_handle hdl;
  caf::actor worker;
  bool await_header = true;
  bool established = false;
  bool paused = false;
  bool closing = false;
  steady::time_point started = steady::now();
  steady::time_point last_frame = steady::now();
  steady::time_point header_at = steady::now();
  steady::time_point closing_since = steady::now();
  uint64_t unsent = 0;
  static inline const char* name = "cowpi.connection";
};

using conn_broker = caf::io::stateful_broker<conn_state>;

std::chrono::milliseconds tick_interval(const connection_deps& d) {
  auto t = std::min({d.handshake_timeout, d.idle_timeout, d.frame_timeout}) / 4;
  return std::clamp<std::chrono::milliseconds>(t, 10ms, 1000ms);
}

/// Asks the worker for an ERROR frame (clear or encrypted, the session knows which) and a
/// close, and stops reading. The tick closes anyway if the worker does not answer in time.
void request_close(conn_broker* self, protocol::frame_error_code code, const std::string& text) {
  auto& st = self->state;
  if (st.closing) {
    return;
  }
  st.closing = true;
  st.closing_since = steady::now();
  self->halt(st.hdl);
  self->send(st.worker, shutdown_atom_v, code, text);
}

/// A reader that does not keep up: reset the connection, dropping what is buffered (an ERROR
/// frame would only queue behind the bytes it does not read).
void cut_off(conn_broker* self) {
  auto& st = self->state;
  spdlog::info("connection: cut off a slow reader ({} bytes unsent)", st.unsent);
  // CAF 0.17's default multiplexer names a connection by its socket
  // (`conn_hdl_from_socket`). A graceful close would wait for the peer to read the whole
  // buffer; SO_LINGER 0 plus shutdown makes the multiplexer's next write fail, and its close
  // of the socket then sends RST and discards the buffer.
  const int fd = static_cast<int>(st.hdl.id());
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  (void)::shutdown(fd, SHUT_RDWR);
  self->close(st.hdl);
  self->quit();
}

void on_tick(conn_broker* self) {
  auto& st = self->state;
  const auto now = steady::now();
  if (st.closing) {
    if (now - st.closing_since >= close_grace) {
      self->close(st.hdl);
      self->quit();
      return;
    }
  } else if (!st.established && now - st.started >= st.d->handshake_timeout) {
    request_close(self, protocol::frame_error_code::protocol_violation,
                  "protocol_violation: handshake timed out");
  } else if (!st.paused && !st.await_header && now - st.header_at >= st.d->frame_timeout) {
    request_close(self, protocol::frame_error_code::protocol_violation,
                  "protocol_violation: frame incomplete after its length prefix");
  } else if (st.established && !st.paused && now - st.last_frame >= st.d->idle_timeout) {
    request_close(self, protocol::frame_error_code::busy, "busy: idle timeout");
  } else if (!st.paused) {
    self->trigger(st.hdl);  // see `resume_atom`
  }
  schedule(self, tick_interval(*st.d), caf::tick_atom_v);
}

void on_data(conn_broker* self, const caf::io::new_data_msg& msg) {
  auto& st = self->state;
  if (st.closing) {
    return;
  }
  if (st.await_header) {
    std::array<uint8_t, protocol::frame_header_size> h{};
    std::memcpy(h.data(), msg.buf.data(), h.size());
    auto len = protocol::read_frame_length(h, st.d->max_frame);
    if (!len) {
      const auto code = len.error().code == errc::too_large ? protocol::frame_error_code::too_large
                                                            : protocol::frame_error_code::malformed;
      request_close(self, code, std::string(to_string(code)) + ": " + len.error().context);
      return;
    }
    st.await_header = false;
    st.header_at = steady::now();
    self->configure_read(st.hdl, caf::io::receive_policy::exactly(*len));
    return;
  }
  st.last_frame = steady::now();
  const auto* p = reinterpret_cast<const uint8_t*>(msg.buf.data());
  self->send(st.worker, frame_atom_v, bytes(p, p + msg.buf.size()));
  st.await_header = true;
  self->configure_read(st.hdl, caf::io::receive_policy::exactly(protocol::frame_header_size));
}

caf::behavior connection_broker(conn_broker* self, caf::io::connection_handle hdl,
                                connection_deps_ptr d) {
  auto& st = self->state;
  st.d = d;
  st.hdl = hdl;
  st.worker = spawn_session_worker(self->system(), caf::actor_cast<caf::actor>(self), d);
  self->monitor(st.worker);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.worker) {
      // The worker ended the session (or died): whatever it wrote goes out, then FIN.
      self->close(self->state.hdl);
      self->quit();
    }
  });
  self->set_exit_handler([self](caf::exit_msg& em) {
    self->close(self->state.hdl);
    self->quit(em.reason);
  });
  self->configure_read(hdl, caf::io::receive_policy::exactly(protocol::frame_header_size));
  self->ack_writes(hdl, true);
  schedule(self, tick_interval(*d), caf::tick_atom_v);
  return {
      [self](const caf::io::new_data_msg& msg) { on_data(self, msg); },
      [self](const caf::io::data_transferred_msg& m) { self->state.unsent = m.remaining; },
      [self](const caf::io::connection_closed_msg&) {
        // The peer closed: the worker notices through its monitor.
        self->quit();
      },
      [self](write_atom, const bytes& frame) {
        auto& s = self->state;
        self->write(s.hdl, frame.size(), frame.data());
        self->flush(s.hdl);
        s.unsent += frame.size();
        if (s.unsent > s.d->max_unsent_bytes) {
          cut_off(self);
        }
      },
      [self](caf::close_atom) {
        self->flush(self->state.hdl);
        self->close(self->state.hdl);
        self->quit();
      },
      [self](authed_atom) {
        self->state.established = true;
        self->state.last_frame = steady::now();
      },
      [self](pause_atom) {
        if (!self->state.paused && !self->state.closing) {
          // One more read, then the scribe passivates right after handing it over. halt()
          // would drop bytes CAF has collected towards the next read (CAF 0.17 resets a
          // stream's read state when it is re-activated), desynchronising the framing.
          self->state.paused = true;
          self->trigger(self->state.hdl, 1);
        }
      },
      [self](resume_atom) {
        auto& s = self->state;
        if (s.paused && !s.closing) {
          s.paused = false;
          s.last_frame = steady::now();
          s.header_at = steady::now();
          self->trigger(s.hdl);
          // CAF 0.17 applies a passivation at the end of the multiplexer's loop iteration; a
          // trigger that runs before it is undone. Trigger again from a later iteration (the
          // tick does too): triggering an active scribe changes nothing.
          schedule(self, rearm_delay, retry_atom_v);
        }
      },
      [self](retry_atom) {
        if (!self->state.paused && !self->state.closing) {
          self->trigger(self->state.hdl);
        }
      },
      [](const caf::io::connection_passivated_msg&) {
        // Paused: `resume_atom` triggers the scribe again.
      },
      [self](caf::tick_atom) { on_tick(self); },
  };
}

struct acceptor_state {
  connection_deps_ptr d;
  std::map<caf::actor_addr, caf::actor> conns;
  uint64_t accepted = 0;
  uint64_t refused = 0;
  uint16_t port = 0;
  caf::io::accept_handle doorman;
  bytes busy_frame;
  /// Set by an exit: the acceptor quits once every connection broker has gone.
  bool stopping = false;
  caf::error stop_reason;
  static inline const char* name = "cowpi.acceptor";
};

using acceptor_broker = caf::io::stateful_broker<acceptor_state>;

caf::behavior acceptor(acceptor_broker* self, connection_deps_ptr d, caf::actor reply_to) {
  auto& st = self->state;
  st.d = d;
  // docs/design.md §2: errors before the session are clear ERROR frames.
  st.busy_frame = protocol::length_prefixed(protocol::wire::encode(protocol::clear_frame{
      protocol::error_frame{protocol::frame_error_code::busy, "busy: too many connections"}}));
  auto res = self->add_tcp_doorman(d->port, d->host.empty() ? nullptr : d->host.c_str(), true);
  if (!res) {
    self->send(reply_to, std::move(res.error()));
    self->quit();
    return {};
  }
  st.doorman = res->first;
  st.port = res->second;
  self->send(reply_to, res->second);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if (s.conns.erase(dm.source) != 0) {
      s.d->metrics->open->add(-1);
    }
    if (s.stopping && s.conns.empty()) {
      self->quit(s.stop_reason);
    }
  });
  // Stops accepting, ends every connection, and quits once their brokers are gone (or after
  // `close_grace` twice), so that no broker outlives the acceptor.
  self->set_exit_handler([self](caf::exit_msg& em) {
    auto& s = self->state;
    if (s.stopping) {
      return;
    }
    s.stopping = true;
    s.stop_reason = em.reason;
    self->close(s.doorman);
    if (s.conns.empty()) {
      self->quit(s.stop_reason);
      return;
    }
    for (auto& [addr, conn] : s.conns) {
      self->send_exit(conn, em.reason);
    }
    schedule(self, std::chrono::milliseconds(2 * close_grace), caf::timeout_atom_v);
  });
  return {
      [self](const caf::io::new_connection_msg& msg) {
        auto& s = self->state;
        if (s.stopping || s.conns.size() >= s.d->max_connections) {
          ++s.refused;
          s.d->metrics->refused->inc();
          self->write(msg.handle, s.busy_frame.size(), s.busy_frame.data());
          self->flush(msg.handle);
          self->close(msg.handle);
          return;
        }
        ++s.accepted;
        s.d->metrics->accepted->inc();
        auto conn = self->fork(connection_broker, msg.handle, s.d);
        self->monitor(conn);
        s.conns.emplace(conn.address(), conn);
        s.d->metrics->open->add(1);
      },
      [](const caf::io::new_data_msg&) {
        // Bytes from a refused connection before its close: ignored.
      },
      [](const caf::io::connection_closed_msg&) {},
      [self](const caf::io::acceptor_closed_msg&) {
        if (!self->state.stopping) {
          self->quit();
        }
      },
      [self](caf::timeout_atom) {
        if (self->state.stopping) {
          self->quit(self->state.stop_reason);
        }
      },
      [self](stats_atom) {
        const auto& s = self->state;
        nlohmann::json j{{"open", s.conns.size()},
                         {"accepted", s.accepted},
                         {"refused", s.refused},
                         {"max_connections", s.d->max_connections},
                         {"port", s.port}};
        return j.dump();
      },
  };
}

}  // namespace

expected<std::pair<caf::actor, uint16_t>> spawn_acceptor(caf::actor_system& sys,
                                                         connection_deps_ptr d,
                                                         std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys};
  auto acc = sys.middleman().spawn_broker(acceptor, std::move(d), caf::actor{self});
  std::optional<uint16_t> port;
  std::string why = "no answer from the acceptor";
  self->receive([&](uint16_t p) { port = p; }, [&](caf::error& err) { why = sys.render(err); },
                caf::after(timeout) >> [&] {});
  if (!port) {
    caf::anon_send_exit(acc, caf::exit_reason::user_shutdown);
    return fail(errc::unavailable, "cannot listen for clients: " + why);
  }
  return std::make_pair(acc, *port);
}

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// The connector (TCP with a deadline, on its own thread) and the connection broker (SOCKS5,
// then framing) of the client runtime.
#include "connection.hpp"

#include "cowpi/protocol/session.hpp"

#include "../type_ids.hpp"

#include <array>
#include <span>
#include <utility>

namespace cowpi::actors::client_impl {

void connector(caf::blocking_actor* self, connect_job job) {
  auto r = tcp_connect(job.host, job.port, job.timeout, *job.cancelled, job.what);
  socket_result out;
  out.attempt = job.attempt;
  if (r) {
    out.sock = std::make_shared<socket_fd>(std::move(*r));
  } else {
    out.failure = std::move(r).error();
  }
  self->send(job.owner, csock_atom_v, std::move(out));
}

namespace {

using broker_ptr = caf::io::stateful_broker<connection_state>*;

byte_view view_of(const std::vector<char>& buf) {
  return byte_view(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
}

void write_bytes(broker_ptr self, byte_view b) {
  self->write(self->state.hdl, b.size(), b.data());
  self->flush(self->state.hdl);
}

// Ends the connection on our side and tells the owner why.
void drop(broker_ptr self, error why) {
  auto& st = self->state;
  self->send(st.owner, conndown_atom_v, st.attempt, conn_failure{std::move(why)});
  self->close(st.hdl);
  self->quit();
}

void expect_frame_header(broker_ptr self) {
  self->state.await_header = true;
  self->configure_read(self->state.hdl,
                       caf::io::receive_policy::exactly(protocol::frame_header_size));
}

// One read of the SOCKS5 handshake.
void on_socks_data(broker_ptr self, byte_view in) {
  auto& st = self->state;
  auto step = st.socks->on_read(in);
  if (!step)
    return drop(self, std::move(step).error());
  if (!step->write.empty())
    write_bytes(self, step->write);
  if (step->done) {
    self->send(st.owner, connup_atom_v, st.attempt);
    expect_frame_header(self);
    return;
  }
  self->configure_read(st.hdl, caf::io::receive_policy::exactly(st.socks->wanted()));
}

// One read of the framed stream: a length prefix or a frame body.
void on_frame_data(broker_ptr self, byte_view in) {
  auto& st = self->state;
  if (st.await_header) {
    auto len = protocol::read_frame_length(in.first<protocol::frame_header_size>(), st.max_frame);
    if (!len)
      return drop(self, error{len.error().code, "router frame: " + len.error().context});
    st.await_header = false;
    self->configure_read(st.hdl, caf::io::receive_policy::exactly(*len));
    return;
  }
  self->send(st.owner, frame_atom_v, st.attempt, std::vector<uint8_t>(in.begin(), in.end()));
  expect_frame_header(self);
}

}  // namespace

caf::behavior connection_broker(caf::io::stateful_broker<connection_state>* self,
                                connection_params p) {
  auto& st = self->state;
  st.attempt = p.attempt;
  st.max_frame = p.max_frame;
  st.owner = p.owner;
  st.socks = std::move(p.socks);
  st.hdl = self->add_scribe(p.sock->release());
  self->monitor(st.owner);
  self->set_down_handler([self](const caf::down_msg& dm) {
    if (dm.source != self->state.owner)
      return;
    self->close(self->state.hdl);
    self->quit();
  });
  if (st.socks) {
    write_bytes(self, socks5_handshake::greeting());
    self->configure_read(st.hdl, caf::io::receive_policy::exactly(st.socks->wanted()));
  } else {
    self->send(st.owner, connup_atom_v, st.attempt);
    expect_frame_header(self);
  }
  return {
      [self](const caf::io::new_data_msg& msg) {
        auto& s = self->state;
        if (s.socks && !s.socks->done()) {
          on_socks_data(self, view_of(msg.buf));
        } else {
          on_frame_data(self, view_of(msg.buf));
        }
      },
      [self](write_atom, const std::vector<uint8_t>& bytes) { write_bytes(self, bytes); },
      [self](caf::close_atom) {
        self->close(self->state.hdl);
        self->quit();
      },
      [self](const caf::io::connection_closed_msg&) {
        auto& s = self->state;
        self->send(s.owner, conndown_atom_v, s.attempt,
                   conn_failure{error{errc::closed, "the connection to the router was closed"}});
        self->quit();
      },
  };
}

}  // namespace cowpi::actors::client_impl

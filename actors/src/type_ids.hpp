// SPDX-License-Identifier: Apache-2.0
// The CAF 0.17 vocabulary of the runtime: atoms, the one type that crosses process
// boundaries (link_frame: versioned Cap'n Proto bytes; node_msg between nodes of a router), and the
// protocol structs that travel between actors of one process (allowed as local-only message types).
#pragma once

#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/storage/router_store.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cowpi::actors {

/// Router<->mirror link messages: `protocol::link_request` / `link_response` encoded by
/// `protocol::wire` (versioned Cap'n Proto bytes). The only custom type registered for the
/// network; both processes register it under the same name.
struct link_frame {
  std::vector<uint8_t> bytes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, link_frame& x) {
  return f(caf::meta::type_name("cowpi::link_frame"), x.bytes);
}

/// What a `node_msg` carries (router cluster, docs/architecture.md "Router clusters").
enum class node_kind : uint8_t {
  hello = 1,  // id: the sender's node id, bytes: its `cluster_hello_tag`, actor: its cluster actor
  lookup,     // id, bytes: lpk, number: hello_mode -> answer{number: lookup_result}
  reg,        // id, bytes: lpk -> answer{number: 1 registered, 0 taken}
  client,     // id: the user, bytes: an encoded client_frame, actor: the user's session
              //   -> answer{bytes: an encoded router_frame (its response)}
  cack,       // id: the user, bytes: conv id, number: index (sent, not answered)
  attach,     // id: the user, actor: the session (sent)
  detach,     // id: the user, actor: the session (sent)
  drain,      // id: the user, number: request id, actor: the session (sent; the queue answers
              //   the session `(drain_atom, number)`)
  dirent,     // items: the ids -> answer{bytes: encoded directory entries}
  answer,     // an answer (above)
  deliver,    // to a session: items: encoded envelopes
  rejected,   // to a session: bytes: an encoded router_frame (a late rejection or a notice)
};

/// A message between nodes of one router cluster. Every protocol value in it travels in its
/// Cap'n Proto encoding (`protocol::wire`); the struct itself is CAF's to serialise. (No
/// `std::vector<std::string>` field: that type is allowed below as a local-only message type,
/// which makes CAF 0.17's serialiser skip it silently.)
struct node_msg {
  node_kind kind = node_kind::answer;
  std::string id;
  uint64_t number = 0;
  std::vector<uint8_t> bytes;
  std::vector<std::vector<uint8_t>> items;
  caf::actor actor;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_msg& x) {
  return f(caf::meta::type_name("cowpi::node_msg"), x.kind, x.id, x.number, x.bytes, x.items,
           x.actor);
}

/// The answer of the router's directory to a LOGIN/REGISTER lookup.
enum class lookup_result : uint8_t { ok = 1, unknown_user, id_taken };

/// A SUBMIT handed from a session worker to the conversation registry. The registry answers
/// the request with a `protocol::response_body` (ok_result = queued, or a rejection); a
/// rejection decided later (a PREPARE round failed) is sent to `session` as
/// `(reject_atom, late_rejection)`.
struct submit_request {
  std::string user;
  uint64_t request_id = 0;
  caf::actor session;
  protocol::submit_msg submit;
};

/// A rejection the router sends a client after it answered "queued": the session turns it
/// into `response{request_id, rejection}`.
/// Directory entries a conversation actor had read on the store's reader thread.
struct dir_entries {
  storage::router_store::directory_entries entries;
};

struct late_rejection {
  uint64_t request_id = 0;
  protocol::conv_id conv{};
  uint64_t aseq = 0;
  protocol::rejection why;
};

}  // namespace cowpi::actors

// Local-only message types: protocol values passed between actors of one process. They never
// cross the network (only link_frame does), so they need no inspect().
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::lookup_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::submit_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::late_rejection)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::dir_entries)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::storage::router_store::loaded_conv)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::conv_id)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::public_key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::hello_mode)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::submit_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::envelope)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<cowpi::protocol::envelope>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::storage::router_store::user_cursors)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::response_body)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::router_frame)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::client_frame)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::rejection)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::upload_prekeys)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::fetch_prekeys)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::prekeys_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::users_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::status_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::published_key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<cowpi::protocol::published_key>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::link_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::link_response)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::prepare_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::commit_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::link_ack)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::mirror_prekeys)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<std::string>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::protocol::frame_error_code)

// Atoms (at most 10 characters) and the registered network type.
CAF_BEGIN_TYPE_ID_BLOCK(cowpi, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(cowpi, (cowpi::actors::link_frame))
  // Link (router<->mirror).
  CAF_ADD_ATOM(cowpi, cowpi::actors, link_atom, "link")
  CAF_ADD_ATOM(cowpi, cowpi::actors, linkup_atom, "linkup")
  CAF_ADD_ATOM(cowpi, cowpi::actors, fwd_atom, "fwd")
  // Directory.
  CAF_ADD_ATOM(cowpi, cowpi::actors, lookup_atom, "lookup")
  CAF_ADD_ATOM(cowpi, cowpi::actors, register_atom, "register")
  CAF_ADD_ATOM(cowpi, cowpi::actors, upload_atom, "upload")
  CAF_ADD_ATOM(cowpi, cowpi::actors, fetch_atom, "fetch")
  CAF_ADD_ATOM(cowpi, cowpi::actors, status_atom, "status")
  CAF_ADD_ATOM(cowpi, cowpi::actors, users_atom, "users")
  CAF_ADD_ATOM(cowpi, cowpi::actors, lastres_atom, "lastres")
  // Conversations and delivery.
  CAF_ADD_ATOM(cowpi, cowpi::actors, submit_atom, "submit")
  CAF_ADD_ATOM(cowpi, cowpi::actors, appended_atom, "appended")
  CAF_ADD_ATOM(cowpi, cowpi::actors, answered_atom, "answered")
  CAF_ADD_ATOM(cowpi, cowpi::actors, poke_atom, "poke")
  CAF_ADD_ATOM(cowpi, cowpi::actors, attach_atom, "attach")
  CAF_ADD_ATOM(cowpi, cowpi::actors, detach_atom, "detach")
  CAF_ADD_ATOM(cowpi, cowpi::actors, deliver_atom, "deliver")
  CAF_ADD_ATOM(cowpi, cowpi::actors, cack_atom, "cack")
  CAF_ADD_ATOM(cowpi, cowpi::actors, acked_atom, "acked")
  CAF_ADD_ATOM(cowpi, cowpi::actors, reject_atom, "reject")
  CAF_ADD_ATOM(cowpi, cowpi::actors, retry_atom, "retry")
  CAF_ADD_ATOM(cowpi, cowpi::actors, idle_atom, "idle")
  CAF_ADD_ATOM(cowpi, cowpi::actors, stats_atom, "stats")
  CAF_ADD_ATOM(cowpi, cowpi::actors, drain_atom, "drain")
  // Client connections: connection broker <-> session worker.
  CAF_ADD_ATOM(cowpi, cowpi::actors, frame_atom, "frame")
  CAF_ADD_ATOM(cowpi, cowpi::actors, write_atom, "write")
  CAF_ADD_ATOM(cowpi, cowpi::actors, shutdown_atom, "shutdown")
  CAF_ADD_ATOM(cowpi, cowpi::actors, pause_atom, "pause")
  CAF_ADD_ATOM(cowpi, cowpi::actors, resume_atom, "resume")
  CAF_ADD_ATOM(cowpi, cowpi::actors, authed_atom, "authed")
  // Client runtime (actors/src/client/): connector, connection broker, client actor.
  CAF_ADD_ATOM(cowpi, cowpi::actors, csock_atom, "csock")
  CAF_ADD_ATOM(cowpi, cowpi::actors, connup_atom, "connup")
  CAF_ADD_ATOM(cowpi, cowpi::actors, conndown_atom, "conndown")
  CAF_ADD_ATOM(cowpi, cowpi::actors, command_atom, "command")
  CAF_ADD_ATOM(cowpi, cowpi::actors, deadline_atom, "deadline")
  CAF_ADD_ATOM(cowpi, cowpi::actors, resend_atom, "resend")
  CAF_ADD_ATOM(cowpi, cowpi::actors, reconn_atom, "reconn")
  CAF_ADD_ATOM(cowpi, cowpi::actors, quiet_atom, "quiet")
  CAF_ADD_ATOM(cowpi, cowpi::actors, housekeep_atom, "housekeep")
  CAF_ADD_ATOM(cowpi, cowpi::actors, cevent_atom, "cevent")
  CAF_ADD_ATOM(cowpi, cowpi::actors, received_atom, "received")
  CAF_ADD_ATOM(cowpi, cowpi::actors, mack_atom, "mack")
  CAF_ADD_ATOM(cowpi, cowpi::actors, envread_atom, "envread")
  CAF_ADD_ATOM(cowpi, cowpi::actors, audited_atom, "audited")
  CAF_ADD_ATOM(cowpi, cowpi::actors, curload_atom, "curload")
  CAF_ADD_ATOM(cowpi, cowpi::actors, joinload_atom, "joinload")
  CAF_ADD_ATOM(cowpi, cowpi::actors, logstart_atom, "logstart")
  CAF_ADD_ATOM(cowpi, cowpi::actors, dirread_atom, "dirread")
  CAF_ADD_ATOM(cowpi, cowpi::actors, convload_atom, "convload")
  CAF_ADD_ATOM(cowpi, cowpi::actors, collect_atom, "collect")
  CAF_ADD_ATOM(cowpi, cowpi::actors, retire_atom, "retire")
  // Router cluster (node <-> node). Appended: the ids before them are the link's, which a
  // router and a mirror of different versions must agree on.
  CAF_ADD_TYPE_ID(cowpi, (cowpi::actors::node_msg))
  CAF_ADD_ATOM(cowpi, cowpi::actors, node_atom, "node")
  CAF_ADD_ATOM(cowpi, cowpi::actors, nsend_atom, "nsend")
  CAF_ADD_ATOM(cowpi, cowpi::actors, dirent_atom, "dirent")
CAF_END_TYPE_ID_BLOCK(cowpi)

// SPDX-License-Identifier: Apache-2.0
// Wires the router's client-facing side: providers recorded in the directory, directory,
// queue registry and the acceptor bound to `listen.clients`.
#include "client_side.hpp"

#include "../type_ids.hpp"
#include "client_actors.hpp"
#include <caf/all.hpp>

#include <algorithm>

namespace cowpi::actors {

namespace {

// How long start-up waits for the acceptor to report its bound port.
constexpr auto bind_timeout = std::chrono::milliseconds(5000);

}  // namespace

std::vector<std::pair<std::string, caf::actor>> client_side::admin_sections() const {
  return {{"connections", acceptor}, {"queues", queues}, {"directory", directory}};
}

expected<client_side> spawn_client_side(caf::actor_system& sys, const config::provider_config& cfg,
                                        storage::router_store& store, caf::actor registry,
                                        protocol::identity router_identity,
                                        const client_side_options& options) {
  // Mirrors upload and hand out pre-keys through the directory like users (docs/design.md §2).
  directory_deps dd;
  dd.store = &store;
  dd.policy = options.fetch_policy;
  dd.providers.insert(router_identity.id());
  for (const auto& m : cfg.mirrors) {
    COWPI_TRY_VOID(store.register_provider(m.name, m.public_key));
    dd.providers.insert(m.name);
    dd.mirror_nodes[m.name] = config::node_ids_of(m);
    for (const auto& node : m.nodes) {
      // A node's pool holds keys of the mirror's identity.
      COWPI_TRY_VOID(store.register_provider(node.id, m.public_key));
      dd.providers.insert(node.id);
      dd.pool_owner[node.id] = m.name;
    }
  }

  client_side side;
  side.directory = spawn_directory(sys, std::move(dd));

  queue_deps qd;
  qd.store = &store;
  qd.window_envelopes = std::max<size_t>(options.window_envelopes, 1);
  qd.window_bytes = options.window_bytes;
  qd.metrics = options.metrics;
  qd.deliver = options.deliver;
  side.queues = spawn_queue_registry(sys, std::move(qd));
  if (registry) {
    caf::anon_send(registry, attach_atom_v, side.queues);
  }

  auto d = std::make_shared<connection_deps>();
  d->router = std::make_shared<const protocol::identity>(std::move(router_identity));
  d->directory = side.directory;
  d->registry = std::move(registry);
  d->queues = side.queues;
  d->cluster = options.cluster;
  if (!d->cluster) {
    std::map<std::string, std::vector<std::string>> mirror_nodes;
    for (const auto& m : cfg.mirrors)
      mirror_nodes[m.name] = config::node_ids_of(m);
    d->cluster = std::make_shared<cluster_view>(cfg.cluster.nodes, cfg.cluster.self,
                                                std::move(mirror_nodes));
  }
  d->cluster_actor = options.cluster_actor;
  if (d->cluster_actor)
    caf::anon_send(d->cluster_actor, attach_atom_v, side.directory, d->registry, side.queues);
  d->host = cfg.clients.host;
  d->port = cfg.clients.port;
  d->max_frame = cfg.limits.max_frame;
  d->max_connections = cfg.limits.max_connections;
  d->max_unsent_bytes = options.max_unsent_bytes != 0
                            ? options.max_unsent_bytes
                            : options.window_bytes + 4 * cfg.limits.max_frame;
  d->max_inflight_requests = std::max<size_t>(options.max_inflight_requests, 2);
  d->handshake_timeout = cfg.timeouts.handshake;
  d->idle_timeout = cfg.timeouts.idle;
  d->frame_timeout = options.frame_timeout;
  d->request_timeout = options.request_timeout;
  d->metrics = options.metrics;
  auto acc = spawn_acceptor(sys, std::move(d), bind_timeout);
  if (!acc) {
    stop_client_side(side);
    return unexpected<error>{std::move(acc).error()};
  }
  side.acceptor = acc->first;
  side.port = acc->second;
  return side;
}

void stop_client_side(const client_side& side, std::chrono::milliseconds timeout) {
  const auto reason = caf::exit_reason::user_shutdown;
  if (side.acceptor) {
    // The acceptor ends every connection first and quits once their brokers are gone: no
    // broker may outlive it (the middleman would drop it without cleanup at shutdown).
    caf::scoped_actor self{side.acceptor->home_system()};
    self->monitor(side.acceptor);
    self->send_exit(side.acceptor, reason);
    self->receive([](const caf::down_msg&) {}, caf::after(timeout) >> [] {});
  }
  if (side.queues) {
    caf::anon_send_exit(side.queues, reason);
  }
  if (side.directory) {
    caf::anon_send_exit(side.directory, reason);
  }
}

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// Starting and stopping a provider node: the actor system (middleman + TLS), the stores, the
// identity, the shard map check, and the role's actors.
#include "cowpi/actors/provider.hpp"

#include "cowpi/actors/node_keys.hpp"
#include "cowpi/storage/mirror_store.hpp"
#include "cowpi/storage/router_store.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include "admin_endpoint.hpp"
#include "mirror/endpoint.hpp"
#include "node_metrics.hpp"
#include "router/auditor.hpp"
#include "router/client_side.hpp"
#include "router/cluster.hpp"
#include "router/collector.hpp"
#include "router/conversations.hpp"
#include "router/mirror_link.hpp"
#include "router/mirror_route.hpp"
#include "type_ids.hpp"
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <thread>

namespace cowpi::actors {

struct provider_node::impl {
  // First, so that it outlives every actor and store that updates it.
  metrics::registry metrics;
  config::provider_config cfg;
  provider_hooks hooks;
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  crypto::system_rng rng;
  std::unique_ptr<storage::router_store> router_db;
  std::unique_ptr<storage::mirror_store> mirror_db;
  std::vector<caf::actor> actors;  // every top-level actor, stopped on stop()
  caf::actor published;  // the mirror endpoint (link port) or the cluster actor (internal port)
  std::optional<client_side> side;
  std::unique_ptr<admin_endpoint> admin;
  provider_ports ports;
  std::string public_key_hex;
  bool stopped = false;

  ~impl() { shutdown(); }

  void shutdown() {
    if (stopped)
      return;
    stopped = true;
    admin.reset();
    if (side)
      stop_client_side(*side);
    side.reset();
    if (sys) {
      // Unpublish the endpoint first: no new link can reach it while the node stops.
      if (published) {
        // (caf::openssl::unpublish in 0.17.6 sends the wrong message; ask the manager.)
        caf::scoped_actor self{*sys};
        self->request(sys->openssl_manager().actor_handle(), std::chrono::seconds(5),
                      caf::unpublish_atom_v, published.address(),
                      ports.links != 0 ? ports.links : ports.internal)
            .receive([] {}, [](caf::error&) {});
      }
      published = nullptr;
      for (auto& a : actors)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      actors.clear();
    }
    sys.reset();  // waits for every actor
    router_db.reset();
    mirror_db.reset();
  }
};

namespace {

// Marks every thread CAF starts (scheduler, clock, middleman) as one that must not block on
// the disk: a store call that may block counts there (cowpi_store_blocking_calls_total).
// Detached actors, which have a thread of their own, unmark theirs when they start.
class nonblocking_threads final : public caf::thread_hook {
public:
  void init(caf::actor_system&) override {}
  void thread_started() override { storage::mark_nonblocking_thread(true); }
  void thread_terminates() override { storage::mark_nonblocking_thread(false); }
};

void configure_system(caf::actor_system_config& c, const config::provider_config& cfg) {
  c.add_thread_hook<nonblocking_threads>();
  c.load<caf::io::middleman>();
  c.load<caf::openssl::manager>();
  c.add_message_types<caf::id_block::cowpi>();
  c.set("middleman.heartbeat-interval", caf::timespan{cfg.timeouts.heartbeat});
  c.set("middleman.connection-timeout", caf::timespan{cfg.timeouts.connection});
  c.set("middleman.app-identifiers", std::vector<std::string>{"cowpi/1"});
  // Sharing: idle threads wait on a condition variable instead of polling with short sleeps
  // (work stealing's clock_nanosleep cost 5% of all CPU under load; docs/benchmarks.md).
  c.set("scheduler.policy", cfg.runtime.scheduler == config::scheduler_policy::sharing
                                ? caf::atom("sharing")
                                : caf::atom("stealing"));
  // One scheduler thread per core unless configured: CAF's own default (at least 4) on a
  // 2-core node cost the router ~15% more CPU per message in context switches
  // (docs/benchmarks.md).
  const size_t threads = cfg.runtime.threads > 0
                             ? cfg.runtime.threads
                             : std::max<size_t>(std::thread::hardware_concurrency(), 1);
  c.set("scheduler.max-threads", static_cast<int64_t>(threads));
  // Mutual TLS for the router<->mirror link (any openssl option turns on peer verification).
  c.openssl_certificate = cfg.tls.certificate.string();
  c.openssl_key = cfg.tls.key.string();
  c.openssl_cafile = cfg.tls.ca.string();
}

expected<void> start_mirror(provider_node::impl& n) {
  const auto& cfg = n.cfg;
  COWPI_TRY(auto self, load_or_create_identity(cfg.identity_key_file, cfg.name, n.rng));
  n.public_key_hex = to_hex(self.lpk());
  if (!cfg.storage_key_file)
    return fail(errc::config, "a mirror needs provider.storage_key_file");
  COWPI_TRY(n.mirror_db,
            storage::mirror_store::open(cfg.data_dir / "mirror.db",
                                        storage::key_file{*cfg.storage_key_file}, n.rng));
  COWPI_TRY(auto m, n.mirror_db->load(std::move(self)));
  COWPI_TRY_VOID(n.mirror_db->check_shard_map(cfg.cluster.nodes, !m.convs().empty()));
  mirror_endpoint_deps d;
  d.mirror = std::make_unique<protocol::mirror>(std::move(m));
  d.store = n.mirror_db.get();
  d.router = cfg.router;
  d.nodes = cfg.cluster.nodes;
  d.self_node = cfg.cluster.self;
  d.idle = cfg.timeouts.conversation_idle;
  d.metrics = mirror_metrics::make(&n.metrics);
  add_store_collector(n.metrics, "mirror", *n.mirror_db);
  auto ep = spawn_mirror_endpoint(*n.sys, std::move(d));
  n.actors.push_back(ep);
  auto port = caf::openssl::publish(ep, cfg.links.port, cfg.links.host.c_str(), true);
  if (!port)
    return fail(errc::unavailable, "cannot listen on " + config::to_string(cfg.links) + ": "
                                       + n.sys->render(port.error()));
  n.ports.links = *port;
  n.published = ep;
  COWPI_TRY(n.admin, admin_endpoint::start(*n.sys, cfg.admin_socket));
  n.admin->set_metrics(&n.metrics);
  n.admin->add_section("mirror", ep);
  n.ports.admin_socket = cfg.admin_socket.string();
  return {};
}

expected<void> start_router(provider_node::impl& n) {
  const auto& cfg = n.cfg;
  COWPI_TRY(auto self, load_or_create_identity(cfg.identity_key_file, cfg.name, n.rng));
  n.public_key_hex = to_hex(self.lpk());
  COWPI_TRY(n.router_db, storage::router_store::open(cfg.data_dir / "router.db"));
  COWPI_TRY(auto convs, n.router_db->conversations());
  // A node of a router cluster holds users as well as conversations.
  COWPI_TRY(const bool users, n.router_db->has_users());
  COWPI_TRY_VOID(n.router_db->check_shard_map(cfg.cluster.nodes, !convs.empty() || users));
  const protocol::member_list ms = config::to_member_list(cfg.mirrors);
  for (const auto& m : ms)
    COWPI_TRY_VOID(n.router_db->register_provider(m.id, m.lpk));

  // The router cluster: who holds what, and (with more than one node) the cluster actor.
  std::map<std::string, std::vector<std::string>> mirror_nodes;
  for (const auto& m : cfg.mirrors)
    mirror_nodes[m.name] = config::node_ids_of(m);
  auto view = std::make_shared<cluster_view>(cfg.cluster.nodes, cfg.cluster.self, mirror_nodes);
  caf::actor cluster_actor;
  if (view->clustered()) {
    cluster_deps cl;
    cl.view = view;
    cl.identity = std::make_shared<const protocol::identity>(
        protocol::identity::from_secret(self.id(), self.export_secret()));
    cl.addresses = cfg.cluster.addresses;
    cl.store = n.router_db.get();
    cl.request_timeout = cfg.timeouts.commit;
    cl.connect_timeout = cfg.timeouts.connection;
    cluster_actor = spawn_cluster(*n.sys, std::move(cl));
    n.actors.push_back(cluster_actor);
  }

  // Links first (unwired), then the registry, then the client side; then wire the cycle. A
  // mirror cluster gets one link per node.
  std::vector<mirror_route> routes;
  std::vector<caf::actor> links;
  for (size_t k = 0; k < ms.size(); ++k) {
    const auto& peer =
        *std::find_if(cfg.mirrors.begin(), cfg.mirrors.end(),
                      [&](const config::mirror_peer& p) { return p.name == ms[k].id; });
    mirror_route route;
    route.id = peer.name;
    const auto nodes = config::nodes_of(peer);
    for (size_t j = 0; j < nodes.size(); ++j) {
      mirror_link_deps d;
      d.index = k;
      d.peer = peer;
      d.peer.address = nodes[j].address;
      d.node = nodes[j].id;
      d.node_index = j;
      d.manage_keys = view->home_of(nodes[j].id) == view->self();
      d.own_hello = protocol::link_hello{self.id(), self.lpk(), protocol::transport_version};
      d.request_timeout = cfg.timeouts.commit;
      d.connect_timeout = cfg.timeouts.connection;
      d.tls = cfg.tls;
      d.metrics = link_metrics::make(&n.metrics, peer.name,
                                     peer.nodes.empty() ? std::string() : nodes[j].id);
      route.nodes.push_back(nodes[j].id);
      route.metrics.push_back(d.metrics);
      route.links.push_back(spawn_mirror_link(*n.sys, std::move(d)));
      links.push_back(route.links.back());
    }
    routes.push_back(std::move(route));
  }
  conversation_deps cd;
  cd.store = n.router_db.get();
  cd.ms = ms;
  cd.limits.max_members = cfg.limits.max_members;
  cd.limits.max_body = cfg.limits.max_body;
  cd.limits.max_pending_per_author = cfg.limits.max_pending_per_author;
  cd.limits.max_pending_per_conv = cfg.limits.max_pending_per_conv;
  cd.limits.min_update_interval = static_cast<uint64_t>(cfg.limits.min_update_interval.count());
  cd.max_setups_per_hour = cfg.limits.max_setups_per_hour;
  cd.mirrors = routes;
  cd.prepare_timeout = cfg.timeouts.prepare;
  cd.commit_timeout = cfg.timeouts.commit;
  cd.idle = cfg.timeouts.conversation_idle;
  cd.retention = cfg.retention;
  cd.metrics = conversation_metrics::make(&n.metrics);
  if (view->clustered())
    cd.cluster = view;
  add_store_collector(n.metrics, "router", *n.router_db);
  auto registry = spawn_conversation_registry(*n.sys, cd, convs);
  n.actors.insert(n.actors.end(), links.begin(), links.end());
  n.actors.push_back(registry);
  client_side_options options;
  options.metrics = client_metrics::make(&n.metrics);
  options.deliver = n.hooks.deliver;
  options.cluster = view;
  options.cluster_actor = cluster_actor;
  COWPI_TRY(auto side,
            spawn_client_side(*n.sys, cfg, *n.router_db, registry, std::move(self), options));
  for (auto& l : links)
    caf::anon_send(l, attach_atom_v, registry, side.directory);
  n.ports.clients = side.port;
  if (cluster_actor) {
    // The other nodes reach this one here (BASP over mutual TLS, the `[tls]` files).
    const auto& at = cfg.cluster.addresses[view->self()].internal;
    auto port = caf::openssl::publish(cluster_actor, at.port, at.host.c_str(), true);
    if (!port)
      return fail(errc::unavailable, "cannot listen on " + config::to_string(at)
                                         + " for the other nodes: " + n.sys->render(port.error()));
    n.ports.internal = *port;
    n.published = cluster_actor;
  }
  COWPI_TRY(n.admin, admin_endpoint::start(*n.sys, cfg.admin_socket));
  n.admin->set_metrics(&n.metrics);
  n.admin->add_section("conversations", registry);
  if (cluster_actor)
    n.admin->add_section("cluster", cluster_actor);
  for (const auto& r : routes)
    for (size_t j = 0; j < r.links.size(); ++j)
      n.admin->add_section("link:" + r.nodes[j], r.links[j]);
  auditor_deps ad;
  ad.store = n.router_db.get();
  ad.mirrors = routes;
  auto auditor = spawn_auditor(*n.sys, std::move(ad));
  n.actors.push_back(auditor);
  n.admin->add_command("audit", auditor);
  collector_deps cold;
  cold.store = n.router_db.get();
  cold.retention = cfg.retention;
  cold.interval = cfg.collect_interval;
  cold.metrics = collector_metrics::make(&n.metrics);
  auto collector = spawn_collector(*n.sys, std::move(cold));
  n.actors.push_back(collector);
  n.admin->add_command("collect", collector);
  n.admin->add_section("retention", collector);
  for (auto& [name, a] : side.admin_sections())
    n.admin->add_section(name, a);
  n.side = std::move(side);
  n.ports.admin_socket = cfg.admin_socket.string();
  return {};
}

}  // namespace

provider_node::provider_node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
provider_node::~provider_node() {
  stop();
}

const provider_ports& provider_node::ports() const noexcept {
  return impl_->ports;
}
const std::string& provider_node::public_key_hex() const noexcept {
  return impl_->public_key_hex;
}

std::string provider_node::metrics_text() const {
  if (!impl_ || impl_->stopped)
    return {};
  return impl_->metrics.render();
}

void provider_node::stop() {
  if (impl_)
    impl_->shutdown();
}

bool openssl_error_queue_guard() noexcept;  // openssl_errors.cpp

expected<std::unique_ptr<provider_node>> provider_node::start(const config::provider_config& cfg,
                                                              provider_hooks hooks) {
  if (!openssl_error_queue_guard())
    return fail(errc::internal, "OpenSSL error queue guard missing");
  auto n = std::make_unique<impl>();
  n->cfg = cfg;
  n->hooks = std::move(hooks);
  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir, ec);
  if (ec)
    return fail(errc::storage, cfg.data_dir.string() + ": " + ec.message());
  n->metrics
      .gauge("cowpi_node_info", "Always 1: the node's role and provider id",
             {{"role", std::string(config::to_string(cfg.role))}, {"provider", cfg.name}})
      .set(1);
  n->metrics.add_collector([started = std::chrono::steady_clock::now()](metrics::sink& out) {
    out.gauge("cowpi_uptime_seconds", "Seconds since the node started", {},
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  });
  add_blocking_collector(n->metrics);
  configure_system(n->sys_cfg, cfg);
  n->sys = std::make_unique<caf::actor_system>(n->sys_cfg);
  auto started = cfg.role == config::role::mirror ? start_mirror(*n) : start_router(*n);
  if (!started) {
    n->shutdown();
    return unexpected{std::move(started).error()};
  }
  return std::unique_ptr<provider_node>(new provider_node(std::move(n)));
}

}  // namespace cowpi::actors

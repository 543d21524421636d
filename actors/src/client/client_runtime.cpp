// SPDX-License-Identifier: Apache-2.0
// The CAF-free facade of the client runtime: the shared actor system, opening or creating the
// user's store, and blocking calls that post a command to the client actor and wait for its
// completion with a bound.
#include "cowpi/actors/client_runtime.hpp"

#include "cowpi/config/common.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/shard.hpp"

#include "../type_ids.hpp"
#include "client_actor.hpp"
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <future>
#include <mutex>
#include <utility>

namespace cowpi::actors {

using client_impl::client_actor;
using client_impl::command;
using client_impl::done_fn;

std::string_view to_string(client_connection_state s) noexcept {
  switch (s) {
    case client_connection_state::offline:
      return "offline";
    case client_connection_state::connecting:
      return "connecting";
    case client_connection_state::online:
      return "online";
    case client_connection_state::waiting:
      return "waiting";
    case client_connection_state::failed:
      return "failed";
  }
  return "?";
}

std::string_view to_string(conversation_status s) noexcept {
  switch (s) {
    case conversation_status::pending_setup:
      return "pending";
    case conversation_status::active:
      return "active";
    case conversation_status::halted:
      return "halted";
    case conversation_status::removed:
      return "removed";
  }
  return "?";
}

std::string conv_to_hex(const protocol::conv_id& conv) {
  return to_hex(conv);
}

std::optional<protocol::conv_id> conv_from_hex(std::string_view hex) {
  auto b = from_hex(hex);
  if (!b || b->size() != protocol::conv_id{}.size())
    return std::nullopt;
  protocol::conv_id c{};
  std::copy(b->begin(), b->end(), c.begin());
  return c;
}

std::vector<config::deployment_router_node> connect_order(const config::deployment_router& router,
                                                          const std::string& user) {
  if (router.nodes.empty())
    return {config::deployment_router_node{router.name, router.address}};
  std::vector<std::string> ids;
  ids.reserve(router.nodes.size());
  for (const auto& n : router.nodes)
    ids.push_back(n.id);
  const size_t home = protocol::user_owner(ids, user);
  std::vector<config::deployment_router_node> order;
  order.reserve(router.nodes.size());
  for (size_t i = 0; i < router.nodes.size(); ++i)
    order.push_back(router.nodes[(home + i) % router.nodes.size()]);
  return order;
}

// ---------------------------------------------------------------------------------------------
// client_system

struct client_system::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

client_system::client_system(client_system_options o) : impl_(std::make_unique<impl>()) {
  impl_->cfg.load<caf::io::middleman>();
  if (o.scheduler_threads > 0)
    impl_->cfg.set("scheduler.max-threads", static_cast<int64_t>(o.scheduler_threads));
  // Idle threads wait on a condition variable instead of polling (docs/benchmarks.md).
  impl_->cfg.set("scheduler.policy", caf::atom("sharing"));
  impl_->sys = std::make_unique<caf::actor_system>(impl_->cfg);
}

client_system::~client_system() = default;

// ---------------------------------------------------------------------------------------------
// client_runtime

struct client_runtime::impl {
  caf::actor_system* sys = nullptr;
  caf::actor actor;
  /// The actor that calls `on_event` (none without one).
  caf::actor events;
  std::shared_ptr<std::atomic<uint8_t>> state;
  /// The bound of `connect`: `connect_timeout` for each router node it may try.
  std::chrono::milliseconds connect_bound{0};
  std::chrono::milliseconds request_timeout{0};
  std::mutex mu;
  bool closed = false;
};

namespace {

// Extra wait beyond an operation's own bound: the actor's timers end the operation first;
// this only covers an actor too busy to run them.
constexpr std::chrono::milliseconds grace{1000};

// The completion of one blocking call. Whoever destroys the last copy of the `done_fn` without
// calling it (the actor ended, the command was dropped) completes it with `errc::closed`.
template <class T>
class completion_slot {
public:
  completion_slot() = default;
  completion_slot(const completion_slot&) = delete;
  completion_slot& operator=(const completion_slot&) = delete;
  ~completion_slot() {
    if (!done_)
      p_.set_value(fail(errc::closed, "the client runtime is closed"));
  }
  std::future<expected<T>> future() { return p_.get_future(); }
  void set(expected<T> v) {
    std::lock_guard<std::mutex> g(mu_);
    if (done_)
      return;
    done_ = true;
    p_.set_value(std::move(v));
  }

private:
  std::mutex mu_;
  bool done_ = false;
  std::promise<expected<T>> p_;
};

// Posts `op(actor, done)` to the client actor and waits at most `bound` (plus `grace`).
template <class T, class Op>
expected<T> call(client_runtime::impl& p, std::chrono::milliseconds bound, Op op) {
  {
    std::lock_guard<std::mutex> g(p.mu);
    if (p.closed)
      return fail(errc::closed, "the client runtime is closed");
  }
  auto slot = std::make_shared<completion_slot<T>>();
  auto fut = slot->future();
  done_fn<T> done = [slot = std::move(slot)](expected<T> r) { slot->set(std::move(r)); };
  caf::anon_send(
      p.actor, command_atom_v,
      command{[op = std::move(op), done = std::move(done)](client_actor& a) { op(a, done); }});
  if (fut.wait_for(bound + grace) != std::future_status::ready) {
    return fail(errc::timeout, "the client runtime did not finish within "
                                   + std::to_string((bound + grace).count()) + " ms");
  }
  return fut.get();
}

expected<void> check_options(const client_runtime_options& o) {
  if (o.store_path.empty())
    return fail(errc::invalid_argument, "no store path");
  if (o.deployment.mirrors.empty())
    return fail(errc::config, "the deployment file names no mirror");
  if (o.deployment.router.address.port == 0)
    return fail(errc::config, "the deployment file gives no router port");
  for (const auto& n : o.deployment.router.nodes) {
    if (n.address.port == 0)
      return fail(errc::config, "the deployment file gives no port for router node " + n.id);
  }
  if (o.connect_timeout.count() <= 0 || o.request_timeout.count() <= 0)
    return fail(errc::invalid_argument, "timeouts must be positive");
  if (o.proxy && (o.proxy->host.empty() || o.proxy->port == 0))
    return fail(errc::invalid_argument, "the SOCKS5 proxy needs a host and a port");
  if (o.max_frame < protocol::max_frame_protocol)
    return fail(errc::invalid_argument, "max_frame is below the protocol's largest frame");
  return {};
}

}  // namespace

client_runtime::client_runtime(std::unique_ptr<impl> p, std::string id,
                               const protocol::public_key& lpk)
    : impl_(std::move(p)), id_(std::move(id)), lpk_(lpk) {}

client_runtime::~client_runtime() {
  close();
}

namespace {

expected<std::unique_ptr<client_runtime::impl>> spawn_runtime(client_system& sys,
                                                              client_impl::client_core core,
                                                              client_runtime_options options) {
  auto& cs = *sys.internals().sys;
  auto p = std::make_unique<client_runtime::impl>();
  p->sys = &cs;
  p->state = std::make_shared<std::atomic<uint8_t>>(
      static_cast<uint8_t>(client_connection_state::offline));
  const size_t nodes = std::max<size_t>(options.deployment.router.nodes.size(), 1);
  p->connect_bound = options.connect_timeout * static_cast<int64_t>(nodes);
  p->request_timeout = options.request_timeout;
  auto setup = std::make_shared<client_impl::client_setup>();
  setup->core = std::move(core);
  setup->state = p->state;
  caf::actor events;
  if (options.on_event)
    events = cs.spawn(client_impl::event_sink_fn, options.on_event);
  setup->events = events;
  p->events = events;
  const bool dedicated = options.dedicated_thread;
  setup->options = std::move(options);
  p->actor = dedicated ? cs.spawn<caf::detached>(client_impl::client_actor_fn, setup)
                       : cs.spawn(client_impl::client_actor_fn, setup);
  if (events)
    caf::anon_send(events, caf::monitor_atom_v, p->actor);
  return p;
}

}  // namespace

expected<std::unique_ptr<client_runtime>> client_runtime::init(client_system& sys, std::string id,
                                                               client_runtime_options options) {
  COWPI_TRY_VOID(check_options(options));
  if (!protocol::valid_id(id))
    return fail(errc::invalid_argument, "malformed user id");
  client_impl::client_core core;
  core.rng = std::make_unique<crypto::system_rng>();
  COWPI_TRY(core.store, storage::client_store::open(options.store_path, options.key, *core.rng));
  COWPI_TRY(bool has, core.store->has_identity());
  if (has)
    return fail(errc::already_exists, "the store already holds a user");
  core.client = std::make_unique<protocol::client>(
      protocol::identity::generate(std::move(id), *core.rng),
      config::to_member_list(options.deployment.mirrors), options.protocol);
  COWPI_TRY_VOID(core.store->create(*core.client));
  std::string uid = core.client->self().id();
  const protocol::public_key lpk = core.client->self().lpk();
  COWPI_TRY(auto p, spawn_runtime(sys, std::move(core), std::move(options)));
  return std::unique_ptr<client_runtime>(new client_runtime(std::move(p), std::move(uid), lpk));
}

expected<std::unique_ptr<client_runtime>> client_runtime::load(client_system& sys,
                                                               client_runtime_options options) {
  COWPI_TRY_VOID(check_options(options));
  std::error_code ec;
  if (!std::filesystem::is_directory(options.store_path, ec))
    return fail(errc::not_found, "no client store at that path (run init first)");
  client_impl::client_core core;
  core.rng = std::make_unique<crypto::system_rng>();
  COWPI_TRY(core.store, storage::client_store::open(options.store_path, options.key, *core.rng));
  COWPI_TRY(protocol::client c, core.store->load(options.protocol));
  if (c.pinned_ms() != config::to_member_list(options.deployment.mirrors)) {
    return fail(errc::config,
                "the deployment's mirror set differs from the one this user was created with");
  }
  core.client = std::make_unique<protocol::client>(std::move(c));
  std::string uid = core.client->self().id();
  const protocol::public_key lpk = core.client->self().lpk();
  COWPI_TRY(auto p, spawn_runtime(sys, std::move(core), std::move(options)));
  return std::unique_ptr<client_runtime>(new client_runtime(std::move(p), std::move(uid), lpk));
}

client_connection_state client_runtime::state() const {
  return static_cast<client_connection_state>(impl_->state->load());
}

expected<void> client_runtime::register_user() {
  return call<void>(*impl_, impl_->connect_bound * 2, [](client_actor& a, done_fn<void> d) {
    a.op_connect(protocol::hello_mode::register_user, std::move(d));
  });
}

expected<void> client_runtime::connect() {
  return call<void>(*impl_, impl_->connect_bound, [](client_actor& a, done_fn<void> d) {
    a.op_connect(protocol::hello_mode::login, std::move(d));
  });
}

expected<user_lookup> client_runtime::lookup(std::vector<std::string> ids) {
  return call<user_lookup>(*impl_, impl_->request_timeout,
                           [ids = std::move(ids)](client_actor& a, done_fn<user_lookup> d) {
                             a.op_lookup(ids, std::move(d));
                           });
}

expected<protocol::conv_id> client_runtime::create(std::vector<std::string> others,
                                                   protocol::block_mode mode) {
  return call<protocol::conv_id>(
      *impl_, impl_->request_timeout,
      [others = std::move(others), mode](client_actor& a, done_fn<protocol::conv_id> d) {
        a.op_create(others, mode, std::move(d));
      });
}

expected<sent_message> client_runtime::send(const protocol::conv_id& conv, std::string_view text) {
  bytes b(text.begin(), text.end());
  return call<sent_message>(*impl_, impl_->request_timeout,
                            [conv, b = std::move(b)](client_actor& a, done_fn<sent_message> d) {
                              a.op_send(conv, b, std::move(d));
                            });
}

expected<sent_message> client_runtime::add(const protocol::conv_id& conv,
                                           std::vector<std::string> ids) {
  return call<sent_message>(*impl_, impl_->request_timeout,
                            [conv, ids = std::move(ids)](client_actor& a, done_fn<sent_message> d) {
                              a.op_update(conv, ids, {}, std::move(d));
                            });
}

expected<sent_message> client_runtime::remove(const protocol::conv_id& conv,
                                              std::vector<std::string> ids) {
  return call<sent_message>(*impl_, impl_->request_timeout,
                            [conv, ids = std::move(ids)](client_actor& a, done_fn<sent_message> d) {
                              a.op_update(conv, {}, ids, std::move(d));
                            });
}

expected<sent_message> client_runtime::leave(const protocol::conv_id& conv) {
  return remove(conv, {id_});
}

expected<client_sync_report> client_runtime::sync(std::chrono::milliseconds timeout) {
  return call<client_sync_report>(*impl_, timeout,
                                  [timeout](client_actor& a, done_fn<client_sync_report> d) {
                                    a.op_sync(timeout, std::move(d));
                                  });
}

expected<std::vector<conversation_info>> client_runtime::conversations() {
  return call<std::vector<conversation_info>>(
      *impl_, impl_->request_timeout,
      [](client_actor& a, done_fn<std::vector<conversation_info>> d) {
        a.op_conversations(std::move(d));
      });
}

expected<std::vector<transcript_line>> client_runtime::transcript(const protocol::conv_id& conv) {
  return call<std::vector<transcript_line>>(
      *impl_, impl_->request_timeout,
      [conv](client_actor& a, done_fn<std::vector<transcript_line>> d) {
        a.op_transcript(conv, std::move(d));
      });
}

expected<client_store_stats> client_runtime::store_stats() {
  return call<client_store_stats>(
      *impl_, impl_->request_timeout,
      [](client_actor& a, done_fn<client_store_stats> d) { a.op_store_stats(std::move(d)); });
}

void client_runtime::close() {
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    if (impl_->closed)
      return;
    impl_->closed = true;
  }
  // The actor answers once its store is closed, then ends; a dead actor answers with an
  // error at once.
  caf::scoped_actor self{*impl_->sys};
  bool answered = false;
  self->request(impl_->actor, std::chrono::seconds{60}, caf::close_atom_v)
      .receive([&answered](bool) { answered = true; }, [](const caf::error&) {});
  if (!answered)
    caf::anon_send_exit(impl_->actor, caf::exit_reason::kill);
  // No `on_event` call after close returns: the sink's close comes after every event the
  // runtime sent it (they were queued before the runtime answered), and we wait for its end.
  if (impl_->events) {
    self->monitor(impl_->events);
    self->send(impl_->events, caf::close_atom_v);
    self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds{10}) >> [] {});
  }
}

}  // namespace cowpi::actors

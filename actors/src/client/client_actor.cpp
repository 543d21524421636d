// SPDX-License-Identifier: Apache-2.0
// The client actor: set-up, the connection and its session, and the write path to the store.
// Requests, acceptance and the outbox are in client_conversations.cpp; the user's operations,
// sync and housekeeping in client_operations.cpp.
#include "client_actor.hpp"

#include "cowpi/config/common.hpp"
#include "cowpi/protocol/encoding.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include "client_actor_helpers.hpp"
#include "connection.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace cowpi::actors::client_impl {

namespace {

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

}  // namespace

bool no_changes(const protocol::client_changes& c) {
  return c.convs.empty() && c.removed_convs.empty() && !c.keys && !c.identity;
}

std::string rejection_text(const protocol::rejection& r) {
  std::string s(protocol::to_string(r.kind));
  switch (r.kind) {
    case protocol::rejection_kind::stale:
    case protocol::rejection_kind::aseq_gap:
    case protocol::rejection_kind::already_ordered:
      s += "(" + std::to_string(r.value) + ")";
      break;
    case protocol::rejection_kind::unknown_user:
      return s;  // its detail is a user id: never in an error context
    default:
      break;
  }
  if (!r.detail.empty())
    s += " " + r.detail;
  return s;
}

unexpected<error> unexpected_answer(const protocol::response_body& b, std::string_view what) {
  if (const auto* r = std::get_if<protocol::rejection>(&b))
    return fail(errc::rejected, std::string(what) + ": the router refused: " + rejection_text(*r));
  return fail(errc::malformed, std::string(what) + ": unexpected answer from the router");
}

// ---------------------------------------------------------------------------------------------
// Set-up and behavior.

client_actor::~client_actor() {
  if (cancel_connect_)
    cancel_connect_->store(true);
}

caf::behavior client_actor::make_behavior(client_setup&& setup) {
  core_ = std::move(setup.core);
  opts_ = std::move(setup.options);
  events_ = std::move(setup.events);
  shared_state_ = std::move(setup.state);
  nodes_ = connect_order(opts_.deployment.router, client().self().id());
  self_->set_down_handler([this](const caf::down_msg& dm) {
    // The broker died without saying why (it reports a normal end with conndown first).
    if (broker_ && dm.source == broker_.address()) {
      broker_ = nullptr;
      on_conn_down(attempt_, error{errc::closed, "the connection actor ended"});
    }
  });
  self_->delayed_send(self_, opts_.housekeeping_interval, housekeep_atom_v);
  return {
      [this](command_atom, const command& c) {
        if (phase_ != phase::closed)
          c.run(*this);
      },
      [this](csock_atom, socket_result& r) { on_socket(r); },
      [this](connup_atom, uint64_t a) { on_conn_up(a); },
      [this](frame_atom, uint64_t a, const std::vector<uint8_t>& payload) { on_frame(a, payload); },
      [this](conndown_atom, uint64_t a, const conn_failure& f) { on_conn_down(a, f.cause); },
      [this](deadline_atom, uint64_t a) { on_attempt_deadline(a); },
      [this](deadline_atom, const protocol::conv_id& conv) { on_setup_deadline(conv); },
      [this](caf::timeout_atom, uint64_t rid) { on_request_timeout(rid); },
      [this](resend_atom, const protocol::conv_id& conv, uint64_t aseq) { on_resend(conv, aseq); },
      [this](retry_atom, uint64_t id) {
        auto n = fetch_retries_.extract(id);
        if (n.empty())
          return;
        fetch_retry& f = n.mapped();
        if (!online())
          return f.k(fail(errc::unavailable, "not connected to the " + router_what()));
        fetch_keys(std::move(f.owners), f.conv, std::move(f.k), f.attempt, f.until);
      },
      [this](reconn_atom, uint64_t gen) {
        if (gen == reconnect_gen_ && phase_ == phase::waiting)
          start_attempt();
      },
      [this](quiet_atom) { on_quiet(); },
      [this](caf::wait_for_atom, uint64_t id) { on_sync_timeout(id); },
      [this](housekeep_atom) { on_housekeeping(); },
      [this](received_atom) {
        received_posted_ = false;
        finish_received();
        check_idle();
      },
      [this](caf::close_atom) {
        shutdown();
        return true;
      },
  };
}

caf::behavior client_actor_fn(caf::stateful_actor<client_actor>* self,
                              std::shared_ptr<client_setup> setup) {
  return self->state.make_behavior(std::move(*setup));
}

caf::behavior event_sink_fn(caf::event_based_actor* self,
                            std::function<void(const client_event&)> cb) {
  self->set_down_handler([self](const caf::down_msg&) { self->quit(); });
  return {
      [cb](cevent_atom, const client_event& ev) { cb(ev); },
      [self](caf::monitor_atom, const caf::actor& owner) { self->monitor(owner); },
      [self](caf::close_atom) { self->quit(); },
  };
}

// ---------------------------------------------------------------------------------------------
// Connection.

std::string client_actor::router_what() const {
  std::string s = opts_.deployment.router.nodes.empty() ? std::string("router")
                                                        : "router node " + nodes_[node_].id;
  s += " at " + config::to_string(router_address());
  if (opts_.proxy)
    s += " via SOCKS5 proxy at "
         + config::to_string(config::endpoint{opts_.proxy->host, opts_.proxy->port});
  return s;
}

void client_actor::op_connect(protocol::hello_mode mode, done_fn<void> done) {
  if (!check_usable(done))
    return;
  if (phase_ == phase::online)
    return done({});
  connect_waiters_.push_back(std::move(done));
  if (phase_ == phase::connecting || phase_ == phase::handshaking)
    return;  // joins it
  mode_ = mode;
  register_fallback_ = false;
  round_failures_ = 0;
  ++reconnect_gen_;  // a pending reconnect timer is superseded by this attempt
  start_attempt();
}

void client_actor::start_attempt() {
  ++attempt_;
  if (cancel_connect_)
    cancel_connect_->store(true);
  cancel_connect_ = std::make_shared<std::atomic<bool>>(false);
  router_error_.reset();
  session_.reset();
  set_phase(phase::connecting);
  connect_job job;
  job.attempt = attempt_;
  if (opts_.proxy) {
    job.host = opts_.proxy->host;
    job.port = opts_.proxy->port;
    job.what = "SOCKS5 proxy at " + config::to_string(config::endpoint{job.host, job.port});
  } else {
    job.host = router_address().host;
    job.port = router_address().port;
    job.what = router_what();
  }
  job.timeout = opts_.connect_timeout;
  job.cancelled = cancel_connect_;
  job.owner = caf::actor_cast<caf::actor>(self_);
  self_->spawn(connector, std::move(job));
  self_->delayed_send(self_, opts_.connect_timeout, deadline_atom_v, attempt_);
}

void client_actor::on_socket(socket_result& r) {
  if (r.attempt != attempt_ || phase_ != phase::connecting)
    return;  // stale: the fd closes
  if (r.failure)
    return attempt_failed(std::move(*r.failure), false);
  connection_params p;
  p.attempt = attempt_;
  p.sock = std::move(r.sock);
  p.max_frame = opts_.max_frame;
  p.owner = caf::actor_cast<caf::actor>(self_);
  if (opts_.proxy) {
    const auto& a = router_address();
    auto h = socks5_handshake::make(a.host, a.port);
    if (!h)
      return attempt_failed(std::move(h).error(), true);
    p.socks = std::move(*h);
  }
  broker_ = self_->system().middleman().spawn_broker(connection_broker, std::move(p));
  self_->monitor(broker_);
}

void client_actor::on_conn_up(uint64_t attempt) {
  if (attempt != attempt_ || phase_ != phase::connecting)
    return;
  session_.emplace(client().self(), opts_.deployment.router.name,
                   opts_.deployment.router.public_key, opts_.max_frame);
  auto hello = session_->start(mode_, *core_.rng);
  if (!hello)
    return attempt_failed(std::move(hello).error(), true);
  phase_ = phase::handshaking;
  write(*hello);
}

void client_actor::on_frame(uint64_t attempt, const std::vector<uint8_t>& payload) {
  if (attempt != attempt_ || !session_)
    return;
  auto events = session_->on_frame(payload);
  for (auto& ev : events) {
    // An event may end the connection (or start a new attempt): drop the rest then.
    if (attempt != attempt_ || !session_)
      return;
    std::visit(
        overloaded{
            [this](protocol::send_frame& f) { write(f.data); },
            [this](protocol::session_ready&) { on_session_ready(); },
            [this](protocol::router_message& m) { on_router_frame(m.frame); },
            [this](protocol::router_error& e) { router_error_ = e.frame; },
            [this](protocol::close_connection& c) {
              error why = router_error_
                              ? map_router_error(*router_error_)
                              : error{errc::unavailable,
                                      router_what() + ": session closed: " + c.cause.message()};
              if (phase_ == phase::online) {
                connection_lost(std::move(why));
              } else {
                attempt_failed(std::move(why), router_error_ && fatal_router_error(*router_error_));
              }
            },
        },
        ev);
  }
  check_idle();
}

void client_actor::on_conn_down(uint64_t attempt, const error& why) {
  if (attempt != attempt_)
    return;
  if (broker_) {
    self_->demonitor(broker_);
    broker_ = nullptr;
  }
  error e = router_error_ ? map_router_error(*router_error_)
                          : error{errc::unavailable, router_what() + ": " + why.context};
  if (phase_ == phase::online) {
    connection_lost(std::move(e));
  } else if (phase_ == phase::connecting || phase_ == phase::handshaking) {
    attempt_failed(std::move(e), router_error_ && fatal_router_error(*router_error_));
  }
}

void client_actor::on_attempt_deadline(uint64_t attempt) {
  if (attempt != attempt_ || (phase_ != phase::connecting && phase_ != phase::handshaking))
    return;
  attempt_failed(
      error{errc::unavailable, router_what() + " unreachable: not connected within "
                                   + std::to_string(opts_.connect_timeout.count()) + " ms"},
      false);
}

void client_actor::on_session_ready() {
  if (mode_ == protocol::hello_mode::register_user) {
    // REGISTER: the first frame (the proof of possession) uploads the pre-keys, persisted
    // before they leave (§4).
    auto up = registration_upload();
    if (phase_ == phase::failed)
      return;
    request(std::move(up), [this](expected<protocol::response_body> r) {
      if (phase_ != phase::handshaking)
        return;
      if (!r)
        return attempt_failed(std::move(r).error(), false);
      if (!std::holds_alternative<protocol::ok_result>(*r))
        return attempt_failed(unexpected_answer(*r, "pre-key upload").value(), true);
      on_registered();
    });
    return;
  }
  on_registered();
}

void client_actor::on_registered() {
  request(protocol::subscribe{}, [this](expected<protocol::response_body> r) {
    if (phase_ != phase::handshaking)
      return;
    if (!r)
      return attempt_failed(std::move(r).error(), false);
    if (!std::holds_alternative<protocol::ok_result>(*r))
      return attempt_failed(unexpected_answer(*r, "subscribe").value(), false);
    on_logged_in();
  });
}

void client_actor::on_logged_in() {
  reconnect_failures_ = 0;
  round_failures_ = 0;
  want_online_ = true;
  mode_ = protocol::hello_mode::login;  // reconnects log in
  set_phase(phase::online);
  auto waiters = std::exchange(connect_waiters_, {});
  for (auto& w : waiters)
    w({});
  resend_outbox();
  std::vector<protocol::conv_id> convs;
  for (const auto& [conv, cc] : client().convs())
    convs.push_back(conv);
  for (const auto& conv : convs)
    flush_rebuilds(conv);
  send_due_receipts();
  // The pre-key top-up (which may rotate the LAST_RESORT key) waits until the backlog is
  // drained (§2: rotate only after draining pending deliveries).
  topup_pending_ = true;
  touch();
}

void client_actor::attempt_failed(error why, bool fatal) {
  if (phase_ != phase::connecting && phase_ != phase::handshaking)
    return;
  phase_ = phase::offline;  // nested failures from the teardown below stop here
  const auto refused = router_error_ ? std::optional{router_error_->code} : std::nullopt;
  drop_connection(why);
  if (mode_ == protocol::hello_mode::register_user
      && refused == protocol::frame_error_code::id_taken && !register_fallback_) {
    // The id may be ours already (a register that crashed after the router committed it):
    // LOGIN proves it; UNKNOWN_USER there means someone else holds it.
    register_fallback_ = true;
    mode_ = protocol::hello_mode::login;
    start_attempt();
    return;
  }
  if (register_fallback_ && refused == protocol::frame_error_code::unknown_user) {
    why = error{errc::already_exists, "the id is registered to someone else (ID_TAKEN)"};
    fatal = true;
  }
  if (!fatal && nodes_.size() > 1) {
    // A router cluster: a dead node must not strand the user, so the next node is tried at
    // once; the backoff (or the failure) below comes once every node failed in turn.
    next_node();
    if (++round_failures_ < nodes_.size()) {
      start_attempt();
      return;
    }
    round_failures_ = 0;
    why.context = "none of the router's " + std::to_string(nodes_.size())
                  + " nodes could be reached; the last: " + why.context;
  }
  auto waiters = std::exchange(connect_waiters_, {});
  if (want_online_ && !fatal && opts_.reconnect) {
    schedule_reconnect(why.message());
  } else if (want_online_ && fatal) {
    want_online_ = false;
    set_phase(phase::failed, why.message());
    failure_ = why.message();
  } else {
    set_phase(phase::offline, why.message());
  }
  for (auto& w : waiters)
    w(unexpected<error>{why});
}

void client_actor::connection_lost(error why) {
  if (phase_ != phase::online)
    return;
  phase_ = phase::offline;
  drop_connection(why);
  // The node may be gone: the reconnect goes to the next one.
  next_node();
  if (want_online_ && opts_.reconnect) {
    schedule_reconnect(why.message());
  } else {
    set_phase(phase::offline, why.message());
  }
}

void client_actor::next_node() {
  node_ = (node_ + 1) % nodes_.size();
}

void client_actor::schedule_reconnect(const std::string& why) {
  const auto delay = backoff(reconnect_failures_++);
  ++reconnect_gen_;
  set_phase(phase::waiting, why, delay);
  self_->delayed_send(self_, delay, reconn_atom_v, reconnect_gen_);
}

void client_actor::drop_connection(const error& why) {
  if (cancel_connect_)
    cancel_connect_->store(true);
  if (broker_) {
    self_->demonitor(broker_);
    self_->send(broker_, caf::close_atom_v);
    broker_ = nullptr;
  }
  if (session_) {
    session_->close();
    session_.reset();
  }
  error lost{errc::unavailable, why.message()};
  fail_requests(lost);
  auto subs = std::exchange(submits_, {});
  for (auto& [rid, s] : subs) {
    // The message stays in the outbox and goes out again at the next login.
    if (s.done)
      s.done(sent_message{s.conv, s.aseq, false});
  }
  auto waiters = std::exchange(sync_waiters_, {});
  for (auto& w : waiters)
    w.done(unexpected<error>{lost});
  auto setups = std::exchange(setup_waiters_, {});
  for (auto& [conv, d] : setups) {
    d(fail(errc::unavailable, lost.context
                                  + "; the SETUP stays in the outbox and the "
                                    "conversation becomes usable once it is ordered"));
  }
}

void client_actor::finish_setup(const protocol::conv_id& conv, expected<protocol::conv_id> r) {
  auto w = setup_waiters_.extract(conv);
  if (!w.empty())
    w.mapped()(std::move(r));
}

void client_actor::on_setup_deadline(const protocol::conv_id& conv) {
  finish_setup(conv, fail(errc::timeout, "the SETUP was queued but not ordered within "
                                             + std::to_string(opts_.request_timeout.count())
                                             + " ms; the conversation becomes usable once it is"));
}

void client_actor::set_phase(phase p, const std::string& detail,
                             std::chrono::milliseconds retry_in) {
  phase_ = p;
  client_connection_state pub = client_connection_state::offline;
  switch (p) {
    case phase::offline:
    case phase::closed:
      pub = client_connection_state::offline;
      break;
    case phase::connecting:
    case phase::handshaking:
      pub = client_connection_state::connecting;
      break;
    case phase::online:
      pub = client_connection_state::online;
      break;
    case phase::waiting:
      pub = client_connection_state::waiting;
      break;
    case phase::failed:
      pub = client_connection_state::failed;
      break;
  }
  const auto prev = shared_state_->exchange(static_cast<uint8_t>(pub));
  if (prev != static_cast<uint8_t>(pub) || p == phase::waiting)
    emit(connection_event{pub, detail, retry_in});
}

error client_actor::map_router_error(const protocol::error_frame& f) const {
  // The protocol's spelling (UNKNOWN_USER, ...), as docs/protocol.md writes the codes.
  std::string code(protocol::to_string(f.code));
  for (auto& ch : code)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  switch (f.code) {
    case protocol::frame_error_code::unknown_user:
      return {errc::not_found, router_what() + ": the router does not know this user (" + code
                                   + "); register first"};
    case protocol::frame_error_code::id_taken:
      return {errc::already_exists, router_what() + ": the id is taken (" + code + ")"};
    case protocol::frame_error_code::bad_handshake:
      return {errc::rejected, router_what() + ": the router refused the handshake (" + code
                                  + "); check the router key in the deployment file"};
    case protocol::frame_error_code::unsupported_version:
      return {errc::unsupported_version,
              router_what() + ": the router speaks another version (" + code + ")"};
    case protocol::frame_error_code::busy:
      return {errc::unavailable, router_what() + ": the router is busy (" + code + ")"};
    default:
      return {errc::unavailable, router_what() + ": the router closed the session (" + code + ")"};
  }
}

bool client_actor::fatal_router_error(const protocol::error_frame& f) const {
  switch (f.code) {
    case protocol::frame_error_code::unknown_user:
    case protocol::frame_error_code::id_taken:
    case protocol::frame_error_code::bad_handshake:
    case protocol::frame_error_code::unsupported_version:
      return true;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

expected<void> client_actor::persist(const protocol::client_changes& ch,
                                     const std::vector<protocol::accepted_entry>& accepted) {
  if (!core_.store)
    return fail(errc::bad_state, "the client runtime has failed: " + failure_);
  if (received_persisted_ == received_.size()) {
    if (no_changes(ch) && accepted.empty())
      return {};
    auto r = core_.store->persist(client(), ch, accepted);
    if (!r)
      enter_failed(r.error());
    return r;
  }
  // Received envelopes whose rows are not written yet: the in-memory client already holds
  // their effects, so any write of a conversation record must carry their accepted entries
  // too (or a crash after it would leave an index past entries the transcript lacks).
  protocol::client_changes all = ch;
  std::vector<protocol::accepted_entry> entries;
  for (size_t i = received_persisted_; i < received_.size(); ++i) {
    const auto& res = received_[i].result;
    all.convs.insert(res.changes.convs.begin(), res.changes.convs.end());
    all.removed_convs.insert(res.changes.removed_convs.begin(), res.changes.removed_convs.end());
    all.keys = all.keys || res.changes.keys;
    all.identity = all.identity || res.changes.identity;
    entries.insert(entries.end(), res.accepted.begin(), res.accepted.end());
  }
  entries.insert(entries.end(), accepted.begin(), accepted.end());
  if (no_changes(all) && entries.empty()) {
    received_persisted_ = received_.size();
    return {};
  }
  auto r = core_.store->persist(client(), all, entries);
  if (!r) {
    enter_failed(r.error());
    return r;
  }
  received_persisted_ = received_.size();
  return {};
}

expected<void> client_actor::persist_conv(const protocol::conv_id& conv) {
  protocol::client_changes ch;
  ch.convs.insert(conv);
  return persist(ch);
}

void client_actor::enter_failed(error why) {
  // The client in memory is ahead of the store: nothing it holds may be sent or
  // acknowledged any more (§4 "Acknowledgement = durability").
  failure_ = why.message();
  want_online_ = false;
  emit(storage_failure_event{why});
  phase_ = phase::failed;
  drop_connection(why);
  auto waiters = std::exchange(connect_waiters_, {});
  for (auto& w : waiters)
    w(unexpected<error>{why});
  set_phase(phase::failed, failure_);
  core_.store.reset();
}

void client_actor::emit(client_event ev) {
  if (events_)
    self_->send(events_, cevent_atom_v, std::move(ev));
}

uint64_t client_actor::now() const {
  if (opts_.clock)
    return opts_.clock();
  return unix_seconds();
}

std::chrono::milliseconds client_actor::backoff(unsigned attempt) {
  const auto base = opts_.reconnect_min.count() << std::min(attempt, 16u);
  const auto capped = std::min<int64_t>(base, opts_.reconnect_max.count());
  std::array<uint8_t, 2> j{};
  core_.rng->fill(j);
  const int64_t jitter = capped * ((j[0] << 8) | j[1]) / (4 * 65536);
  return std::chrono::milliseconds{std::max<int64_t>(capped + jitter, 1)};
}
}  // namespace cowpi::actors::client_impl

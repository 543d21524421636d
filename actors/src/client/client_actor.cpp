// SPDX-License-Identifier: Apache-2.0
// The client actor: connection and session, operations, acceptance (docs/design.md §3.5),
// receipts (§3.7), the outbox (§3.8) and pre-keys, always persisting before sending (§4).
#include "client_actor.hpp"

#include "cowpi/actors/fault.hpp"
#include "cowpi/config/common.hpp"
#include "cowpi/protocol/encoding.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include "connection.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace cowpi::actors::client_impl {

namespace {

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

// How often a connected client checks its pre-key pool and key ages.
constexpr std::chrono::hours topup_period{1};
// Most received envelopes written in one batch (see `client_actor::received_`).
constexpr size_t max_received_batch = 32;

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

// The error of an answer that is not the one a request wanted.
unexpected<error> unexpected_answer(const protocol::response_body& b, std::string_view what) {
  if (const auto* r = std::get_if<protocol::rejection>(&b))
    return fail(errc::rejected, std::string(what) + ": the router refused: " + rejection_text(*r));
  return fail(errc::malformed, std::string(what) + ": unexpected answer from the router");
}

template <class T>
void sort_unique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

void sort_members(protocol::member_list& l) {
  std::sort(l.begin(), l.end(),
            [](const protocol::member& a, const protocol::member& b) { return a.id < b.id; });
}

}  // namespace

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
  const auto& r = opts_.deployment.router;
  std::string s = "router at " + config::to_string(r.address);
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
    job.host = opts_.deployment.router.address.host;
    job.port = opts_.deployment.router.address.port;
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
    const auto& a = opts_.deployment.router.address;
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
  if (want_online_ && opts_.reconnect) {
    schedule_reconnect(why.message());
  } else {
    set_phase(phase::offline, why.message());
  }
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
// Requests.

void client_actor::write(const bytes& frame) {
  if (broker_)
    self_->send(broker_, write_atom_v, frame);
}

void client_actor::request(protocol::client_request body, response_fn k) {
  if (!session_ || !session_->is_ready())
    return k(fail(errc::unavailable, "not connected to the " + router_what()));
  const uint64_t rid = next_rid_++;
  auto frame = session_->seal(protocol::client_frame{rid, std::move(body)});
  if (!frame)
    return k(unexpected<error>{std::move(frame).error()});
  write(*frame);
  requests_.emplace(rid, std::move(k));
  self_->delayed_send(self_, opts_.request_timeout, caf::timeout_atom_v, rid);
}

void client_actor::fetch_keys(std::vector<std::string> owners,
                              std::optional<protocol::conv_id> conv, response_fn k,
                              unsigned attempt,
                              std::optional<std::chrono::steady_clock::time_point> until) {
  if (!until)
    until = std::chrono::steady_clock::now() + opts_.request_timeout;
  request(protocol::fetch_prekeys{owners, conv},
          [this, owners, conv, k, attempt, until](expected<protocol::response_body> r) mutable {
            // UNAVAILABLE: the directory cannot answer for every owner yet (a mirror's keys
            // not yet uploaded right after the providers start). Retry, backing off, for as
            // long as one request may take, before the caller sees it.
            const auto* rej = r ? std::get_if<protocol::rejection>(&*r) : nullptr;
            if (rej != nullptr && rej->kind == protocol::rejection_kind::unavailable
                && std::chrono::steady_clock::now() < *until && online()) {
              const uint64_t id = next_fetch_retry_++;
              fetch_retries_.emplace(
                  id, fetch_retry{std::move(owners), conv, std::move(k), attempt + 1, *until});
              self_->delayed_send(self_, backoff(attempt), retry_atom_v, id);
              return;
            }
            k(std::move(r));
          });
}

void client_actor::send_ack(const protocol::ack_msg& a) {
  // Unanswered on purpose: a lost ack only makes the router resend, and a duplicate
  // delivery is acknowledged again (§3.5 step 1).
  if (!session_ || !session_->is_ready())
    return;
  auto frame = session_->seal(protocol::client_frame{next_rid_++, a});
  if (frame)
    write(*frame);
}

void client_actor::on_router_frame(protocol::router_frame& f) {
  // The quiet period measures the router's own traffic (deliveries, answers about our
  // messages): the answer to a request of ours (a pre-key top-up, a key fetch) is awaited
  // through `requests_` and does not start it again.
  if (auto* r = std::get_if<protocol::response>(&f)) {
    if (r->request_id == 0 || !requests_.contains(r->request_id))
      touch();
    return on_response(*r);
  }
  touch();
  if (auto* e = std::get_if<protocol::envelope>(&f))
    return on_envelope(*e);
  // An error_frame arrives as a session `router_error`, never here.
}

void client_actor::on_response(protocol::response& r) {
  if (r.request_id == 0) {
    if (const auto* rej = std::get_if<protocol::rejection>(&r.body);
        rej != nullptr && rej->kind == protocol::rejection_kind::history_expired)
      emit(history_expired_event{rej->detail});
    return;
  }
  if (auto it = requests_.find(r.request_id); it != requests_.end()) {
    auto k = std::move(it->second);
    requests_.erase(it);
    k(std::move(r.body));
    return;
  }
  auto it = submits_.find(r.request_id);
  if (it == submits_.end())
    return;  // an ack's answer, or an answer after a timeout
  if (std::holds_alternative<protocol::ok_result>(r.body)) {
    // "Queued", not ordered: keep the entry until the echo or a late rejection (§3.8).
    if (auto d = std::exchange(it->second.done, {}))
      d(sent_message{it->second.conv, it->second.aseq, true});
    return;
  }
  const auto* rej = std::get_if<protocol::rejection>(&r.body);
  if (rej == nullptr)
    return;
  submitted s = std::move(it->second);
  submits_.erase(it);
  if (s.done) {
    if (protocol::plan_rejection(*rej).keeps_message) {
      s.done(sent_message{s.conv, s.aseq, false});  // kept: see on_rejection
    } else {
      s.done(fail(errc::rejected, "the router refused the message: " + rejection_text(*rej)));
    }
  }
  on_rejection(s.conv, s.aseq, *rej);
}

void client_actor::on_request_timeout(uint64_t rid) {
  const std::string why = "no answer from the " + router_what() + " within "
                          + std::to_string(opts_.request_timeout.count()) + " ms";
  if (auto it = requests_.find(rid); it != requests_.end()) {
    auto k = std::move(it->second);
    requests_.erase(it);
    k(fail(errc::timeout, why));
    return;
  }
  if (auto it = submits_.find(rid); it != submits_.end()) {
    if (auto d = std::exchange(it->second.done, {}))
      d(fail(errc::timeout, why + "; the message stays in the outbox"));
  }
}

void client_actor::fail_requests(const error& why) {
  auto reqs = std::exchange(requests_, {});
  for (auto& [rid, k] : reqs)
    k(unexpected<error>{why});
  auto retries = std::exchange(fetch_retries_, {});
  for (auto& [id, f] : retries)
    f.k(unexpected<error>{why});
}

// ---------------------------------------------------------------------------------------------
// Conversations.

void client_actor::on_envelope(const protocol::envelope& e) {
  if (!online())
    return;
  auto res = client().receive(e, now(), *core_.rng, core_.store.get());
  received_.push_back(received{e.conv, std::move(res)});
  // The envelopes already in the mailbox are handled before this message: they join the
  // batch. It stays inside the client's in-memory D window (`d_window`): an entry accepted
  // here is not in the store's D history until the batch is written, and a duplicate of it
  // is checked against that window.
  if (!received_posted_) {
    received_posted_ = true;
    self_->send(self_, received_atom_v);
  }
  if (received_.size() >= std::min(max_received_batch, client().options().d_window / 2))
    finish_received();
}

void client_actor::finish_received() {
  if (received_.empty())
    return;
  // §3.5 step 5: persist, then acknowledge.
  if (received_persisted_ < received_.size() && !persist({}))
    return;
  auto batch = std::exchange(received_, {});
  received_persisted_ = 0;
  for (auto& [conv, res] : batch) {
    // Killed here, the entry is accepted but not acknowledged: the router resends it and the
    // restarted client acknowledges the duplicate without accepting it twice.
    if (!res.accepted.empty())
      fault_point(fault::client_accept_before_ack);
    for (const auto& a : res.accepted)
      emit_accepted(a);
    for (auto& al : res.alarms)
      emit(alarm_event{std::move(al)});
    for (const auto& a : res.acks)
      send_ack(a);
    if (res.recreated) {
      emit(recreated_event{res.recreated->first, res.recreated->second});
      // Someone else's SETUP took our id: the waiting create gets the new id once its SETUP
      // is ordered.
      if (auto w = setup_waiters_.extract(res.recreated->first))
        setup_waiters_.emplace(res.recreated->second, std::move(w.mapped()));
    }
    submit_all(std::move(res.resubmit));
    flush_rebuilds(conv);
    if (!res.accepted.empty())
      send_due_receipts(conv);
    if (phase_ == phase::failed || phase_ == phase::closed)
      return;
  }
}

void client_actor::emit_accepted(const protocol::accepted_entry& a) {
  ++accepted_count_;
  if (a.own) {
    // Sent: its echo came back (§3.8).
    for (auto it = submits_.begin(); it != submits_.end();) {
      if (it->second.conv == a.conv && it->second.aseq == a.aseq) {
        if (auto d = std::exchange(it->second.done, {}))
          d(sent_message{a.conv, a.aseq, true});
        it = submits_.erase(it);
      } else {
        ++it;
      }
    }
    resend_failures_.erase({a.conv, a.aseq});
    if (a.type == protocol::msg_type::setup)
      finish_setup(a.conv, a.conv);
  }
  emit(entry_event{a});
  if (!a.own && a.parent) {
    delivery_event d;
    d.conv = a.conv;
    d.member = a.author;
    d.received_upto = *a.parent;
    if (a.type == protocol::msg_type::receipt) {
      if (a.floor_before + 1 <= static_cast<int64_t>(*a.parent))
        d.read = index_range{static_cast<uint64_t>(a.floor_before + 1), *a.parent};
      d.could_not_read = a.voids;
    }
    emit(std::move(d));
  }
}

void client_actor::with_keys(const protocol::conv_id& conv, done_fn<void> k) {
  auto missing = client().missing_keys(conv);
  if (missing.empty())
    return k({});
  if (!online())
    return k(fail(errc::unavailable,
                  "not connected to the " + router_what() + ": first-contact keys are needed"));
  fetch_keys(missing, conv, [this, conv, k, missing](expected<protocol::response_body> r) {
    if (!r)
      return k(unexpected<error>{std::move(r).error()});
    const auto* pk = std::get_if<protocol::prekeys_result>(&*r);
    if (pk == nullptr)
      return k(unexpected_answer(*r, "pre-key fetch"));
    if (client().find(conv) == nullptr)
      return k(fail(errc::not_found, "no such conversation"));
    if (auto a = client().add_bundles(conv, pk->bundles, missing); !a)
      return k(unexpected<error>{std::move(a).error()});
    if (!persist_conv(conv))
      return k(fail(errc::storage, failure_));
    k({});
  });
}

void client_actor::keyed(const protocol::conv_id& conv, build_fn build,
                         done_fn<protocol::outgoing> k, bool retried) {
  with_keys(conv, [this, conv, build, k, retried](expected<void> ready) {
    if (!ready)
      return k(unexpected<error>{std::move(ready).error()});
    auto out = build();
    if (!out && out.error().code == errc::unknown_key && !retried) {
      // A key failed when used (docs/design.md §2): the client forgot it; fetch and build again.
      return keyed(conv, build, k, true);
    }
    k(std::move(out));
  });
}

void client_actor::submit(protocol::outgoing o, done_fn<sent_message> done) {
  if (!online() || !session_) {
    // Persisted in the outbox: it goes out at the next login.
    if (done)
      done(sent_message{o.conv, o.aseq, false});
    return;
  }
  // A new version of an aseq supersedes the older ones: a late rejection of an older version
  // must not act on the current one.
  for (auto it = submits_.begin(); it != submits_.end();) {
    if (it->second.conv == o.conv && it->second.aseq == o.aseq) {
      if (auto d = std::exchange(it->second.done, {}))
        d(sent_message{o.conv, o.aseq, false});
      it = submits_.erase(it);
    } else {
      ++it;
    }
  }
  const uint64_t rid = next_rid_++;
  auto frame = session_->seal(protocol::client_frame{rid, std::move(o.submit)});
  if (!frame) {
    if (done)
      done(unexpected<error>{std::move(frame).error()});
    return;
  }
  write(*frame);
  const bool waits = static_cast<bool>(done);
  submits_.emplace(rid, submitted{o.conv, o.aseq, std::move(done)});
  if (waits)
    self_->delayed_send(self_, opts_.request_timeout, caf::timeout_atom_v, rid);
}

void client_actor::submit_all(std::vector<protocol::outgoing> out) {
  for (auto& o : out)
    submit(std::move(o));
}

void client_actor::resend_outbox() {
  backing_off_.clear();
  std::vector<protocol::outgoing> out;
  for (const auto& [conv, cc] : client().convs()) {
    auto p = client().pending(conv);
    out.insert(out.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
  }
  submit_all(std::move(out));
}

void client_actor::on_rejection(const protocol::conv_id& conv, uint64_t aseq,
                                const protocol::rejection& refused) {
  // A LIMIT that is flow control (too many entries in the intake, an UPDATE or SETUP too
  // soon) is handled as UNAVAILABLE: kept and resent after a backoff, no sooner than the
  // router's wait (the later aseqs then come back ASEQ_GAP and go out again in order).
  const protocol::rejection_plan plan = protocol::plan_rejection(refused);
  const protocol::rejection& rej = plan.handled;
  const auto wait = std::chrono::seconds(plan.wait_s);
  // What to tell the user if the message is abandoned.
  protocol::msg_type type = protocol::msg_type::message;
  bytes text;
  if (const auto* cc = client().find(conv)) {
    for (const auto& e : cc->outbox) {
      if (e.aseq != aseq)
        continue;
      type = e.type;
      text = e.plaintext;
    }
  }
  auto run = [this, conv, aseq, rej, type, text, wait](expected<void>) {
    auto res = client().on_rejection(conv, aseq, rej, now(), *core_.rng);
    if (!no_changes(res.changes) && !persist(res.changes))
      return;
    if (res.dropped) {
      emit(dropped_event{conv, aseq, type, text, *res.dropped});
      if (type == protocol::msg_type::setup) {
        finish_setup(conv, fail(errc::rejected,
                                "the router refused the SETUP: " + rejection_text(*res.dropped)));
      }
    }
    if (rej.kind == protocol::rejection_kind::unavailable) {
      // Retryable: resubmit the current version after a backoff (§3.8).
      auto delay =
          std::max<std::chrono::milliseconds>(backoff(resend_failures_[{conv, aseq}]++), wait);
      backing_off_.insert({conv, aseq});
      self_->delayed_send(self_, delay, resend_atom_v, conv, aseq);
      return;
    }
    // Queued behind a message that waits for its backoff: resending the head now would
    // defeat the backoff (and meet the same refusal); this one goes out with it.
    if (rej.kind == protocol::rejection_kind::aseq_gap && rej.value < aseq
        && backing_off_.contains({conv, rej.value}))
      return;
    submit_all(std::move(res.resubmit));
  };
  // STALE and permanent rejections rebuild messages, which needs every peer's key.
  if (plan.needs_keys) {
    with_keys(conv, run);
  } else {
    run({});
  }
}

void client_actor::on_resend(const protocol::conv_id& conv, uint64_t aseq) {
  if (backing_off_.erase({conv, aseq}) == 0)
    return;  // sent again since (a login resends the whole outbox)
  if (!online())
    return;  // the whole outbox goes out at the next login
  // This one and those queued behind it, which held back for it (the router takes a copy of
  // a message it already queues as a no-op).
  for (auto& o : client().pending(conv)) {
    if (o.aseq >= aseq)
      submit(std::move(o));
  }
}

void client_actor::flush_rebuilds(const protocol::conv_id& conv) {
  const auto* cc = client().find(conv);
  if (cc == nullptr)
    return;
  const bool waiting = std::any_of(cc->outbox.begin(), cc->outbox.end(),
                                   [](const protocol::outbox_entry& e) { return e.stale_after; });
  if (!waiting)
    return;
  with_keys(conv, [this, conv](expected<void>) {
    auto out = client().flush_rebuilds(conv, now(), *core_.rng);
    if (!persist_conv(conv))
      return;
    submit_all(std::move(out));
  });
}

void client_actor::send_due_receipts(std::optional<protocol::conv_id> only) {
  if (!online())
    return;
  const uint64_t t = now();
  std::vector<protocol::conv_id> due;
  for (const auto& [conv, cc] : client().convs()) {
    if (only && conv != *only)
      continue;
    if (!receipt_inflight_.contains(conv) && client().receipt_due(conv, t))
      due.push_back(conv);
  }
  for (const auto& conv : due) {
    receipt_inflight_.insert(conv);
    auto build = [this, conv]() -> expected<protocol::outgoing> {
      const uint64_t t2 = now();
      if (!online() || !client().receipt_due(conv, t2))
        return fail(errc::bad_state, "no receipt due");
      return client().send_receipt(conv, t2, *core_.rng);
    };
    keyed(conv, build, [this, conv](expected<protocol::outgoing> out) {
      receipt_inflight_.erase(conv);
      if (!out)
        return;
      if (!persist_conv(conv))
        return;
      submit(std::move(*out));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-keys.

protocol::upload_prekeys client_actor::registration_upload() {
  auto plan = client().plan_prekey_upload(nullptr, now(), *core_.rng);
  if (plan.keys_changed) {
    protocol::client_changes ch;
    ch.keys = true;
    (void)persist(ch);  // a failed write fails the runtime
  }
  return std::move(plan.up);
}

void client_actor::top_up() {
  last_topup_ = steady::now();
  if (client().expire_keys(now())) {
    protocol::client_changes ch;
    ch.keys = true;
    if (!persist(ch))
      return;
  }
  // Keys retired here (by age) may still sit in the router's pool, counted as available and
  // handed out to first contacts that could never be opened. Sent before the status request,
  // which the router answers after it.
  const uint64_t below = client().prekey_retire_floor();
  if (below > retired_below_) {
    request(protocol::retire_prekeys{below}, [this, below](expected<protocol::response_body> r) {
      if (r && std::holds_alternative<protocol::ok_result>(*r))
        retired_below_ = std::max(retired_below_, below);
    });
  }
  request(protocol::account_status{}, [this](expected<protocol::response_body> r) {
    if (!r || !online())
      return;
    const auto* st = std::get_if<protocol::status_result>(&*r);
    if (st == nullptr)
      return;
    auto plan = client().plan_prekey_upload(st, now(), *core_.rng);
    if (plan.keys_changed) {
      protocol::client_changes ch;
      ch.keys = true;
      if (!persist(ch))
        return;
    }
    if (plan.empty())
      return;
    request(std::move(plan.up), [](expected<protocol::response_body>) {
      // A refused or lost upload is retried at the next top-up: the router's count says.
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Operations.

template <class T>
bool client_actor::check_usable(const done_fn<T>& done) {
  if (phase_ == phase::closed) {
    done(fail(errc::closed, "the client runtime is closed"));
    return false;
  }
  if (phase_ == phase::failed) {
    done(fail(errc::bad_state, "the client runtime has failed: " + failure_));
    return false;
  }
  return true;
}

bool client_actor::check_online(const std::function<void(error)>& fail_with) {
  if (online())
    return true;
  fail_with(error{errc::unavailable, "not connected to the " + router_what()});
  return false;
}

void client_actor::op_lookup(std::vector<std::string> ids, done_fn<user_lookup> done) {
  if (!check_usable(done)
      || !check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  sort_unique(ids);
  request(protocol::lookup_users{std::move(ids)}, [done](expected<protocol::response_body> r) {
    if (!r)
      return done(unexpected<error>{std::move(r).error()});
    auto* u = std::get_if<protocol::users_result>(&*r);
    if (u == nullptr)
      return done(unexpected_answer(*r, "lookup"));
    sort_members(u->users);
    done(user_lookup{std::move(u->users), std::move(u->unknown)});
  });
}

void client_actor::op_create(std::vector<std::string> others, protocol::block_mode mode,
                             done_fn<protocol::conv_id> done) {
  if (!check_usable(done)
      || !check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  sort_unique(others);
  if (others.empty())
    return done(fail(errc::invalid_argument, "a conversation needs another member"));
  if (std::binary_search(others.begin(), others.end(), client().self().id()))
    return done(fail(errc::invalid_argument, "the other members may not include ourselves"));
  request(protocol::lookup_users{others}, [this, others, mode,
                                           done](expected<protocol::response_body> r) {
    if (!r)
      return done(unexpected<error>{std::move(r).error()});
    auto* u = std::get_if<protocol::users_result>(&*r);
    if (u == nullptr)
      return done(unexpected_answer(*r, "lookup"));
    if (!u->unknown.empty() || u->users.size() != others.size())
      return done(fail(errc::not_found, std::to_string(others.size() - u->users.size())
                                            + " of the ids are not registered"));
    protocol::member_list members = std::move(u->users);
    sort_members(members);
    std::vector<std::string> owners = others;
    for (const auto& m : client().pinned_ms())
      owners.push_back(m.id);
    sort_unique(owners);
    // The id is drawn before the fetch: a mirror cluster hands out the keys of the
    // node that will own the conversation.
    const protocol::conv_id chosen = client().new_conv_id(*core_.rng);
    fetch_keys(std::move(owners), chosen,
               [this, members, mode, chosen, done](expected<protocol::response_body> r2) {
                 if (!r2)
                   return done(unexpected<error>{std::move(r2).error()});
                 const auto* pk = std::get_if<protocol::prekeys_result>(&*r2);
                 if (pk == nullptr)
                   return done(unexpected_answer(*r2, "pre-key fetch"));
                 auto out = client().create(members, pk->bundles, now(), *core_.rng, mode, chosen);
                 if (!out)
                   return done(unexpected<error>{std::move(out).error()});
                 const protocol::conv_id conv = out->conv;
                 if (!persist_conv(conv))
                   return done(fail(errc::storage, failure_));
                 submit(std::move(*out), [this, done, conv](expected<sent_message> s) {
                   if (!s)
                     return done(unexpected<error>{std::move(s).error()});
                   // The conversation is usable once its SETUP comes back ordered.
                   const auto* cc = client().find(conv);
                   if (cc != nullptr && cc->status == protocol::conv_status::active)
                     return done(conv);
                   setup_waiters_[conv] = done;
                   self_->delayed_send(self_, opts_.request_timeout, deadline_atom_v, conv);
                 });
               });
  });
}

void client_actor::op_send(const protocol::conv_id& conv, bytes text, done_fn<sent_message> done) {
  if (!check_usable(done))
    return;
  if (client().find(conv) == nullptr)
    return done(fail(errc::not_found, "no such conversation"));
  auto build = [this, conv, text = std::move(text)]() {
    return client().send_message(conv, text, now(), *core_.rng);
  };
  keyed(conv, build, [this, conv, done](expected<protocol::outgoing> out) {
    if (!out)
      return done(unexpected<error>{std::move(out).error()});
    if (!persist_conv(conv))
      return done(fail(errc::storage, failure_));
    // Killed here, the message is in the persisted outbox and goes out at the next connect.
    fault_point(fault::client_send_after_persist);
    submit(std::move(*out), done);
  });
}

void client_actor::op_update(const protocol::conv_id& conv, std::vector<std::string> adds,
                             std::vector<std::string> removes, done_fn<sent_message> done) {
  if (!check_usable(done))
    return;
  if (client().find(conv) == nullptr)
    return done(fail(errc::not_found, "no such conversation"));
  sort_unique(adds);
  sort_unique(removes);
  if (adds.empty() && removes.empty())
    return done(fail(errc::invalid_argument, "nothing to add or remove"));
  auto build = [this, conv, removes, done](protocol::member_list add_members) {
    auto make = [this, conv, removes, add_members]() {
      return client().update(conv, add_members, removes, now(), *core_.rng);
    };
    keyed(conv, make, [this, conv, done](expected<protocol::outgoing> out) {
      if (!out)
        return done(unexpected<error>{std::move(out).error()});
      if (!persist_conv(conv))
        return done(fail(errc::storage, failure_));
      submit(std::move(*out), done);
    });
  };
  if (adds.empty())
    return build({});
  if (!check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  request(protocol::lookup_users{adds},
          [this, conv, adds, done, build](expected<protocol::response_body> r) {
            if (!r)
              return done(unexpected<error>{std::move(r).error()});
            auto* u = std::get_if<protocol::users_result>(&*r);
            if (u == nullptr)
              return done(unexpected_answer(*r, "lookup"));
            if (!u->unknown.empty() || u->users.size() != adds.size())
              return done(fail(errc::not_found, std::to_string(adds.size() - u->users.size())
                                                    + " of the ids are not registered"));
            protocol::member_list members = std::move(u->users);
            sort_members(members);
            fetch_keys(adds, conv,
                       [this, conv, members, done, build](expected<protocol::response_body> r2) {
                         if (!r2)
                           return done(unexpected<error>{std::move(r2).error()});
                         const auto* pk = std::get_if<protocol::prekeys_result>(&*r2);
                         if (pk == nullptr)
                           return done(unexpected_answer(*r2, "pre-key fetch"));
                         if (client().find(conv) == nullptr)
                           return done(fail(errc::not_found, "no such conversation"));
                         if (auto a = client().add_bundles(conv, pk->bundles); !a)
                           return done(unexpected<error>{std::move(a).error()});
                         if (!persist_conv(conv))
                           return done(fail(errc::storage, failure_));
                         build(members);
                       });
          });
}

void client_actor::op_sync(std::chrono::milliseconds timeout, done_fn<client_sync_report> done) {
  if (!check_usable(done)
      || !check_online([&done](error e) { done(unexpected<error>{std::move(e)}); }))
    return;
  const uint64_t id = next_sync_id_++;
  sync_waiters_.push_back(sync_waiter{id, accepted_count_, std::move(done)});
  self_->delayed_send(self_, timeout, caf::wait_for_atom_v, id);
  send_due_receipts();
  check_idle();
}

void client_actor::op_conversations(done_fn<std::vector<conversation_info>> done) {
  if (phase_ == phase::closed)
    return done(fail(errc::closed, "the client runtime is closed"));
  std::vector<conversation_info> out;
  for (const auto& [conv, cc] : client().convs()) {
    conversation_info i;
    i.conv = conv;
    switch (cc.status) {
      case protocol::conv_status::pending_setup:
        i.status = conversation_status::pending_setup;
        break;
      case protocol::conv_status::active:
        i.status = conversation_status::active;
        break;
      case protocol::conv_status::halted:
        i.status = conversation_status::halted;
        break;
    }
    i.members = cc.st.members;
    i.mode = cc.st.mode();
    if (!i.members.empty())
      i.safety_number = protocol::safety_number(i.members);
    i.next = cc.st.next;
    i.halt_index = cc.halt_index;
    i.outbox = cc.outbox.size();
    out.push_back(std::move(i));
  }
  for (const auto& [conv, t] : client().tombstones()) {
    if (client().find(conv) != nullptr)
      continue;  // re-added: the live record counts
    conversation_info i;
    i.conv = conv;
    i.status = conversation_status::removed;
    out.push_back(std::move(i));
  }
  done(std::move(out));
}

void client_actor::op_store_stats(done_fn<client_store_stats> done) {
  if (phase_ == phase::closed)
    return done(fail(errc::closed, "the client runtime is closed"));
  if (!core_.store)
    return done(fail(errc::bad_state, "the client runtime has failed: " + failure_));
  const auto st = core_.store->raw().stats();
  done(client_store_stats{st.syncs, st.batches});
}

void client_actor::op_transcript(const protocol::conv_id& conv,
                                 done_fn<std::vector<transcript_line>> done) {
  if (phase_ == phase::closed)
    return done(fail(errc::closed, "the client runtime is closed"));
  if (!core_.store)
    return done(fail(errc::bad_state, "the client runtime has failed: " + failure_));
  auto tr = core_.store->transcript(conv);
  if (!tr)
    return done(unexpected<error>{std::move(tr).error()});
  auto del = delivery_states(*tr);
  std::vector<transcript_line> out;
  out.reserve(tr->size());
  for (size_t k = 0; k < tr->size(); ++k)
    out.push_back(transcript_line{std::move((*tr)[k]), std::move(del[k])});
  done(std::move(out));
}

void client_actor::shutdown() {
  if (phase_ == phase::closed)
    return;
  want_online_ = false;
  ++reconnect_gen_;
  const error closed{errc::closed, "the client runtime is closed"};
  phase_ = phase::closed;
  drop_connection(closed);
  auto waiters = std::exchange(connect_waiters_, {});
  for (auto& w : waiters)
    w(unexpected<error>{closed});
  set_phase(phase::closed);
  // The sink ends after delivering every event sent before this.
  if (events_)
    self_->send(events_, caf::close_atom_v);
  core_.store.reset();
  self_->quit();
}

// ---------------------------------------------------------------------------------------------
// Sync and housekeeping.

void client_actor::touch() {
  last_activity_ = steady::now();
  ++activity_;
  drained_ = false;
  if (!quiet_timer_ && (!sync_waiters_.empty() || topup_pending_)) {
    quiet_timer_ = true;
    self_->delayed_send(self_, opts_.quiet_period, quiet_atom_v);
  }
}

bool client_actor::is_quiet() const {
  return steady::now() - last_activity_ >= opts_.quiet_period;
}

void client_actor::on_quiet() {
  quiet_timer_ = false;
  if (!is_quiet()) {
    // Something arrived since the timer started: wait for the rest of the quiet period.
    quiet_timer_ = true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        last_activity_ + opts_.quiet_period - steady::now());
    self_->delayed_send(self_, std::max(left, std::chrono::milliseconds{1}), quiet_atom_v);
    return;
  }
  if (topup_pending_ && online()) {
    topup_pending_ = false;
    top_up();
  }
  check_idle();
}

size_t client_actor::outbox_size() const {
  size_t n = 0;
  for (const auto& [conv, cc] : core_.client->convs())
    if (cc.status != protocol::conv_status::halted)
      n += cc.outbox.size();
  return n;
}

void client_actor::check_idle() {
  if (sync_waiters_.empty() || !online())
    return;
  if (!received_.empty() || !requests_.empty() || !receipt_inflight_.empty() || outbox_size() > 0)
    return;
  if (drain_unsupported_) {
    if (!is_quiet()) {
      if (!quiet_timer_) {
        quiet_timer_ = true;
        self_->delayed_send(self_, opts_.quiet_period, quiet_atom_v);
      }
      return;
    }
  } else if (!drained_) {
    // Ask the router whether anything is still on its way to us: its answer comes after
    // every envelope it had for us.
    start_drain();
    return;
  }
  if (topup_pending_) {
    // The backlog is drained: the pre-key top-up (which may rotate the LAST_RESORT key, §2)
    // goes now, and the sync completes once it is answered.
    topup_pending_ = false;
    top_up();
    if (!requests_.empty())
      return;
  }
  auto waiters = std::exchange(sync_waiters_, {});
  for (auto& w : waiters)
    w.done(client_sync_report{accepted_count_ - w.accepted_at_start, 0, true});
}

void client_actor::start_drain() {
  if (drain_inflight_)
    return;
  drain_inflight_ = true;
  const uint64_t at = activity_;
  request(protocol::drain{}, [this, at](expected<protocol::response_body> r) {
    drain_inflight_ = false;
    if (!r)
      return;  // the connection went or the answer timed out: the next check asks again
    if (!std::holds_alternative<protocol::ok_result>(*r))
      drain_unsupported_ = true;
    else if (activity_ == at)
      drained_ = true;
    // check_idle runs after every batch of router frames.
  });
}

void client_actor::on_sync_timeout(uint64_t id) {
  auto it = std::find_if(sync_waiters_.begin(), sync_waiters_.end(),
                         [id](const sync_waiter& w) { return w.id == id; });
  if (it == sync_waiters_.end())
    return;
  auto w = std::move(*it);
  sync_waiters_.erase(it);
  w.done(client_sync_report{accepted_count_ - w.accepted_at_start, outbox_size(), false});
}

void client_actor::on_housekeeping() {
  if (phase_ == phase::closed)
    return;
  self_->delayed_send(self_, opts_.housekeeping_interval, housekeep_atom_v);
  if (!online())
    return;
  send_due_receipts();
  if (steady::now() - last_topup_ >= topup_period && is_quiet())
    top_up();
  check_idle();
}

// ---------------------------------------------------------------------------------------------
// Helpers.

bool client_actor::persist(const protocol::client_changes& ch,
                           const std::vector<protocol::accepted_entry>& accepted) {
  if (!core_.store)
    return false;
  if (received_persisted_ == received_.size()) {
    if (no_changes(ch) && accepted.empty())
      return true;
    auto r = core_.store->persist(client(), ch, accepted);
    if (!r) {
      enter_failed(std::move(r).error());
      return false;
    }
    return true;
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
    return true;
  }
  auto r = core_.store->persist(client(), all, entries);
  if (!r) {
    enter_failed(std::move(r).error());
    return false;
  }
  received_persisted_ = received_.size();
  return true;
}

bool client_actor::persist_conv(const protocol::conv_id& conv) {
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

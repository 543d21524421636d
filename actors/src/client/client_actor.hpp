// SPDX-License-Identifier: Apache-2.0
// The client actor: the single owner of one user's `protocol::client` and `client_store`. It
// runs the transport session over the connection broker, the user's operations, acceptance,
// acknowledgements, receipts, pre-key top-ups, SUBMIT retries and reconnects. Every protocol
// decision stays in protocol/; this adapter persists, then sends.
#pragma once

#include "cowpi/actors/client_runtime.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/session.hpp"
#include "cowpi/storage/client_store.hpp"

#include "connection.hpp"
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cowpi::actors::client_impl {

/// Completion of an operation: called exactly once, on the client actor's thread.
template <class T>
using done_fn = std::function<void(expected<T>)>;

class client_actor;

/// An operation posted by the facade; runs on the client actor.
struct command {
  std::function<void(client_actor&)> run;
};

/// What the client actor owns. Member order matters: `store` borrows `rng`.
struct client_core {
  std::unique_ptr<crypto::rng> rng;
  std::unique_ptr<storage::client_store> store;
  std::unique_ptr<protocol::client> client;
};

/// Everything the client actor starts with.
struct client_setup {
  client_core core;
  client_runtime_options options;
  /// The event sink actor (invalid when there is no callback).
  caf::actor events;
  /// The connection state the facade reads.
  std::shared_ptr<std::atomic<uint8_t>> state;
};

/// The client actor's state (a `caf::stateful_actor<client_actor>`).
class client_actor {
public:
  explicit client_actor(caf::stateful_actor<client_actor>* self) : self_(self) {}
  ~client_actor();
  client_actor(const client_actor&) = delete;
  client_actor& operator=(const client_actor&) = delete;

  static inline const char* name = "cowpi.client";

  caf::behavior make_behavior(client_setup&& setup);

  // -- Operations (commands) -----------------------------------------------------------------
  void op_connect(protocol::hello_mode mode, done_fn<void> done);
  void op_lookup(std::vector<std::string> ids, done_fn<user_lookup> done);
  void op_create(std::vector<std::string> others, protocol::block_mode mode,
                 done_fn<protocol::conv_id> done);
  void op_send(const protocol::conv_id& conv, bytes text, done_fn<sent_message> done);
  void op_update(const protocol::conv_id& conv, std::vector<std::string> adds,
                 std::vector<std::string> removes, done_fn<sent_message> done);
  void op_sync(std::chrono::milliseconds timeout, done_fn<client_sync_report> done);
  void op_conversations(done_fn<std::vector<conversation_info>> done);
  void op_transcript(const protocol::conv_id& conv, done_fn<std::vector<transcript_line>> done);
  void op_store_stats(done_fn<client_store_stats> done);
  /// Disconnects, fails everything pending with `errc::closed`, closes the store and quits.
  void shutdown();

private:
  enum class phase : uint8_t { offline, connecting, handshaking, online, waiting, failed, closed };

  using response_fn = std::function<void(expected<protocol::response_body>)>;

  struct submitted {
    protocol::conv_id conv{};
    uint64_t aseq = 0;
    /// The operation waiting for the router's first answer, if any.
    done_fn<sent_message> done;
  };

  struct sync_waiter {
    uint64_t id = 0;
    size_t accepted_at_start = 0;
    done_fn<client_sync_report> done;
  };

  // -- Connection ----------------------------------------------------------------------------
  void start_attempt();
  void on_socket(socket_result& r);
  void on_conn_up(uint64_t attempt);
  void on_frame(uint64_t attempt, const std::vector<uint8_t>& payload);
  void on_conn_down(uint64_t attempt, const error& why);
  void on_attempt_deadline(uint64_t attempt);
  void on_session_ready();
  void on_registered();
  void on_logged_in();
  void attempt_failed(error why, bool fatal);
  void connection_lost(error why);
  void schedule_reconnect(const std::string& why);
  /// Closes the broker and the session; fails requests, submits and sync waiters with `why`.
  void drop_connection(const error& why);
  void set_phase(phase p, const std::string& detail = {},
                 std::chrono::milliseconds retry_in = std::chrono::milliseconds{0});
  error map_router_error(const protocol::error_frame& f) const;
  bool fatal_router_error(const protocol::error_frame& f) const;
  std::string router_what() const;
  /// Where the current attempt connects (or the live connection goes): `nodes_[node_]`.
  const config::endpoint& router_address() const { return nodes_[node_].address; }
  /// After a failed attempt or a lost connection: the next node in `nodes_`, wrapping.
  void next_node();

  // -- Requests ------------------------------------------------------------------------------
  void write(const bytes& frame);
  void request(protocol::client_request body, response_fn k);
  /// A pre-key fetch, retried after a backoff while the directory answers UNAVAILABLE.
  void fetch_keys(std::vector<std::string> owners, std::optional<protocol::conv_id> conv,
                  response_fn k, unsigned attempt = 0,
                  std::optional<std::chrono::steady_clock::time_point> until = std::nullopt);
  void send_ack(const protocol::ack_msg& a);
  void on_router_frame(protocol::router_frame& f);
  void on_response(protocol::response& r);
  void on_request_timeout(uint64_t rid);
  void fail_requests(const error& why);

  // -- Conversations -------------------------------------------------------------------------
  void on_envelope(const protocol::envelope& e);
  void finish_received();
  void with_keys(const protocol::conv_id& conv, done_fn<void> k);
  using build_fn = std::function<expected<protocol::outgoing>()>;
  /// `with_keys`, then `build`; once more after another fetch if a key failed when used.
  void keyed(const protocol::conv_id& conv, build_fn build, done_fn<protocol::outgoing> k,
             bool retried = false);
  void submit(protocol::outgoing o, done_fn<sent_message> done = {});
  /// Forgets the submissions of (`conv`, `aseq`) and completes a waiting operation with
  /// `queued`: true when the entry's echo came back, false when a newer version replaces it.
  void settle_submits(const protocol::conv_id& conv, uint64_t aseq, bool queued);
  void submit_all(std::vector<protocol::outgoing> out);
  void resend_outbox();
  void on_rejection(const protocol::conv_id& conv, uint64_t aseq, const protocol::rejection& rej);
  void on_resend(const protocol::conv_id& conv, uint64_t aseq);
  /// Completes the `create` waiting for the SETUP of `conv`, if any.
  void finish_setup(const protocol::conv_id& conv, expected<protocol::conv_id> r);
  void on_setup_deadline(const protocol::conv_id& conv);
  void flush_rebuilds(const protocol::conv_id& conv);
  /// Sends a standalone RECEIPT wherever one is wanted (every conversation, or `only`).
  void send_due_receipts(std::optional<protocol::conv_id> only = std::nullopt);
  void emit_accepted(const protocol::accepted_entry& a);

  // -- Pre-keys ------------------------------------------------------------------------------
  protocol::upload_prekeys registration_upload();
  void top_up();

  // -- Sync, housekeeping ----------------------------------------------------------------------
  void touch();
  void on_quiet();
  bool is_quiet() const;
  void check_idle();
  void start_drain();
  void on_sync_timeout(uint64_t id);
  void on_housekeeping();

  // -- Helpers -------------------------------------------------------------------------------
  /// Writes what `ch` names (and the received envelopes not yet written) in one synced batch.
  /// A failed write fails the runtime (`enter_failed`) and is returned.
  [[nodiscard]] expected<void> persist(const protocol::client_changes& ch,
                                       const std::vector<protocol::accepted_entry>& accepted = {});
  [[nodiscard]] expected<void> persist_conv(const protocol::conv_id& conv);
  void enter_failed(error why);
  void emit(client_event ev);
  uint64_t now() const;
  std::chrono::milliseconds backoff(unsigned attempt);
  /// Why no operation can run (the runtime is closed or failed), if so.
  std::optional<error> unusable() const;
  /// False (and `done` failed) when `unusable`.
  template <class T>
  bool check_usable(const done_fn<T>& done) {
    auto why = unusable();
    if (why)
      done(unexpected<error>{std::move(*why)});
    return !why;
  }
  bool check_online(const std::function<void(error)>& fail_with);
  size_t outbox_size() const;
  bool online() const noexcept { return phase_ == phase::online; }
  protocol::client& client() { return *core_.client; }

  caf::stateful_actor<client_actor>* self_;
  client_core core_;
  client_runtime_options opts_;
  caf::actor events_;
  std::shared_ptr<std::atomic<uint8_t>> shared_state_;

  // Connection.
  phase phase_ = phase::offline;
  protocol::hello_mode mode_ = protocol::hello_mode::login;
  uint64_t attempt_ = 0;
  std::shared_ptr<std::atomic<bool>> cancel_connect_;
  caf::actor broker_;
  std::optional<protocol::client_session> session_;
  std::optional<protocol::error_frame> router_error_;
  std::vector<done_fn<void>> connect_waiters_;
  /// The router's nodes in the order this user tries them (`connect_order`): one entry
  /// unless the router is a cluster.
  std::vector<config::deployment_router_node> nodes_;
  /// The node of the current attempt or connection.
  size_t node_ = 0;
  /// Attempts that failed one after the other since the last login, a new `connect` or the
  /// last backoff: once every node failed, the usual reconnect backoff (or failure) follows.
  size_t round_failures_ = 0;
  /// Set once a connect succeeded: from then on, a lost connection is re-established.
  bool want_online_ = false;
  unsigned reconnect_failures_ = 0;
  uint64_t reconnect_gen_ = 0;
  /// A REGISTER refused with ID_TAKEN is retried once as LOGIN (it may be ours already).
  bool register_fallback_ = false;
  /// Why the runtime failed (`phase::failed`), for later operations.
  std::string failure_;

  // Requests.
  uint64_t next_rid_ = 1;
  std::map<uint64_t, response_fn> requests_;
  struct fetch_retry {
    std::vector<std::string> owners;
    std::optional<protocol::conv_id> conv;
    response_fn k;
    unsigned attempt = 0;
    std::chrono::steady_clock::time_point until;
  };
  std::map<uint64_t, fetch_retry> fetch_retries_;
  uint64_t next_fetch_retry_ = 1;
  std::map<uint64_t, submitted> submits_;
  std::map<std::pair<protocol::conv_id, uint64_t>, unsigned> resend_failures_;
  /// Messages refused UNAVAILABLE whose resend waits for its backoff. The ASEQ_GAPs of the
  /// messages queued behind one do not resend it early: they go out with it.
  std::set<std::pair<protocol::conv_id, uint64_t>> backing_off_;
  /// `create` calls waiting for their SETUP to come back ordered.
  std::map<protocol::conv_id, done_fn<protocol::conv_id>> setup_waiters_;

  // Conversations whose standalone RECEIPT is being built.
  std::set<protocol::conv_id> receipt_inflight_;

  // Sync and housekeeping.
  using steady = std::chrono::steady_clock;
  steady::time_point last_activity_ = steady::now();
  bool quiet_timer_ = false;
  /// Router traffic seen (deliveries, answers that are not to our requests), counted.
  uint64_t activity_ = 0;
  /// A DRAIN was answered and nothing arrived since it was sent: the router has nothing more
  /// for us right now.
  bool drained_ = false;
  bool drain_inflight_ = false;
  /// The router answered DRAIN with something other than OK: fall back to the quiet period.
  bool drain_unsupported_ = false;
  uint64_t next_sync_id_ = 1;
  std::vector<sync_waiter> sync_waiters_;
  size_t accepted_count_ = 0;
  bool topup_pending_ = false;
  steady::time_point last_topup_{};
  // Every one-time pre-key below this id is known to be gone from the router's pool.
  uint64_t retired_below_ = 1;

  // Received envelopes (§3.5 step 5). Envelopes handled one after the other share one synced
  // write: each is applied in memory at once, and the rows it changed and the entries it
  // accepted go into the next persist (the batch's own at `received_atom`, or any other
  // persist before it, which takes them along). Its acknowledgements, events, resubmissions
  // and receipts follow at `received_atom`, after that write.
  struct received {
    protocol::conv_id conv;
    protocol::receive_result result;
  };
  std::vector<received> received_;
  /// How many of `received_` (from the front) are persisted.
  size_t received_persisted_ = 0;
  /// A `received_atom` is on its way to this actor.
  bool received_posted_ = false;
};

/// The client actor's behavior: `setup` is moved into the state.
caf::behavior client_actor_fn(caf::stateful_actor<client_actor>* self,
                              std::shared_ptr<client_setup> setup);

/// The event sink: calls `cb` for every `(cevent_atom, client_event)`, quits on `close_atom`.
caf::behavior event_sink_fn(caf::event_based_actor* self,
                            std::function<void(const client_event&)> cb);

}  // namespace cowpi::actors::client_impl

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::client_impl::command)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cowpi::actors::client_event)

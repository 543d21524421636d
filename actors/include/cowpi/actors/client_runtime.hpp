// SPDX-License-Identifier: Apache-2.0
// The client runtime (one user of Mobile CoWPI): the connection to the router, the transport
// session, registration and pre-keys, conversations, acceptance, receipts, reconnects and the
// RocksDB store, behind a CAF-free API that blocks with a timeout, plus an event callback.
//
// Threading: a `client_system` owns one CAF actor system (with the I/O middleman) that any
// number of `client_runtime`s share, e.g. the load generator's many simulated users. Each
// runtime is one actor holding its `protocol::client` and `storage::client_store`, so all of a
// user's state is touched by one thread at a time. The blocking methods of a runtime are
// thread-safe: they post work to that actor and wait for its answer. Events are delivered, in
// order, on a CAF thread (see `client_runtime_options::on_event`).
#pragma once

#include "cowpi/actors/delivery.hpp"
#include "cowpi/config/deployment_file.hpp"
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/events.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/messages.hpp"
#include "cowpi/storage/sealer.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cowpi::actors {

// ---------------------------------------------------------------------------------------------
// The actor system.

/// Settings of a `client_system`.
struct client_system_options {
  /// CAF scheduler threads; 0 keeps CAF's default (one per core, at least 4). A runtime with
  /// `dedicated_thread` does not use them for its own work.
  size_t scheduler_threads = 0;
};

/// One CAF 0.17 actor system with the I/O middleman, shared by every `client_runtime` built on
/// it. It reads no configuration file and no command line. Not copyable or movable.
class client_system {
public:
  explicit client_system(client_system_options o = {});
  /// Waits for every actor of the system to end. REQUIRES: every `client_runtime` built on
  /// this system has been destroyed.
  ~client_system();
  client_system(const client_system&) = delete;
  client_system& operator=(const client_system&) = delete;

  /// Private: the CAF side (actors/src/client/).
  struct impl;
  impl& internals() noexcept { return *impl_; }

private:
  std::unique_ptr<impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Events.

/// Where the connection to the router is.
enum class client_connection_state : uint8_t {
  /// Not connected and not trying (before `connect`, after `close`).
  offline = 1,
  /// Connecting: TCP, SOCKS5 (with a proxy), then the transport handshake and LOGIN or
  /// REGISTER.
  connecting,
  /// Logged in and subscribed: envelopes flow.
  online,
  /// The connection was lost (or a reconnect failed); the next attempt starts after a backoff.
  waiting,
  /// Given up: the router refused the user (UNKNOWN_USER, ID_TAKEN, BAD_HANDSHAKE), or the
  /// store failed. Only a new runtime can continue.
  failed,
};

/// Returns "offline", "connecting", "online", "waiting" or "failed".
std::string_view to_string(client_connection_state s) noexcept;

/// The connection changed state. `detail` says why (an error message, safe to log), e.g.
/// "router at 127.0.0.1:7000 unreachable: connection refused"; `retry_in` is the backoff
/// before the next attempt (`waiting` only).
struct connection_event {
  client_connection_state state = client_connection_state::offline;
  std::string detail;
  std::chrono::milliseconds retry_in{0};
};

/// An entry was accepted (docs/design.md §3.5) and persisted: the verified transcript, in index
/// order per conversation. `entry.own` marks our own messages coming back ordered: that is
/// what "sent" means (§3.8).
struct entry_event {
  protocol::accepted_entry entry;
};

/// An alarm was raised (PROVIDER, FORK, SENDER, DIRECTORY, IMPERSONATION), with local
/// evidence only.
struct alarm_event {
  protocol::alarm alarm;
};

/// Another member's entry moved its delivery state (docs/design.md §3.7): `member` has received
/// every index up to `received_upto`; when the entry is a RECEIPT, it has also read the
/// indices in `read` except `could_not_read`.
struct delivery_event {
  protocol::conv_id conv{};
  std::string member;
  uint64_t received_upto = 0;
  std::optional<index_range> read;
  std::vector<uint64_t> could_not_read;
};

/// The router permanently refused one of our messages: it was abandoned (its later messages
/// moved one aseq down) and the user should be told (`why`: LIMIT, NOT_MEMBER, ...).
struct dropped_event {
  protocol::conv_id conv{};
  uint64_t aseq = 0;
  protocol::msg_type type = protocol::msg_type::message;
  /// The text of an abandoned MESSAGE (empty for other types).
  bytes plaintext;
  protocol::rejection why;
};

/// Someone else's SETUP took the id of a conversation we created; it was created anew under
/// `new_conv` (docs/design.md §3.5 step 0) and `old_conv` is gone.
struct recreated_event {
  protocol::conv_id old_conv{};
  protocol::conv_id new_conv{};
};

/// The router no longer holds the history of one of our conversations (HISTORY_EXPIRED): we
/// must be re-added there. `detail` is the router's text.
struct history_expired_event {
  std::string detail;
};

/// The store failed: nothing more is accepted, acknowledged or sent; the runtime is `failed`.
struct storage_failure_event {
  error cause;
};

/// Everything the runtime reports.
using client_event =
    std::variant<connection_event, entry_event, alarm_event, delivery_event, dropped_event,
                 recreated_event, history_expired_event, storage_failure_event>;

// ---------------------------------------------------------------------------------------------
// Options and results.

/// A SOCKS5 proxy (no authentication), e.g. Tor's `127.0.0.1:9050`.
struct socks5_proxy {
  std::string host;
  uint16_t port = 0;
  friend bool operator==(const socks5_proxy&, const socks5_proxy&) = default;
};

/// Settings of one `client_runtime`.
struct client_runtime_options {
  /// The router to use (address, id, long-term key) and the pinned mirror set.
  config::deployment_file deployment;
  /// The RocksDB directory of this user's store, and where its sealing key comes from.
  std::filesystem::path store_path;
  storage::key_source key = storage::key_file{};
  /// Bound on reaching the router: TCP (and SOCKS5) plus the transport handshake and LOGIN or
  /// REGISTER. An unreachable router is `errc::unavailable` after at most this long. With a
  /// router cluster (`deployment.router.nodes`) it bounds the attempt at each node: a connect
  /// tries the nodes in `connect_order` until one answers, so it fails after at most this long
  /// per node.
  std::chrono::milliseconds connect_timeout{5000};
  /// Bound on every operation that waits for the router (lookups, pre-key fetches, a SUBMIT's
  /// "queued" answer), for the whole operation.
  std::chrono::milliseconds request_timeout{10000};
  /// Connect through this SOCKS5 proxy (the CLI's `--proxy socks5://HOST:PORT`). The proxy
  /// resolves the router's host name.
  std::optional<socks5_proxy> proxy;
  /// After a successful `connect`, reconnect with backoff whenever the connection drops,
  /// until `close` (chat mode, load generator). With a router cluster the reconnect goes to
  /// the next node in `connect_order`, and the backoff applies once every node failed in turn.
  bool reconnect = true;
  /// The reconnect backoff: the first wait, doubled per failed attempt up to the maximum,
  /// with up to 25% random jitter. Resubmitting a message the router answered UNAVAILABLE
  /// backs off the same way.
  std::chrono::milliseconds reconnect_min{250};
  std::chrono::milliseconds reconnect_max{30000};
  /// Once nothing arrived for this long after login, the pre-key top-up runs (a client that
  /// is not syncing). `sync` waits on it only against a router that does not answer DRAIN;
  /// otherwise DRAIN's answer says the router has nothing more for us.
  std::chrono::milliseconds quiet_period{200};
  /// How often the runtime checks the receipt rule (§3.7), pre-key expiry and LAST_RESORT
  /// rotation while online.
  std::chrono::milliseconds housekeeping_interval{1000};
  /// Run this user's actor on its own thread (store writes are synced and block). Turn it off
  /// for many simulated users in one process: they then share the scheduler threads.
  bool dedicated_thread = true;
  /// The protocol client's tunables (pre-key pool sizes, key ages).
  protocol::client_options protocol;
  /// The protocol clock in seconds since the epoch; the system clock when empty. Tests
  /// inject one to drive the receipt rule and key ages.
  std::function<uint64_t()> clock;
  /// Called for every event, in order, on a CAF thread that is neither the caller's nor the
  /// runtime's own, one call at a time. It may call this runtime's blocking methods; they then
  /// block that CAF thread until they return, so with `dedicated_thread` off the system needs
  /// a second scheduler thread for the runtime to answer. It must not block otherwise, and
  /// whatever it touches must outlive the runtime: `close` (and the destructor) return only
  /// once no call is running or queued, so neither may be called from `on_event`. Empty:
  /// events are dropped.
  std::function<void(const client_event&)> on_event;
  /// Largest transport frame accepted from the router.
  size_t max_frame = protocol::max_frame_protocol;
};

/// The nodes the client of user `user` tries, in this order, to reach `router`. For a router
/// cluster (`router.nodes` not empty): the user's home node (`protocol::user_owner` over the
/// node ids) first, then the nodes after it in `router.nodes`, wrapping round to the start, so
/// every node appears once. For a router of one node: `{router.name, router.address}`.
[[nodiscard]] std::vector<config::deployment_router_node> connect_order(
    const config::deployment_router& router, const std::string& user);

/// The result of a message handed to the router.
struct sent_message {
  protocol::conv_id conv{};
  uint64_t aseq = 0;
  /// The router answered "queued". False when the runtime was offline (the message waits in
  /// the persisted outbox and goes out at the next connect) or when the router's first answer
  /// was a retryable hint (UNAVAILABLE, STALE, ASEQ_GAP: the runtime resends or rebuilds it).
  /// Either way "sent" is its echo (an `entry_event` with `own`).
  bool queued = false;
};

/// The answer to `lookup`: the registered ids with their long-term keys (sorted), and the ids
/// the router does not know.
struct user_lookup {
  protocol::member_list found;
  std::vector<std::string> unknown;
};

/// Writes to a user's store since its runtime opened it.
struct client_store_stats {
  /// Synced RocksDB writes (each one fsync).
  uint64_t syncs = 0;
  /// Write batches (operations that changed the store; several may share a synced write).
  uint64_t batches = 0;
};

/// What `sync` achieved.
struct client_sync_report {
  /// Entries accepted while it ran.
  size_t accepted = 0;
  /// Our messages still waiting for their echo when it returned.
  size_t outbox = 0;
  /// True when it returned because everything was drained (nothing of ours pending and the
  /// router's DRAIN answered with nothing new before it); false when its timeout came first.
  bool idle = false;
};

/// Where one of our conversations stands.
enum class conversation_status : uint8_t {
  /// We created it; its SETUP has not come back ordered yet.
  pending_setup = 1,
  active,
  /// Stopped by an alarm (`halt_index`); nothing more is sent there.
  halted,
  /// We were removed or left: only the tombstone remains.
  removed,
};

/// Returns "pending", "active", "halted" or "removed".
std::string_view to_string(conversation_status s) noexcept;

/// One conversation, as `conversations` lists it.
struct conversation_info {
  protocol::conv_id conv{};
  conversation_status status = conversation_status::active;
  /// Current members with long-term keys (empty once removed).
  protocol::member_list members;
  /// The safety number of the current member list (docs/design.md §3.6), three lines.
  std::string safety_number;
  /// The block mode its SETUP fixed (docs/protocol.md §5.2); public-key once removed (the
  /// record is gone).
  protocol::block_mode mode = protocol::block_mode::pk;
  /// The next index to accept.
  uint64_t next = 0;
  uint64_t halt_index = 0;
  /// Our messages not yet seen ordered.
  size_t outbox = 0;
};

/// One transcript entry with its delivery state.
struct transcript_line {
  protocol::accepted_entry entry;
  entry_delivery delivery;
};

// ---------------------------------------------------------------------------------------------
// The runtime.

/// One user's client. Every blocking method returns within its bound (`connect_timeout` for
/// connecting, per node of a router cluster; `request_timeout` for the others; `sync`'s
/// argument for `sync`) with a value or
/// an error; they are thread-safe. Errors: `errc::unavailable` when the router cannot be
/// reached or the runtime is not connected (context: the router address and why);
/// `errc::timeout` when the router took too long; `errc::closed` after `close`;
/// `errc::rejected` for a router refusal (context: its code); `errc::storage` and the like
/// from the store; `errc::bad_state` once the runtime is `failed`.
///
/// Every operation follows the protocol's order: the protocol client changes, the store
/// persists the change (one synced batch), and only then is anything sent or acknowledged.
class client_runtime {
public:
  /// Creates a new user `id`: a fresh identity and an empty store at
  /// `options.store_path`, pinned to `options.deployment`'s mirror set. No network.
  /// Fails with `errc::invalid_argument` for a malformed id, `errc::already_exists` when the
  /// store already holds a user, and store errors. REQUIRES: `sodium_init()` has run; `sys`
  /// outlives the runtime.
  [[nodiscard]] static expected<std::unique_ptr<client_runtime>> init(
      client_system& sys, std::string id, client_runtime_options options);

  /// Opens the user stored at `options.store_path` (after a restart: resumes from its last
  /// persisted state; the outbox goes out again at `connect`). Fails with
  /// `errc::not_found` when there is no user there, `errc::decrypt_failed` for a wrong key,
  /// `errc::config` when the deployment's mirror set differs from the one the user was created
  /// with. REQUIRES: as `init`.
  [[nodiscard]] static expected<std::unique_ptr<client_runtime>> load(
      client_system& sys, client_runtime_options options);

  /// Calls `close`.
  ~client_runtime();
  client_runtime(const client_runtime&) = delete;
  client_runtime& operator=(const client_runtime&) = delete;

  /// Returns the user's id.
  const std::string& id() const noexcept { return id_; }
  /// Returns the user's long-term public key.
  const protocol::public_key& lpk() const noexcept { return lpk_; }
  /// Returns the connection state (it may change right after the call).
  client_connection_state state() const;

  /// Registers the user (a REGISTER session whose first frame uploads the pre-keys and the
  /// LAST_RESORT key) and stays connected as `connect` does. Fails with
  /// `errc::already_exists` when the id is taken by someone else; succeeds when it is already
  /// registered to this user (a register that crashed half-way).
  [[nodiscard]] expected<void> register_user();

  /// Logs in, subscribes to the envelope stream, resends the outbox and tops pre-keys up.
  /// Returns once logged in; a no-op when already online. Fails with `errc::not_found` when
  /// the router does not know the user (UNKNOWN_USER).
  [[nodiscard]] expected<void> connect();

  /// Looks users up in the router's directory.
  [[nodiscard]] expected<user_lookup> lookup(std::vector<std::string> ids);

  /// Creates a conversation with `others` (ids; not ourselves) over the pinned mirror set:
  /// looks up their long-term keys, fetches first-contact keys for them and the mirrors, and
  /// submits the SETUP. Returns its id once the SETUP came back ordered: the conversation is
  /// then active for us and `send` works (the others can send once they accepted it). Fails
  /// with `errc::not_found` when an id is not registered, `errc::timeout` when the SETUP is
  /// queued but not ordered within `request_timeout` (it stays in the outbox). Needs a
  /// connection. If someone else's SETUP took the id, the id returned is the new one
  /// (`recreated_event`). `mode` is the conversation's block mode, fixed for its life
  /// (docs/protocol.md §5.2): public-key blocks, or chain mode (§4.8).
  [[nodiscard]] expected<protocol::conv_id> create(
      std::vector<std::string> others, protocol::block_mode mode = protocol::block_mode::pk);

  /// Sends `text` (up to the protocol's body limit). Works offline when every peer's key is
  /// at hand (the message waits in the outbox).
  [[nodiscard]] expected<sent_message> send(const protocol::conv_id& conv, std::string_view text);

  /// Adds `ids` (looked up in the directory) to `conv`. Needs a connection.
  [[nodiscard]] expected<sent_message> add(const protocol::conv_id& conv,
                                           std::vector<std::string> ids);
  /// Removes `ids` from `conv`.
  [[nodiscard]] expected<sent_message> remove(const protocol::conv_id& conv,
                                              std::vector<std::string> ids);
  /// Leaves `conv` (removes ourselves).
  [[nodiscard]] expected<sent_message> leave(const protocol::conv_id& conv);

  /// Processes deliveries until the router is drained and our outbox is empty (every message
  /// echoed), sending receipts that fall due on the way, or until `timeout`. Fails with
  /// `errc::unavailable` when not connected.
  [[nodiscard]] expected<client_sync_report> sync(std::chrono::milliseconds timeout);

  /// Lists our conversations, tombstones (`removed`) included.
  [[nodiscard]] expected<std::vector<conversation_info>> conversations();

  /// Returns the accepted transcript of `conv` with the delivery state of each message.
  [[nodiscard]] expected<std::vector<transcript_line>> transcript(const protocol::conv_id& conv);

  /// The counters of the user's store since the runtime opened it: for benchmarks and tests.
  [[nodiscard]] expected<client_store_stats> store_stats();

  /// Disconnects, stops reconnecting, closes the store and ends the runtime's actors. Later
  /// calls fail with `errc::closed`. Idempotent; returns once the store is closed (so the
  /// same store may be opened again) and no `on_event` call is running or queued.
  void close();

  /// Private: the actor side.
  struct impl;

private:
  client_runtime(std::unique_ptr<impl> p, std::string id, const protocol::public_key& lpk);

  std::unique_ptr<impl> impl_;
  std::string id_;
  protocol::public_key lpk_{};
};

/// Returns the lower-case hex of a conversation id (how the CLI shows it).
std::string conv_to_hex(const protocol::conv_id& conv);
/// Parses 32 hex digits into a conversation id; `std::nullopt` for anything else.
std::optional<protocol::conv_id> conv_from_hex(std::string_view hex);

}  // namespace cowpi::actors

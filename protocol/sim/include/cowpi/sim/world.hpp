// SPDX-License-Identifier: Apache-2.0
// An in-process, deterministic Mobile CoWPI deployment: one router, M mirrors
// and N clients wired through the pure protocol state machines, with every
// message between them passing through a queue an adversary can drop,
// reorder, duplicate or tamper with. Used by the demo (`cowpi-sim`), the
// adversarial suite, the randomised simulation, the fuzzer and benchmarks.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/protocol/router.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace cowpi::sim {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): a harness

/// Messages in flight between clients and the router.
struct to_router {
  std::string user;
  uint64_t aseq = 0;
  submit_msg submit;
};
struct to_router_ack {
  std::string user;
  ack_msg ack;
};
struct to_client_envelope {
  std::string user;
  envelope env;
};
struct to_client_rejection {
  std::string user;
  conv_id conv{};
  uint64_t aseq = 0;
  rejection rej;
};
using in_flight = std::variant<to_router, to_router_ack, to_client_envelope, to_client_rejection>;

/// A client and what its user has seen.
struct client_node {
  std::unique_ptr<client> c;
  /// The durably persisted copy (updated after every operation; restored on crash).
  std::unique_ptr<client> persisted;
  std::map<conv_id, std::vector<accepted_entry>> transcript;
  std::vector<alarm> alarms;
  std::vector<rejection> dropped;
  bool online = true;
};

/// A mirror and its history of D_i.
struct mirror_node : mirror_history {
  mirror_node(mirror mm, uint64_t seed) : m(std::move(mm)), rng(seed) {}
  mirror m;
  /// The mirror's own randomness (copyable: a replay can reproduce its keys).
  crypto::deterministic_rng rng;
  std::map<conv_id, std::map<uint64_t, hash32>> d;
  /// A lying mirror signs whatever the router asks: it keeps one state per
  /// fork branch (the router names the branch).
  bool lies = false;
  std::map<int, std::unique_ptr<mirror>> branches;
  std::map<int, std::map<conv_id, std::map<uint64_t, hash32>>> branch_d;
  /// A mirror that is down answers nothing (PREPARE times out).
  bool down = false;
  std::optional<hash32> d_at(const conv_id& conv, uint64_t i) const override;
};

/// What an adversary may do to each message in flight: return false to drop
/// it; it may modify it in place or push extra messages through `inject`.
using interceptor = std::function<bool(in_flight& m)>;

/// A lying directory: sees (and may rewrite) every bundle `fetch` hands out.
using directory_interceptor = std::function<void(const std::string& requester, prekey_bundle& b)>;

struct world_options {
  uint64_t seed = 1;
  size_t mirrors = 2;
  /// The router's intake limits. Unlike a real router's (`intake_limits{}`), the simulated one
  /// has no UPDATE rate limit unless a test sets one: protocol tests send one author's UPDATEs
  /// back to back without moving the clock.
  intake_limits limits = [] {
    intake_limits l;
    l.min_update_interval = 0;
    return l;
  }();
  client_options client_opts{};
  /// Deliver messages in random order (seeded) instead of FIFO.
  bool shuffle = false;
};

/// The deployment.
class world {
public:
  explicit world(world_options opts = {});

  // -- Set-up ---------------------------------------------------------------
  /// Registers a user (identity, pre-keys, LAST_RESORT key).
  void add_user(const std::string& id);
  /// Uploads pre-keys made by `id`'s client (`client::make_prekeys`) to the directory, as a
  /// client's UPLOAD_PREKEYS does: adds the one-time keys to its pool and replaces its
  /// LAST_RESORT key when the upload carries one. For a client driven outside the world.
  void publish(const std::string& id, const upload_prekeys& up);
  client& user(const std::string& id);
  client_node& node(const std::string& id) { return clients_.at(id); }
  mirror_node& mirror_at(size_t k) { return *mirrors_.at(k); }
  const member_list& ms() const noexcept { return ms_; }
  uint64_t now() const noexcept { return now_; }
  /// Moves the clock on; a client whose SUBMIT was refused UNAVAILABLE resends its outbox
  /// for that conversation then, its backoff over.
  void advance_time(uint64_t seconds);
  crypto::rng& rng() noexcept { return rng_; }

  // -- Actions (each queues what the client hands the router) ---------------
  /// Creates a conversation; returns its id.
  expected<conv_id> create(const std::string& author, const std::vector<std::string>& others,
                           protocol::block_mode mode = protocol::block_mode::pk);
  expected<void> send(const std::string& author, const conv_id& conv, std::string_view text);
  expected<void> receipt(const std::string& author, const conv_id& conv);
  expected<void> update(const std::string& author, const conv_id& conv,
                        const std::vector<std::string>& adds,
                        const std::vector<std::string>& removes);
  /// Sends a RECEIPT for every member for whom one is due.
  void receipts_due();
  void set_online(const std::string& id, bool online);
  /// Simulates a crash: the client restarts from its persisted copy.
  void crash(const std::string& id);

  // -- Running --------------------------------------------------------------
  /// Delivers one message in flight. Returns false when nothing is queued.
  bool step();
  /// Steps until quiescent (or `max_steps`).
  size_t run(size_t max_steps = 1000000);
  std::deque<in_flight>& network() noexcept { return net_; }
  void set_interceptor(interceptor f) { intercept_ = std::move(f); }
  void set_directory_interceptor(directory_interceptor f) { dir_intercept_ = std::move(f); }
  /// A lying router: what its intake takes for a user's directory entry when it attaches
  /// LAST_RESORT keys (nullptr: the real directory).
  void set_router_directory_for_test(directory_lookup f) { router_dir_override_ = std::move(f); }

  // -- The router (for adversaries and checks) -------------------------------
  struct stored_entry {
    log_entry e;
    mirror_answers answers;
  };
  std::map<uint64_t, stored_entry>& log(const conv_id& conv) { return logs_[conv]; }
  router_conv& router(const conv_id& conv);
  /// Sends `member` every complete entry from its cursor on (as on reconnect).
  void redeliver(const std::string& member);
  /// What the (honest) directory holds for `id`: its long-term key and LAST_RESORT key.
  std::optional<directory_entry> directory_of(const std::string& id) const;
  /// Fetches directory bundles for `owners` on behalf of `requester`.
  std::vector<prekey_bundle> fetch(const std::string& requester,
                                   const std::vector<std::string>& owners);
  /// Snapshots every lying mirror's state as fork branch `branch` (call it
  /// just before the index the fork happens at).
  void branch_mirrors(int branch);
  /// A forking router: orders `m` against `snapshot` (a copy of the router's
  /// conversation taken before the fork index), PREPAREs and COMMITs on the
  /// lying mirrors' branch `branch` and on the honest mirrors (which refuse
  /// with CONFLICT). Returns the entry with whatever answers it got.
  std::optional<stored_entry> fork_order(router_conv snapshot, const to_router& m, int branch);
  /// A lying router's raw tool: commits `e` (any entry, valid or not) at
  /// e.index on the lying mirrors' branch `branch` (they attest anything) and
  /// on the honest mirrors (which refuse). Returns the answers it got.
  mirror_answers commit_on_mirrors(const log_entry& e, int branch);
  /// Queues the envelope of `se` for `member`; a missing mirror answer is
  /// replaced by a forged block (the router's best effort at lying).
  void push_envelope(const std::string& member, const stored_entry& se);

  // -- Checks ---------------------------------------------------------------
  const std::vector<accepted_entry>& transcript(const std::string& id, const conv_id& conv);
  /// Every alarm raised so far, by user.
  std::map<std::string, std::vector<alarm>> alarms() const;
  /// The router's stop reasons per conversation.
  std::vector<std::string> operator_alarms() const { return operator_alarms_; }

private:
  void router_submit(const to_router& m);
  void router_ack(const to_router_ack& m);
  void client_envelope(const to_client_envelope& m);
  void client_rejection(const to_client_rejection& m);
  void pump(const conv_id& conv);
  /// Applies protocol::cursor_changes of the deliverable entry `e`.
  void apply_cursor_changes(const conv_id& conv, const log_entry& e);
  void deliver_ready(const conv_id& conv);
  void persist(const std::string& id);
  void submit_all(const std::string& id, std::vector<outgoing> out);
  void fill_keys(const std::string& id, const conv_id& conv);
  /// Runs a sending operation of `id` in `conv` after fetching the keys it misses, and once
  /// more after a fetch if a key failed when used.
  expected<outgoing> keyed(const std::string& id, const conv_id& conv,
                           const std::function<expected<outgoing>()>& op);

  world_options opts_;
  crypto::deterministic_rng rng_;
  uint64_t now_ = 1'000'000;
  member_list ms_;
  std::vector<std::unique_ptr<mirror_node>> mirrors_;
  std::map<std::string, client_node> clients_;
  // Router: directory, conversations, logs, cursors.
  struct dir_entry {
    public_key lpk{};
    std::deque<published_key> pool;
    std::optional<published_key> last_resort;
  };
  std::map<std::string, dir_entry> directory_;
  // (user, conversation) whose outbox waits for a backoff after an UNAVAILABLE: as a real
  // client does, it resends after the wait (advance_time) or at its next login, not at once
  // on the ASEQ_GAPs of the messages queued behind the refused one.
  std::set<std::pair<std::string, conv_id>> backing_off_;
  directory_lookup router_dir_override_;
  std::map<std::string, fetch_budget> budgets_;
  directory_policy policy_;
  std::map<conv_id, std::unique_ptr<router_conv>> convs_;
  std::map<conv_id, std::map<uint64_t, stored_entry>> logs_;
  std::map<std::pair<std::string, conv_id>, uint64_t> cursor_;     // next index to ack
  std::map<std::pair<std::string, conv_id>, uint64_t> sent_upto_;  // next index to send
  std::vector<std::string> operator_alarms_;
  std::deque<in_flight> net_;
  interceptor intercept_;
  directory_interceptor dir_intercept_;
};

}  // namespace cowpi::sim

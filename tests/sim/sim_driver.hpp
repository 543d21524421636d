// SPDX-License-Identifier: Apache-2.0
// The deterministic simulation driver: runs users, conversations and an adversary over the
// in-process world and checks the protocol's invariants after every step (docs/design.md §8).
#pragma once

#include "cowpi/sim/world.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace cowpi::sim {

/// Where the driver's choices come from: a seeded PRNG (the randomised test) or fuzz bytes.
class action_source {
public:
  virtual ~action_source() = default;
  /// Returns a value in [0, bound); 0 when `bound` <= 1.
  virtual uint32_t pick(uint32_t bound) = 0;
  /// True once the source has nothing more to say (fuzz input consumed).
  virtual bool exhausted() const = 0;
};

/// A splitmix64 stream: reproducible from its seed, never exhausted.
class prng_source final : public action_source {
public:
  explicit prng_source(uint64_t seed) noexcept : state_(seed) {}
  uint32_t pick(uint32_t bound) override;
  bool exhausted() const override { return false; }

private:
  uint64_t state_;
};

/// Reads choices from fuzz input: one byte per choice below 256, two above; then exhausted.
class byte_source final : public action_source {
public:
  explicit byte_source(std::span<const uint8_t> data) noexcept : data_(data) {}
  uint32_t pick(uint32_t bound) override;
  bool exhausted() const override { return pos_ >= data_.size(); }

private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

/// One simulation run's shape.
struct sim_config {
  /// Seeds the world's randomness (keys, nonces, conversation ids).
  uint64_t seed = 1;
  /// Users registered (4-8 in random runs).
  size_t users = 5;
  /// Mirrors in the deployment's mirror set.
  size_t mirrors = 2;
  /// How many of them lie (the first `lying`); `lying == mirrors` means no honest mirror.
  size_t lying = 0;
  /// Random actions before the adversary stops.
  size_t max_actions = 150;
  /// Most conversations a run creates.
  size_t max_convs = 3;
  /// The network and the router may misbehave (drop, reorder, duplicate, tamper, fork).
  bool adversary = true;
  /// Members may equivocate or try to wedge the ordering.
  bool dishonest_members = true;
  /// How many of the last actions a violation reports.
  size_t trace_lines = 60;
  /// The block mode of every conversation the run creates (docs/protocol.md §5.2).
  protocol::block_mode mode = protocol::block_mode::pk;

  /// A short human-readable description, for failure messages.
  std::string describe() const;
};

/// Derives a run's shape from `seed` alone (the randomised test's configurations).
sim_config config_for_seed(uint64_t seed);

/// Reads a run's shape from the first choices of `src` (the fuzzer's configurations).
sim_config config_from(action_source& src);

/// An invariant the run broke: which one, the users and index involved, and what led there.
struct violation {
  std::string invariant;
  std::string detail;
  uint64_t step = 0;
  /// The last actions before the violation.
  std::string trace;
  std::string to_string() const;
};

/// The moves of hostile members, a lying router and a lying directory (the hardening moves).
enum class hostile_move : uint8_t {
  /// A dishonest member's SETUP naming a member with a low-order long-term key.
  low_order_setup = 0,
  /// A dishonest member's UPDATE adding a member with a low-order long-term key.
  low_order_update,
  /// A lying router COMMITs an entry with a bad LAST_RESORT attachment.
  bad_attachment,
  /// A dishonest member's UPDATE naming a user with another user's key, which a lying router
  /// orders anyway.
  wrong_key,
  /// A burst of MESSAGEs VOID for one victim (then, maybe, an UPDATE and its RECEIPT).
  void_flood,
  /// A lying directory hands out a used PREKEY of a user.
  used_prekey,
  /// A dishonest member announces a low-order RATCHET key to a peer.
  low_order_ratchet,
  /// An honest member removes a halted member and adds it again.
  readd_halted,
  count
};
constexpr size_t hostile_moves = static_cast<size_t>(hostile_move::count);
/// A short name for the trace and the test output.
const char* to_string(hostile_move m) noexcept;

/// Counters for a run (to show that a run actually exercised something).
struct sim_stats {
  uint64_t steps = 0;
  uint64_t deliveries = 0;
  uint64_t messages_sent = 0;
  uint64_t entries_accepted = 0;
  uint64_t voids = 0;
  uint64_t alarms = 0;
  uint64_t halts = 0;
  uint64_t adversary_actions = 0;
  uint64_t crashes = 0;
  uint64_t fs_checks = 0;
  uint64_t updates = 0;
  /// Hostile moves that did what they set out to do, by `hostile_move`.
  std::array<uint64_t, hostile_moves> hostile{};
};

/// Drives one world and checks, after every step:
/// - agreement: with an honest mirror, every client that accepted index i of a conversation
///   holds the same D_i and T_i, equal to every honest mirror's D_i; with no honest mirror,
///   clients that are neither halted nor alarmed agree once the run has settled;
/// - reading: each MESSAGE entry reads the same plaintext for everyone (the one its author
///   sent), or is VOID and flagged with a SENDER/DIRECTORY alarm against a dishonest author;
///   no message is ordered twice, unless the router lied to its author about an earlier one
///   (a forged rejection makes the author renumber what the router still holds);
/// - rejections: an honest member never gives a message up (a permanent rejection) unless the
///   adversary forged, copied or provoked that rejection, or the member was removed;
/// - bounded traffic: the messages in flight never pile up (no party amplifies another);
/// - alarms and halts have a cause: PROVIDER alarms only where the adversary touched that
///   client's deliveries, SENDER alarms and SETUP/UPDATE halts only against a member that
///   equivocated towards the victim, DIRECTORY alarms only against the router and only where
///   it lied about the victim's keys (or touched its deliveries), FORK/IMPERSONATION only with
///   every mirror lying;
/// - receipts: a member's RECEIPT lists exactly the VOIDs it holds in its range (at most
///   MAX_VOIDS of them, docs/protocol.md §10);
/// - sending: an active member's MESSAGE or RECEIPT is always built (an unusable key of a peer
///   is replaced, an unreachable member gets a dead block);
/// - hostile members: a SETUP or UPDATE naming a low-order key is refused by the router before
///   any index, and a COMMIT with a bad LAST_RESORT attachment by every honest mirror;
/// - membership: a removed member accepts nothing after its removal until re-added (and no
///   entry in between carries a block for it); a joiner's history starts at the UPDATE adding
///   it, and handed an earlier entry (not addressed to it) it accepts nothing; a member reads
///   only entries addressed to it;
/// - forward secrecy: once a client has retired the key a MESSAGE block named, no key it holds
///   has that public key and its current state cannot open the block;
/// - bounded key material: at most two announced RATCHET keys per channel;
/// - mirrors: no honest mirror ever records two D for one index;
/// and, in `finish`, liveness: once the adversary stops and everyone is online, every message
/// an honest member sent is ordered and in the transcript of every member at its index, except
/// where a member was halted (counted as removed by the author of the entry that halted it),
/// removed, or the adversary demonstrably caused the loss.
class sim_driver {
public:
  explicit sim_driver(const sim_config& cfg);
  sim_driver(const sim_driver&) = delete;
  sim_driver& operator=(const sim_driver&) = delete;
  sim_driver(sim_driver&&) = delete;
  sim_driver& operator=(sim_driver&&) = delete;
  ~sim_driver() = default;

  world& w() noexcept { return w_; }
  const sim_config& config() const noexcept { return cfg_; }
  const std::vector<std::string>& users() const noexcept { return users_; }
  const std::vector<conv_id>& convs() const noexcept { return convs_; }
  const sim_stats& stats() const noexcept { return stats_; }
  /// The first violation found, if any. Once set, every action is a no-op.
  const std::optional<violation>& failed() const noexcept { return failed_; }
  /// True iff no mirror of the deployment is honest.
  bool all_lying() const noexcept { return cfg_.lying >= cfg_.mirrors; }

  // -- Honest user actions (each returns false when it does not apply) ----------------------
  std::optional<conv_id> create(const std::string& author, const std::vector<std::string>& others);
  /// Sends a fresh, unique text; returns it.
  std::optional<std::string> send(const std::string& author, const conv_id& conv);
  bool receipt(const std::string& author, const conv_id& conv);
  /// Sends a RECEIPT for every online member for whom one is due.
  void receipts_due();
  bool update(const std::string& author, const conv_id& conv, const std::vector<std::string>& adds,
              const std::vector<std::string>& removes);
  void set_online(const std::string& user, bool online);
  /// Goes offline and back online: resends the outbox, the router resends from the cursor.
  void reconnect(const std::string& user);
  /// Restarts the client from its latest persisted state (world::crash).
  void crash(const std::string& user);
  void advance_time(uint64_t seconds);

  // -- Dishonest members ----------------------------------------------------------------------
  /// How a member cheats in one message.
  enum class cheat : uint8_t {
    /// A different seed in `victim`'s block (the body commitment catches it).
    seed = 0,
    /// A garbage block for `victim`.
    block,
    /// A garbage author->mirror block for the mirror whose id is `victim` (wedging attempt).
    amb,
    /// A random parent_hash (wedging attempt).
    parent_hash,
  };
  bool cheat_send(const std::string& author, const conv_id& conv, cheat how,
                  const std::string& victim);
  /// An UPDATE whose block for `victim` is garbage: the victim halts.
  bool cheat_update(const std::string& author, const conv_id& conv,
                    const std::vector<std::string>& adds, const std::vector<std::string>& removes,
                    const std::string& victim);
  /// A SETUP whose block for `victim` is garbage: the victim refuses to join.
  std::optional<conv_id> cheat_create(const std::string& author,
                                      const std::vector<std::string>& others,
                                      const std::string& victim);

  // -- Hostile members, a lying router and a lying directory ---------------------------------
  /// `author` submits a hand-made SETUP of a fresh conversation with `others` (when `conv` is
  /// empty) or an UPDATE of `conv` adding `named` (any id that is not a member), in which
  /// `named` has a low-order long-term key (u = 1 with `order4`, else all-zero). The router
  /// must refuse it with INVALID(bad_key) before any index is used; the author's own client
  /// never hears of it.
  bool low_order_member(const std::string& author, const std::optional<conv_id>& conv,
                        const std::vector<std::string>& others, const std::string& named,
                        bool order4);
  /// A lying router skips PREPARE and COMMITs, at every mirror, a hand-made SETUP of a fresh
  /// conversation (`conv` empty: `author` with `others`) or an UPDATE of `conv` by `author`
  /// adding `others.front()`, with a bad LAST_RESORT attachment for the first member it adds
  /// (`how` 0: an extra all-zero one after the real one, 1: before it, 2: a low-order one
  /// instead). Every honest mirror answers REJECT(bad_last_resort) and changes nothing; a
  /// lying one (a copy) may answer anything but must not abort.
  bool bad_attachment_commit(const std::string& author, const std::optional<conv_id>& conv,
                             const std::vector<std::string>& others, uint32_t how);
  /// `author` submits an UPDATE of `conv` adding `added` under `key_of`'s long-term key, and
  /// the lying router's directory agrees with it when it PREPAREs the UPDATE (until `finish`).
  /// `added` never joins (DIRECTORY alarm against the router); the others mark it unreachable,
  /// send it dead blocks and may remove it.
  bool wrong_key_update(const std::string& author, const conv_id& conv, const std::string& added,
                        const std::string& key_of);
  /// `author` sends `n` MESSAGEs whose block for `victim` is garbage. `follow` 1: then every
  /// message is delivered, another member (or the author) sends an UPDATE that is delivered
  /// too, and the victim sends its RECEIPT after it; 2: the victim builds its RECEIPT before
  /// the UPDATE reaches it (STALE at the router, rebuilt after the UPDATE).
  bool void_flood(const std::string& author, const conv_id& conv, const std::string& victim,
                  size_t n, uint32_t follow);
  /// Arms the lying directory: the next fetch of `owner`'s keys by another user (before
  /// `finish`) hands out one of `owner`'s used PREKEYs, deleted or still bound to a channel of
  /// another peer. Fails when `owner` has none.
  bool plant_used_prekey(const std::string& owner);
  /// `author` announces a low-order RATCHET key to `peer` (a member or a mirror of `conv`) in
  /// a MESSAGE it sends now. The peer's later sends fall back to another key.
  bool low_order_ratchet(const std::string& author, const conv_id& conv, const std::string& peer);

  // -- The network (positions index world::network()) --------------------------------------
  /// Delivers the message at the front. Returns false when nothing is in flight.
  bool deliver();
  /// At the default cap, a network that has not drained is a liveness violation.
  static constexpr size_t default_delivery_cap = 200000;
  /// Delivers until nothing is in flight (or `max` deliveries).
  void deliver_all(size_t max = default_delivery_cap);
  bool drop(size_t k);
  bool duplicate(size_t k, size_t at);
  /// Moves message k to the back of the queue.
  bool delay(size_t k);
  bool swap(size_t a, size_t b);
  /// Flips something in message k; `how` selects the field, `where` the byte.
  bool tamper(size_t k, uint32_t how, uint32_t where);
  /// Sends a copy of envelope k to another user.
  bool misroute(size_t k, const std::string& to);
  /// The router sends `user` a rejection of its message (`conv`, `aseq`) it never earned:
  /// rejections are unauthenticated hints (docs/design.md §3.8).
  bool forge_rejection(const std::string& user, const conv_id& conv, uint64_t aseq,
                       const rejection& rej);

  // -- A lying router with the lying mirrors ---------------------------------------------------
  /// Remembers the router's conversation and branches the lying mirrors (the fork point).
  bool fork_snapshot(const conv_id& conv);
  /// Orders the in-flight SUBMIT number `which` (among those for `conv`) against the fork
  /// point and pushes the resulting envelope to `victims`. With `steal`, the original never
  /// reaches the router.
  bool fork_push(const conv_id& conv, uint32_t which, bool steal,
                 const std::vector<std::string>& victims);
  /// Replays the MESSAGE or RECEIPT logged at `from` as the next index, attested by the lying
  /// mirrors, and pushes it to `victims`.
  bool forge_replay(const conv_id& conv, uint64_t from, const std::vector<std::string>& victims);
  void set_mirror_down(size_t k, bool down);

  // -- Running --------------------------------------------------------------------------------
  /// One random action chosen by `src`.
  void random_action(action_source& src);
  /// Checks every per-step invariant now (the driver calls it after each step itself).
  void check();
  /// Stops the adversary, brings everyone online, lets every active member send a probe,
  /// settles, and checks liveness and the end-of-run invariants.
  void finish();
  /// The last actions, oldest first.
  std::string trace() const;

private:
  struct fs_record {
    std::string user;
    conv_id conv{};
    uint64_t index = 0;
    std::string author;
    public_key author_lpk{};
    slot_block blk;
    bytes ad;
    std::optional<public_key> key_pub;
  };
  struct conv_view {
    size_t seen = 0;
    std::optional<uint64_t> last_index;
    bool removed = false;
    uint32_t removals = 0;
    std::set<uint64_t> accepted;
    std::map<uint64_t, hash32> d;
    std::map<std::string, uint64_t> texts;
    /// Indices this member accepted as VOID.
    std::set<uint64_t> voids;
  };
  struct user_view {
    std::map<conv_id, conv_view> convs;
    size_t alarms_seen = 0;
    size_t dropped_seen = 0;
    /// The adversary tampered with, misrouted or forged a delivery to this user.
    bool provider_taint = false;
    std::vector<fs_record> fs_pending;
    std::deque<fs_record> fs_retired;
  };
  struct message_info {
    std::string author;
    conv_id conv{};
    uint32_t removals_at_send = 0;
    bool dropped = false;
  };
  /// A rejection about to be delivered, with what the client's outbox holds at its aseq.
  struct pending_rejection {
    conv_id conv{};
    uint64_t aseq = 0;
    rejection rej;
    /// MESSAGE: the plaintext of the message now holding that aseq.
    std::optional<std::string> text;
    uint64_t parent = 0;
    /// Every D the client submitted for that message.
    std::vector<hash32> versions;
  };
  struct fork_point {
    router_conv snapshot;
    int branch = 0;
  };

  void note(std::string what);
  void fail(const std::string& invariant, const std::string& detail);
  /// The checks after one step. `touched` names the one client the step may have changed
  /// (nullptr: none, e.g. the router's steps); `full` checks every client.
  void step_checks(const std::string* touched, bool full = false);
  /// A permanent rejection made `user` give a message up: it must have a cause.
  void check_drop(const std::string& user, const pending_rejection& pr);
  void check_transcripts(const std::string& u);
  void check_entry(const std::string& u, conv_view& cv, const accepted_entry& e);
  bool halted_between(const std::string& u, const conv_id& conv, uint64_t after, uint64_t before);
  void check_alarms(const std::string& u);
  /// `u`'s own RECEIPT `e` lists exactly the VOIDs `u` holds in its range.
  void check_receipt(const std::string& u, const conv_view& cv, const accepted_entry& e);
  /// True iff the lying router or directory misrepresented `u`'s keys in `conv`.
  bool directory_lied_about(const std::string& u, const conv_id& conv) const;
  /// A SUBMIT made by hand for `c` (on top of `st`): random blocks for the recipients, valid
  /// author->mirror blocks under each mirror's LAST_RESORT key.
  submit_msg hand_made(const common& c, const conv_state* st);
  /// The key changes a lying router makes its directory tell for `m` (empty: none).
  std::map<std::string, public_key> directory_lies_for(const in_flight& m) const;
  void on_fetch(const std::string& requester, prekey_bundle& b);
  void hostile_action(action_source& src);
  void check_joiner(const std::string& u, const accepted_entry& e);
  void record_fs(const std::string& u, const accepted_entry& e);
  void check_fs(const std::string& u, bool recheck_retired);
  void verify_fs(const fs_record& r);
  void check_keys(const std::string& u);
  void check_mirror_keys();
  void check_mirrors(bool full);
  void settle();
  void check_liveness();
  void check_settled_agreement();
  void check_removed_slots();

  bool is_active_member(const std::string& u, const conv_id& conv);
  /// True iff a lying router's fork made an honest mirror commit something else than the
  /// router's log at some index: the conversation can then only end STOPPED (CONFLICT).
  bool diverged(const conv_id& conv);
  bool has_alarm_in(const std::string& u, const conv_id& conv);
  /// True iff `u` accepted, at some index, an entry the router's log does not hold there (a
  /// lying router forked it onto a branch).
  bool forked_user(const std::string& u, const conv_id& conv);
  bool excused_member(const std::string& u, const conv_id& conv, uint64_t i);
  void clear_hooks(const std::string& u);
  std::optional<conv_id> do_create(const std::string& author,
                                   const std::vector<std::string>& others);
  std::optional<std::string> do_send(const std::string& author, const conv_id& conv);
  std::string name(const conv_id& conv) const;
  bool lying_mirror(size_t k) const { return k < cfg_.lying; }
  std::vector<std::string> pick_subset(action_source& src, const std::vector<std::string>& from);
  std::optional<conv_id> pick_conv(action_source& src);
  std::vector<std::string> members_of(const conv_id& conv);

  sim_config cfg_;
  world w_;
  std::vector<std::string> users_;
  std::vector<conv_id> convs_;
  std::map<std::string, user_view> views_;
  sim_stats stats_;
  std::optional<violation> failed_;
  std::deque<std::string> trace_;
  uint64_t step_ = 0;
  uint64_t text_counter_ = 0;
  int next_branch_ = 1;

  /// Text -> who sent it where.
  std::map<std::string, message_info> messages_;
  /// (conv, text) -> the index it was ordered at (first reader).
  std::map<std::pair<conv_id, std::string>, uint64_t> ordered_;
  /// (conv, i) -> (T_i, D_i, first user) in strict mode.
  std::map<std::pair<conv_id, uint64_t>, std::tuple<hash32, hash32, std::string>> entries_;
  /// (conv, i, D) -> the plaintext the first reader read.
  std::map<std::tuple<conv_id, uint64_t, hash32>, std::string> read_;
  /// (conv, author, victim): the author cheated towards the victim.
  std::set<std::tuple<conv_id, std::string, std::string>> dishonest_;
  /// (conv, author): the author tried to wedge the ordering (rule-breaking messages).
  std::set<std::pair<conv_id, std::string>> wedgers_;
  /// (user, D): the adversary tampered with a SUBMIT of that version.
  std::set<std::pair<std::string, hash32>> tainted_versions_;
  /// (user, conv, aseq): the aseqs of tampered SUBMITs. The router's verdict on a tampered
  /// copy (INVALID, MIRROR_REJECT, BAD_BODY, BAD_BLOCK_SIZE) names only the aseq, so it may
  /// reach the client after another message has moved into it.
  std::set<std::tuple<std::string, conv_id, uint64_t>> tainted_aseqs_;
  /// (user, conv, aseq, kind, value): rejections the adversary forged or rewrote (and any
  /// copy of them).
  std::set<std::tuple<std::string, conv_id, uint64_t, rejection_kind, uint64_t>>
      tainted_rejections_;
  /// (conv, user): the router lied to this author about its messages (a tampered SUBMIT, a
  /// forged or copied rejection). It may then renumber messages the router still holds, and
  /// both copies can be ordered: the client cannot tell a forged rejection from a real one.
  std::set<std::pair<conv_id, std::string>> lied_to_;
  /// (conv, user): the router skipped (dropped) a delivery to that user.
  std::set<std::pair<conv_id, std::string>> skipped_;
  /// Conversations a lying router forked or forged entries in.
  std::set<conv_id> forked_;
  std::map<conv_id, fork_point> forks_;
  /// (conv, user): a dishonest member's UPDATE named the user with another user's key, and the
  /// lying router's directory agreed.
  std::set<std::pair<conv_id, std::string>> wrong_named_;
  /// Users one of whose used PREKEYs the lying directory handed out (every channel that named
  /// that key may then fail at them with a DIRECTORY alarm).
  std::set<std::string> planted_;
  /// The lying directory's armed plant: the owner whose used PREKEY the next fetch hands out.
  std::optional<std::string> plant_owner_;
  /// Set by `finish`: the router, the directory and the network are honest from then on.
  bool adversary_stopped_ = false;
  /// (mirror, conv, i) -> D, for honest mirrors.
  std::map<std::tuple<size_t, conv_id, uint64_t>, hash32> mirror_d_;
  /// (user, conv, peer, id) -> the public key of an announced RATCHET key.
  std::map<std::tuple<std::string, conv_id, std::string, uint64_t>, public_key> ratchet_pubs_;
};

/// Runs one random simulation with choices from `src`: a first conversation, then up to
/// `cfg.max_actions` random actions (fewer if `src` runs out), then `finish`. Returns the first
/// violation, if any. `stats`, when given, receives the run's counters.
std::optional<violation> run_simulation(const sim_config& cfg, action_source& src,
                                        sim_stats* stats = nullptr);

}  // namespace cowpi::sim

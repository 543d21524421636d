// SPDX-License-Identifier: Apache-2.0
// The router's ordering path (docs/design.md §3.4, §4): a conversation actor drives
// protocol::router_conv, persists before it sends, and pokes members' queues.
#include "conversations.hpp"

#include "cowpi/actors/fault.hpp"
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "../unix_time.hpp"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <unordered_map>

namespace cowpi::actors {

namespace {

using namespace std::chrono_literals;

// How long a conversation gathers answered entries into one ACK to each mirror. A mirror
// keeps an entry's answer until the ACK (for a retried COMMIT); under load this turns one ACK
// per entry into one per conversation per 50 ms, and an idle conversation's last entry is
// ACKed 50 ms after it was answered.
constexpr auto ack_delay = 50ms;

std::string short_id(const protocol::conv_id& c) {
  return to_hex(byte_view(c.data(), 4));
}

// Where to send a late rejection of (author, aseq).
struct route {
  caf::actor session;
  uint64_t request_id = 0;
};

struct conv_state {
  std::optional<protocol::router_conv> rc;
  conversation_deps d;
  protocol::conv_id conv{};
  caf::actor registry;  // relays pokes to the queue registry
  std::map<std::pair<std::string, uint64_t>, route> routes;
  /// Entries whose append is queued but not yet synced (COMMIT waits for the sync).
  std::set<uint64_t> appending;
  /// Entries whose mirror answers are being persisted: their ACKs and pokes follow the sync.
  std::map<uint64_t, protocol::log_entry> answering;
  /// When each entry of this actor's life finished its synced append (for commit_seconds).
  std::map<uint64_t, std::chrono::steady_clock::time_point> appended_at;
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
  /// SUBMITs taken (the registry compares it with the SUBMITs it handed on before it lets this
  /// actor stop).
  uint64_t submits = 0;
  /// The greatest index whose answers are persisted and not yet ACKed to the mirrors. ACK is
  /// cumulative (the mirror drops its answers <= i): the entries answered within `ack_delay`
  /// of the first share one, sent at `mack_atom`.
  std::optional<uint64_t> ack_due;
  /// Directory entries of the users the queued SETUPs and UPDATEs add, read on the store's
  /// reader thread (`dirread_atom`) for the next `ready`, which takes them.
  storage::router_store::directory_entries dir;
  /// Directory reads not yet answered (one per node holding some of the users).
  size_t dir_reads = 0;
  static inline const char* name = "conversation";
};

using conv_actor = caf::stateful_actor<conv_state>;

void pump(conv_actor* self);

void notify_rejection(conv_actor* self, const std::string& author, uint64_t aseq,
                      const protocol::rejection& why) {
  auto& routes = self->state.routes;
  auto it = routes.find({author, aseq});
  if (it == routes.end())
    return;  // the client resends on reconnect and learns then
  if (it->second.session)
    self->send(it->second.session, reject_atom_v,
               late_rejection{it->second.request_id, self->state.conv, aseq, why});
  routes.erase(it);
}

void send_commit(conv_actor* self, uint64_t i, size_t k);

void on_commit_answer(conv_actor* self, uint64_t i, size_t k, const protocol::link_response& r) {
  auto& st = self->state;
  auto p = st.rc->on_commit_answer(i, k, r);
  if (p.stop_reason) {
    st.d.metrics->stopped->inc();
    st.appended_at.clear();
    spdlog::error("conversation {}: stopped: {} (operator alarm)", short_id(st.conv),
                  *p.stop_reason);
    st.d.store->persist_stop_async(*st.rc, [conv = st.conv](expected<void> ok) {
      if (!ok)
        spdlog::error("conversation {}: cannot persist the stop: {}", short_id(conv),
                      ok.error().message());
    });
    std::vector<std::pair<std::string, uint64_t>> keys;
    for (const auto& [key, rt] : st.routes)
      keys.push_back(key);
    for (const auto& key : keys)
      notify_rejection(self, key.first, key.second,
                       protocol::rejection{protocol::rejection_kind::stopped, 0, {}});
    return;
  }
  if (p.resend_from) {
    for (const auto& [j, e] : st.rc->in_flight())
      if (j >= *p.resend_from)
        send_commit(self, j, k);
    return;
  }
  if (!p.complete)
    return;
  // Every mirror answered: persist the answers (the entry becomes deliverable) without
  // blocking this actor; `on_answers_persisted` ACKs the mirrors and pokes the members.
  auto me = caf::actor_cast<caf::actor>(self);
  st.d.store->persist_answers_async(*p.entry, p.answers, [me, i](expected<void> done) {
    caf::anon_send(me, answered_atom_v, i, done ? std::string() : done.error().message());
  });
  st.answering.emplace(i, std::move(*p.entry));
}

void on_answers_persisted(conv_actor* self, uint64_t i, const std::string& failure) {
  auto& st = self->state;
  if (!failure.empty()) {
    spdlog::critical(
        "conversation {}: cannot persist answers ({}); exiting so that a restart "
        "resends COMMIT from the log",
        short_id(st.conv), failure);
    std::_Exit(70);
  }
  auto node = st.answering.extract(i);
  if (node.empty())
    return;
  const protocol::log_entry& entry = node.mapped();
  fault_point(fault::router_answers_after_sync);
  st.d.metrics->committed->inc();
  if (auto at = st.appended_at.find(i); at != st.appended_at.end()) {
    st.d.metrics->commit_seconds->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - at->second).count());
    st.appended_at.erase(at);
  }
  if (!st.ack_due)
    self->delayed_send(self, ack_delay, mack_atom_v);
  st.ack_due = std::max(st.ack_due.value_or(0), i);
  self->send(st.registry, poke_atom_v, st.conv, i, entry.slots);
  st.routes.erase({entry.c.author, entry.c.aseq});
  pump(self);
}

// One PREPARE or COMMIT to mirror k. The link forwards the encoded request as it is
// (`delegate`), so the mirror answers this actor directly: one request and one timeout per
// round trip instead of one here and one in the link.
template <class F, class E>
void ask_mirror(conv_actor* self, size_t k, std::chrono::milliseconds timeout,
                const protocol::link_request& req, F on_answer, E on_error) {
  auto& st = self->state;
  const size_t kind = req.index();
  auto m = k < st.d.link_stats.size() ? st.d.link_stats[k] : nullptr;
  const auto sent = std::chrono::steady_clock::now();
  self->request(st.d.links[k], timeout, fwd_atom_v, link_frame{protocol::wire::encode(req)}, kind)
      .then(
          [=](link_frame& f) mutable {
            auto r = protocol::wire::decode_link_response(f.bytes);
            if (!r) {
              if (m)
                m->failures->inc();
              spdlog::warn("conversation {}: an undecodable answer from mirror {}: {}",
                           short_id(self->state.conv), k, r.error().message());
              on_error();
              return;
            }
            if (m && kind < m->kinds.seconds.size())
              m->kinds.seconds[kind]->observe(
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count());
            on_answer(*r);
          },
          [=](const caf::error&) mutable {
            if (m)
              m->failures->inc();
            on_error();
          });
}

void send_commit(conv_actor* self, uint64_t i, size_t k) {
  auto& st = self->state;
  auto it = st.rc->in_flight().find(i);
  if (it == st.rc->in_flight().end() || st.appending.contains(i))
    return;
  const auto* got = st.rc->answers(i);
  if (got != nullptr && k < got->size() && (*got)[k])
    return;  // already answered
  const protocol::log_entry& e = it->second;
  protocol::commit_msg cm{i, e.d, e.prepare_for(k)};
  ask_mirror(
      self, k, st.d.commit_timeout, protocol::link_request{cm},
      [=](const protocol::link_response& r) { on_commit_answer(self, i, k, r); },
      [=] {
        // No answer: retry later (COMMIT is idempotent); a link coming back up resends
        // sooner.
        self->delayed_anon_send(self, 1s, retry_atom_v, i, k);
      });
}

void start_append(conv_actor* self, const protocol::log_entry& e) {
  auto& st = self->state;
  st.appending.insert(e.index);
  fault_point(fault::router_log_before_sync);
  auto me = caf::actor_cast<caf::actor>(self);
  const uint64_t i = e.index;
  st.d.store->append_async(*st.rc, e, unix_seconds(), [me, i](expected<void> r) {
    caf::anon_send(me, appended_atom_v, i, r.has_value());
  });
}

void on_decision(conv_actor* self, const protocol::prepare_decision& d) {
  for (const auto& rj : d.rejections)
    notify_rejection(self, rj.author, rj.aseq, rj.why);
  if (d.ordered)
    start_append(self, *d.ordered);
}

/// Reads the directory entries of `ids` (users a queued SETUP or UPDATE adds): this node's on
/// the store's reader thread, the others' from their home nodes. Each answer arrives as
/// `dirread_atom`; a failed read counts its users as not registered (the author may retry).
void read_directory(conv_actor* self, std::vector<std::string> ids) {
  auto& st = self->state;
  std::map<size_t, std::vector<std::string>> by_node;
  const size_t here = st.d.cluster ? st.d.cluster->self() : 0;
  for (auto& id : ids)
    by_node[st.d.cluster ? st.d.cluster->home_of(id) : here].push_back(std::move(id));
  st.dir_reads = by_node.size();
  auto me = caf::actor_cast<caf::actor>(self);
  for (auto& [node, part] : by_node) {
    auto unread = [part](std::string_view why) {
      spdlog::warn("router: cannot read directory entries: {}", why);
      dir_entries got;
      for (const auto& id : part)
        got.entries[id] = std::nullopt;
      return got;
    };
    if (node == here) {
      st.d.store->directory_entries_async(
          part, [me, unread](expected<storage::router_store::directory_entries> r) {
            dir_entries got = r ? dir_entries{std::move(*r)} : unread(r.error().message());
            caf::anon_send(me, dirread_atom_v, std::move(got));
          });
      continue;
    }
    node_msg m;
    m.kind = node_kind::dirent;
    for (const auto& id : part)
      m.items.emplace_back(id.begin(), id.end());
    ask_node(self, *st.d.cluster, node, st.d.prepare_timeout, std::move(m),
             [self, unread, part](std::optional<node_msg> a) {
               std::optional<protocol::wire::directory_entries> d;
               if (a)
                 if (auto r = protocol::wire::decode_directory_entries(
                         byte_view(a->bytes.data(), a->bytes.size())))
                   d = std::move(r).value();
               if (!d) {
                 self->send(self, dirread_atom_v, unread("the users' home node did not answer"));
                 return;
               }
               // Only the ids asked for, each with an answer (not registered when the node
               // said nothing of it): `ready` must find every one, or pump would ask again.
               dir_entries got;
               for (const auto& id : part)
                 got.entries[id] = std::nullopt;
               for (auto& [id, e] : *d)
                 if (auto it = got.entries.find(id); it != got.entries.end())
                   it->second = std::move(e);
               self->send(self, dirread_atom_v, std::move(got));
             });
  }
}

void pump(conv_actor* self) {
  auto& st = self->state;
  st.last_activity = std::chrono::steady_clock::now();
  if (st.dir_reads > 0)
    return;  // the last answer pumps
  // The users a queued SETUP or UPDATE adds are read on the store's reader thread first.
  std::vector<std::string> missing;
  for (auto& id : st.rc->directory_needs())
    if (!st.dir.contains(id))
      missing.push_back(std::move(id));
  if (!missing.empty()) {
    read_directory(self, std::move(missing));
    return;
  }
  std::vector<protocol::prepare_decision::rejected> rejs;
  const auto dir = std::exchange(st.dir, {});
  auto jobs = st.rc->ready(
      [&dir](const std::string& id) -> std::optional<protocol::directory_entry> {
        auto it = dir.find(id);
        return it == dir.end() ? std::nullopt : it->second;
      },
      rejs);
  for (const auto& rj : rejs)
    notify_rejection(self, rj.author, rj.aseq, rj.why);
  for (const auto& job : jobs) {
    for (size_t k = 0; k < job.per_mirror.size(); ++k) {
      const uint64_t id = job.job;
      ask_mirror(
          self, k, st.d.prepare_timeout, protocol::link_request{job.per_mirror[k]},
          [=](const protocol::link_response& r) {
            if (auto d = self->state.rc->on_prepared(id, k, r, unix_seconds()))
              on_decision(self, *d);
          },
          [=] {
            if (auto d = self->state.rc->on_prepare_timeout(id))
              on_decision(self, *d);
          });
    }
  }
}

caf::behavior conversation(conv_actor* self, protocol::conv_id conv, conversation_deps d,
                           std::optional<protocol::router_conv> loaded, caf::actor registry) {
  auto& st = self->state;
  st.conv = conv;
  st.registry = std::move(registry);
  st.d = std::move(d);
  st.rc = loaded ? std::move(loaded) : protocol::router_conv(conv, st.d.ms, st.d.limits);
  // Entries logged before a restart and still missing answers: resend COMMIT.
  for (const auto& [i, e] : st.rc->in_flight())
    for (size_t k = 0; k < st.d.links.size(); ++k)
      send_commit(self, i, k);
  self->delayed_anon_send(self, st.d.idle, idle_atom_v);
  return {
      [=](submit_atom, submit_request& r) -> protocol::response_body {
        auto& s = self->state;
        s.last_activity = std::chrono::steady_clock::now();
        ++s.submits;
        auto aseq = s.rc->intake(std::move(r.submit), r.user, unix_seconds());
        if (!aseq) {
          s.d.metrics->intake_refused->inc();
          return aseq.error();
        }
        s.d.metrics->intake_accepted->inc();
        s.routes[{r.user, *aseq}] = route{r.session, r.request_id};
        pump(self);
        return protocol::ok_result{};
      },
      [=](appended_atom, uint64_t i, bool ok) {
        auto& s = self->state;
        s.appending.erase(i);
        if (!ok) {
          spdlog::critical(
              "conversation {}: log append failed; exiting so that a restart "
              "reloads the last durable state",
              short_id(s.conv));
          std::_Exit(70);
        }
        fault_point(fault::router_log_after_sync);
        s.d.metrics->ordered->inc();
        s.appended_at[i] = std::chrono::steady_clock::now();
        for (size_t k = 0; k < s.d.links.size(); ++k)
          send_commit(self, i, k);
      },
      [=](answered_atom, uint64_t i, const std::string& failure) {
        on_answers_persisted(self, i, failure);
      },
      [=](mack_atom) {
        auto& s = self->state;
        if (!s.ack_due)
          return;
        // Nobody waits for an ACK's answer (a lost ACK only leaves answers at the mirror until
        // the next one, which covers every lower index): no request, no timeout, no reply.
        for (size_t m = 0; m < s.d.links.size(); ++m)
          caf::anon_send(s.d.links[m], link_atom_v,
                         protocol::link_request{protocol::link_ack{s.conv, *s.ack_due}});
        s.ack_due.reset();
      },
      [=](retry_atom, uint64_t i, size_t k) { send_commit(self, i, k); },
      [=](dirread_atom, dir_entries& got) {
        auto& s = self->state;
        s.dir.merge(got.entries);
        if (s.dir_reads > 0 && --s.dir_reads > 0)
          return;
        pump(self);
      },
      [=](linkup_atom, size_t k, size_t node) {
        // Only the link of the node owning this conversation matters to it.
        if (k >= self->state.d.link_nodes.size() || self->state.d.link_nodes[k] != node)
          return;
        for (const auto& [i, e] : self->state.rc->in_flight())
          send_commit(self, i, k);
        pump(self);
      },
      [=](idle_atom) {
        auto& s = self->state;
        const bool busy = s.rc->pending() > 0 || !s.appending.empty() || !s.answering.empty()
                          || s.ack_due.has_value();
        // Idle: the registry stops this actor once no SUBMIT is on its way to it (one handed on
        // after this message leaves would be lost with the actor).
        if (!busy && std::chrono::steady_clock::now() - s.last_activity >= s.d.idle)
          self->send(s.registry, idle_atom_v, s.conv, s.submits);
        self->delayed_anon_send(self, s.d.idle, idle_atom_v);
      },
      [=](shutdown_atom) { self->quit(); },
      [=](stats_atom) -> std::string {
        const auto& s = self->state;
        const auto* cs = s.rc->state();
        return nlohmann::json{{"conv", to_hex(s.conv)},
                              {"next", cs ? cs->next : 0},
                              {"pending", s.rc->pending()},
                              {"stopped", s.rc->stopped()}}
            .dump();
      },
  };
}

/// A SUBMIT waiting for its conversation's record to be read.
struct parked_submit {
  submit_request r;
  caf::response_promise rp;
};

struct registry_state {
  conversation_deps d;
  caf::actor queues;
  /// The running conversation actors, with the SUBMITs handed on to each.
  struct live_conv {
    caf::actor actor;
    uint64_t submits = 0;
  };
  std::map<protocol::conv_id, live_conv> live;
  /// Conversations whose record is being read on the store's reader thread (`convload_atom`),
  /// with the SUBMITs that wait for them.
  std::map<protocol::conv_id, std::vector<parked_submit>> loading;
  /// Per user, the SETUPs submitted in the hour from `first`.
  struct setup_window {
    uint64_t first = 0;
    uint64_t count = 0;
  };
  std::unordered_map<std::string, setup_window> setups;
  uint64_t setups_refused = 0;
  static inline const char* name = "conversation-registry";
};

using registry_actor = caf::stateful_actor<registry_state>;

// Every SETUP creates a conversation the router and the mirrors keep: a user may submit
// `max_setups_per_hour` of them an hour (counted before any check, retries included). Returns
// the LIMIT(setup_rate) rejection, whose value is the seconds until the user's hour ends, for
// one past it.
std::optional<protocol::rejection> setup_rate(registry_state& st, const std::string& user) {
  if (st.d.max_setups_per_hour == 0)
    return std::nullopt;
  constexpr uint64_t hour = 3600;
  const uint64_t now = unix_seconds();
  if (st.setups.size() >= 4096)
    std::erase_if(st.setups, [&](const auto& kv) { return now >= kv.second.first + hour; });
  auto& w = st.setups[user];
  if (now >= w.first + hour || now < w.first)
    w = registry_state::setup_window{now, 0};
  if (w.count >= st.d.max_setups_per_hour) {
    ++st.setups_refused;
    return protocol::rejection{protocol::rejection_kind::limit, w.first + hour - now,
                               std::string(protocol::limit_setup_rate)};
  }
  ++w.count;
  return std::nullopt;
}

caf::actor spawn_conversation(registry_actor* self, const protocol::conv_id& conv,
                              std::optional<protocol::router_conv> loaded) {
  auto& st = self->state;
  conversation_deps d = st.d;
  d.links.clear();
  d.link_nodes.clear();
  d.link_stats.clear();
  for (const auto& m : d.mirrors) {
    const size_t node = m.owner(conv);
    d.link_nodes.push_back(node);
    d.links.push_back(m.links[node]);
    d.link_stats.push_back(node < m.metrics.size() ? m.metrics[node]
                                                   : link_metrics::make(nullptr, m.id));
  }
  auto a = self->spawn(conversation, conv, std::move(d), std::move(loaded),
                       caf::actor_cast<caf::actor>(self));
  self->monitor(a);
  st.live.emplace(conv, registry_state::live_conv{a, 0});
  st.d.metrics->live->set(static_cast<int64_t>(st.live.size()));
  return a;
}

// Reads the record of `conv` on the store's reader thread; `on_loaded` spawns its actor.
void start_load(registry_actor* self, const protocol::conv_id& conv) {
  auto& st = self->state;
  if (!st.loading.try_emplace(conv).second)
    return;
  auto me = caf::actor_cast<caf::actor>(self);
  st.d.store->load_conv_async(conv, st.d.ms, st.d.limits,
                              [me, conv](storage::router_store::loaded_conv l) {
                                caf::anon_send(me, convload_atom_v, conv, std::move(l));
                              });
}

// A record arrived: the conversation's actor starts when SUBMITs wait for it or it has
// entries in flight (a COMMIT to resend), and takes the SUBMITs.
void on_loaded(registry_actor* self, const protocol::conv_id& conv,
               storage::router_store::loaded_conv& l) {
  auto& st = self->state;
  auto node = st.loading.extract(conv);
  std::vector<parked_submit> parked =
      node.empty() ? std::vector<parked_submit>{} : std::move(node.mapped());
  if (auto it = st.live.find(conv); it != st.live.end()) {
    for (auto& p : parked) {
      ++it->second.submits;
      p.rp.delegate(it->second.actor, submit_atom_v, std::move(p.r));
    }
    return;
  }
  if (!l || !*l) {
    spdlog::error("router: cannot load a conversation: {}",
                  l ? l->error().message() : std::string("no answer"));
    for (auto& p : parked)
      p.rp.deliver(protocol::response_body{
          protocol::rejection{protocol::rejection_kind::unavailable, 0, {}}});
    return;
  }
  auto& loaded = **l;
  if (parked.empty() && (!loaded || loaded->in_flight().empty()))
    return;  // resumed at start with nothing in flight: started by its next SUBMIT
  auto a = spawn_conversation(self, conv, std::move(loaded));
  st.live.at(conv).submits += parked.size();
  for (auto& p : parked)
    p.rp.delegate(a, submit_atom_v, std::move(p.r));
}

caf::behavior registry(registry_actor* self, conversation_deps d,
                       std::vector<protocol::conv_id> resume) {
  self->state.d = std::move(d);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& live = self->state.live;
    for (auto it = live.begin(); it != live.end(); ++it)
      if (it->second.actor.address() == dm.source) {
        live.erase(it);
        break;
      }
    self->state.d.metrics->live->set(static_cast<int64_t>(live.size()));
  });
  // The conversation actors are monitored, not linked (one failing must not end the others):
  // a shutdown ends them explicitly, or the actor system would wait for them forever.
  self->set_exit_handler([=](caf::exit_msg& em) {
    for (const auto& [conv, a] : self->state.live)
      self->send_exit(a.actor, em.reason);
    self->quit(em.reason);
  });
  // Resume conversations with entries in flight (a COMMIT to resend): their records are read
  // on the store's reader thread.
  for (const auto& conv : resume)
    start_load(self, conv);
  return {
      [=](submit_atom, submit_request& r) -> caf::response_promise {
        auto& st = self->state;
        auto rp = self->make_response_promise();
        if (r.submit.c.type == protocol::msg_type::setup) {
          if (auto refused = setup_rate(st, r.user)) {
            rp.deliver(protocol::response_body{std::move(*refused)});
            return rp;
          }
        }
        const protocol::conv_id conv = r.submit.c.conv;
        if (auto it = st.live.find(conv); it != st.live.end()) {
          ++it->second.submits;
          rp.delegate(it->second.actor, submit_atom_v, std::move(r));
          return rp;
        }
        start_load(self, conv);
        st.loading[conv].push_back(parked_submit{std::move(r), rp});
        return rp;
      },
      [=](convload_atom, const protocol::conv_id& conv, storage::router_store::loaded_conv& l) {
        on_loaded(self, conv, l);
      },
      [=](idle_atom, const protocol::conv_id& conv, uint64_t submits) {
        // A conversation actor idle for a while may stop once it has taken every SUBMIT handed
        // on to it; the next SUBMIT spawns a new one on the stored record.
        auto& live = self->state.live;
        auto it = live.find(conv);
        if (it == live.end() || it->second.actor.address() != self->current_sender()
            || it->second.submits != submits)
          return;
        self->send(it->second.actor, shutdown_atom_v);
        live.erase(it);
        self->state.d.metrics->live->set(static_cast<int64_t>(live.size()));
      },
      [=](linkup_atom, size_t k, size_t node) {
        for (const auto& [conv, a] : self->state.live)
          self->send(a.actor, linkup_atom_v, k, node);
      },
      [=](attach_atom, caf::actor queues) { self->state.queues = std::move(queues); },
      [=](poke_atom, const protocol::conv_id& conv, uint64_t i, std::vector<std::string>& members) {
        if (self->state.queues)
          self->send(self->state.queues, poke_atom_v, conv, i, std::move(members));
      },
      [=](stats_atom) -> std::string {
        return nlohmann::json{{"live_conversations", self->state.live.size()},
                              {"loading", self->state.loading.size()},
                              {"setups_refused", self->state.setups_refused}}
            .dump();
      },
  };
}

}  // namespace

caf::actor spawn_conversation_registry(caf::actor_system& sys, conversation_deps deps,
                                       std::vector<protocol::conv_id> resume) {
  return sys.spawn(registry, std::move(deps), std::move(resume));
}

}  // namespace cowpi::actors

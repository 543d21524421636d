// SPDX-License-Identifier: Apache-2.0
// The router cluster: the shard view, the cluster actor (links to the other nodes, answers
// their requests for this node's shards) and the stubs that carry this node's deliveries to
// sessions on other nodes (docs/architecture.md "Router clusters").
#include "cluster.hpp"

#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include <caf/io/middleman.hpp>
#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <utility>

namespace cowpi::actors {

using namespace std::chrono_literals;

// -- cluster_view -----------------------------------------------------------------------------

cluster_view::cluster_view(std::vector<std::string> nodes, const std::string& self,
                           std::map<std::string, std::vector<std::string>> mirror_nodes)
    : nodes_(std::move(nodes)), mirror_nodes_(std::move(mirror_nodes)) {
  if (nodes_.empty())
    nodes_.push_back(self);
  auto it = std::find(nodes_.begin(), nodes_.end(), self);
  self_ = it == nodes_.end() ? 0 : static_cast<size_t>(it - nodes_.begin());
  peers_.resize(nodes_.size());
}

size_t cluster_view::home_of(const std::string& id) const {
  return clustered() ? protocol::user_owner(nodes_, id) : self_;
}

size_t cluster_view::owner_of(const protocol::conv_id& conv) const {
  return clustered() ? protocol::conv_owner(nodes_, conv) : self_;
}

size_t cluster_view::pool_home(const std::string& owner,
                               const std::optional<protocol::conv_id>& conv) const {
  if (!clustered())
    return self_;
  auto it = mirror_nodes_.find(owner);
  if (it == mirror_nodes_.end() || it->second.empty())
    return home_of(owner);
  if (it->second.size() == 1)
    return home_of(it->second.front());
  if (!conv)
    return self_;  // refused by the directory (a clustered mirror needs the conversation)
  return home_of(it->second[protocol::conv_owner(it->second, *conv)]);
}

caf::actor cluster_view::peer(size_t i) const {
  std::lock_guard<std::mutex> g(mu_);
  return i < peers_.size() && i != self_ ? peers_[i] : caf::actor{};
}

void cluster_view::set_peer(size_t i, caf::actor a) {
  std::lock_guard<std::mutex> g(mu_);
  if (i < peers_.size())
    peers_[i] = std::move(a);
}

size_t cluster_view::peers_up() const {
  std::lock_guard<std::mutex> g(mu_);
  return static_cast<size_t>(
      std::count_if(peers_.begin(), peers_.end(), [](const caf::actor& a) { return bool(a); }));
}

// -- shared helpers ---------------------------------------------------------------------------

namespace {

protocol::rejection unavailable() {
  return protocol::rejection{protocol::rejection_kind::unavailable, 0, {}};
}

std::vector<uint8_t> to_vector(const bytes& b) {
  return std::vector<uint8_t>(b.begin(), b.end());
}

}  // namespace

void answer_locally(caf::event_based_actor* self, const caf::actor& directory,
                    const caf::actor& registry, std::chrono::milliseconds timeout,
                    const std::string& user, uint64_t request_id, const caf::actor& session,
                    protocol::client_request body, std::function<void(protocol::response_body)> k) {
  auto ask = [&](const caf::actor& dest, auto&&... xs) {
    if (!dest) {
      k(unavailable());  // not wired (a node still starting)
      return;
    }
    self->request(dest, timeout, std::forward<decltype(xs)>(xs)...)
        .then([k](protocol::response_body& b) { k(std::move(b)); },
              [k](caf::error&) { k(unavailable()); });
  };
  std::visit(
      [&](auto&& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, protocol::submit_msg>) {
          ask(registry, submit_atom_v, submit_request{user, request_id, session, std::move(b)});
        } else if constexpr (std::is_same_v<T, protocol::upload_prekeys>) {
          ask(directory, upload_atom_v, user, std::move(b));
        } else if constexpr (std::is_same_v<T, protocol::fetch_prekeys>) {
          ask(directory, fetch_atom_v, user, std::move(b));
        } else if constexpr (std::is_same_v<T, protocol::lookup_users>) {
          ask(directory, users_atom_v, std::move(b.ids));
        } else if constexpr (std::is_same_v<T, protocol::retire_prekeys>) {
          ask(directory, retire_atom_v, user, b.below);
        } else if constexpr (std::is_same_v<T, protocol::account_status>) {
          ask(directory, status_atom_v, user);
        } else {
          // ACK, SUBSCRIBE, DRAIN and PING concern the connection: never forwarded.
          k(protocol::rejection{protocol::rejection_kind::invalid, 0, "not forwarded"});
        }
      },
      std::move(body));
}

void ask_node(caf::event_based_actor* self, const cluster_view& view, size_t node,
              std::chrono::milliseconds timeout, node_msg m,
              std::function<void(std::optional<node_msg>)> k) {
  auto peer = view.peer(node);
  if (!peer) {
    k(std::nullopt);
    return;
  }
  self->request(peer, timeout, node_atom_v, std::move(m))
      .then([k](node_msg& a) { k(std::move(a)); }, [k](caf::error&) { k(std::nullopt); });
}

namespace {

// -- stubs: a remote session as this node's queues and conversations see it --------------------

struct stub_state {
  std::string user;
  caf::actor session;
  caf::actor queues;
  static inline const char* name = "cowpi.cluster.stub";
};

using stub_actor = caf::stateful_actor<stub_state>;

void to_session(stub_actor* self, node_msg m) {
  self->send(self->state.session, nsend_atom_v, std::move(m));
}

caf::behavior stub(stub_actor* self, std::string user, caf::actor session, caf::actor queues) {
  auto& st = self->state;
  st.user = std::move(user);
  st.session = std::move(session);
  st.queues = std::move(queues);
  self->monitor(st.session);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if (dm.source != s.session.address())
      return;
    // The session ended or its node is gone: this node's queue stops streaming to it.
    self->send(s.queues, detach_atom_v, s.user, caf::actor_cast<caf::actor>(self));
    self->quit();
  });
  return {
      [self](deliver_atom, std::vector<protocol::envelope>& envs) {
        node_msg m;
        m.kind = node_kind::deliver;
        m.items.reserve(envs.size());
        for (const auto& e : envs)
          m.items.push_back(to_vector(protocol::wire::encode_envelope(e)));
        to_session(self, std::move(m));
      },
      [self](reject_atom, late_rejection& r) {
        node_msg m;
        m.kind = node_kind::rejected;
        m.bytes = to_vector(protocol::wire::encode(
            protocol::router_frame{protocol::response{r.request_id, std::move(r.why)}}));
        to_session(self, std::move(m));
      },
      [self](drain_atom, uint64_t request_id) {
        self->send(self->state.session, drain_atom_v, request_id);
      },
      [self](shutdown_atom) { self->quit(); },
  };
}

// -- the cluster actor ------------------------------------------------------------------------

struct peer_link {
  caf::actor remote;
  bool up = false;
  bool connecting = false;
  std::chrono::milliseconds backoff{200};
  uint64_t connects = 0;
  uint64_t ups = 0;
  std::string last_error;
  std::string last_logged;
};

struct local_session {
  std::string user;
  caf::actor session;
};

struct cluster_state {
  cluster_deps d;
  caf::actor directory;
  caf::actor registry;
  caf::actor queues;
  bool wired = false;
  std::vector<peer_link> peers;
  /// The CAF nodes of the peers that greeted (or were greeted by) this node, and their index.
  std::map<caf::node_id, size_t> greeted;
  /// This node's sessions: attached on every node whose link is up.
  std::map<caf::actor_addr, local_session> sessions;
  /// Stubs of other nodes' sessions, by the session.
  std::map<caf::actor_addr, caf::actor> stubs;
  /// Directory reads for peers, waiting for the store's reader thread.
  std::map<uint64_t, caf::typed_response_promise<node_msg>> reads;
  uint64_t next_read = 0;
  uint64_t requests = 0;
  uint64_t refused = 0;
  std::set<std::string> refusals_logged;
  static inline const char* name = "cowpi.cluster";
};

using cluster_actor = caf::stateful_actor<cluster_state>;

const std::string& node_id_of(cluster_actor* self, size_t i) {
  return self->state.d.view->nodes()[i];
}

std::vector<uint8_t> own_tag(cluster_actor* self) {
  auto& st = self->state;
  auto tag = protocol::cluster_hello_tag(*st.d.identity, node_id_of(self, st.d.view->self()));
  return std::vector<uint8_t>(tag.expose().begin(), tag.expose().end());
}

bool tag_ok(cluster_actor* self, const std::string& node, const std::vector<uint8_t>& got) {
  auto want = protocol::cluster_hello_tag(*self->state.d.identity, node);
  return got.size() == want.size
         && crypto::ct_equal(byte_view(got.data(), got.size()),
                             byte_view(want.expose().data(), want.size));
}

caf::error refuse(cluster_actor* self, const std::string& who, const std::string& why) {
  auto& st = self->state;
  ++st.refused;
  // Logged once per sender and reason (at most 1024 of them are remembered).
  if (st.refusals_logged.size() < 1024 && st.refusals_logged.insert(who + ": " + why).second)
    spdlog::warn("cluster: refused a message from {}: {}", who, why);
  return caf::make_error(caf::sec::unexpected_message, why);
}

void send_attach(cluster_actor* self, size_t i, node_kind kind, const local_session& s) {
  auto& p = self->state.peers[i];
  if (!p.up)
    return;
  node_msg m;
  m.kind = kind;
  m.id = s.user;
  m.actor = s.session;
  self->send(p.remote, nsend_atom_v, std::move(m));
}

void connect(cluster_actor* self, size_t i);

void link_failed(cluster_actor* self, size_t i, const std::string& why) {
  auto& p = self->state.peers[i];
  p.connecting = false;
  p.last_error = why;
  if (why != p.last_logged) {
    p.last_logged = why;
    spdlog::warn("cluster: node {}: {}", node_id_of(self, i), why);
  }
  self->delayed_send(self, p.backoff, retry_atom_v, i);
  p.backoff = std::min<std::chrono::milliseconds>(p.backoff * 2, 5s);
}

void peer_up(cluster_actor* self, size_t i, caf::actor remote) {
  auto& st = self->state;
  auto& p = st.peers[i];
  if (p.remote && p.remote != remote) {
    // The node restarted (a new process greets) before its old link was seen to end.
    self->demonitor(p.remote);
    if (auto it = st.greeted.find(p.remote.node()); it != st.greeted.end() && it->second == i)
      st.greeted.erase(it);
  }
  p.remote = std::move(remote);
  p.up = true;
  p.connecting = false;
  p.backoff = 200ms;
  p.last_error.clear();
  p.last_logged.clear();
  ++p.ups;
  self->monitor(p.remote);
  st.greeted[p.remote.node()] = i;
  st.d.view->set_peer(i, p.remote);
  spdlog::info("cluster: node {} up", node_id_of(self, i));
  for (const auto& [addr, s] : st.sessions)
    send_attach(self, i, node_kind::attach, s);
}

void peer_down(cluster_actor* self, size_t i) {
  auto& st = self->state;
  auto& p = st.peers[i];
  if (!p.up && !p.remote)
    return;
  spdlog::warn("cluster: node {} down", node_id_of(self, i));
  if (p.remote) {
    auto it = st.greeted.find(p.remote.node());
    if (it != st.greeted.end() && it->second == i)
      st.greeted.erase(it);
  }
  p.up = false;
  p.remote = nullptr;
  st.d.view->set_peer(i, caf::actor{});
  if (i > st.d.view->self())
    self->delayed_send(self, p.backoff, retry_atom_v, i);
}

void connect(cluster_actor* self, size_t i) {
  auto& st = self->state;
  auto& p = st.peers[i];
  if (p.connecting || p.up || !st.wired)
    return;
  p.connecting = true;
  ++p.connects;
  const auto& a = st.d.addresses[i].internal;
  auto mm = self->system().openssl_manager().actor_handle();
  self->request(mm, st.d.connect_timeout, caf::connect_atom_v, a.host, a.port)
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            if (!ptr) {
              link_failed(self, i, "nothing published at " + config::to_string(a));
              return;
            }
            auto remote = caf::actor_cast<caf::actor>(ptr);
            node_msg h;
            h.kind = node_kind::hello;
            h.id = node_id_of(self, self->state.d.view->self());
            h.bytes = own_tag(self);
            h.actor = caf::actor_cast<caf::actor>(self);
            self->request(remote, self->state.d.request_timeout, node_atom_v, std::move(h))
                .then(
                    [=](node_msg& ack) {
                      if (ack.kind != node_kind::hello || ack.id != node_id_of(self, i)
                          || !tag_ok(self, ack.id, ack.bytes)) {
                        link_failed(self, i,
                                    "the node at " + config::to_string(a) + " is not node "
                                        + node_id_of(self, i)
                                        + " of this router (its HELLO does not prove it)");
                        return;
                      }
                      peer_up(self, i, remote);
                    },
                    [=](caf::error& e) {
                      link_failed(self, i, "HELLO failed: " + self->system().render(e));
                    });
          },
          [=](caf::error& e) {
            link_failed(
                self, i,
                "cannot connect to " + config::to_string(a) + ": " + self->system().render(e));
          });
}

/// The peer (by index) a message comes from, if it greeted this node.
std::optional<size_t> sender_peer(cluster_actor* self) {
  const auto& src = self->current_sender();
  if (!src)
    return std::nullopt;
  auto it = self->state.greeted.find(src->node());
  if (it == self->state.greeted.end())
    return std::nullopt;
  return it->second;
}

std::string sender_name(cluster_actor* self) {
  const auto& src = self->current_sender();
  return src ? caf::to_string(src->node()) : std::string("an anonymous sender");
}

caf::actor stub_for(cluster_actor* self, const std::string& user, const caf::actor& session) {
  auto& st = self->state;
  auto it = st.stubs.find(session.address());
  if (it != st.stubs.end())
    return it->second;
  // Linked: the stubs end with the cluster actor (at shutdown), or the actor system would
  // wait for them while their remote sessions live.
  auto s = self->spawn<caf::linked>(stub, user, session, st.queues);
  self->monitor(s);
  st.stubs.emplace(session.address(), s);
  return s;
}

caf::result<node_msg> on_hello(cluster_actor* self, node_msg& m) {
  auto& st = self->state;
  const auto& nodes = st.d.view->nodes();
  auto it = std::find(nodes.begin(), nodes.end(), m.id);
  if (it == nodes.end())
    return refuse(self, sender_name(self), "HELLO from node " + m.id + ", not in the node list");
  const auto i = static_cast<size_t>(it - nodes.begin());
  if (i == st.d.view->self())
    return refuse(self, sender_name(self), "HELLO naming this node");
  if (!tag_ok(self, m.id, m.bytes))
    return refuse(self, m.id, "HELLO without a valid proof (not this router's identity)");
  if (!m.actor)
    return refuse(self, m.id, "HELLO without a cluster actor");
  node_msg ack;
  ack.kind = node_kind::hello;
  ack.id = node_id_of(self, st.d.view->self());
  ack.bytes = own_tag(self);
  // The answer first: the greeting node takes this one's messages (the sessions attached
  // by `peer_up`) only once it has read it, and one sender's messages arrive in order.
  auto rp = self->make_response_promise<node_msg>();
  rp.deliver(std::move(ack));
  peer_up(self, i, std::move(m.actor));
  return rp;
}

node_msg answer_of(uint64_t number, std::vector<uint8_t> b = {}) {
  node_msg a;
  a.kind = node_kind::answer;
  a.number = number;
  a.bytes = std::move(b);
  return a;
}

caf::result<node_msg> on_request(cluster_actor* self, node_msg& m) {
  auto& st = self->state;
  if (m.kind == node_kind::hello)
    return on_hello(self, m);
  if (!sender_peer(self))
    return refuse(self, sender_name(self), "a request from a node that did not greet this one");
  ++st.requests;
  const auto timeout = st.d.request_timeout;
  switch (m.kind) {
    case node_kind::lookup:
    case node_kind::reg: {
      if (m.bytes.size() != 32)
        return refuse(self, sender_name(self), "a lookup with a malformed key");
      protocol::public_key lpk{};
      std::copy(m.bytes.begin(), m.bytes.end(), lpk.begin());
      auto rp = self->make_response_promise<node_msg>();
      if (m.kind == node_kind::lookup) {
        self->request(st.directory, timeout, lookup_atom_v, m.id, lpk,
                      static_cast<protocol::hello_mode>(m.number))
            .then(
                [rp](lookup_result r) mutable { rp.deliver(answer_of(static_cast<uint64_t>(r))); },
                [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      } else {
        self->request(st.directory, timeout, register_atom_v, m.id, lpk)
            .then([rp](bool ok) mutable { rp.deliver(answer_of(ok ? 1 : 0)); },
                  [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      }
      return rp;
    }
    case node_kind::client: {
      auto f = protocol::wire::decode_client_frame(byte_view(m.bytes.data(), m.bytes.size()));
      if (!f)
        return refuse(self, sender_name(self), "a malformed client frame");
      const uint64_t id = f->request_id;
      caf::actor session;
      if (std::holds_alternative<protocol::submit_msg>(f->body) && m.actor)
        session = stub_for(self, m.id, m.actor);
      auto rp = self->make_response_promise<node_msg>();
      answer_locally(self, st.directory, st.registry, timeout, m.id, id, session,
                     std::move(f->body), [rp, id](protocol::response_body b) mutable {
                       rp.deliver(answer_of(
                           id, to_vector(protocol::wire::encode(
                                   protocol::router_frame{protocol::response{id, std::move(b)}}))));
                     });
      return rp;
    }
    case node_kind::dirent: {
      if (m.items.size() > protocol::max_members)
        return refuse(self, sender_name(self), "a directory read of too many ids");
      std::vector<std::string> ids;
      for (const auto& item : m.items) {
        ids.emplace_back(item.begin(), item.end());
        if (!protocol::valid_id(ids.back()))
          return refuse(self, sender_name(self), "a directory read of an invalid id");
      }
      const uint64_t token = st.next_read++;
      auto rp = self->make_response_promise<node_msg>();
      st.reads.emplace(token, rp);
      auto me = caf::actor_cast<caf::actor>(self);
      st.d.store->directory_entries_async(
          std::move(ids), [me, token](expected<storage::router_store::directory_entries> r) {
            node_msg a = answer_of(token);
            if (r) {
              protocol::wire::directory_entries d(r->begin(), r->end());
              a.bytes = to_vector(protocol::wire::encode_directory_entries(d));
            } else {
              spdlog::warn("cluster: cannot read directory entries: {}", r.error().message());
            }
            caf::anon_send(me, dirent_atom_v, token, std::move(a));
          });
      return rp;
    }
    default:
      return refuse(self, sender_name(self), "an unexpected request");
  }
}

void on_send(cluster_actor* self, node_msg& m) {
  auto& st = self->state;
  if (!sender_peer(self)) {
    (void)refuse(self, sender_name(self), "a message from a node that did not greet this one");
    return;
  }
  switch (m.kind) {
    case node_kind::cack: {
      if (m.bytes.size() != protocol::conv_id{}.size())
        return;
      protocol::conv_id conv{};
      std::copy(m.bytes.begin(), m.bytes.end(), conv.begin());
      self->send(st.queues, cack_atom_v, m.id, conv, m.number);
      return;
    }
    case node_kind::attach:
      if (m.actor)
        self->send(st.queues, attach_atom_v, m.id, stub_for(self, m.id, m.actor));
      return;
    case node_kind::detach: {
      auto it = m.actor ? st.stubs.find(m.actor.address()) : st.stubs.end();
      if (it == st.stubs.end())
        return;
      self->send(st.queues, detach_atom_v, m.id, it->second);
      self->send(it->second, shutdown_atom_v);
      self->demonitor(it->second);
      st.stubs.erase(it);
      return;
    }
    case node_kind::drain:
      if (m.actor)
        self->send(st.queues, drain_atom_v, m.id, stub_for(self, m.id, m.actor), m.number);
      return;
    default:
      (void)refuse(self, sender_name(self), "an unexpected message");
  }
}

std::string stats_json(cluster_actor* self) {
  const auto& st = self->state;
  nlohmann::json peers = nlohmann::json::object();
  for (size_t i = 0; i < st.peers.size(); ++i) {
    if (i == st.d.view->self())
      continue;
    const auto& p = st.peers[i];
    peers[node_id_of(self, i)] = {{"up", p.up},
                                  {"address", config::to_string(st.d.addresses[i].internal)},
                                  {"connects", p.connects},
                                  {"ups", p.ups},
                                  {"last_error", p.last_error}};
  }
  return nlohmann::json{{"self", node_id_of(self, st.d.view->self())},
                        {"nodes", st.d.view->nodes()},
                        {"peers_up", st.d.view->peers_up()},
                        {"peers", peers},
                        {"local_sessions", st.sessions.size()},
                        {"remote_sessions", st.stubs.size()},
                        {"requests_served", st.requests},
                        {"refused", st.refused}}
      .dump();
}

caf::behavior cluster(cluster_actor* self, cluster_deps d) {
  auto& st = self->state;
  st.d = std::move(d);
  st.peers.resize(st.d.view->size());
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    for (size_t i = 0; i < s.peers.size(); ++i)
      if (s.peers[i].remote && s.peers[i].remote.address() == dm.source) {
        peer_down(self, i);
        return;
      }
    if (s.sessions.erase(dm.source) > 0)
      return;
    std::erase_if(s.stubs, [&](const auto& kv) { return kv.second.address() == dm.source; });
  });
  return {
      [self](attach_atom, caf::actor directory, caf::actor registry, caf::actor queues) {
        auto& s = self->state;
        s.directory = std::move(directory);
        s.registry = std::move(registry);
        s.queues = std::move(queues);
        s.wired = true;
        for (size_t i = s.d.view->self() + 1; i < s.peers.size(); ++i)
          connect(self, i);
      },
      [self](attach_atom, const std::string& user, const caf::actor& session) {
        auto& s = self->state;
        auto [it, fresh] =
            s.sessions.insert_or_assign(session.address(), local_session{user, session});
        if (fresh)
          self->monitor(session);
        for (size_t i = 0; i < s.peers.size(); ++i)
          send_attach(self, i, node_kind::attach, it->second);
      },
      [self](detach_atom, const std::string&, const caf::actor& session) {
        auto& s = self->state;
        auto it = s.sessions.find(session.address());
        if (it == s.sessions.end())
          return;
        for (size_t i = 0; i < s.peers.size(); ++i)
          send_attach(self, i, node_kind::detach, it->second);
        self->demonitor(session);
        s.sessions.erase(it);
      },
      [self](node_atom, node_msg& m) { return on_request(self, m); },
      [self](nsend_atom, node_msg& m) { on_send(self, m); },
      [self](dirent_atom, uint64_t token, node_msg& a) {
        auto& s = self->state;
        auto it = s.reads.find(token);
        if (it == s.reads.end())
          return;
        if (a.bytes.empty())
          it->second.deliver(caf::make_error(caf::sec::runtime_error, "directory read failed"));
        else
          it->second.deliver(std::move(a));
        s.reads.erase(it);
      },
      [self](retry_atom, size_t i) {
        if (i < self->state.peers.size() && i > self->state.d.view->self())
          connect(self, i);
      },
      [self](stats_atom) { return stats_json(self); },
  };
}

}  // namespace

caf::actor spawn_cluster(caf::actor_system& sys, cluster_deps deps) {
  return sys.spawn(cluster, std::move(deps));
}

}  // namespace cowpi::actors

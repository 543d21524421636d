// SPDX-License-Identifier: Apache-2.0
// The router<->mirror link (docs/design.md §4): connect over mutual TLS, exchange HELLO checked
// against configuration, carry link messages as versioned Cap'n Proto bytes, reconnect.
#include "mirror_link.hpp"

#include "cowpi/protocol/wire.hpp"

#include "../type_ids.hpp"
#include "tls_probe.hpp"
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace cowpi::actors {

namespace {

using namespace std::chrono_literals;

// The node's pool is checked at most this often, when requests go over the link (first
// contacts, which take its keys, go over it as SETUP and UPDATE PREPAREs) ...
constexpr auto key_check_gap = 1s;
// ... and at least this often on an idle link.
constexpr auto key_check_idle = 1h;
// How often the pool is replaced (and the mirror given a chance to rotate its LAST_RESORT key,
// which it does in answering a TOPUP once the key is `last_resort_period` old).
constexpr auto key_refresh = 24h;

struct link_state {
  mirror_link_deps d;
  caf::actor registry;
  caf::actor directory;
  caf::actor remote;
  bool up = false;
  /// True once the directory holds this mirror's keys (uploaded after the first HELLO): only
  /// then can clients set conversations up.
  bool keys = false;
  bool topping_up = false;  // a pool check or TOPUP is under way
  uint64_t key_gen = 0;     // bumped when the link goes down: older checks end unheard
  std::chrono::steady_clock::time_point last_key_check{};
  std::chrono::steady_clock::time_point last_refresh{};  // the last replacement of the pool
  std::chrono::steady_clock::time_point refill_window{};
  uint64_t refilled = 0;  // keys asked for in the hour from `refill_window`
  uint64_t topups = 0;
  uint64_t key_checks = 0;  // pool levels read between replacements
  bool connecting = false;
  bool probing = false;     // a diagnostic TLS handshake is running
  std::string last_logged;  // the last connect failure logged, so a retry loop logs it once
  std::chrono::milliseconds backoff{100};
  uint64_t requests = 0;
  uint64_t reconnects = 0;
  std::string last_error;
  static inline const char* name = "mirror-link";
};

using link_actor = caf::stateful_actor<link_state>;

caf::error link_down() {
  return caf::make_error(caf::sec::request_receiver_down);
}

void connect(link_actor* self);

void schedule_reconnect(link_actor* self) {
  auto& st = self->state;
  st.up = false;
  st.d.metrics->up->set(0);
  ++st.key_gen;
  st.topping_up = false;
  st.connecting = false;
  self->delayed_anon_send(self, st.backoff, retry_atom_v);
  st.backoff = std::min<std::chrono::milliseconds>(st.backoff * 2, 5s);
}

// How logs name the link: the mirror, and the node when the mirror is a cluster.
std::string label(const link_state& st) {
  return st.d.node.empty() || st.d.node == st.d.peer.name ? st.d.peer.name
                                                          : st.d.peer.name + "/" + st.d.node;
}

std::string address_of(const link_state& st) {
  return config::to_string(st.d.peer.address);
}

// Records why the link is not up; logs it unless it is what was logged last.
void note_failure(link_actor* self, std::string why) {
  auto& st = self->state;
  if (why != st.last_logged) {
    spdlog::warn("link {}: {}", label(st), why);
    st.last_logged = why;
  }
  st.last_error = std::move(why);
}

// The TCP connection was made but no link came of it. CAF 0.17 says no more than
// disconnect_during_handshake when either side refuses the TLS handshake, and only
// connection_timeout (after middleman.connection-timeout) when, under TLS 1.3, the mirror
// refuses the router's certificate after the router finished its side. One diagnostic TLS
// handshake with the link's own files, on its own thread since it blocks, tells which side
// refused what; the failure is logged as that.
void diagnose(link_actor* self, const std::string& caf_reason) {
  auto& st = self->state;
  if (st.probing)
    return;
  st.probing = true;
  const std::string host = st.d.peer.address.host;
  const uint16_t port = st.d.peer.address.port;
  const config::tls_config tls = st.d.tls;
  const std::chrono::milliseconds bound = st.d.probe_timeout;
  auto probe = self->spawn<caf::detached>([=](caf::event_based_actor* p) -> caf::behavior {
    return {[=](caf::get_atom) -> std::string {
      p->quit();
      auto r = probe_tls(host, port, tls, bound);
      switch (r.outcome) {
        case tls_probe_outcome::peer_not_trusted:
        case tls_probe_outcome::refused_by_peer:
          return "TLS handshake refused: " + r.detail;
        case tls_probe_outcome::accepted:
          return caf_reason + ", though " + r.detail
                 + ": the peer is not a cowpi mirror of this version, or does not answer";
        case tls_probe_outcome::failed:
          break;
      }
      return caf_reason + " (a diagnostic TLS handshake: " + r.detail + ")";
    }};
  });
  self->request(probe, bound * 2 + 5s, caf::get_atom_v)
      .then(
          [=](std::string& what) {
            self->state.probing = false;
            if (!self->state.up)
              note_failure(self, "cannot connect to " + address_of(self->state) + ": " + what);
          },
          [=](const caf::error&) {
            self->state.probing = false;
            if (!self->state.up)
              note_failure(self,
                           "cannot connect to " + address_of(self->state) + ": " + caf_reason);
          });
}

// Sends one encoded request to the mirror and decodes its answer.
template <class F, class E>
void call(link_actor* self, const protocol::link_request& req, F on_answer, E on_error) {
  auto& st = self->state;
  ++st.requests;
  const size_t kind = req.index();
  st.d.metrics->kinds.requests[kind]->inc();
  const auto sent = std::chrono::steady_clock::now();
  self->request(st.remote, st.d.request_timeout, link_atom_v,
                link_frame{protocol::wire::encode(req)})
      .then(
          [=](link_frame& f) mutable {
            auto r = protocol::wire::decode_link_response(f.bytes);
            if (!r) {
              self->state.d.metrics->failures->inc();
              on_error(caf::make_error(caf::sec::unexpected_response));
              return;
            }
            self->state.d.metrics->kinds.seconds[kind]->observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count());
            on_answer(std::move(*r));
          },
          [=](caf::error& e) mutable {
            self->state.d.metrics->failures->inc();
            on_error(e);
          });
}

// Asks the mirror node for `count` one-time pre-keys (and its current LAST_RESORT key, rotated
// when due) and uploads them to the directory as the node's. With `replace`, the pool's older
// keys are then retired: the pool holds only the new batch.
void send_topup(link_actor* self, uint32_t count, bool replace) {
  auto& st = self->state;
  auto done = [self, gen = st.key_gen] {
    if (self->state.key_gen == gen)
      self->state.topping_up = false;
  };
  if (!replace)
    st.refilled += count;
  call(
      self, protocol::topup{count},
      [=](protocol::link_response r) {
        auto* pk = std::get_if<protocol::mirror_prekeys>(&r);
        if (pk == nullptr)
          return done();
        const uint64_t first = pk->one_time.empty() ? 0 : pk->one_time.front().id;
        protocol::upload_prekeys up{pk->one_time, pk->last_resort};
        // A request, not a send: the directory's answer must come back as a response (an
        // ordinary message of an unexpected type would be reflected and end an actor).
        self->request(self->state.directory, self->state.d.request_timeout, upload_atom_v,
                      self->state.d.node, std::move(up))
            .then(
                [=](const protocol::response_body& b) {
                  auto& s = self->state;
                  if (!std::holds_alternative<protocol::ok_result>(b))
                    return done();
                  if (!s.keys) {
                    s.keys = true;
                    spdlog::info("link {}: keys in the directory", label(s));
                  }
                  if (!replace || first == 0) {
                    ++s.topups;
                    return done();
                  }
                  // (Counted as a replacement once uploaded: a failed retirement is retried
                  // with the next replacement, not at once with another 512 keys.)
                  s.last_refresh = std::chrono::steady_clock::now();
                  self->request(s.directory, s.d.request_timeout, retire_atom_v, s.d.node, first)
                      .then(
                          [=](const protocol::response_body& rb) {
                            if (std::holds_alternative<protocol::ok_result>(rb))
                              ++self->state.topups;
                            done();
                          },
                          [=](const caf::error&) { done(); });
                },
                [=](const caf::error&) { done(); });
      },
      [=](const caf::error&) { done(); });
}

// Keeps the directory stocked with this node's one-time pre-keys.
// - After every HELLO, and once a day, the pool is replaced: a TOPUP for `prekey_target` new
//   keys, then the older ones still in the pool are retired. A key therefore waits in the
//   pool for a day or so at most, far below the age (30 days) at which the mirror retires the
//   keys nobody used, and the TOPUP lets the mirror rotate its LAST_RESORT key when due.
// - In between, a check that finds the pool under half of `prekey_target` tops it up to
//   `prekey_target`, as long as this hour's refills ask for at most twice that many keys:
//   past it, fetches get the LAST_RESORT key until the hour ends. Keys handed out but never
//   used stay with the mirror until they age out, and this bounds how fast members fetching
//   keys they never use can make them pile up there.
void top_up(link_actor* self, bool after_hello) {
  auto& st = self->state;
  if (st.topping_up || !st.up || !st.directory || !st.d.manage_keys)
    return;
  st.topping_up = true;
  const auto now = std::chrono::steady_clock::now();
  st.last_key_check = now;
  if (now - st.refill_window >= 1h) {
    st.refill_window = now;
    st.refilled = 0;
  }
  const uint64_t target = st.d.prekey_target;
  if (after_hello || now - st.last_refresh >= key_refresh)
    return send_topup(self, static_cast<uint32_t>(target), true);
  ++st.key_checks;
  const uint64_t gen = st.key_gen;
  self->request(st.directory, st.d.request_timeout, status_atom_v, st.d.node)
      .then(
          [=](const protocol::response_body& b) {
            auto& s = self->state;
            const auto* pool = std::get_if<protocol::status_result>(&b);
            const uint64_t have = pool != nullptr ? pool->one_time_remaining : 0;
            const uint64_t want = have >= target ? 0 : target - have;
            if (gen != s.key_gen)
              return;  // the link went down meanwhile
            if (!s.up || have >= target / 2 || s.refilled + want > 2 * target) {
              s.topping_up = false;
              return;
            }
            send_topup(self, static_cast<uint32_t>(want), false);
          },
          [=](const caf::error&) {
            if (gen == self->state.key_gen)
              self->state.topping_up = false;
          });
}

void hello(link_actor* self) {
  auto& st = self->state;
  call(
      self, st.d.own_hello,
      [=](protocol::link_response r) {
        auto& s = self->state;
        auto* h = std::get_if<protocol::link_hello>(&r);
        if (h == nullptr || h->id != s.d.peer.name || h->lpk != s.d.peer.public_key
            || h->version != protocol::transport_version) {
          s.last_error = "mirror HELLO does not match the configured id and key";
          spdlog::error("link {}: {}", label(s), s.last_error);
          self->demonitor(s.remote);
          s.remote = nullptr;
          schedule_reconnect(self);
          return;
        }
        s.up = true;
        s.d.metrics->up->set(1);
        s.d.metrics->connects->inc();
        s.connecting = false;
        s.backoff = 100ms;
        s.last_logged.clear();
        spdlog::info("link {}: up", label(s));
        self->send(s.registry, linkup_atom_v, s.d.index, s.d.node_index);
        top_up(self, true);
      },
      [=](const caf::error& e) {
        self->state.last_error = "HELLO failed: " + caf::to_string(e);
        schedule_reconnect(self);
      });
}

void connect(link_actor* self) {
  auto& st = self->state;
  if (st.connecting || st.up || !st.registry)
    return;
  st.connecting = true;
  ++st.reconnects;
  auto mm = self->system().openssl_manager().actor_handle();
  self->request(mm, st.d.connect_timeout, caf::connect_atom_v, st.d.peer.address.host,
                st.d.peer.address.port)
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            if (!ptr) {
              self->state.last_error = "nothing published at the mirror's address";
              schedule_reconnect(self);
              return;
            }
            self->state.remote = caf::actor_cast<caf::actor>(ptr);
            self->monitor(self->state.remote);
            hello(self);
          },
          [=](caf::error& e) {
            const std::string why = caf::to_string(e);
            if (e == caf::sec::cannot_connect_to_node)
              note_failure(self, "cannot connect to " + address_of(self->state) + ": " + why);
            else
              diagnose(self, why);
            schedule_reconnect(self);
          });
}

caf::behavior mirror_link(link_actor* self, mirror_link_deps deps) {
  self->state.d = std::move(deps);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source != st.remote.address())
      return;
    spdlog::warn("link {}: down ({})", label(st), self->system().render(dm.reason));
    st.remote = nullptr;
    schedule_reconnect(self);
  });
  return {
      [=](attach_atom, caf::actor registry, caf::actor directory) {
        self->state.registry = std::move(registry);
        self->state.directory = std::move(directory);
        connect(self);
        self->delayed_send(self, key_check_idle, housekeep_atom_v);
      },
      [=](housekeep_atom) {
        top_up(self, false);
        self->delayed_send(self, key_check_idle, housekeep_atom_v);
      },
      [=](link_atom, const protocol::link_request& req) -> caf::result<protocol::link_response> {
        if (!self->state.up)
          return link_down();
        auto rp = self->make_response_promise<protocol::link_response>();
        call(
            self, req, [=](protocol::link_response r) mutable { rp.deliver(std::move(r)); },
            [=](const caf::error& e) mutable { rp.deliver(e); });
        return rp;
      },
      [=](fwd_atom, link_frame& f, size_t kind) -> caf::result<caf::message> {
        // A conversation's PREPARE or COMMIT, already encoded: handed on as it is, so the
        // mirror's answer goes straight back to the conversation actor (one request and one
        // timeout per round trip, the requester's; it observes the answer's metrics).
        auto& st = self->state;
        if (!st.up)
          return link_down();
        ++st.requests;
        if (kind < st.d.metrics->kinds.requests.size())
          st.d.metrics->kinds.requests[kind]->inc();
        if (std::chrono::steady_clock::now() - st.last_key_check >= key_check_gap)
          top_up(self, false);
        return self->delegate(st.remote, link_atom_v, std::move(f));
      },
      [=](retry_atom) { connect(self); },
      [=](stats_atom) -> std::string {
        const auto& s = self->state;
        return nlohmann::json{{"mirror", s.d.peer.name},
                              {"node", s.d.node},
                              {"up", s.up},
                              {"keys", s.keys},
                              {"keys_here", s.d.manage_keys},
                              {"topups", s.topups},
                              {"key_checks", s.key_checks},
                              {"requests", s.requests},
                              {"failures", s.d.metrics->failures->value()},
                              {"connects", s.reconnects},
                              {"last_error", s.last_error}}
            .dump();
      },
  };
}

}  // namespace

caf::actor spawn_mirror_link(caf::actor_system& sys, mirror_link_deps deps) {
  return sys.spawn(mirror_link, std::move(deps));
}

}  // namespace cowpi::actors

// SPDX-License-Identifier: Apache-2.0
// The fake router: poll() over plain sockets, the real router transport session, a directory,
// and the real ordering state machines (router_conv, mirror) run in-process, as
// protocol/sim/src/world.cpp wires them.
#include "fake_router.hpp"

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/protocol/session.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <set>
#include <stdexcept>
#include <tuple>
#include <variant>
#include <vector>

namespace cowpi::testing {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): a test harness

namespace {

uint64_t wall_now() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void write_all(int fd, const bytes& b) {
  size_t off = 0;
  while (off < b.size()) {
    ssize_t n = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return;  // the peer is gone; its read side notices
    off += static_cast<size_t>(n);
  }
}

struct mirror_node final : mirror_history {
  mirror_node(mirror mm, uint64_t seed) : m(std::move(mm)), rng(seed) {}
  mirror m;
  crypto::deterministic_rng rng;
  std::map<conv_id, std::map<uint64_t, hash32>> d;
  std::optional<hash32> d_at(const conv_id& conv, uint64_t i) const override {
    auto c = d.find(conv);
    if (c == d.end())
      return std::nullopt;
    auto x = c->second.find(i);
    if (x == c->second.end())
      return std::nullopt;
    return x->second;
  }
};

struct dir_entry {
  public_key lpk{};
  std::deque<published_key> pool;
  std::optional<published_key> last_resort;
  uint64_t max_prekey_id = 0;
};

struct connection {
  int fd = -1;
  std::unique_ptr<router_session> session;
  std::string user;
  bool subscribed = false;
  bool closed = false;
};

struct stored_entry {
  log_entry e;
  mirror_answers answers;
};

}  // namespace

struct fake_router::state {
  explicit state(const fake_router_options& o)
      : rng(o.seed), router_id(identity::generate("router", rng)) {
    for (size_t k = 0; k < o.mirrors; ++k) {
      std::string id = "mirror-" + std::string(1, static_cast<char>('a' + k));
      auto node =
          std::make_unique<mirror_node>(mirror(identity::generate(id, rng)), o.seed * 1000 + k);
      ms.push_back(member{id, node->m.self().lpk()});
      auto pk = node->m.make_prekeys(64, wall_now(), node->rng);
      dir_entry d;
      d.lpk = node->m.self().lpk();
      d.pool.assign(pk.one_time.begin(), pk.one_time.end());
      d.last_resort = pk.last_resort;
      directory[id] = std::move(d);
      mirrors.push_back(std::move(node));
    }
  }

  mutable std::mutex mu;
  crypto::deterministic_rng rng;
  identity router_id;
  member_list ms;
  std::vector<std::unique_ptr<mirror_node>> mirrors;
  int listen_fd = -1;
  std::vector<std::unique_ptr<connection>> conns;
  std::map<std::string, dir_entry> directory;
  std::map<std::string, fetch_budget> budgets;
  directory_policy policy;
  std::map<conv_id, std::unique_ptr<router_conv>> convs;
  std::map<conv_id, std::map<uint64_t, stored_entry>> logs;
  std::map<std::pair<std::string, conv_id>, uint64_t> cursor;  // next index to ack
  std::map<std::pair<std::string, conv_id>, uint64_t> sent;    // next index to send
  std::map<std::tuple<std::string, conv_id, uint64_t>, uint64_t> submit_rids;
  bool drop = false;
  std::string refuse_user;
  size_t refusals = 0;
  rejection refusal;
  std::vector<std::string> expire_for;
  bool answering = true;
  size_t hellos = 0;

  // -- Connections -------------------------------------------------------------------------

  void handle(connection& c, std::vector<router_event> evs) {
    for (auto& ev : evs) {
      if (c.closed)
        return;
      if (auto* f = std::get_if<send_frame>(&ev)) {
        write_all(c.fd, f->data);
      } else if (auto* l = std::get_if<need_lookup>(&ev)) {
        ++hellos;
        auto it = directory.find(l->id);
        lookup_result r = lookup_result::ok;
        if (l->mode == hello_mode::login) {
          if (it == directory.end() || it->second.lpk != l->lpk)
            r = lookup_result::unknown_user;
        } else if (it != directory.end()) {
          r = lookup_result::id_taken;
        }
        auto more = c.session->resolve_lookup(r, rng);
        if (more)
          handle(c, std::move(*more));
      } else if (auto* a = std::get_if<authenticated>(&ev)) {
        c.user = a->id;
        if (a->mode == hello_mode::register_user)
          directory[a->id].lpk = a->lpk;
      } else if (auto* q = std::get_if<incoming_request>(&ev)) {
        on_request(c, q->frame);
      } else if (std::holds_alternative<close_connection>(ev)) {
        close(c);
      }
    }
  }

  void close(connection& c) {
    if (c.closed)
      return;
    c.closed = true;
    ::close(c.fd);
  }

  void answer(connection& c, uint64_t rid, response_body body) {
    auto f = c.session->seal(router_frame{response{rid, std::move(body)}});
    if (f)
      write_all(c.fd, *f);
  }

  connection* live_session(const std::string& user) {
    for (auto& c : conns)
      if (!c->closed && c->subscribed && c->user == user)
        return c.get();
    return nullptr;
  }

  // -- Requests -----------------------------------------------------------------------------

  void on_request(connection& c, client_frame& f) {
    const uint64_t rid = f.request_id;
    if (auto* s = std::get_if<submit_msg>(&f.body)) {
      const conv_id conv = s->c.conv;
      const uint64_t aseq = s->c.aseq;
      if (refusals > 0 && c.user == refuse_user) {
        --refusals;
        answer(c, rid, refusal);
        return;
      }
      auto r = router(conv).intake(std::move(*s), c.user, wall_now());
      if (r)
        submit_rids[{c.user, conv, aseq}] = rid;
      if (answering)
        answer(c, rid, r ? response_body{ok_result{}} : response_body{r.error()});
      pump(conv);
      return;
    }
    if (auto* a = std::get_if<ack_msg>(&f.body)) {
      auto& cur = cursor[{c.user, a->conv}];
      cur = std::max(cur, a->index + 1);
      return;
    }
    if (!answering)
      return;
    if (auto* u = std::get_if<upload_prekeys>(&f.body)) {
      auto& d = directory[c.user];
      for (const auto& k : u->one_time) {
        d.pool.push_back(k);
        d.max_prekey_id = std::max(d.max_prekey_id, k.id);
      }
      if (u->last_resort)
        d.last_resort = u->last_resort;
      return answer(c, rid, ok_result{});
    }
    if (auto* fp = std::get_if<fetch_prekeys>(&f.body)) {
      prekeys_result out;
      for (const auto& o : fp->owners) {
        auto it = directory.find(o);
        if (it == directory.end())
          continue;
        auto& d = it->second;
        prekey_bundle b;
        b.owner = o;
        b.lpk = d.lpk;
        if (!d.pool.empty() && policy.take(budgets[c.user], wall_now())) {
          b.key = key_ref{key_kind::prekey, d.pool.front().id, d.pool.front().pub};
          d.pool.pop_front();
        } else if (d.last_resort) {
          b.key = key_ref{key_kind::last_resort, d.last_resort->id, d.last_resort->pub};
        } else {
          continue;
        }
        out.bundles.push_back(b);
      }
      return answer(c, rid, out);
    }
    if (auto* lu = std::get_if<lookup_users>(&f.body)) {
      users_result out;
      for (const auto& id : lu->ids) {
        auto it = directory.find(id);
        bool is_mirror = false;
        for (const auto& m : ms)
          is_mirror = is_mirror || m.id == id;
        if (it == directory.end() || is_mirror) {
          out.unknown.push_back(id);
        } else {
          out.users.push_back(member{id, it->second.lpk});
        }
      }
      return answer(c, rid, out);
    }
    if (const auto* rp = std::get_if<retire_prekeys>(&f.body)) {
      std::erase_if(directory[c.user].pool,
                    [&](const published_key& k) { return k.id < rp->below; });
      return answer(c, rid, ok_result{});
    }
    if (std::holds_alternative<account_status>(f.body)) {
      const auto& d = directory[c.user];
      return answer(
          c, rid,
          status_result{d.pool.size(), d.last_resort ? d.last_resort->id : 0, d.max_prekey_id});
    }
    if (std::holds_alternative<subscribe>(f.body)) {
      c.subscribed = true;
      answer(c, rid, ok_result{});
      redeliver(c.user);
      return;
    }
    if (std::holds_alternative<ping>(f.body))
      return answer(c, rid, ok_result{});
    // Deliveries go out as entries complete, before any later answer: nothing is in flight.
    if (std::holds_alternative<drain>(f.body))
      return answer(c, rid, ok_result{});
  }

  // -- Ordering (as protocol/sim/src/world.cpp) ----------------------------------------------

  router_conv& router(const conv_id& conv) {
    auto it = convs.find(conv);
    if (it == convs.end())
      it = convs.emplace(conv, std::make_unique<router_conv>(conv, ms, intake_limits{})).first;
    return *it->second;
  }

  std::optional<directory_entry> directory_of(const std::string& id) const {
    auto it = directory.find(id);
    if (it == directory.end())
      return std::nullopt;
    return directory_entry{it->second.lpk, it->second.last_resort};
  }

  // A rejection decided after "queued" goes out under the SUBMIT's request id.
  void reject(const std::string& user, const conv_id& conv, uint64_t aseq, const rejection& why) {
    auto it = submit_rids.find({user, conv, aseq});
    if (it == submit_rids.end())
      return;
    const uint64_t rid = it->second;
    submit_rids.erase(it);
    if (connection* c = live_session(user))
      answer(*c, rid, why);
  }

  void pump(const conv_id& conv) {
    router_conv& rc = router(conv);
    auto lr = [this](const std::string& id) { return directory_of(id); };
    const uint64_t now = wall_now();
    for (;;) {
      std::vector<prepare_decision::rejected> rejs;
      auto jobs = rc.ready(lr, rejs);
      for (auto& r : rejs)
        reject(r.author, conv, r.aseq, r.why);
      if (jobs.empty())
        break;
      for (auto& job : jobs) {
        std::optional<prepare_decision> d;
        for (size_t k = 0; k < mirrors.size() && !d; ++k)
          d = rc.on_prepared(job.job, k, mirrors[k]->m.prepare(job.per_mirror[k], now), now);
        if (!d)
          continue;
        for (auto& r : d->rejections)
          reject(r.author, conv, r.aseq, r.why);
        if (!d->ordered)
          continue;
        const log_entry& e = *d->ordered;
        logs[conv][e.index] = stored_entry{e, {}};
        for (size_t k = 0; k < mirrors.size(); ++k) {
          mirror_node& mn = *mirrors[k];
          auto out = mn.m.commit(commit_msg{e.index, e.d, e.prepare_for(k)}, mn, now, mn.rng);
          if (out.persist)
            mn.d[conv][out.index] = out.d;
          auto p = rc.on_commit_answer(e.index, k, out.response);
          if (!p.complete)
            continue;
          auto& se = logs[conv][*p.complete];
          se.answers = std::move(p.answers);
          for (auto& mm : mirrors)
            (void)mm->m.ack(link_ack{conv, *p.complete});
          // The router's rule; this router never collects its log and keeps no slot bound
          // for a removed member.
          std::vector<std::optional<delivery_cursor>> held;
          for (const auto& u : cursor_members(se.e)) {
            auto cur = cursor.find({u, conv});
            held.push_back(cur == cursor.end()
                               ? std::nullopt
                               : std::optional<delivery_cursor>({cur->second, std::nullopt}));
          }
          for (const auto& [u, c] : cursor_changes(se.e, held, 0)) {
            if (c.last)
              continue;
            cursor[{u, conv}] = c.next;
            auto [snt, fresh_s] = sent.try_emplace({u, conv}, se.e.index);
            if (!fresh_s)
              snt->second = std::min(snt->second, se.e.index);
          }
        }
      }
    }
    deliver_ready(conv);
  }

  void deliver_ready(const conv_id& conv) {
    auto& log = logs[conv];
    for (auto& [key, next] : sent) {
      if (key.second != conv)
        continue;
      connection* c = live_session(key.first);
      if (c == nullptr)
        continue;
      for (auto it = log.find(next); it != log.end(); it = log.find(next)) {
        if (it->second.answers.empty())
          break;  // not complete yet
        auto env = make_envelope(it->second.e, it->second.answers, key.first);
        ++next;
        if (!env)
          continue;  // no slot: removed before this entry
        auto f = c->session->seal(router_frame{std::move(*env)});
        if (f)
          write_all(c->fd, *f);
      }
    }
  }

  void redeliver(const std::string& user) {
    std::set<conv_id> cs;
    for (auto& [key, next] : cursor) {
      if (key.first != user)
        continue;
      sent[key] = next;
      cs.insert(key.second);
    }
    for (const auto& c : cs)
      deliver_ready(c);
  }
};

fake_router::fake_router(fake_router_options o) : st_(std::make_unique<state>(o)) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0)
    throw std::runtime_error("fake_router: cannot listen on 127.0.0.1");
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  st_->listen_fd = fd;
  thread_ = std::thread([this] { run(); });
}

fake_router::~fake_router() {
  stop_ = true;
  thread_.join();
  for (auto& c : st_->conns)
    st_->close(*c);
  ::close(st_->listen_fd);
}

config::deployment_file fake_router::deployment() const {
  std::lock_guard<std::mutex> g(st_->mu);
  config::deployment_file d;
  d.router.name = st_->router_id.id();
  d.router.address = config::endpoint{"127.0.0.1", port_};
  d.router.public_key = st_->router_id.lpk();
  d.router.retention = std::chrono::seconds{86400};
  for (const auto& m : st_->ms)
    d.mirrors.push_back(config::peer{m.id, m.lpk});
  return d;
}

void fake_router::drop_connections() {
  std::lock_guard<std::mutex> g(st_->mu);
  st_->drop = true;
}

void fake_router::set_answering(bool on) {
  std::lock_guard<std::mutex> g(st_->mu);
  st_->answering = on;
}

size_t fake_router::hellos() const {
  std::lock_guard<std::mutex> g(st_->mu);
  return st_->hellos;
}

size_t fake_router::connections() const {
  std::lock_guard<std::mutex> g(st_->mu);
  size_t n = 0;
  for (const auto& c : st_->conns)
    n += c->closed ? 0 : 1;
  return n;
}

std::optional<fake_account> fake_router::account(const std::string& id) const {
  std::lock_guard<std::mutex> g(st_->mu);
  auto it = st_->directory.find(id);
  if (it == st_->directory.end())
    return std::nullopt;
  const auto& d = it->second;
  return fake_account{d.pool.size(), d.last_resort ? d.last_resort->id : 0, d.max_prekey_id};
}

void fake_router::take_id(const std::string& id) {
  std::lock_guard<std::mutex> g(st_->mu);
  crypto::deterministic_rng r(99);
  st_->directory[id].lpk = identity::generate(id, r).lpk();
}

void fake_router::take_prekeys(const std::string& id, size_t count) {
  std::lock_guard<std::mutex> g(st_->mu);
  auto& pool = st_->directory[id].pool;
  while (count-- > 0 && !pool.empty())
    pool.pop_front();
}

void fake_router::refuse_submits(const std::string& user, size_t count, protocol::rejection why) {
  std::lock_guard<std::mutex> g(st_->mu);
  st_->refuse_user = user;
  st_->refusals = count;
  st_->refusal = std::move(why);
}

void fake_router::push_history_expired(const std::string& user) {
  std::lock_guard<std::mutex> g(st_->mu);
  st_->expire_for.push_back(user);
}

void fake_router::run() {
  std::vector<uint8_t> buf(64 * 1024);
  while (!stop_) {
    std::vector<pollfd> fds;
    {
      std::lock_guard<std::mutex> g(st_->mu);
      for (const auto& u : st_->expire_for) {
        if (auto* c = st_->live_session(u))
          st_->answer(*c, 0, rejection{rejection_kind::history_expired, 0, "conversation gone"});
      }
      st_->expire_for.clear();
      if (st_->drop) {
        for (auto& c : st_->conns)
          st_->close(*c);
        st_->drop = false;
      }
      std::erase_if(st_->conns, [](const auto& c) { return c->closed; });
      fds.push_back(pollfd{st_->listen_fd, POLLIN, 0});
      for (const auto& c : st_->conns)
        fds.push_back(pollfd{c->fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 20) <= 0)
      continue;
    std::lock_guard<std::mutex> g(st_->mu);
    if (fds[0].revents & POLLIN) {
      int fd = ::accept4(st_->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        auto c = std::make_unique<connection>();
        c->fd = fd;
        c->session = std::make_unique<router_session>(st_->router_id);
        st_->conns.push_back(std::move(c));
      }
    }
    for (size_t k = 1; k < fds.size(); ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
        continue;
      connection* c = nullptr;
      for (auto& x : st_->conns)
        if (x->fd == fds[k].fd && !x->closed)
          c = x.get();
      if (c == nullptr)
        continue;
      ssize_t n = ::recv(c->fd, buf.data(), buf.size(), 0);
      if (n <= 0) {
        st_->close(*c);
        continue;
      }
      st_->handle(*c, c->session->feed(byte_view(buf.data(), static_cast<size_t>(n))));
    }
  }
}

}  // namespace cowpi::testing

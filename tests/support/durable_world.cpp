// SPDX-License-Identifier: Apache-2.0
// The durable in-process deployment: the protocol's router, mirror and client logic with every
// state change persisted through cowpi's stores before it leaves its party.
#include "durable_world.hpp"

#include "cowpi/crypto/primitives.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace cowpi::testing {

using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace): a test harness
namespace fs = std::filesystem;

namespace {

// The harness treats any storage failure as fatal: a test must not continue on a store it
// cannot trust (the crash tests kill the process from outside, never through this).
template <class T>
T must(expected<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "durable_world: %s: %s\n", what, r.error().message().c_str());
    std::abort();
  }
  return std::move(r).value();
}

void must(expected<void> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "durable_world: %s: %s\n", what, r.error().message().c_str());
    std::abort();
  }
}

std::string mirror_name(size_t k) {
  return "mirror-" + std::string(1, static_cast<char>('a' + k));
}

// A mirror's identity secret lives in a file next to its store (the daemon's key file).
identity load_or_make_identity(const fs::path& file, const std::string& id, crypto::rng& r) {
  crypto::secret<32> lsk;
  std::ifstream in(file, std::ios::binary);
  if (in && in.read(reinterpret_cast<char*>(lsk.expose().data()), 32)) {
    return identity::from_secret(id, lsk);
  }
  identity self = identity::generate(id, r);
  const fs::path tmp = file.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    std::abort();
  const auto secret = self.export_secret();
  if (::write(fd, secret.expose().data(), 32) != 32 || ::fsync(fd) != 0)
    std::abort();
  ::close(fd);
  fs::rename(tmp, file);
  return self;
}

upload_prekeys current_upload(const key_store& k) {
  upload_prekeys up;
  for (const auto& [id, slot] : k.prekeys())
    if (!slot.bound)
      up.one_time.push_back(published_key{id, slot.key.pub});
  up.last_resort = k.current_last_resort();
  return up;
}

}  // namespace

std::string conv_hex(const conv_id& c) {
  return to_hex(c);
}

identity durable_world::mirror_identity(const fs::path& dir, size_t k) {
  const std::string id = mirror_name(k);
  crypto::secret<32> lsk;
  std::ifstream in(dir / (id + ".identity"), std::ios::binary);
  if (!in || !in.read(reinterpret_cast<char*>(lsk.expose().data()), 32))
    std::abort();
  return identity::from_secret(id, lsk);
}

durable_world::durable_world(fs::path dir, durable_options o)
    : dir_(std::move(dir)), opts_(o), rng_(o.seed), now_(o.start_time) {
  fs::create_directories(dir_);
  router_ = must(storage::router_store::open(dir_ / "router"), "open router store");
  for (size_t k = 0; k < opts_.mirrors; ++k) {
    const std::string id = mirror_name(k);
    identity self = load_or_make_identity(dir_ / (id + ".identity"), id, rng_);
    auto db = must(
        storage::mirror_store::open(dir_ / id, storage::key_file{dir_ / (id + ".key")}, seal_rng_),
        "open mirror store");
    ms_.push_back(member{id, self.lpk()});
    protocol::mirror m = must(db->load(std::move(self)), "load mirror");
    if (!m.keys().current_last_resort()) {
      (void)m.make_prekeys(64, now_, rng_);
      must(db->persist_keys(m), "persist mirror keys");
    }
    must(router_->register_provider(id, m.self().lpk()), "register provider");
    must(router_->upload_prekeys(id, current_upload(m.keys())), "upload mirror pre-keys");
    mirrors_.emplace_back(std::move(db), std::move(m));
  }
}

durable_world::~durable_world() = default;

void durable_world::event(const std::string& what) {
  if (on_event)
    on_event(what);
}

std::vector<std::string> durable_world::users() const {
  std::vector<std::string> out;
  for (const auto& [id, n] : clients_)
    out.push_back(id);
  return out;
}

void durable_world::add_user(const std::string& id) {
  if (clients_.contains(id))
    return;
  client_node n;
  n.db = must(
      storage::client_store::open(dir_ / ("client-" + id),
                                  storage::key_file{dir_ / ("client-" + id + ".key")}, seal_rng_),
      "open client store");
  if (must(n.db->has_identity(), "read client identity")) {
    n.c = std::make_unique<protocol::client>(must(n.db->load(), "load client"));
  } else {
    n.c = std::make_unique<protocol::client>(identity::generate(id, rng_), ms_);
    (void)n.c->make_prekeys(16, now_, rng_);
    must(n.db->create(*n.c), "create client store");
  }
  auto reg = router_->register_user(id, n.c->self().lpk(), now_);
  if (!reg && reg.error().code != errc::already_exists)
    must(std::move(reg), "register user");
  must(router_->upload_prekeys(id, current_upload(n.c->keys())), "upload pre-keys");
  clients_.emplace(id, std::move(n));
}

router_conv* durable_world::router_conv_for(const conv_id& conv) {
  auto it = convs_.find(conv);
  if (it != convs_.end())
    return it->second.get();
  auto loaded = must(router_->load_conv(conv, ms_, intake_limits{}), "load conversation");
  auto rc = loaded ? std::make_unique<router_conv>(std::move(*loaded))
                   : std::make_unique<router_conv>(conv, ms_, intake_limits{});
  return convs_.emplace(conv, std::move(rc)).first->second.get();
}

void durable_world::recover() {
  // Router: COMMIT again every logged entry some mirror's answer is missing for (§4).
  for (const auto& conv : must(router_->conversations(), "list conversations")) {
    router_conv* rc = router_conv_for(conv);
    std::vector<log_entry> flight;
    for (const auto& [i, e] : rc->in_flight())
      flight.push_back(e);
    for (const auto& e : flight)
      commit_entry(*rc, e);
  }
  for (auto& [id, n] : clients_) {
    for (const auto& [conv, cc] : n.c->convs())
      submit_all(id, n.c->pending(conv));
    for (const auto& [conv, cur] : must(router_->cursors_of(id), "read cursors"))
      sent_upto_[{id, conv}] = cur.next;
  }
  for (const auto& conv : must(router_->conversations(), "list conversations"))
    deliver(conv);
}

void durable_world::persist_client(const std::string& id, const client_changes& ch,
                                   const std::vector<accepted_entry>& accepted) {
  auto& n = clients_.at(id);
  must(n.db->persist(*n.c, ch, accepted), "persist client");
  for (const auto& a : accepted) {
    accepted_[id][a.conv].push_back(a);
    event("accepted " + id + " " + conv_hex(a.conv) + " " + std::to_string(a.index));
  }
}

void durable_world::persist_conv(const std::string& id, const conv_id& conv) {
  client_changes ch;
  ch.convs.insert(conv);
  persist_client(id, ch);
}

void durable_world::fill_keys(const std::string& id, const conv_id& conv) {
  protocol::client& c = client(id);
  auto missing = c.missing_keys(conv);
  if (missing.empty())
    return;
  auto bundles = must(router_->fetch_prekeys(missing, [] { return true; }), "fetch pre-keys");
  (void)c.add_bundles(conv, bundles, missing);
  persist_conv(id, conv);
}

void durable_world::submit_all(const std::string& id, std::vector<outgoing> out) {
  for (auto& o : out)
    net_.push_back(to_router{id, o.aseq, std::move(o.submit)});
}

expected<conv_id> durable_world::create(const std::string& author,
                                        const std::vector<std::string>& others,
                                        protocol::block_mode mode) {
  member_list members;
  std::vector<std::string> owners;
  for (const auto& o : others) {
    auto u = must(router_->find_user(o), "find user");
    if (!u)
      return fail(errc::not_found, "no such user");
    members.push_back(member{o, u->lpk});
    owners.push_back(o);
  }
  for (const auto& m : ms_)
    owners.push_back(m.id);
  auto bundles = must(router_->fetch_prekeys(owners, [] { return true; }), "fetch pre-keys");
  COWPI_TRY(outgoing out, client(author).create(members, bundles, now_, rng_, mode));
  const conv_id conv = out.conv;
  persist_conv(author, conv);
  submit_all(author, {std::move(out)});
  return conv;
}

expected<void> durable_world::send(const std::string& author, const conv_id& conv,
                                   std::string_view text) {
  fill_keys(author, conv);
  COWPI_TRY(outgoing out, client(author).send_message(conv, as_bytes(text), now_, rng_));
  persist_conv(author, conv);
  event("sent " + author + " " + std::string(text));
  submit_all(author, {std::move(out)});
  return {};
}

expected<void> durable_world::update(const std::string& author, const conv_id& conv,
                                     const std::vector<std::string>& adds,
                                     const std::vector<std::string>& removes) {
  member_list a;
  for (const auto& id : adds) {
    auto u = must(router_->find_user(id), "find user");
    if (!u)
      return fail(errc::not_found, "no such user");
    a.push_back(member{id, u->lpk});
  }
  fill_keys(author, conv);
  if (!adds.empty()) {
    auto bundles = must(router_->fetch_prekeys(adds, [] { return true; }), "fetch pre-keys");
    COWPI_TRY_VOID(client(author).add_bundles(conv, bundles));
  }
  COWPI_TRY(outgoing out, client(author).update(conv, a, removes, now_, rng_));
  persist_conv(author, conv);
  submit_all(author, {std::move(out)});
  return {};
}

void durable_world::receipts_due() {
  for (auto& [id, n] : clients_) {
    std::vector<conv_id> convs;
    for (const auto& [conv, cc] : n.c->convs())
      convs.push_back(conv);
    for (const auto& conv : convs) {
      if (!n.c->receipt_due(conv, now_))
        continue;
      fill_keys(id, conv);
      auto out = n.c->send_receipt(conv, now_, rng_);
      if (!out)
        continue;
      persist_conv(id, conv);
      submit_all(id, {std::move(*out)});
    }
  }
}

bool durable_world::step() {
  if (net_.empty())
    return false;
  message m = std::move(net_.front());
  net_.pop_front();
  ++now_;
  std::visit(
      [this](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, to_router>) {
          router_submit(x);
        } else if constexpr (std::is_same_v<T, to_router_ack>) {
          auto r = router_->ack(x.user, x.ack.conv, x.ack.index);
          if (!r && r.error().code != errc::not_found)
            must(std::move(r), "ack");
        } else if constexpr (std::is_same_v<T, to_client_envelope>) {
          client_envelope(x);
        } else {
          client_rejection(x);
        }
      },
      m);
  return true;
}

size_t durable_world::run(size_t max_steps) {
  size_t n = 0;
  while (n < max_steps && step())
    ++n;
  return n;
}

// -- Router --------------------------------------------------------------------------------

void durable_world::router_submit(const to_router& m) {
  const conv_id conv = m.submit.c.conv;
  router_conv& rc = *router_conv_for(conv);
  auto r = rc.intake(m.submit, m.user, now_);
  if (!r) {
    net_.push_back(to_client_rejection{m.user, conv, m.aseq, r.error()});
    return;
  }
  pump(conv);
}

void durable_world::pump(const conv_id& conv) {
  router_conv& rc = *router_conv_for(conv);
  auto lr = [this](const std::string& id) -> std::optional<directory_entry> {
    auto user = must(router_->find_user(id), "read a directory entry");
    if (!user)
      return std::nullopt;
    return directory_entry{user->lpk, must(router_->last_resort(id), "read LAST_RESORT key")};
  };
  for (;;) {
    std::vector<prepare_decision::rejected> rejs;
    auto jobs = rc.ready(lr, rejs);
    for (auto& r : rejs)
      net_.push_back(to_client_rejection{r.author, conv, r.aseq, r.why});
    if (jobs.empty())
      break;
    for (auto& job : jobs) {
      std::optional<prepare_decision> d;
      for (size_t k = 0; k < mirrors_.size() && !d; ++k)
        d = rc.on_prepared(job.job, k, mirrors_[k].m.prepare(job.per_mirror[k], now_), now_);
      if (!d)
        continue;
      for (auto& r : d->rejections)
        net_.push_back(to_client_rejection{r.author, conv, r.aseq, r.why});
      if (!d->ordered)
        continue;
      // docs/design.md §3.4 step 3: the entry and its record are synced before any COMMIT.
      must(router_->append(rc, *d->ordered, now_), "append");
      event("logged " + conv_hex(conv) + " " + std::to_string(d->ordered->index));
      commit_entry(rc, *d->ordered);
    }
  }
  deliver(conv);
}

void durable_world::commit_entry(router_conv& rc, const log_entry& e) {
  const conv_id conv = e.c.conv;
  for (size_t k = 0; k < mirrors_.size(); ++k) {
    mirror_node& mn = mirrors_[k];
    auto out = mn.m.commit(commit_msg{e.index, e.d, e.prepare_for(k)}, *mn.db, now_, rng_);
    // A mirror answers only after its batch is synced (§4).
    if (out.persist)
      must(mn.db->persist_commit(mn.m, conv, out.index, out.d, out.keys_changed), "persist commit");
    auto p = rc.on_commit_answer(e.index, k, out.response);
    if (p.stop_reason) {
      operator_alarms_.push_back(*p.stop_reason);
      must(router_->persist_stop(rc), "persist stop");
    }
    if (p.complete) {
      must(router_->persist_answers(*p.entry, p.answers), "persist answers");
      for (auto& mm : mirrors_)
        if (mm.m.ack(link_ack{conv, *p.complete}))
          must(mm.db->persist_ack(mm.m, conv), "persist ack");
    }
  }
}

void durable_world::deliver(const conv_id& conv) {
  for (auto& [id, n] : clients_) {
    auto cur = must(router_->cursor(id, conv), "read cursor");
    if (!cur)
      continue;
    auto [it, fresh] = sent_upto_.try_emplace({id, conv}, cur->next);
    auto envs = must(router_->envelopes_from(conv, id, it->second, 4096), "read envelopes");
    for (auto& env : envs) {
      it->second = env.index + 1;
      net_.push_back(to_client_envelope{id, std::move(env)});
    }
  }
}

// -- Clients -------------------------------------------------------------------------------

void durable_world::client_envelope(const to_client_envelope& m) {
  auto& n = clients_.at(m.user);
  auto res = n.c->receive(m.env, now_, rng_, n.db.get());
  for (const auto& a : res.alarms)
    alarms_.push_back(a);
  // §3.5 step 5: persist, then acknowledge.
  persist_client(m.user, res.changes, res.accepted);
  for (const auto& a : res.acks)
    net_.push_back(to_router_ack{m.user, a});
  std::vector<outgoing> out = std::move(res.resubmit);
  if (n.c->find(m.env.conv) != nullptr) {
    fill_keys(m.user, m.env.conv);
    auto more = n.c->flush_rebuilds(m.env.conv, now_, rng_);
    if (!more.empty())
      persist_conv(m.user, m.env.conv);
    out.insert(out.end(), std::make_move_iterator(more.begin()),
               std::make_move_iterator(more.end()));
  }
  submit_all(m.user, std::move(out));
}

void durable_world::client_rejection(const to_client_rejection& m) {
  auto& n = clients_.at(m.user);
  fill_keys(m.user, m.conv);
  auto res = n.c->on_rejection(m.conv, m.aseq, m.rej, now_, rng_);
  client_changes ch = res.changes;
  if (n.c->find(m.conv) != nullptr)
    ch.convs.insert(m.conv);
  persist_client(m.user, ch);
  if (m.rej.kind == rejection_kind::unavailable)
    return;
  submit_all(m.user, std::move(res.resubmit));
}

// -- Checks --------------------------------------------------------------------------------

std::vector<std::string> durable_world::check_consistency() {
  std::vector<std::string> bad;
  auto fault = [&](std::string s) { bad.push_back(std::move(s)); };
  std::map<conv_id, std::map<uint64_t, hash32>> router_d;
  for (const auto& conv : must(router_->conversations(), "list conversations")) {
    const uint64_t next = must(router_->next_index(conv), "next index");
    const uint64_t start = must(router_->log_start(conv), "log start");
    std::set<std::pair<std::string, uint64_t>> authored;
    for (uint64_t i = start; i < next; ++i) {
      auto se = must(router_->read_entry(conv, i), "read entry");
      if (!se) {
        fault("router log lacks entry " + std::to_string(i) + " below next");
        continue;
      }
      router_d[conv][i] = se->entry.d;
      if (!authored.emplace(se->entry.c.author, se->entry.c.aseq).second)
        fault("an (author, aseq) ordered twice at " + std::to_string(i));
      if (se->entry.blocks.size() + 1 != se->entry.slots.size())
        fault("entry " + std::to_string(i) + " lacks author blocks");
      if (!se->complete)
        continue;
      if (se->answers.size() != mirrors_.size())
        fault("a complete entry lacks a mirror's blocks");
      for (const auto& a : se->answers)
        if (!a || a->size() != se->entry.slots.size())
          fault("a mirror answer is partial");
      for (size_t k = 0; k < mirrors_.size(); ++k) {
        auto d = mirrors_[k].db->d_at(conv, i);
        if (!d || *d != se->entry.d)
          fault("mirror D differs from the router's at a complete entry");
      }
    }
    auto more = must(router_->read_entry(conv, next), "read entry");
    if (more)
      fault("router log holds an entry at next");
    for (size_t k = 0; k < mirrors_.size(); ++k) {
      const mirror_conv* mc = mirrors_[k].m.find(conv);
      const uint64_t mnext = mc ? mc->st.next : 0;
      if (mnext > next)
        fault("a mirror committed past the router's log");
    }
  }
  for (auto& [id, n] : clients_) {
    for (const auto& [conv, cc] : n.c->convs()) {
      auto tr = must(n.db->transcript(conv), "read transcript");
      std::optional<uint64_t> prev;
      for (const auto& a : tr) {
        if (prev && a.index != *prev + 1)
          fault(id + ": transcript has a gap or a repeat");
        prev = a.index;
        if (auto d = n.db->d_at(conv, a.index); !d || *d != a.d)
          fault(id + ": D history differs");
        auto rd = router_d[conv].find(a.index);
        if (rd != router_d[conv].end() && rd->second != a.d)
          fault(id + ": accepted a D the router did not log");
      }
      if (cc.status == conv_status::active && cc.st.next > 0 && (!prev || *prev + 1 != cc.st.next))
        fault(id + ": transcript does not end just below next");
    }
  }
  return bad;
}

}  // namespace cowpi::testing

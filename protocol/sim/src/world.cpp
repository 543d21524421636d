// SPDX-License-Identifier: Apache-2.0
// The in-process deployment: router logic, mirrors and clients over a queue.
#include "cowpi/sim/world.hpp"

#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/wire.hpp"

#include <algorithm>
#include <utility>

namespace cowpi::sim {

std::optional<hash32> mirror_node::d_at(const conv_id& conv, uint64_t i) const {
  auto c = d.find(conv);
  if (c == d.end())
    return std::nullopt;
  auto x = c->second.find(i);
  if (x == c->second.end())
    return std::nullopt;
  return x->second;
}

namespace {
// History view of a lying mirror's fork branch.
struct branch_history : mirror_history {
  const std::map<conv_id, std::map<uint64_t, hash32>>* d = nullptr;
  std::optional<hash32> d_at(const conv_id& conv, uint64_t i) const override {
    auto c = d->find(conv);
    if (c == d->end())
      return std::nullopt;
    auto x = c->second.find(i);
    if (x == c->second.end())
      return std::nullopt;
    return x->second;
  }
};
}  // namespace

world::world(world_options opts) : opts_(opts), rng_(opts.seed) {
  for (size_t k = 0; k < opts_.mirrors; ++k) {
    std::string id = "mirror-" + std::string(1, static_cast<char>('a' + k));
    auto node =
        std::make_unique<mirror_node>(mirror(identity::generate(id, rng_)), opts_.seed * 1000 + k);
    ms_.push_back(member{id, node->m.self().lpk()});
    auto pk = node->m.make_prekeys(64, now_, node->rng);
    dir_entry d;
    d.lpk = node->m.self().lpk();
    d.pool.assign(pk.one_time.begin(), pk.one_time.end());
    d.last_resort = pk.last_resort;
    directory_[id] = std::move(d);
    mirrors_.push_back(std::move(node));
  }
}

void world::add_user(const std::string& id) {
  client_node n;
  n.c = std::make_unique<client>(identity::generate(id, rng_), ms_, opts_.client_opts);
  auto up = n.c->make_prekeys(16, now_, rng_);
  dir_entry d;
  d.lpk = n.c->self().lpk();
  d.pool.assign(up.one_time.begin(), up.one_time.end());
  d.last_resort = up.last_resort;
  directory_[id] = std::move(d);
  n.persisted = std::make_unique<client>(n.c->clone());
  clients_.emplace(id, std::move(n));
}

void world::publish(const std::string& id, const upload_prekeys& up) {
  dir_entry& d = directory_.at(id);
  d.pool.insert(d.pool.end(), up.one_time.begin(), up.one_time.end());
  if (up.last_resort)
    d.last_resort = up.last_resort;
}

client& world::user(const std::string& id) {
  return *clients_.at(id).c;
}

void world::persist(const std::string& id) {
  auto& n = clients_.at(id);
  n.persisted = std::make_unique<client>(n.c->clone());
}

void world::crash(const std::string& id) {
  auto& n = clients_.at(id);
  n.c = std::make_unique<client>(n.persisted->clone());
  std::erase_if(backing_off_, [&](const auto& b) { return b.first == id; });
  // A restarted client resends its outbox and the router resends from its cursors.
  for (const auto& [conv, cc] : n.c->convs())
    submit_all(id, n.c->pending(conv));
  redeliver(id);
}

std::vector<prekey_bundle> world::fetch(const std::string& requester,
                                        const std::vector<std::string>& owners) {
  std::vector<prekey_bundle> out;
  for (const auto& o : owners) {
    auto it = directory_.find(o);
    if (it == directory_.end())
      continue;
    auto& d = it->second;
    prekey_bundle b;
    b.owner = o;
    b.lpk = d.lpk;
    if (!d.pool.empty() && policy_.take(budgets_[requester], now_)) {
      b.key = key_ref{key_kind::prekey, d.pool.front().id, d.pool.front().pub};
      d.pool.pop_front();
    } else if (d.last_resort) {
      b.key = key_ref{key_kind::last_resort, d.last_resort->id, d.last_resort->pub};
    } else {
      continue;
    }
    if (dir_intercept_)
      dir_intercept_(requester, b);
    out.push_back(b);
  }
  return out;
}

std::optional<directory_entry> world::directory_of(const std::string& id) const {
  auto it = directory_.find(id);
  if (it == directory_.end())
    return std::nullopt;
  return directory_entry{it->second.lpk, it->second.last_resort};
}

void world::fill_keys(const std::string& id, const conv_id& conv) {
  auto& c = user(id);
  auto missing = c.missing_keys(conv);
  if (missing.empty())
    return;
  auto bundles = fetch(id, missing);
  (void)c.add_bundles(conv, bundles, missing);
}

expected<outgoing> world::keyed(const std::string& id, const conv_id& conv,
                                const std::function<expected<outgoing>()>& op) {
  fill_keys(id, conv);
  auto out = op();
  if (!out && out.error().code == errc::unknown_key) {
    // A key failed when used (§2): the client forgot it; fetch again and retry once.
    fill_keys(id, conv);
    out = op();
  }
  return out;
}

void world::submit_all(const std::string& id, std::vector<outgoing> out) {
  for (auto& o : out)
    net_.push_back(to_router{id, o.aseq, std::move(o.submit)});
}

expected<conv_id> world::create(const std::string& author, const std::vector<std::string>& others,
                                protocol::block_mode mode) {
  member_list members;
  std::vector<std::string> owners;
  for (const auto& o : others) {
    members.push_back(member{o, directory_.at(o).lpk});
    owners.push_back(o);
  }
  for (const auto& m : ms_)
    owners.push_back(m.id);
  auto bundles = fetch(author, owners);
  COWPI_TRY(outgoing out, user(author).create(members, bundles, now_, rng_, mode));
  persist(author);
  conv_id conv = out.conv;
  submit_all(author, {std::move(out)});
  return conv;
}

expected<void> world::send(const std::string& author, const conv_id& conv, std::string_view text) {
  COWPI_TRY(outgoing out, keyed(author, conv, [&] {
              return user(author).send_message(conv, as_bytes(text), now_, rng_);
            }));
  persist(author);
  submit_all(author, {std::move(out)});
  return {};
}

expected<void> world::receipt(const std::string& author, const conv_id& conv) {
  COWPI_TRY(outgoing out,
            keyed(author, conv, [&] { return user(author).send_receipt(conv, now_, rng_); }));
  persist(author);
  submit_all(author, {std::move(out)});
  return {};
}

expected<void> world::update(const std::string& author, const conv_id& conv,
                             const std::vector<std::string>& adds,
                             const std::vector<std::string>& removes) {
  member_list a;
  for (const auto& id : adds)
    a.push_back(member{id, directory_.at(id).lpk});
  fill_keys(author, conv);
  if (!adds.empty())
    COWPI_TRY_VOID(user(author).add_bundles(conv, fetch(author, adds)));
  COWPI_TRY(outgoing out,
            keyed(author, conv, [&] { return user(author).update(conv, a, removes, now_, rng_); }));
  persist(author);
  submit_all(author, {std::move(out)});
  return {};
}

void world::receipts_due() {
  for (auto& [id, n] : clients_) {
    if (!n.online)
      continue;
    std::vector<conv_id> convs;
    for (const auto& [conv, cc] : n.c->convs())
      convs.push_back(conv);
    for (const auto& conv : convs)
      if (n.c->receipt_due(conv, now_))
        (void)receipt(id, conv);
  }
}

void world::set_online(const std::string& id, bool online) {
  auto& n = clients_.at(id);
  const bool was = n.online;
  n.online = online;
  if (online && !was) {
    std::erase_if(backing_off_, [&](const auto& b) { return b.first == id; });
    for (const auto& [conv, cc] : n.c->convs())
      submit_all(id, n.c->pending(conv));
    redeliver(id);
  }
}

router_conv& world::router(const conv_id& conv) {
  auto it = convs_.find(conv);
  if (it == convs_.end())
    it = convs_.emplace(conv, std::make_unique<router_conv>(conv, ms_, opts_.limits)).first;
  return *it->second;
}

bool world::step() {
  if (net_.empty())
    return false;
  size_t k = 0;
  if (opts_.shuffle) {
    uint8_t b[4];
    rng_.fill(b);
    k = (static_cast<size_t>(b[0]) << 8 | b[1]) % net_.size();
  }
  in_flight m = std::move(net_[k]);
  net_.erase(net_.begin() + static_cast<std::ptrdiff_t>(k));
  if (intercept_ && !intercept_(m))
    return true;
  std::visit(
      [this](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, to_router>) {
          router_submit(x);
        } else if constexpr (std::is_same_v<T, to_router_ack>) {
          router_ack(x);
        } else if constexpr (std::is_same_v<T, to_client_envelope>) {
          client_envelope(x);
        } else {
          client_rejection(x);
        }
      },
      m);
  return true;
}

size_t world::run(size_t max_steps) {
  size_t n = 0;
  while (n < max_steps && step())
    ++n;
  return n;
}

// -- Router ------------------------------------------------------------------

namespace {
// A SUBMIT as a router reads it off the wire: in chain mode its slots arrive without recipient
// ids (docs/wire.md "The names-free SUBMIT") and the router names them. One the codec refuses (a
// test's hand-made slot) goes in as it is.
submit_msg as_received(const submit_msg& s) {
  if (s.c.version != protocol_version_chain)
    return s;
  auto d = wire::decode_client_frame(wire::encode(client_frame{0, s}));
  if (!d)
    return s;
  auto* got = std::get_if<submit_msg>(&d->body);
  return got != nullptr ? std::move(*got) : s;
}
}  // namespace

void world::router_submit(const to_router& m) {
  const conv_id conv = m.submit.c.conv;
  auto r = router(conv).intake(as_received(m.submit), m.user, now_);
  if (!r) {
    net_.push_back(to_client_rejection{m.user, conv, m.aseq, r.error()});
    return;
  }
  pump(conv);
}

void world::pump(const conv_id& conv) {
  router_conv& rc = router(conv);
  auto lr = [this](const std::string& id) {
    return router_dir_override_ ? router_dir_override_(id) : directory_of(id);
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
      for (size_t k = 0; k < mirrors_.size() && !d; ++k) {
        mirror_node& mn = *mirrors_[k];
        if (mn.down) {
          d = rc.on_prepare_timeout(job.job);
          break;
        }
        d = rc.on_prepared(job.job, k, mn.m.prepare(job.per_mirror[k], now_), now_);
      }
      if (!d)
        continue;
      for (auto& r : d->rejections)
        net_.push_back(to_client_rejection{r.author, conv, r.aseq, r.why});
      if (!d->ordered)
        continue;
      const log_entry& e = *d->ordered;
      logs_[conv][e.index] = stored_entry{e, {}};
      for (size_t k = 0; k < mirrors_.size(); ++k) {
        mirror_node& mn = *mirrors_[k];
        auto out = mn.m.commit(commit_msg{e.index, e.d, e.prepare_for(k)}, mn, now_, mn.rng);
        if (out.persist)
          mn.d[conv][out.index] = out.d;
        auto p = rc.on_commit_answer(e.index, k, out.response);
        if (p.stop_reason)
          operator_alarms_.push_back(*p.stop_reason);
        if (p.complete) {
          auto& se = logs_[conv][*p.complete];
          se.answers = std::move(p.answers);
          for (auto& mm : mirrors_)
            (void)mm->m.ack(link_ack{conv, *p.complete});
          apply_cursor_changes(conv, se.e);
        }
      }
    }
  }
  deliver_ready(conv);
}

void world::apply_cursor_changes(const conv_id& conv, const log_entry& e) {
  // The router's rule (protocol::cursor_changes); this world never collects its log, and keeps
  // no slot bound for a removed member (entries without its slot are skipped anyway).
  std::vector<std::optional<delivery_cursor>> now;
  for (const auto& u : cursor_members(e)) {
    auto c = cursor_.find({u, conv});
    now.push_back(c == cursor_.end() ? std::nullopt
                                     : std::optional<delivery_cursor>({c->second, std::nullopt}));
  }
  for (const auto& [u, c] : cursor_changes(e, now, 0)) {
    if (c.last)
      continue;
    cursor_[{u, conv}] = c.next;
    auto [s, fresh] = sent_upto_.try_emplace({u, conv}, e.index);
    if (!fresh)
      s->second = std::min(s->second, e.index);
  }
}

void world::deliver_ready(const conv_id& conv) {
  auto& log = logs_[conv];
  for (auto& [key, sent] : sent_upto_) {
    if (key.second != conv)
      continue;
    const std::string& u = key.first;
    auto cn = clients_.find(u);
    if (cn == clients_.end() || !cn->second.online)
      continue;
    for (auto it = log.find(sent); it != log.end(); it = log.find(sent)) {
      if (it->second.answers.empty())
        break;  // not yet complete
      auto env = make_envelope(it->second.e, it->second.answers, u);
      ++sent;
      if (!env)
        continue;  // no slot: removed before this entry
      net_.push_back(to_client_envelope{u, std::move(*env)});
    }
  }
}

void world::redeliver(const std::string& member) {
  std::set<conv_id> convs;
  for (auto& [key, next] : cursor_) {
    if (key.first != member)
      continue;
    sent_upto_[key] = next;
    convs.insert(key.second);
  }
  for (const auto& c : convs)
    deliver_ready(c);
}

void world::router_ack(const to_router_ack& m) {
  auto& c = cursor_[{m.user, m.ack.conv}];
  c = std::max(c, m.ack.index + 1);
}

void world::branch_mirrors(int branch) {
  for (auto& mn : mirrors_) {
    if (!mn->lies)
      continue;
    mn->branches[branch] = std::make_unique<mirror>(mn->m.clone());
    mn->branches[branch]->set_lying_for_test(true);
    mn->branch_d[branch] = mn->d;
  }
}

mirror_answers world::commit_on_mirrors(const log_entry& e, int branch) {
  mirror_answers out(mirrors_.size());
  const conv_id conv = e.c.conv;
  for (size_t k = 0; k < mirrors_.size(); ++k) {
    mirror_node& mn = *mirrors_[k];
    commit_msg cm{e.index, e.d, e.prepare_for(k)};
    commit_outcome o;
    if (mn.lies) {
      branch_history h;
      h.d = &mn.branch_d[branch];
      o = mn.branches.at(branch)->commit(cm, h, now_, mn.rng);
      if (o.persist)
        mn.branch_d[branch][conv][o.index] = o.d;
    } else {
      o = mn.m.commit(cm, mn, now_, mn.rng);
      // An honest mirror that commits here keeps D_i like any other commit.
      if (o.persist)
        mn.d[conv][o.index] = o.d;
    }
    if (const auto* a = std::get_if<answer>(&o.response))
      out[k] = a->mirror_blocks;
  }
  return out;
}

std::optional<world::stored_entry> world::fork_order(router_conv snapshot, const to_router& m,
                                                     int branch) {
  if (!snapshot.intake(as_received(m.submit), m.user, now_))
    return std::nullopt;
  std::vector<prepare_decision::rejected> rejs;
  auto jobs = snapshot.ready([this](const std::string& id) { return directory_of(id); }, rejs);
  if (jobs.empty())
    return std::nullopt;
  const auto& job = jobs.front();
  std::optional<prepare_decision> d;
  for (size_t k = 0; k < mirrors_.size() && !d; ++k) {
    mirror_node& mn = *mirrors_[k];
    mirror& target = mn.lies ? *mn.branches.at(branch) : mn.m;
    auto r = target.prepare(job.per_mirror[k], now_);
    // An honest mirror would PREPARE it too (PREPARE fixes no index); the
    // lie shows at COMMIT.
    d = snapshot.on_prepared(job.job, k, r, now_);
  }
  if (!d || !d->ordered)
    return std::nullopt;
  stored_entry se{*d->ordered, commit_on_mirrors(*d->ordered, branch)};
  return se;
}

void world::push_envelope(const std::string& member, const stored_entry& se) {
  stored_entry forged = se;
  for (auto& a : forged.answers) {
    if (a)
      continue;
    // No honest mirror answered: forge plausible-looking blocks.
    std::vector<slot_block> fake;
    fake.reserve(se.e.slots.size());
    for (size_t k = 0; k < se.e.slots.size(); ++k) {
      block b;
      rng_.fill(b.x);
      b.ref = key_ref{key_kind::ratchet, 1, {}};
      rng_.fill(b.nonce);
      rng_.fill(b.ct);
      fake.emplace_back(b);
    }
    a = std::move(fake);
  }
  auto env = make_envelope(forged.e, forged.answers, member);
  if (env)
    net_.push_back(to_client_envelope{member, std::move(*env)});
}

// -- Clients -----------------------------------------------------------------

void world::client_envelope(const to_client_envelope& m) {
  auto& n = clients_.at(m.user);
  if (!n.online) {
    sent_upto_[{m.user, m.env.conv}] =
        std::min(sent_upto_[{m.user, m.env.conv}], cursor_[{m.user, m.env.conv}]);
    return;
  }
  auto res = n.c->receive(m.env, now_, rng_, nullptr);
  for (auto& a : res.accepted)
    n.transcript[a.conv].push_back(a);
  for (auto& a : res.alarms)
    n.alarms.push_back(a);
  persist(m.user);
  for (auto& a : res.acks)
    net_.push_back(to_router_ack{m.user, a});
  if (res.recreated)
    n.transcript.erase(res.recreated->first);
  std::vector<outgoing> out = std::move(res.resubmit);
  if (n.c->find(m.env.conv) != nullptr) {
    fill_keys(m.user, m.env.conv);
    auto more = n.c->flush_rebuilds(m.env.conv, now_, rng_);
    out.insert(out.end(), more.begin(), more.end());
    persist(m.user);
  }
  submit_all(m.user, std::move(out));
}

void world::client_rejection(const to_client_rejection& m) {
  auto& n = clients_.at(m.user);
  if (!n.online)
    return;
  fill_keys(m.user, m.conv);
  auto res = n.c->on_rejection(m.conv, m.aseq, m.rej, now_, rng_);
  if (res.dropped)
    n.dropped.push_back(*res.dropped);
  persist(m.user);
  if (m.rej.kind == rejection_kind::unavailable) {
    backing_off_.insert({m.user, m.conv});
    return;  // retried after the backoff or on reconnect
  }
  if (m.rej.kind == rejection_kind::aseq_gap && backing_off_.contains({m.user, m.conv}))
    return;  // behind a message that waits for its backoff: goes out with it
  submit_all(m.user, std::move(res.resubmit));
}

void world::advance_time(uint64_t seconds) {
  now_ += seconds;
  for (const auto& [id, conv] : std::exchange(backing_off_, {})) {
    auto& n = clients_.at(id);
    if (n.online && n.c->find(conv) != nullptr)
      submit_all(id, n.c->pending(conv));
  }
}

const std::vector<accepted_entry>& world::transcript(const std::string& id, const conv_id& conv) {
  return clients_.at(id).transcript[conv];
}

std::map<std::string, std::vector<alarm>> world::alarms() const {
  std::map<std::string, std::vector<alarm>> out;
  for (const auto& [id, n] : clients_)
    if (!n.alarms.empty())
      out[id] = n.alarms;
  return out;
}

}  // namespace cowpi::sim

// SPDX-License-Identifier: Apache-2.0
// The simulation driver: random or scripted actions over the in-process world, with every
// invariant of docs/design.md §8 checked after each step and liveness checked at the end.
#include "sim_driver.hpp"

#include "cowpi/protocol/channel.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"

#include <algorithm>
#include <sstream>
#include <type_traits>
#include <variant>

namespace cowpi::sim {

namespace {

constexpr const char* user_names[] = {"alice", "bob",   "carol", "dave",
                                      "erin",  "frank", "grace", "heidi"};
constexpr size_t max_users = sizeof(user_names) / sizeof(user_names[0]);
constexpr size_t fs_retired_kept = 32;

std::string text_of(const bytes& b) {
  return std::string(b.begin(), b.end());
}

bool in_sorted(const std::vector<std::string>& v, const std::string& id) {
  return std::binary_search(v.begin(), v.end(), id);
}

template <class Container>
void flip(Container& c, uint32_t where) {
  if (c.empty())
    return;
  c[where % c.size()] ^= static_cast<uint8_t>(1u << ((where / c.size()) % 8));
}

// A slot's ciphertext, whatever its kind (§4.3 block, DH step, chain block).
void flip_ct(slot_block& s, uint32_t where) {
  if (auto* b = std::get_if<block>(&s))
    flip(b->ct, where);
  else if (auto* d = std::get_if<dh_step>(&s))
    flip(d->b.ct, where);
  else
    flip(std::get<chain_block>(s).ct, where);
}

// Something other than the ciphertext: X_S or the nonce of a block or DH step, a chain block's
// counter.
void flip_header(slot_block& s, uint32_t where) {
  if (block* b = block_of(s)) {
    if (where % 2 != 0)
      flip(b->x, where);
    else
      flip(b->nonce, where);
  } else {
    std::get<chain_block>(s).n += 1 + where % 3;
  }
}

// The key a block names, or a chain block's epoch.
void bump_ref(slot_block& s) {
  if (block* b = block_of(s))
    b->ref.id += 1;
  else
    std::get<chain_block>(s).epoch += 1;
}

std::string short_hex(const hash32& h) {
  return to_hex(byte_view(h.data(), 4));
}

// A long-term key no DH may use: u = 1 (order 4) or the all-zero point.
public_key low_order_key(bool order4) {
  public_key k{};
  if (order4)
    k[0] = 1;
  return k;
}

}  // namespace

const char* to_string(hostile_move m) noexcept {
  switch (m) {
    case hostile_move::low_order_setup:
      return "low-order SETUP";
    case hostile_move::low_order_update:
      return "low-order UPDATE";
    case hostile_move::bad_attachment:
      return "bad LAST_RESORT attachment";
    case hostile_move::wrong_key:
      return "wrong-key UPDATE";
    case hostile_move::void_flood:
      return "VOID flood";
    case hostile_move::used_prekey:
      return "used PREKEY";
    case hostile_move::low_order_ratchet:
      return "low-order RATCHET";
    case hostile_move::readd_halted:
      return "re-added halted member";
    case hostile_move::count:
      break;
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Action sources and configurations.

uint32_t prng_source::pick(uint32_t bound) {
  state_ += 0x9e3779b97f4a7c15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return bound <= 1 ? 0 : static_cast<uint32_t>(z % bound);
}

uint32_t byte_source::pick(uint32_t bound) {
  if (bound <= 1 || exhausted())
    return 0;
  uint32_t v = data_[pos_++];
  if (bound > 256 && !exhausted())
    v = v << 8 | data_[pos_++];
  return v % bound;
}

std::string sim_config::describe() const {
  std::ostringstream o;
  o << "seed=" << seed << " users=" << users << " mirrors=" << mirrors << " lying=" << lying
    << " actions=" << max_actions << " adversary=" << adversary
    << " dishonest_members=" << dishonest_members << " mode=" << to_string(mode);
  return o.str();
}

sim_config config_for_seed(uint64_t seed) {
  prng_source src(seed * 0x2545f4914f6cdd1dULL + 7);
  sim_config c = config_from(src);
  c.seed = seed;
  // Both block modes, alternating by seed.
  c.mode = seed % 2 == 0 ? protocol::block_mode::chain : protocol::block_mode::pk;
  return c;
}

sim_config config_from(action_source& src) {
  sim_config c;
  c.seed = src.pick(1u << 16);
  c.users = 4 + src.pick(5);
  c.mirrors = 1 + src.pick(3);
  // Most runs keep an honest mirror; about one in eight has every mirror lying.
  const uint32_t lies = src.pick(8);
  if (lies == 0) {
    c.lying = c.mirrors;
  } else if (lies <= 3 && c.mirrors > 1) {
    c.lying = 1 + src.pick(static_cast<uint32_t>(c.mirrors - 1));
  } else {
    c.lying = 0;
  }
  // One run in eight is honest throughout: then no alarm may fire at all.
  c.adversary = src.pick(8) != 0;
  c.dishonest_members = src.pick(4) != 0;
  c.max_actions = 100 + src.pick(110);
  c.mode = c.seed % 2 == 0 ? protocol::block_mode::chain : protocol::block_mode::pk;
  return c;
}

std::string violation::to_string() const {
  std::ostringstream o;
  o << "invariant violated: " << invariant << "\n  " << detail << "\n  at step " << step
    << "\n  last actions:\n"
    << trace;
  return o.str();
}

// ---------------------------------------------------------------------------
// Set-up, bookkeeping.

namespace {
world_options options_for(const sim_config& cfg) {
  world_options o;
  o.seed = cfg.seed;
  o.mirrors = cfg.mirrors;
  o.shuffle = false;  // the driver reorders itself, so that each delivery is known in advance
  return o;
}
}  // namespace

sim_driver::sim_driver(const sim_config& cfg) : cfg_(cfg), w_(options_for(cfg)) {
  cfg_.users = std::clamp<size_t>(cfg_.users, 2, max_users);
  cfg_.lying = std::min(cfg_.lying, cfg_.mirrors);
  for (size_t k = 0; k < cfg_.mirrors; ++k)
    w_.mirror_at(k).lies = lying_mirror(k);
  for (size_t k = 0; k < cfg_.users; ++k) {
    users_.emplace_back(user_names[k]);
    w_.add_user(users_.back());
    views_[users_.back()];
  }
  // The directory lies only when `plant_used_prekey` armed it.
  w_.set_directory_interceptor(
      [this](const std::string& requester, prekey_bundle& b) { on_fetch(requester, b); });
}

void sim_driver::note(std::string what) {
  trace_.push_back("    #" + std::to_string(step_) + " " + std::move(what));
  while (trace_.size() > cfg_.trace_lines)
    trace_.pop_front();
}

std::string sim_driver::trace() const {
  std::string out;
  for (const auto& t : trace_)
    out += t + "\n";
  return out;
}

void sim_driver::fail(const std::string& invariant, const std::string& detail) {
  if (failed_)
    return;
  // The alarms raised so far belong to the evidence.
  std::string alarms;
  for (const auto& u : users_)
    for (const auto& a : w_.node(u).alarms)
      alarms += "    " + u + ": " + std::string(to_string(a.kind)) + " at " + name(a.conv) + "#"
                + std::to_string(a.index) + " against " + a.party + ": " + a.evidence
                + (a.halted ? " (halted)" : "") + "\n";
  failed_ = violation{invariant, detail + " [" + cfg_.describe() + "]", step_,
                      trace() + (alarms.empty() ? "" : "  alarms:\n" + alarms)};
}

std::string sim_driver::name(const conv_id& conv) const {
  for (size_t k = 0; k < convs_.size(); ++k)
    if (convs_[k] == conv)
      return "c" + std::to_string(k);
  return "c?" + to_hex(byte_view(conv.data(), 3));
}

bool sim_driver::is_active_member(const std::string& u, const conv_id& conv) {
  const client_conv* cc = w_.user(u).find(conv);
  return cc != nullptr && cc->status == conv_status::active && cc->st.is_member(u);
}

bool sim_driver::diverged(const conv_id& conv) {
  if (!forked_.contains(conv))
    return false;
  const conv_state* st = w_.router(conv).state();
  auto& log = w_.log(conv);
  for (size_t k = 0; k < cfg_.mirrors; ++k) {
    if (lying_mirror(k))
      continue;
    const mirror_conv* mc = w_.mirror_at(k).m.find(conv);
    if (mc == nullptr)
      continue;
    if (st == nullptr || mc->st.next > st->next)
      return true;
    auto dm = w_.mirror_at(k).d.find(conv);
    if (dm == w_.mirror_at(k).d.end())
      continue;
    for (const auto& [i, d] : dm->second) {
      auto it = log.find(i);
      if (it != log.end() && it->second.e.d != d)
        return true;
    }
  }
  return false;
}

bool sim_driver::forked_user(const std::string& u, const conv_id& conv) {
  if (!forked_.contains(conv))
    return false;
  auto& log = w_.log(conv);
  for (const auto& [i, d] : views_[u].convs[conv].d) {
    auto it = log.find(i);
    if (it == log.end() || it->second.e.d != d)
      return true;
  }
  return false;
}

bool sim_driver::has_alarm_in(const std::string& u, const conv_id& conv) {
  const auto& al = w_.node(u).alarms;
  return std::any_of(al.begin(), al.end(), [&](const alarm& a) { return a.conv == conv; });
}

std::vector<std::string> sim_driver::members_of(const conv_id& conv) {
  std::vector<std::string> out;
  const conv_state* st = w_.router(conv).state();
  if (st == nullptr)
    return out;
  for (const auto& m : st->members)
    out.push_back(m.id);
  return out;
}

void sim_driver::clear_hooks(const std::string& u) {
  w_.user(u).set_hooks_for_test({});
  w_.node(u).persisted->set_hooks_for_test({});
}

// ---------------------------------------------------------------------------
// Honest user actions.

std::optional<conv_id> sim_driver::do_create(const std::string& author,
                                             const std::vector<std::string>& others) {
  auto conv = w_.create(author, others, cfg_.mode);
  if (!conv)
    return std::nullopt;
  convs_.push_back(*conv);
  std::string who;
  for (const auto& o : others)
    who += " " + o;
  note(author + " creates " + name(*conv) + " with" + who);
  return *conv;
}

std::optional<conv_id> sim_driver::create(const std::string& author,
                                          const std::vector<std::string>& others) {
  if (failed_)
    return std::nullopt;
  ++step_;
  auto conv = do_create(author, others);
  step_checks(&author);
  return conv;
}

std::optional<std::string> sim_driver::do_send(const std::string& author, const conv_id& conv) {
  std::string text = "m" + std::to_string(++text_counter_) + "/" + author;
  const uint32_t removals = views_[author].convs[conv].removals;
  if (auto sent = w_.send(author, conv, text); !sent) {
    // A peer's unusable key is replaced by another, an unreachable member gets a dead block:
    // nothing a peer, the directory or the network does can keep an active member silent.
    if (is_active_member(author, conv))
      fail("an active member can always send",
           author + "'s MESSAGE in " + name(conv) + " failed: " + sent.error().message());
    return std::nullopt;
  }
  messages_[text] = message_info{author, conv, removals, false};
  ++stats_.messages_sent;
  note(author + " sends \"" + text + "\" in " + name(conv));
  return text;
}

std::optional<std::string> sim_driver::send(const std::string& author, const conv_id& conv) {
  if (failed_)
    return std::nullopt;
  ++step_;
  auto t = do_send(author, conv);
  step_checks(&author);
  return t;
}

bool sim_driver::receipt(const std::string& author, const conv_id& conv) {
  if (failed_)
    return false;
  ++step_;
  const bool active = is_active_member(author, conv);
  auto sent = w_.receipt(author, conv);
  const bool ok = sent.has_value();
  if (ok)
    note(author + " sends a RECEIPT in " + name(conv));
  else if (active)
    fail("an active member can always send",
         author + "'s RECEIPT in " + name(conv) + " failed: " + sent.error().message());
  step_checks(&author);
  return ok;
}

void sim_driver::receipts_due() {
  for (const auto& u : users_) {
    if (!w_.node(u).online)
      continue;
    for (const auto& conv : convs_)
      if (w_.user(u).receipt_due(conv, w_.now()))
        receipt(u, conv);
  }
}

bool sim_driver::update(const std::string& author, const conv_id& conv,
                        const std::vector<std::string>& adds,
                        const std::vector<std::string>& removes) {
  if (failed_)
    return false;
  ++step_;
  const bool ok = w_.update(author, conv, adds, removes).has_value();
  if (ok) {
    std::string ops;
    for (const auto& a : adds)
      ops += " +" + a;
    for (const auto& r : removes)
      ops += " -" + r;
    note(author + " UPDATE" + ops + " in " + name(conv));
    ++stats_.updates;
  }
  step_checks(&author);
  return ok;
}

void sim_driver::set_online(const std::string& user, bool online) {
  if (failed_)
    return;
  ++step_;
  note(user + (online ? " goes online" : " goes offline"));
  w_.set_online(user, online);
  step_checks(&user);
}

void sim_driver::reconnect(const std::string& user) {
  if (failed_)
    return;
  ++step_;
  note(user + " reconnects");
  // The old connection's frames to the client die with it (what the client sent has reached
  // the router or not); the router resends from the client's cursor.
  auto& net = w_.network();
  std::erase_if(net, [&](const in_flight& m) {
    if (const auto* e = std::get_if<to_client_envelope>(&m))
      return e->user == user;
    if (const auto* r = std::get_if<to_client_rejection>(&m))
      return r->user == user;
    return false;
  });
  w_.set_online(user, false);
  w_.set_online(user, true);
  step_checks(&user);
}

void sim_driver::crash(const std::string& user) {
  if (failed_)
    return;
  ++step_;
  ++stats_.crashes;
  note(user + " crashes and restarts from its persisted state");
  w_.crash(user);
  step_checks(&user);
  // A restored client must not have brought a retired key back.
  check_fs(user, true);
}

void sim_driver::advance_time(uint64_t seconds) {
  if (failed_)
    return;
  ++step_;
  note("time +" + std::to_string(seconds) + " s");
  w_.advance_time(seconds);
}

// ---------------------------------------------------------------------------
// Dishonest members.

bool sim_driver::cheat_send(const std::string& author, const conv_id& conv, cheat how,
                            const std::string& victim) {
  if (failed_)
    return false;
  ++step_;
  client_test_hooks h;
  switch (how) {
    case cheat::seed:
      h.on_seed = [victim](const std::string& r, crypto::secret<32>& s) {
        if (r == victim)
          s.expose()[0] ^= 0x5a;
      };
      dishonest_.insert({conv, author, victim});
      break;
    case cheat::block:
      h.on_block = [victim](const std::string& r, slot_block& b) {
        if (r == victim)
          ciphertext_of(b)[5] ^= 0x20;
      };
      dishonest_.insert({conv, author, victim});
      break;
    case cheat::amb:
      h.on_amb = [victim](const std::string& o, slot_block& b) {
        if (o == victim)
          ciphertext_of(b)[7] ^= 0x01;
      };
      wedgers_.insert({conv, author});
      break;
    case cheat::parent_hash:
      h.on_common = [](common& c) { c.parent_hash[3] ^= 0x80; };
      wedgers_.insert({conv, author});
      break;
  }
  w_.user(author).set_hooks_for_test(std::move(h));
  note(author + " cheats (" + std::to_string(static_cast<int>(how)) + " against " + victim + ")");
  auto t = do_send(author, conv);
  clear_hooks(author);
  step_checks(&author);
  return t.has_value();
}

bool sim_driver::cheat_update(const std::string& author, const conv_id& conv,
                              const std::vector<std::string>& adds,
                              const std::vector<std::string>& removes, const std::string& victim) {
  if (failed_)
    return false;
  client_test_hooks h;
  h.on_block = [victim](const std::string& r, slot_block& b) {
    if (r == victim)
      ciphertext_of(b)[9] ^= 0x04;
  };
  dishonest_.insert({conv, author, victim});
  w_.user(author).set_hooks_for_test(std::move(h));
  note(author + " equivocates its next UPDATE against " + victim);
  const bool ok = update(author, conv, adds, removes);
  clear_hooks(author);
  return ok;
}

std::optional<conv_id> sim_driver::cheat_create(const std::string& author,
                                                const std::vector<std::string>& others,
                                                const std::string& victim) {
  if (failed_)
    return std::nullopt;
  ++step_;
  client_test_hooks h;
  h.on_block = [victim](const std::string& r, slot_block& b) {
    if (r == victim)
      ciphertext_of(b)[11] ^= 0x10;
  };
  w_.user(author).set_hooks_for_test(std::move(h));
  note(author + " equivocates its SETUP against " + victim);
  auto conv = do_create(author, others);
  clear_hooks(author);
  if (conv)
    dishonest_.insert({*conv, author, victim});
  step_checks(&author);
  return conv;
}

// ---------------------------------------------------------------------------
// Hostile members, a lying router and a lying directory.

submit_msg sim_driver::hand_made(const common& c, const conv_state* st) {
  submit_msg s;
  std::vector<block_digest> digests;
  for (const auto& r : recipients(st, c)) {
    // What a member puts in its blocks is its own business: random bytes (of the
    // conversation's mode).
    block b;
    w_.rng().fill(b.x);
    b.ref = key_ref{key_kind::ratchet, 1, {}};
    w_.rng().fill(b.nonce);
    w_.rng().fill(b.ct);
    const slot_block sb =
        mode_of_version(c.version) == block_mode::chain ? slot_block{dh_step{1, b}} : slot_block{b};
    digests.push_back(block_digest{r, block_hash(sb)});
    s.blocks.push_back(recipient_block{r, sb});
  }
  const auto h_c = hash_common(c);
  const hash32 root = blocks_root(digests);
  // Valid author->mirror blocks, so that the mirrors authenticate the author and judge the
  // rest on its merits.
  const identity& self = w_.user(c.author).self();
  for (size_t k = 0; k < w_.ms().size(); ++k) {
    const member& o = w_.ms()[k];
    slot_block amb = dead_slot(mode_of_version(c.version), w_.rng());
    if (const auto lr = w_.mirror_at(k).m.keys().current_last_resort(); lr && h_c) {
      channel ch;
      uint64_t counter = 0;
      const send_target t{key_ref{key_kind::last_resort, lr->id, lr->pub}, lr->pub};
      const bytes ad = ad_amb(*h_c, root, c.author, o.id);
      if (mode_of_version(c.version) == block_mode::chain) {
        if (auto b = send_chain_on_channel(self, ch, counter, c.conv, o.id, o.lpk, t,
                                           crypto::secret<32>{}, ad, c.aseq, w_.now(), w_.rng(),
                                           /*defer=*/false))
          amb = std::move(*b);
      } else if (auto b = send_on_channel(self, ch, counter, c.conv, o.id, o.lpk, t,
                                          crypto::secret<32>{}, ad, w_.now(), w_.rng())) {
        amb = *b;
      }
    }
    s.ambs.push_back(std::move(amb));
  }
  s.c = c;
  return s;
}

bool sim_driver::low_order_member(const std::string& author, const std::optional<conv_id>& conv,
                                  const std::vector<std::string>& others, const std::string& named,
                                  bool order4) {
  if (failed_)
    return false;
  common c;
  c.author = author;
  const conv_state* st = nullptr;
  if (conv) {
    router_conv& rc = w_.router(*conv);
    st = rc.state();
    // The router's view decides what a valid UPDATE is (the author's own may lag behind).
    if (st == nullptr || rc.stopped() || rc.pending() != 0 || !st->is_member(author)
        || st->is_member(named) || find_member(st->ms, named) != nullptr)
      return false;
    c.conv = *conv;
    c.version = st->version;
    c.type = msg_type::update;
    auto a = st->aseq_last.find(author);
    c.aseq = (a == st->aseq_last.end() ? 0 : a->second.value) + 1;
    c.parent = st->next - 1;
    c.parent_hash = *st->t_at(c.parent);
    c.ms = st->ms;
    c.adds = {member{named, low_order_key(order4)}};
    c.members = apply_ops(st->members, c.adds, {});
  } else {
    c.conv = w_.rng().array<16>();
    c.version = static_cast<uint8_t>(cfg_.mode);
    c.type = msg_type::setup;
    c.aseq = 1;
    c.ms = w_.ms();
    c.members.push_back(w_.user(author).self().as_member());
    for (const auto& o : others)
      c.members.push_back(member{o, o == named ? low_order_key(order4) : w_.user(o).self().lpk()});
    std::sort(c.members.begin(), c.members.end(),
              [](const member& x, const member& y) { return x.id < y.id; });
    if (c.members.size() < 2 || find_member(c.members, named) == nullptr)
      return false;
  }
  const auto h_c = hash_common(c);
  if (!h_c)
    return false;
  ++step_;
  ++stats_.hostile[static_cast<size_t>(conv ? hostile_move::low_order_update
                                            : hostile_move::low_order_setup)];
  const submit_msg s = hand_made(c, st);
  std::vector<block_digest> digests;
  for (const auto& rb : s.blocks)
    digests.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
  const hash32 d = entry_digest(*h_c, blocks_root(digests));
  const std::string where = conv ? name(*conv) : "a new conversation";
  note(author + " submits a hand-made " + std::string(to_string(c.type)) + " in " + where
       + " naming " + named + " with a low-order key (" + (order4 ? "u = 1" : "all-zero") + ")");
  // The router takes it in now, ahead of everything in flight.
  auto& net = w_.network();
  const size_t before = net.size();
  net.push_front(to_router{author, c.aseq, s});
  w_.step();
  // Its answer goes to the author, whose client never submitted the message: take it out.
  std::optional<rejection> answer;
  for (size_t k = before; k < net.size();) {
    const auto* r = std::get_if<to_client_rejection>(&net[k]);
    if (r != nullptr && r->user == author && r->conv == c.conv && r->aseq == c.aseq) {
      answer = r->rej;
      net.erase(net.begin() + static_cast<std::ptrdiff_t>(k));
      continue;
    }
    ++k;
  }
  const std::string what = "the router answered " + where + "'s hand-made "
                           + std::string(to_string(c.type)) + " naming a low-order key with ";
  if (!answer) {
    fail("a low-order member key is refused before any index", what + "nothing");
    return false;
  }
  note("  -> " + std::string(to_string(answer->kind)) + "(" + answer->detail + ")");
  if (answer->kind != rejection_kind::invalid || answer->detail != "bad_key") {
    fail("a low-order member key is refused before any index",
         what + std::string(to_string(answer->kind)) + "(" + answer->detail + ")");
    return false;
  }
  // No index was used for it: not by the router, not by an honest mirror.
  for (const auto& [i, se] : w_.log(c.conv))
    if (se.e.d == d) {
      fail("a low-order member key is refused before any index",
           where + ": the router logged it at #" + std::to_string(i));
      return false;
    }
  for (size_t k = 0; k < cfg_.mirrors; ++k) {
    auto dm = w_.mirror_at(k).d.find(c.conv);
    if (lying_mirror(k) || dm == w_.mirror_at(k).d.end())
      continue;
    for (const auto& [i, md] : dm->second)
      if (md == d) {
        fail("a low-order member key is refused before any index",
             where + ": mirror " + std::to_string(k) + " committed it at #" + std::to_string(i));
        return false;
      }
  }
  step_checks(nullptr);
  return true;
}

bool sim_driver::bad_attachment_commit(const std::string& author,
                                       const std::optional<conv_id>& conv,
                                       const std::vector<std::string>& others, uint32_t how) {
  if (failed_ || others.empty())
    return false;
  common c;
  c.author = author;
  const conv_state* st = nullptr;
  if (conv) {
    router_conv& rc = w_.router(*conv);
    st = rc.state();
    const std::string& added = others.front();
    if (st == nullptr || rc.stopped() || !st->is_member(author) || st->is_member(added))
      return false;
    c.conv = *conv;
    c.version = st->version;
    c.type = msg_type::update;
    auto a = st->aseq_last.find(author);
    c.aseq = (a == st->aseq_last.end() ? 0 : a->second.value) + 1;
    c.parent = st->next - 1;
    c.parent_hash = *st->t_at(c.parent);
    c.ms = st->ms;
    c.adds = {w_.user(added).self().as_member()};
    c.members = apply_ops(st->members, c.adds, {});
  } else {
    c.conv = w_.rng().array<16>();
    c.version = static_cast<uint8_t>(cfg_.mode);
    c.type = msg_type::setup;
    c.aseq = 1;
    c.ms = w_.ms();
    c.members.push_back(w_.user(author).self().as_member());
    for (const auto& o : others)
      c.members.push_back(w_.user(o).self().as_member());
    std::sort(c.members.begin(), c.members.end(),
              [](const member& x, const member& y) { return x.id < y.id; });
  }
  const auto h_c = hash_common(c);
  if (!h_c)
    return false;
  const uint64_t index = st == nullptr ? 0 : st->next;
  const submit_msg s = hand_made(c, st);
  log_entry e;
  e.index = index;
  e.c = c;
  e.blocks = s.blocks;
  e.ambs = s.ambs;
  std::vector<block_digest> digests;
  for (const auto& rb : s.blocks)
    digests.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
  e.blocks_root = blocks_root(digests);
  e.d = entry_digest(*h_c, e.blocks_root);
  e.t_prev = st == nullptr ? t_genesis : *st->t_at(index - 1);
  e.t = transcript_hash(c.conv, index, e.t_prev, e.d);
  e.slots = slots(st, c);
  const member_list& added = c.type == msg_type::setup ? c.members : c.adds;
  for (const auto& m : added) {
    e.joiners.push_back(m.id);
    const auto lr = w_.user(m.id).keys().current_last_resort();
    e.last_resort.push_back(
        last_resort_attachment{m.id, lr ? lr->id : 1, lr ? lr->pub : public_key{}});
  }
  // The bad attachment, for the first member the entry adds.
  const last_resort_attachment zero{added.front().id, 99, public_key{}};
  const char* bad = "";
  switch (how % 3) {
    case 0:
      e.last_resort.insert(e.last_resort.begin() + 1, zero);
      bad = "a second, all-zero LAST_RESORT key after the real one";
      break;
    case 1:
      e.last_resort.insert(e.last_resort.begin(), zero);
      bad = "a second, all-zero LAST_RESORT key before the real one";
      break;
    default:
      e.last_resort.front().pub = low_order_key(true);
      bad = "a low-order LAST_RESORT key";
      break;
  }
  ++step_;
  ++stats_.adversary_actions;
  ++stats_.hostile[static_cast<size_t>(hostile_move::bad_attachment)];
  const std::string where = conv ? name(*conv) + "#" + std::to_string(index) : "a new conversation";
  note("router COMMITs, without PREPARE, " + author + "'s hand-made "
       + std::string(to_string(c.type)) + " in " + where + " with " + bad + " for "
       + added.front().id);
  for (size_t k = 0; k < cfg_.mirrors; ++k) {
    mirror_node& mn = w_.mirror_at(k);
    const commit_msg cm{index, e.d, e.prepare_for(k)};
    if (lying_mirror(k)) {
      // A lying mirror attests anything; on a copy, it must not abort either.
      mirror copy = mn.m.clone();
      copy.set_lying_for_test(true);
      crypto::deterministic_rng r = mn.rng;
      (void)copy.commit(cm, mn, w_.now(), r);
      continue;
    }
    // A mirror elsewhere (a fork moved it on) would answer CONFLICT or GAP.
    if (mn.m.status(c.conv).next != index)
      continue;
    const hash32 t_before = mn.m.status(c.conv).t_last;
    const commit_outcome o = mn.m.commit(cm, mn, w_.now(), mn.rng);
    const auto* rej = std::get_if<link_reject>(&o.response);
    note("  -> mirror " + std::to_string(k) + ": " + (rej != nullptr ? rej->reason : "an answer"));
    const std::string what = "honest mirror " + std::to_string(k) + " at " + where + ": ";
    if (o.persist || rej == nullptr) {
      fail("a bad LAST_RESORT attachment is refused at COMMIT", what + "committed it");
      return false;
    }
    if (mn.m.status(c.conv).next != index || mn.m.status(c.conv).t_last != t_before) {
      fail("a bad LAST_RESORT attachment is refused at COMMIT",
           what + "changed its state while refusing it");
      return false;
    }
    // With the mirror where the router is, only the attachment is wrong.
    const conv_state* now_st = conv ? w_.router(*conv).state() : nullptr;
    const bool aligned =
        !conv
        || (now_st != nullptr && now_st->next == index && mn.m.status(c.conv).t_last == e.t_prev);
    if (aligned && rej->reason != "bad_last_resort") {
      fail("a bad LAST_RESORT attachment is refused at COMMIT",
           what + "refused it with " + rej->reason + ", not bad_last_resort");
      return false;
    }
  }
  step_checks(nullptr);
  return true;
}

std::map<std::string, public_key> sim_driver::directory_lies_for(const in_flight& m) const {
  std::map<std::string, public_key> out;
  const auto* s = std::get_if<to_router>(&m);
  if (adversary_stopped_ || s == nullptr || s->submit.c.type != msg_type::update)
    return out;
  // Only `wrong_key_update` makes a member name another with a key that is not its own.
  for (const auto& a : s->submit.c.adds)
    if (auto entry = w_.directory_of(a.id); entry && entry->lpk != a.lpk)
      out.emplace(a.id, a.lpk);
  return out;
}

bool sim_driver::wrong_key_update(const std::string& author, const conv_id& conv,
                                  const std::string& added, const std::string& key_of) {
  if (failed_ || added == key_of || !is_active_member(author, conv))
    return false;
  client& a = w_.user(author);
  if (a.find(conv)->st.is_member(added))
    return false;
  ++step_;
  const public_key wrong = w_.user(key_of).self().lpk();
  // What `world::update` does, under a key the author chose.
  if (auto missing = a.missing_keys(conv); !missing.empty())
    (void)a.add_bundles(conv, w_.fetch(author, missing), missing);
  (void)a.add_bundles(conv, w_.fetch(author, {added}));
  auto out = a.update(conv, {member{added, wrong}}, {}, w_.now(), w_.rng());
  if (!out) {
    step_checks(&author);
    return false;
  }
  w_.node(author).persisted = std::make_unique<client>(a.clone());
  w_.network().push_back(to_router{author, out->aseq, out->submit});
  ++stats_.updates;
  ++stats_.adversary_actions;
  ++stats_.hostile[static_cast<size_t>(hostile_move::wrong_key)];
  wrong_named_.insert({conv, added});
  // An honest router refuses it (INVALID(member_key)): the author broke a rule.
  wedgers_.insert({conv, author});
  note(author + " UPDATE +" + added + " under " + key_of + "'s key in " + name(conv)
       + " (the router's directory will agree)");
  step_checks(&author);
  return true;
}

bool sim_driver::void_flood(const std::string& author, const conv_id& conv,
                            const std::string& victim, size_t n, uint32_t follow) {
  if (failed_ || author == victim || !is_active_member(author, conv))
    return false;
  client_test_hooks h;
  h.on_block = [victim](const std::string& r, slot_block& b) {
    if (r == victim)
      ciphertext_of(b)[13] ^= 0x40;
  };
  dishonest_.insert({conv, author, victim});
  w_.user(author).set_hooks_for_test(std::move(h));
  note(author + " floods " + victim + " with " + std::to_string(n) + " MESSAGEs it cannot read in "
       + name(conv));
  size_t sent = 0;
  for (size_t k = 0; k < n && !failed_; ++k) {
    ++step_;
    if (do_send(author, conv))
      ++sent;
    step_checks(&author);
  }
  clear_hooks(author);
  if (sent == 0)
    return false;
  ++stats_.hostile[static_cast<size_t>(hostile_move::void_flood)];
  if (follow % 3 == 0)
    return true;
  // An UPDATE after the flood, then the victim's RECEIPT: built after the UPDATE reached it
  // (follow 1), or before (follow 2: STALE at the router, rebuilt after the UPDATE).
  deliver_all();
  std::optional<std::string> updater;
  for (const auto& u : users_)
    if (u != victim && w_.node(u).online && is_active_member(u, conv) && (!updater || u == author))
      updater = u;
  if (!updater || !is_active_member(victim, conv))
    return true;
  const client_conv* cc = w_.user(*updater).find(conv);
  std::vector<std::string> adds, removes;
  for (const auto& u : users_)
    if (!cc->st.is_member(u))
      adds.push_back(u);
  if (adds.empty()) {
    for (const auto& m : cc->st.members)
      if (m.id != victim && m.id != *updater && removes.empty())
        removes.push_back(m.id);
  } else {
    adds.resize(1);
  }
  if (adds.empty() && removes.empty())
    return true;
  update(*updater, conv, adds, removes);
  if (follow % 3 == 1)
    deliver_all();
  advance_time(60);
  receipt(victim, conv);
  deliver_all();
  return true;
}

void sim_driver::on_fetch(const std::string& requester, prekey_bundle& b) {
  if (!plant_owner_ || adversary_stopped_ || b.owner != *plant_owner_ || requester == b.owner)
    return;
  const client& owner = w_.user(b.owner);
  // A PREKEY the owner deleted after using it, else one bound to a channel; never one a
  // channel with the requester used: that channel naming it again is the sender's doing.
  std::optional<uint64_t> id;
  for (const auto& [k, chan] : owner.keys().used_prekeys())
    if (!id && chan.peer != requester)
      id = k;
  for (const auto& [k, slot] : owner.keys().prekeys())
    if (!id && slot.bound && slot.bound->peer != requester)
      id = k;
  if (!id)
    return;
  auto pub = owner.keys().published().find({key_kind::prekey, *id});
  if (pub == owner.keys().published().end())
    return;
  b.key = key_ref{key_kind::prekey, *id, pub->second};
  planted_.insert(b.owner);
  plant_owner_.reset();
  ++stats_.hostile[static_cast<size_t>(hostile_move::used_prekey)];
  note("the directory hands " + requester + " " + b.owner + "'s used PREKEY "
       + std::to_string(*id));
}

bool sim_driver::plant_used_prekey(const std::string& owner) {
  if (failed_ || adversary_stopped_)
    return false;
  const client& c = w_.user(owner);
  bool any = !c.keys().used_prekeys().empty();
  for (const auto& [k, slot] : c.keys().prekeys())
    any = any || slot.bound.has_value();
  if (!any)
    return false;
  ++stats_.adversary_actions;
  plant_owner_ = owner;
  note("the directory will hand out a used PREKEY of " + owner);
  return true;
}

bool sim_driver::low_order_ratchet(const std::string& author, const conv_id& conv,
                                   const std::string& peer) {
  if (failed_ || author == peer || !is_active_member(author, conv))
    return false;
  client_conv& cc = w_.user(author).mutable_convs().at(conv);
  auto chi = cc.channels.find(peer);
  if (chi == cc.channels.end())
    return false;
  channel& ch = chi->second;
  auto cur = ch.mine.find(ch.announced);
  if (ch.announced == 0 || cur == ch.mine.end())
    return false;
  // At most two announced keys per channel: replace the one not yet referenced, or make the
  // next one (the only key held) bad.
  if (!ch.announced_referenced) {
    cur->second.pub = low_order_key(true);
  } else if (ch.mine.size() == 1) {
    uint64_t& counter = cc.ratchet_next[peer];
    if (counter <= ch.announced)
      counter = ch.announced + 1;
    const uint64_t id = counter++;
    owned_key bad = cur->second.clone();
    bad.pub = low_order_key(true);
    ch.mine.emplace(id, std::move(bad));
    ch.announced = id;
    ch.announced_referenced = false;
  } else {
    return false;
  }
  ++step_;
  ++stats_.hostile[static_cast<size_t>(hostile_move::low_order_ratchet)];
  note(author + " announces a low-order RATCHET key " + std::to_string(ch.announced) + " to " + peer
       + " in " + name(conv));
  // Its next MESSAGE carries the announcement (and is persisted with it).
  do_send(author, conv);
  step_checks(&author);
  return true;
}

// ---------------------------------------------------------------------------
// The network.

bool sim_driver::deliver() {
  if (failed_)
    return false;
  auto& net = w_.network();
  if (net.empty())
    return false;
  ++step_;
  ++stats_.deliveries;
  std::string touched;
  std::string what;
  // For a rejection: what the client's outbox holds at that aseq (to attribute a drop).
  std::optional<pending_rejection> pr;
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, to_router>) {
          what = "SUBMIT " + std::string(to_string(m.submit.c.type)) + " aseq "
                 + std::to_string(m.submit.c.aseq) + " from " + m.user + " in "
                 + name(m.submit.c.conv);
        } else if constexpr (std::is_same_v<T, to_router_ack>) {
          what = "ack " + name(m.ack.conv) + "#" + std::to_string(m.ack.index) + " from " + m.user;
        } else if constexpr (std::is_same_v<T, to_client_envelope>) {
          touched = m.user;
          what = "envelope " + name(m.env.conv) + "#" + std::to_string(m.env.index) + " "
                 + std::string(to_string(m.env.c.type)) + " by " + m.env.c.author + " -> " + m.user;
        } else {
          touched = m.user;
          what = std::string(to_string(m.rej.kind)) + "(" + std::to_string(m.rej.value) + " "
                 + m.rej.detail + ") for aseq " + std::to_string(m.aseq) + " -> " + m.user + " in "
                 + name(m.conv);
          pending_rejection p;
          p.conv = m.conv;
          p.aseq = m.aseq;
          p.rej = m.rej;
          if (const client_conv* cc = w_.user(m.user).find(m.conv)) {
            // The client's side, for the trace: next index, last UPDATE, outbox.
            what += " [next " + std::to_string(cc->st.next) + ", last_update "
                    + std::to_string(cc->st.last_update) + ", outbox";
            for (const auto& e : cc->outbox)
              what +=
                  " " + std::to_string(e.aseq)
                  + (e.versions.empty() ? std::string()
                                        : "^" + std::to_string(e.versions.back().submit.c.parent))
                  + (e.stale_after ? "~" + std::to_string(*e.stale_after) : std::string());
            if (!cc->st.is_member(m.user))
              what += " (not a member)";
            if (cc->status != conv_status::active)
              what += " (not active)";
            what += "]";
            for (const auto& e : cc->outbox) {
              if (e.aseq != m.aseq)
                continue;
              if (e.type == msg_type::message)
                p.text = text_of(e.plaintext);
              if (!e.versions.empty())
                p.parent = e.versions.back().submit.c.parent;
              for (const auto& v : e.versions)
                p.versions.push_back(v.d);
            }
          }
          pr = std::move(p);
        }
      },
      net.front());
  note("deliver " + what);
  const size_t dropped_before = touched.empty() ? 0 : w_.node(touched).dropped.size();
  // A lying router's directory agrees with the key a dishonest UPDATE names, while it takes
  // that UPDATE in (no other SUBMIT is queued then: each one is ordered or refused at once).
  if (auto lies = directory_lies_for(net.front()); !lies.empty()) {
    w_.set_router_directory_for_test(
        [this, lies](const std::string& id) -> std::optional<directory_entry> {
          auto entry = w_.directory_of(id);
          if (auto l = lies.find(id); l != lies.end() && entry)
            entry->lpk = l->second;
          return entry;
        });
    w_.step();
    w_.set_router_directory_for_test(nullptr);
  } else {
    w_.step();
  }
  if (pr && w_.node(touched).dropped.size() > dropped_before)
    check_drop(touched, *pr);
  step_checks(touched.empty() ? nullptr : &touched);
  return true;
}

void sim_driver::check_drop(const std::string& user, const pending_rejection& pr) {
  // A permanent rejection: the client gave the message up. It must have a cause.
  const auto kind = pr.rej.kind;
  const conv_state* rst = w_.router(pr.conv).state();
  // Attributed as precisely as rejections allow (they name only the aseq): a rejection the
  // adversary forged, rewrote or copied; a SUBMIT of this very message it tampered with, or
  // the router's verdict on a tampered SUBMIT at this aseq; the author's own rule-breaking;
  // the author's removal; a lying router's fork. An honest member's untampered message that
  // an honest router rejects for good is a violation.
  bool excused = wedgers_.contains({pr.conv, user});
  if (tainted_rejections_.contains({user, pr.conv, pr.aseq, pr.rej.kind, pr.rej.value}))
    excused = true;
  for (const auto& d : pr.versions)
    excused = excused || tainted_versions_.contains({user, d});
  const bool verdict = kind == rejection_kind::invalid || kind == rejection_kind::mirror_reject
                       || kind == rejection_kind::bad_body
                       || kind == rejection_kind::bad_block_size;
  if (verdict && tainted_aseqs_.contains({user, pr.conv, pr.aseq}))
    excused = true;
  if (kind == rejection_kind::not_member) {
    // Removed after writing it (perhaps re-added since): the message died with the removal.
    if (rst != nullptr && !rst->is_member(user))
      excused = true;
    for (const auto& [j, se] : w_.log(pr.conv))
      if (j > pr.parent && se.e.c.type == msg_type::update && in_sorted(se.e.c.removes, user))
        excused = true;
  }
  if (kind == rejection_kind::stopped && w_.router(pr.conv).stopped() && forked_.contains(pr.conv))
    excused = true;
  if (diverged(pr.conv))
    excused = true;
  // A member a lying router forked builds on entries the router's log does not hold.
  if (forked_user(user, pr.conv))
    excused = true;
  if (!excused) {
    fail("liveness (no member alone can stop the others)",
         user + "'s message aseq " + std::to_string(pr.aseq) + " in " + name(pr.conv)
             + " was permanently rejected with " + std::string(to_string(kind)) + "("
             + pr.rej.detail + ") although nobody tampered with it");
  }
  if (pr.text) {
    auto m = messages_.find(*pr.text);
    if (m != messages_.end())
      m->second.dropped = true;
  }
}

void sim_driver::deliver_all(size_t max) {
  size_t n = 0;
  for (; n < max && deliver(); ++n) {
  }
  // Even under the adversary the network drains: a down mirror or a refused message must not
  // keep clients and router resending to each other without end.
  if (n == max && max == default_delivery_cap && !w_.network().empty())
    fail("liveness", "the network never drains: " + std::to_string(w_.network().size())
                         + " messages still in flight after " + std::to_string(max)
                         + " deliveries (clients and router resend without end)");
}

bool sim_driver::drop(size_t k) {
  auto& net = w_.network();
  if (failed_ || k >= net.size())
    return false;
  ++stats_.adversary_actions;
  note("adversary drops message " + std::to_string(k));
  // Over the real transport a lost frame closes the connection; a router that skips one on
  // purpose (the adversary here) can make a re-added member miss its earlier membership.
  if (const auto* e = std::get_if<to_client_envelope>(&net[k]))
    skipped_.insert({e->env.conv, e->user});
  net.erase(net.begin() + static_cast<std::ptrdiff_t>(k));
  return true;
}

bool sim_driver::duplicate(size_t k, size_t at) {
  auto& net = w_.network();
  if (failed_ || k >= net.size())
    return false;
  ++stats_.adversary_actions;
  note("adversary duplicates message " + std::to_string(k));
  in_flight copy = net[k];
  // A copy of a rejection is the router's word twice: the second one is the adversary's.
  if (const auto* r = std::get_if<to_client_rejection>(&copy)) {
    tainted_rejections_.insert({r->user, r->conv, r->aseq, r->rej.kind, r->rej.value});
    lied_to_.insert({r->conv, r->user});
  }
  net.insert(net.begin() + static_cast<std::ptrdiff_t>(std::min(at, net.size())), std::move(copy));
  return true;
}

bool sim_driver::delay(size_t k) {
  auto& net = w_.network();
  if (failed_ || k >= net.size())
    return false;
  ++stats_.adversary_actions;
  note("adversary delays message " + std::to_string(k));
  in_flight m = std::move(net[k]);
  net.erase(net.begin() + static_cast<std::ptrdiff_t>(k));
  net.push_back(std::move(m));
  return true;
}

bool sim_driver::swap(size_t a, size_t b) {
  auto& net = w_.network();
  if (failed_ || a >= net.size() || b >= net.size() || a == b)
    return false;
  ++stats_.adversary_actions;
  note("adversary swaps messages " + std::to_string(a) + " and " + std::to_string(b));
  std::swap(net[a], net[b]);
  return true;
}

bool sim_driver::tamper(size_t k, uint32_t how, uint32_t where) {
  auto& net = w_.network();
  if (failed_ || k >= net.size())
    return false;
  bool done = false;
  std::string what;
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, to_client_envelope>) {
          envelope& e = m.env;
          views_[m.user].provider_taint = true;
          switch (how % 17) {
            case 0:
              e.index += 1;
              break;
            case 1:
              e.index = e.index > 0 ? e.index - 1 : e.index + 2;
              break;
            case 2:
              flip(e.conv, where);
              break;
            case 3:
              e.c.aseq += 1;
              break;
            case 4:
              flip(e.c.parent_hash, where);
              break;
            case 5:
              if (e.body) {
                flip(*e.body, where);
              } else {
                flip(e.c.body_commit, where);
              }
              break;
            case 6:
              if (e.block_u) {
                flip_ct(*e.block_u, where);
              } else {
                flip(e.blocks_root, where);
              }
              break;
            case 7:
              if (e.block_u) {
                flip_header(*e.block_u, where);
              } else {
                e.c.aseq += 2;
              }
              break;
            case 8:
              if (e.block_u) {
                bump_ref(*e.block_u);
              } else {
                flip(e.c.parent_hash, where);
              }
              break;
            case 9:
              if (!e.mirror_blocks.empty())
                flip_ct(e.mirror_blocks[where % e.mirror_blocks.size()], where / 7);
              break;
            case 10:
              flip(e.blocks_root, where);
              break;
            case 11:
              if (e.t_prev) {
                flip(*e.t_prev, where);
              } else {
                e.t_prev = e.blocks_root;
              }
              break;
            case 12:
              if (e.body) {
                e.body.reset();
              } else {
                e.body = bytes(296, 0x42);
              }
              break;
            case 13:
              if (e.block_u) {
                e.block_u.reset();
              } else {
                e.index += 3;
              }
              break;
            case 14:
              e.c.author = users_[where % users_.size()] + "x";
              break;
            case 15:
              if (e.mirror_blocks.size() > 1) {
                std::swap(e.mirror_blocks.front(), e.mirror_blocks.back());
              } else if (!e.mirror_blocks.empty()) {
                flip_header(e.mirror_blocks[0], where);
              }
              break;
            default:
              e.c.type = e.c.type == msg_type::message ? msg_type::receipt : msg_type::message;
              break;
          }
          what = "envelope " + name(e.conv) + "#" + std::to_string(e.index) + " for " + m.user
                 + " (field " + std::to_string(how % 17) + ")";
          done = true;
        } else if constexpr (std::is_same_v<T, to_router>) {
          submit_msg& s = m.submit;
          lied_to_.insert({s.c.conv, m.user});
          tainted_aseqs_.insert({m.user, s.c.conv, s.c.aseq});
          if (auto hc = hash_common(s.c)) {
            std::vector<block_digest> dg;
            for (const auto& rb : s.blocks)
              dg.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
            tainted_versions_.insert({m.user, entry_digest(*hc, blocks_root(dg))});
          }
          switch (how % 8) {
            case 0:
              if (s.body) {
                flip(*s.body, where);
              } else {
                flip(s.c.parent_hash, where);
              }
              break;
            case 1:
              if (!s.blocks.empty()) {
                flip_ct(s.blocks[where % s.blocks.size()].blk, where / 3);
              } else {
                flip(s.c.parent_hash, where);
              }
              break;
            case 2:
              if (!s.ambs.empty())
                flip_ct(s.ambs[where % s.ambs.size()], where / 3);
              break;
            case 3:
              flip(s.c.parent_hash, where);
              break;
            case 4:
              s.c.aseq += 1;
              break;
            case 5:
              if (!s.blocks.empty()) {
                s.blocks.erase(s.blocks.begin()
                               + static_cast<std::ptrdiff_t>(where % s.blocks.size()));
              } else {
                s.c.aseq += 2;
              }
              break;
            case 6:
              if (s.c.type == msg_type::message) {
                s.c.body_len += 256;
              } else {
                s.c.aseq += 2;
              }
              break;
            default:
              if (!s.ambs.empty())
                bump_ref(s.ambs[where % s.ambs.size()]);
              break;
          }
          tainted_aseqs_.insert({m.user, s.c.conv, s.c.aseq});
          what = "SUBMIT from " + m.user + " in " + name(s.c.conv) + " (field "
                 + std::to_string(how % 8) + ")";
          done = true;
        } else if constexpr (std::is_same_v<T, to_client_rejection>) {
          switch (how % 4) {
            case 0:
              m.rej.kind = static_cast<rejection_kind>(1 + where % 14);
              break;
            case 1:
              m.rej.value = where % 64;
              break;
            case 2:
              m.rej.value += 1000;
              break;
            default:
              m.rej.kind = rejection_kind::stale;
              m.rej.value = where % 50;
              break;
          }
          tainted_rejections_.insert({m.user, m.conv, m.aseq, m.rej.kind, m.rej.value});
          lied_to_.insert({m.conv, m.user});
          what = "rejection for " + m.user + " aseq " + std::to_string(m.aseq) + " (now "
                 + std::string(to_string(m.rej.kind)) + "(" + std::to_string(m.rej.value) + "))";
          done = true;
        }
        // Acknowledgements travel from the client to the router over the authenticated
        // channel: forging one is the router lying to itself, so they are not tampered with.
      },
      net[k]);
  if (done) {
    ++stats_.adversary_actions;
    note("adversary tampers with " + what);
  }
  return done;
}

bool sim_driver::misroute(size_t k, const std::string& to) {
  auto& net = w_.network();
  if (failed_ || k >= net.size())
    return false;
  auto* e = std::get_if<to_client_envelope>(&net[k]);
  if (e == nullptr || e->user == to)
    return false;
  ++stats_.adversary_actions;
  note("adversary sends a copy of " + e->user + "'s envelope " + name(e->env.conv) + "#"
       + std::to_string(e->env.index) + " to " + to);
  to_client_envelope copy = *e;
  copy.user = to;
  views_[to].provider_taint = true;
  net.insert(net.begin() + static_cast<std::ptrdiff_t>(k + 1), std::move(copy));
  return true;
}

bool sim_driver::forge_rejection(const std::string& user, const conv_id& conv, uint64_t aseq,
                                 const rejection& rej) {
  if (failed_)
    return false;
  ++stats_.adversary_actions;
  tainted_rejections_.insert({user, conv, aseq, rej.kind, rej.value});
  lied_to_.insert({conv, user});
  note("router forges " + std::string(to_string(rej.kind)) + "(" + std::to_string(rej.value)
       + ") for " + user + "'s aseq " + std::to_string(aseq) + " in " + name(conv));
  w_.network().push_back(to_client_rejection{user, conv, aseq, rej});
  return true;
}

// ---------------------------------------------------------------------------
// A lying router.

bool sim_driver::fork_snapshot(const conv_id& conv) {
  if (failed_ || w_.router(conv).state() == nullptr)
    return false;
  ++stats_.adversary_actions;
  const int branch = next_branch_++;
  w_.branch_mirrors(branch);
  forks_.insert_or_assign(conv, fork_point{w_.router(conv), branch});
  note("router takes fork point " + std::to_string(branch) + " of " + name(conv) + " at index "
       + std::to_string(w_.router(conv).state()->next));
  return true;
}

bool sim_driver::fork_push(const conv_id& conv, uint32_t which, bool steal,
                           const std::vector<std::string>& victims) {
  if (failed_)
    return false;
  auto fp = forks_.find(conv);
  if (fp == forks_.end())
    return false;
  auto& net = w_.network();
  std::vector<size_t> candidates;
  for (size_t k = 0; k < net.size(); ++k)
    if (const auto* m = std::get_if<to_router>(&net[k]); m != nullptr && m->submit.c.conv == conv)
      candidates.push_back(k);
  if (candidates.empty())
    return false;
  const size_t k = candidates[which % candidates.size()];
  const to_router m = std::get<to_router>(net[k]);
  auto se = w_.fork_order(fp->second.snapshot, m, fp->second.branch);
  if (!se)
    return false;
  ++step_;
  ++stats_.adversary_actions;
  forked_.insert(conv);
  if (steal)
    net.erase(net.begin() + static_cast<std::ptrdiff_t>(k));
  std::string who;
  for (const auto& v : victims) {
    views_[v].provider_taint = true;
    w_.push_envelope(v, *se);
    who += " " + v;
  }
  note("router forks " + name(conv) + " at index " + std::to_string(se->e.index) + " with " + m.user
       + "'s aseq " + std::to_string(m.submit.c.aseq) + (steal ? " (stolen)" : "") + " for" + who);
  forks_.erase(fp);
  step_checks(nullptr, true);
  return true;
}

bool sim_driver::forge_replay(const conv_id& conv, uint64_t from,
                              const std::vector<std::string>& victims) {
  if (failed_)
    return false;
  const conv_state* st = w_.router(conv).state();
  if (st == nullptr)
    return false;
  auto& log = w_.log(conv);
  auto it = log.find(from);
  if (it == log.end() || it->second.answers.empty())
    return false;
  if (it->second.e.c.type != msg_type::message && it->second.e.c.type != msg_type::receipt)
    return false;
  const hash32* t_prev = st->t_at(st->next - 1);
  if (t_prev == nullptr)
    return false;
  // The lying mirrors attest anything, but they still build one block per slot of the
  // current membership: replay only what still has a block for each of them.
  if (slots(st, it->second.e.c) != it->second.e.slots)
    return false;
  ++step_;
  ++stats_.adversary_actions;
  forked_.insert(conv);
  log_entry e = it->second.e;
  e.index = st->next;
  e.t_prev = *t_prev;
  const int branch = next_branch_++;
  w_.branch_mirrors(branch);
  world::stored_entry fake{e, w_.commit_on_mirrors(e, branch)};
  std::string who;
  for (const auto& v : victims) {
    views_[v].provider_taint = true;
    w_.push_envelope(v, fake);
    who += " " + v;
  }
  note("router replays " + name(conv) + "#" + std::to_string(from) + " as #"
       + std::to_string(e.index) + " for" + who);
  step_checks(nullptr, true);
  return true;
}

void sim_driver::set_mirror_down(size_t k, bool down) {
  if (failed_ || k >= cfg_.mirrors)
    return;
  ++stats_.adversary_actions;
  note("mirror " + std::to_string(k) + (down ? " goes down" : " comes back"));
  w_.mirror_at(k).down = down;
}

// ---------------------------------------------------------------------------
// Invariants after each step.

void sim_driver::check() {
  step_checks(nullptr, true);
}

void sim_driver::step_checks(const std::string* touched, bool full) {
  if (failed_)
    return;
  // Each message in flight answers at most a few others: a queue this long means the
  // parties amplify each other's traffic (a livelock in the making).
  constexpr size_t max_in_flight = 5000;
  if (w_.network().size() > max_in_flight)
    return fail("bounded traffic", std::to_string(w_.network().size())
                                       + " messages in flight: the parties amplify each other");
  for (const auto& u : users_) {
    check_transcripts(u);
    check_alarms(u);
    if (failed_)
      return;
  }
  // Only a client's own steps change its keys; every 64 steps all of them are swept anyway.
  full = full || step_ % 64 == 0;
  for (const auto& u : users_) {
    if (!full && (touched == nullptr || *touched != u))
      continue;
    check_keys(u);
    check_fs(u, false);
  }
  check_mirror_keys();
  check_mirrors(full);
}

void sim_driver::check_transcripts(const std::string& u) {
  user_view& v = views_[u];
  for (const auto& [conv, t] : w_.node(u).transcript) {
    conv_view& cv = v.convs[conv];
    while (cv.seen < t.size() && !failed_) {
      const accepted_entry e = t[cv.seen++];
      check_entry(u, cv, e);
    }
  }
}

bool sim_driver::halted_between(const std::string& u, const conv_id& conv, uint64_t after,
                                uint64_t before) {
  const auto& al = w_.node(u).alarms;
  return std::any_of(al.begin(), al.end(), [&](const alarm& a) {
    return a.conv == conv && a.halted && a.index > after && a.index < before;
  });
}

void sim_driver::check_entry(const std::string& u, conv_view& cv, const accepted_entry& e) {
  ++stats_.entries_accepted;
  const conv_id& conv = e.conv;
  const uint64_t i = e.index;
  const std::string where = u + " at " + name(conv) + "#" + std::to_string(i) + " ("
                            + std::string(to_string(e.type)) + " by " + e.author + ")";
  const bool self_added = e.type == msg_type::update && find_member(e.adds, u) != nullptr;
  const bool self_removed = e.type == msg_type::update && in_sorted(e.removes, u);

  // Membership and order: one chain per membership epoch, starting at the entry adding us.
  if (!cv.last_index) {
    const bool setup_member =
        e.type == msg_type::setup && i == 0 && find_member(e.members, u) != nullptr;
    if (!setup_member && !self_added)
      return fail("joiner history", where + ": first entry is neither the SETUP nor the UPDATE "
                                            "adding this member");
  } else if (cv.removed) {
    if (!self_added || i <= *cv.last_index)
      return fail("removed member decrypts nothing after its removal",
                  where + ": accepted after its removal at #" + std::to_string(*cv.last_index));
  } else if (self_added && halted_between(u, conv, *cv.last_index, i)) {
    // A member halted after its last entry and added again since: a new epoch (§3.5 step 0).
    // The halt counted as its removal (by the author of the entry that halted it): what it
    // had in flight then may never be ordered.
    ++cv.removals;
  } else if (i != *cv.last_index + 1) {
    return fail("transcript order",
                where + ": accepted right after #" + std::to_string(*cv.last_index));
  }
  if (self_added)
    check_joiner(u, e);
  if (failed_)
    return;
  cv.last_index = i;
  cv.removed = false;
  cv.accepted.insert(i);
  cv.d[i] = e.d;
  if (self_removed) {
    cv.removed = true;
    ++cv.removals;
  }

  // Agreement: with an honest mirror, one entry per index for everyone, the honest mirror's.
  if (!all_lying()) {
    auto [it, fresh] = entries_.try_emplace({conv, i}, e.t, e.d, u);
    if (!fresh && (std::get<0>(it->second) != e.t || std::get<1>(it->second) != e.d))
      return fail("agreement (same entry at every index)",
                  where + ": T=" + short_hex(e.t) + " but " + std::get<2>(it->second)
                      + " accepted T=" + short_hex(std::get<0>(it->second)));
    for (size_t k = 0; k < cfg_.mirrors; ++k) {
      if (lying_mirror(k))
        continue;
      auto d = w_.mirror_at(k).d_at(conv, i);
      if (!d || *d != e.d)
        return fail("agreement (same entry at every index)",
                    where + ": accepted D=" + short_hex(e.d) + " but honest mirror "
                        + std::to_string(k) + " holds " + (d ? short_hex(*d) : "nothing"));
    }
  }

  if (e.type == msg_type::receipt && e.own) {
    check_receipt(u, cv, e);
    if (failed_)
      return;
  }

  // Reading: a VOID is flagged against a dishonest author; everything else reads the same.
  if (e.is_void) {
    ++stats_.voids;
    cv.voids.insert(i);
    // Flagged by a SENDER alarm against a dishonest author, or by a DIRECTORY alarm against
    // the router where it lied about this member's keys (a used PREKEY handed to a new
    // sender): never a SENDER alarm against an honest one (check_alarms).
    const auto& al = w_.node(u).alarms;
    auto flagged = [&](alarm_kind k, const std::string& party) {
      return std::any_of(al.begin(), al.end(), [&](const alarm& a) {
        return a.conv == conv && a.index == i && a.kind == k && a.party == party;
      });
    };
    if (flagged(alarm_kind::sender, e.author)) {
      if (!dishonest_.contains({conv, e.author, u}) && !all_lying())
        return fail("each entry read identically or flagged",
                    where + ": VOID although its author never cheated towards this member");
    } else if (flagged(alarm_kind::directory, "router")) {
      if (!directory_lied_about(u, conv) && !views_[u].provider_taint && !all_lying())
        return fail("each entry read identically or flagged",
                    where + ": VOID with a DIRECTORY alarm although the directory never lied "
                            "about this member's keys");
    } else {
      return fail("each entry read identically or flagged",
                  where + ": VOID without a SENDER alarm against its author or a DIRECTORY "
                          "alarm against the router");
    }
    return;
  }
  if (e.type != msg_type::message)
    return;
  const std::string text = text_of(e.plaintext);
  auto m = messages_.find(text);
  if (m == messages_.end() || m->second.author != e.author || m->second.conv != conv)
    return fail("each entry read identically or flagged",
                where + ": reads \"" + text + "\", which its author never sent there");
  auto [r, fresh_read] = read_.try_emplace({conv, i, e.d}, text);
  if (!fresh_read && r->second != text)
    return fail("each entry read identically or flagged",
                where + ": reads \"" + text + "\" where another member read \"" + r->second + "\"");
  auto [ti, fresh_text] = cv.texts.try_emplace(text, i);
  // Nothing is promised about the messages of an author the router lied to (it renumbers
  // what the router still holds), nor of one that broke the rules (ditto, after its own
  // rejection): both copies of a renumbered message may be ordered.
  const bool lied_to = lied_to_.contains({conv, e.author}) || wedgers_.contains({conv, e.author});
  if (!fresh_text && ti->second != i && !lied_to)
    return fail(
        "a message is ordered at most once",
        where + ": \"" + text + "\" was already accepted at #" + std::to_string(ti->second));
  auto [o, fresh_order] = ordered_.try_emplace({conv, text}, i);
  if (!fresh_order && o->second != i && !all_lying() && !lied_to)
    return fail("a message is ordered at most once",
                where + ": \"" + text + "\" is ordered at #" + std::to_string(o->second) + " too");
  if (e.own)
    return;
  // A member reads only entries addressed to it: the router's entry has its block.
  if (!all_lying()) {
    auto it = w_.log(conv).find(i);
    if (it != w_.log(conv).end() && it->second.e.d == e.d && !in_sorted(it->second.e.slots, u))
      return fail("a member reads only what was sent while it was a member",
                  where + ": read although the entry holds no block for it");
  }
  record_fs(u, e);
}

void sim_driver::check_receipt(const std::string& u, const conv_view& cv, const accepted_entry& e) {
  // A RECEIPT lists every index in (floor, parent] its author could not read (docs/protocol.md
  // §10); past MAX_VOIDS, MAX_VOIDS of them. An author the router lied to may see an abandoned
  // version of an earlier RECEIPT ordered after all, with another floor than it built on.
  if (!e.parent || all_lying() || lied_to_.contains({e.conv, u}) || forked_user(u, e.conv))
    return;
  const std::string where = u + "'s RECEIPT at " + name(e.conv) + "#" + std::to_string(e.index);
  std::vector<uint64_t> held;
  for (uint64_t v : cv.voids)
    if (static_cast<int64_t>(v) > e.floor_before && v <= *e.parent)
      held.push_back(v);
  for (uint64_t v : e.voids)
    if (!cv.voids.contains(v))
      return fail("receipts list exactly the VOIDs",
                  where + " lists #" + std::to_string(v) + ", which it read");
  if (held.size() <= max_voids
          ? e.voids != held
          : e.voids.size() != max_voids
                || !std::includes(held.begin(), held.end(), e.voids.begin(), e.voids.end()))
    return fail("receipts list exactly the VOIDs",
                where + " lists " + std::to_string(e.voids.size()) + " VOIDs in ("
                    + std::to_string(e.floor_before) + ", " + std::to_string(*e.parent)
                    + "] where it holds " + std::to_string(held.size()));
}

void sim_driver::check_joiner(const std::string& u, const accepted_entry& e) {
  auto& log = w_.log(e.conv);
  auto at = log.find(e.index);
  if (at == log.end() || at->second.e.d != e.d)
    return;  // a forked entry: the log is elsewhere
  // Entries before the join that were not addressed to the joiner carry no block for it (it
  // was not a member then: `validate` ties blocks to membership). Handed the envelope of the
  // latest such MESSAGE (someone else's), the joiner accepts nothing.
  std::optional<envelope> earlier;
  for (auto it = log.begin(); it != log.end() && it->first < e.index; ++it) {
    const log_entry& le = it->second.e;
    if (le.c.type != msg_type::message || in_sorted(le.slots, u) || it->second.answers.empty())
      continue;
    for (const auto& other : le.slots) {
      if (other == le.c.author)
        continue;
      if (auto env = make_envelope(le, it->second.answers, other))
        earlier = std::move(*env);
      break;
    }
  }
  if (!earlier)
    return;
  client c = w_.user(u).clone();
  crypto::deterministic_rng r(step_);
  auto res = c.receive(*earlier, w_.now(), r, nullptr);
  for (const auto& a : res.accepted)
    if (a.index < e.index)
      return fail("a new member decrypts nothing sent before it joined",
                  u + " joining " + name(e.conv) + " at #" + std::to_string(e.index)
                      + ": accepted the earlier entry #" + std::to_string(a.index)
                      + " when handed it");
}

void sim_driver::record_fs(const std::string& u, const accepted_entry& e) {
  auto& log = w_.log(e.conv);
  auto it = log.find(e.index);
  if (it == log.end() || it->second.e.d != e.d)
    return;
  const log_entry& le = it->second.e;
  auto rb = std::lower_bound(
      le.blocks.begin(), le.blocks.end(), u,
      [](const recipient_block& b, const std::string& id) { return b.recipient < id; });
  if (rb == le.blocks.end() || rb->recipient != u)
    return;
  auto hc = hash_common(le.c);
  if (!hc)
    return;
  fs_record r;
  r.user = u;
  r.conv = e.conv;
  r.index = e.index;
  r.author = e.author;
  r.author_lpk = w_.user(e.author).self().lpk();
  r.blk = rb->blk;
  r.ad = ad_block(*hc, e.author, u);
  const block* b = block_of(r.blk);
  if (b == nullptr) {
    // A chain block (§4.8): its message key is deleted when the entry is accepted, so the
    // state right after acceptance must not open it.
    verify_fs(r);
    return;
  }
  if (b->ref.kind == key_kind::ratchet) {
    auto p = ratchet_pubs_.find({u, e.conv, e.author, b->ref.id});
    if (p != ratchet_pubs_.end())
      r.key_pub = p->second;
  } else {
    r.key_pub = b->ref.pub;
  }
  views_[u].fs_pending.push_back(std::move(r));
}

void sim_driver::verify_fs(const fs_record& r) {
  ++stats_.fs_checks;
  const client& c = w_.user(r.user);
  const block* b = block_of(r.blk);
  const std::string what = r.user + "'s block of " + name(r.conv) + "#" + std::to_string(r.index)
                           + " from " + r.author
                           + (b != nullptr ? " (" + std::string(to_string(b->ref.kind)) + " key "
                                                 + std::to_string(b->ref.id) + ")"
                                           : std::string(" (chain block)"));
  if (r.key_pub) {
    auto held = [&](const public_key& p) { return p == *r.key_pub; };
    bool found = false;
    for (const auto& [id, s] : c.keys().prekeys())
      found = found || held(s.key.pub);
    for (const auto& [id, s] : c.keys().last_resort())
      found = found || held(s.key.pub);
    for (const auto& [conv, cc] : c.convs())
      for (const auto& [peer, ch] : cc.channels)
        for (const auto& [id, k] : ch.mine)
          found = found || held(k.pub);
    if (found)
      return fail("forward secrecy", what + ": the key is retired but still held");
  }
  const client_conv* cc = c.find(r.conv);
  const channel* ch = nullptr;
  if (cc != nullptr)
    if (auto f = cc->channels.find(r.author); f != cc->channels.end())
      ch = &f->second;
  auto opened = open_on_channel(c.self(), c.keys(), ch, r.conv, r.author, r.author_lpk, r.blk, r.ad,
                                mode_of(r.blk));
  if (opened)
    fail("forward secrecy", what
                                + (b != nullptr ? ": opens again after its key was retired"
                                                : ": opens again after it was accepted"));
}

void sim_driver::check_fs(const std::string& u, bool recheck_retired) {
  if (failed_)
    return;
  user_view& v = views_[u];
  const client& c = w_.user(u);
  for (size_t k = 0; k < v.fs_pending.size() && !failed_;) {
    const fs_record& r = v.fs_pending[k];
    const key_ref& ref = block_of(r.blk)->ref;  // only blocks and DH steps wait here
    bool present = false;
    switch (ref.kind) {
      case key_kind::ratchet:
        if (const client_conv* cc = c.find(r.conv))
          if (auto f = cc->channels.find(r.author); f != cc->channels.end())
            present = f->second.mine.contains(ref.id);
        break;
      case key_kind::prekey:
        present = c.keys().prekeys().contains(ref.id);
        break;
      case key_kind::last_resort:
        present = c.keys().last_resort().contains(ref.id);
        break;
    }
    if (present) {
      ++k;
      continue;
    }
    verify_fs(r);
    v.fs_retired.push_back(std::move(v.fs_pending[k]));
    v.fs_pending.erase(v.fs_pending.begin() + static_cast<std::ptrdiff_t>(k));
    while (v.fs_retired.size() > fs_retired_kept)
      v.fs_retired.pop_front();
  }
  if (recheck_retired)
    for (const auto& r : v.fs_retired)
      verify_fs(r);
}

void sim_driver::check_keys(const std::string& u) {
  if (failed_)
    return;
  // docs/design.md §2: a party keeps at most two announced RATCHET secrets per peer.
  for (const auto& [conv, cc] : w_.user(u).convs()) {
    for (const auto& [peer, ch] : cc.channels) {
      if (ch.mine.size() > 2)
        return fail("bounded key material", u + " holds " + std::to_string(ch.mine.size())
                                                + " RATCHET keys for " + peer + " in "
                                                + name(conv));
      for (const auto& [id, k] : ch.mine)
        ratchet_pubs_.try_emplace({u, conv, peer, id}, k.pub);
    }
  }
}

void sim_driver::check_mirror_keys() {
  if (failed_)
    return;
  for (size_t k = 0; k < cfg_.mirrors; ++k) {
    for (const auto& [conv, mc] : w_.mirror_at(k).m.convs())
      for (const auto& [peer, ch] : mc.channels)
        if (ch.mine.size() > 2)
          return fail("bounded key material",
                      "mirror " + std::to_string(k) + " holds " + std::to_string(ch.mine.size())
                          + " RATCHET keys for " + peer + " in " + name(conv));
  }
}

void sim_driver::check_mirrors(bool full) {
  if (failed_)
    return;
  for (size_t k = 0; k < cfg_.mirrors; ++k) {
    if (lying_mirror(k))
      continue;
    for (const auto& [conv, dm] : w_.mirror_at(k).d) {
      for (auto it = dm.rbegin(); it != dm.rend(); ++it) {
        auto [pos, fresh] = mirror_d_.try_emplace({k, conv, it->first}, it->second);
        if (!fresh && pos->second != it->second)
          return fail("no honest mirror issues two D for one index",
                      "mirror " + std::to_string(k) + " at " + name(conv) + "#"
                          + std::to_string(it->first) + ": " + short_hex(pos->second) + " then "
                          + short_hex(it->second));
        if (!fresh && !full)
          break;
      }
    }
  }
}

bool sim_driver::directory_lied_about(const std::string& u, const conv_id& conv) const {
  return planted_.contains(u) || wrong_named_.contains({conv, u});
}

void sim_driver::check_alarms(const std::string& u) {
  user_view& v = views_[u];
  const auto& al = w_.node(u).alarms;
  while (v.alarms_seen < al.size() && !failed_) {
    const alarm a = al[v.alarms_seen++];
    ++stats_.alarms;
    if (a.halted)
      ++stats_.halts;
    const std::string what = std::string(to_string(a.kind)) + " alarm at " + u + " for "
                             + name(a.conv) + "#" + std::to_string(a.index) + " against " + a.party
                             + ": " + a.evidence + (a.halted ? " (halted)" : "");
    bool caused = false;
    switch (a.kind) {
      case alarm_kind::provider:
        caused = v.provider_taint;
        break;
      case alarm_kind::directory: {
        // DIRECTORY evidence points at the router (docs/protocol.md §4.5, §8): it handed out a
        // key of ours we never published or had used already, or ordered an entry naming us
        // with another long-term key; or it tampered with or misdirected our deliveries (an
        // envelope naming someone else's keys). Never at a member, honest or not.
        // (A mirror's block naming a key we never published: the router misdirected it.)
        if (a.party == "router") {
          caused = v.provider_taint || directory_lied_about(u, a.conv) || all_lying();
        } else if (find_member(w_.ms(), a.party) != nullptr) {
          caused = v.provider_taint || all_lying();
        }
        break;
      }
      case alarm_kind::sender:
        caused = dishonest_.contains({a.conv, a.party, u}) || all_lying();
        break;
      case alarm_kind::fork:
      case alarm_kind::impersonation:
        caused = all_lying();
        break;
    }
    if (!caused)
      fail("alarms and halts have a cause", what);
  }
}

// ---------------------------------------------------------------------------
// The end of a run: liveness.

bool sim_driver::excused_member(const std::string& u, const conv_id& conv, uint64_t i) {
  if (const client_conv* cc = w_.user(u).find(conv))
    if (cc->status == conv_status::halted && cc->halt_index <= i)
      return true;
  // With no honest mirror, a member the router forked is on its own branch.
  if (all_lying() && forked_user(u, conv))
    return true;
  const auto& cv = views_[u].convs[conv];
  auto& log = w_.log(conv);
  auto adds_u = [&](const common& c) {
    return (c.type == msg_type::update && find_member(c.adds, u) != nullptr)
           || (c.type == msg_type::setup && find_member(c.members, u) != nullptr);
  };
  // The router skipped a delivery to it and it joined at a later UPDATE adding it again: the
  // membership around `i` is gone for it (the client cannot know it ever existed).
  if (skipped_.contains({conv, u})) {
    std::optional<uint64_t> start;
    for (auto it = log.begin(); it != log.end() && it->first <= i; ++it)
      if (adds_u(it->second.e.c))
        start = it->first;
    bool rejoined = false;
    for (const auto& e : w_.node(u).transcript[conv])
      rejoined =
          rejoined
          || (e.index > i && e.type == msg_type::update && find_member(e.adds, u) != nullptr);
    if (start && rejoined && cv.accepted.lower_bound(*start) == cv.accepted.upper_bound(i))
      return true;
  }
  for (const auto& a : w_.node(u).alarms) {
    if (a.conv != conv)
      continue;
    // With no honest mirror, a member the router forked is on its own branch.
    if (all_lying())
      return true;
    // A member halted at a.index (a SETUP or UPDATE whose block to it failed) counts as removed
    // by that entry's author, until it accepts an entry adding it again.
    if (a.halted && a.index <= i && cv.accepted.lower_bound(a.index) == cv.accepted.upper_bound(i))
      return true;
    // A member that refused the SETUP or UPDATE adding it (equivocated towards it, or naming
    // it with a key that is not its own) counts as removed by that entry's author, until it
    // accepts an entry adding it again.
    if (a.kind != alarm_kind::sender && a.kind != alarm_kind::directory)
      continue;
    if (a.index > i || cv.accepted.contains(a.index))
      continue;
    auto at = log.find(a.index);
    if (at == log.end() || !adds_u(at->second.e.c))
      continue;
    if (cv.accepted.lower_bound(a.index) == cv.accepted.upper_bound(i))
      return true;
  }
  return false;
}

void sim_driver::settle() {
  auto signature = [&]() {
    uint64_t s = 0;
    for (const auto& u : users_) {
      for (const auto& [conv, t] : w_.node(u).transcript)
        s += t.size();
      for (const auto& [conv, cc] : w_.user(u).convs())
        s += 1000 * cc.outbox.size();
    }
    return s;
  };
  // Without an adversary the network drains: whatever keeps it busy is a livelock.
  constexpr size_t quiet_after = 50000;
  auto drain = [&]() {
    deliver_all(quiet_after);
    if (!w_.network().empty())
      fail("liveness", "the network never quiesces: " + std::to_string(w_.network().size())
                           + " messages still in flight after " + std::to_string(quiet_after)
                           + " deliveries without an adversary (livelock)");
  };
  drain();
  for (int round = 0; round < 12 && !failed_; ++round) {
    const uint64_t before = signature();
    for (const auto& u : users_)
      reconnect(u);
    drain();
    if (round >= 1 && signature() == before)
      break;
  }
}

void sim_driver::finish() {
  if (failed_)
    return;
  ++step_;
  note("the adversary stops; every mirror is up and every user online");
  w_.set_interceptor(nullptr);
  adversary_stopped_ = true;
  plant_owner_.reset();
  for (size_t k = 0; k < cfg_.mirrors; ++k)
    w_.mirror_at(k).down = false;
  // Every connection is re-established: the router resends from each client's cursor.
  for (const auto& u : users_)
    reconnect(u);
  settle();
  // Everyone still active says something: no member alone can stop the others.
  for (const auto& conv : convs_)
    for (const auto& u : users_)
      if (!failed_ && is_active_member(u, conv)) {
        ++step_;
        do_send(u, conv);
        step_checks(&u);
      }
  settle();
  if (failed_)
    return;
  step_checks(nullptr, true);
  for (const auto& u : users_)
    check_fs(u, true);
  check_liveness();
  check_settled_agreement();
  check_removed_slots();
}

void sim_driver::check_liveness() {
  if (failed_)
    return;
  for (const auto& conv : convs_) {
    router_conv& rc = w_.router(conv);
    if (rc.stopped() && !forked_.contains(conv))
      return fail("liveness", name(conv) + " was stopped by the router (" + rc.stop_reason()
                                  + ") although nobody forked it");
  }
  // Every message is ordered (or its loss has a cause) and every member at its index has it.
  for (const auto& [text, info] : messages_) {
    const conv_id& conv = info.conv;
    const bool stopped = w_.router(conv).stopped() || diverged(conv);
    auto o = ordered_.find({conv, text});
    if (o == ordered_.end()) {
      if (info.dropped || stopped)
        continue;
      const auto& av = views_[info.author].convs[conv];
      if (av.removals > info.removals_at_send || !is_active_member(info.author, conv))
        continue;
      if (all_lying() && (has_alarm_in(info.author, conv) || forked_user(info.author, conv)))
        continue;
      return fail("liveness", "\"" + text + "\" by " + info.author + " in " + name(conv)
                                  + " was never ordered after the adversary stopped");
    }
    const uint64_t i = o->second;
    auto& log = w_.log(conv);
    auto it = log.find(i);
    auto d = views_[info.author].convs[conv].d.find(i);
    if (it == log.end() || it->second.answers.empty()) {
      if (stopped || all_lying())
        continue;
      return fail("liveness", "\"" + text + "\" was accepted at " + name(conv) + "#"
                                  + std::to_string(i) + " which the router's log does not hold");
    }
    if (d != views_[info.author].convs[conv].d.end() && d->second != it->second.e.d)
      continue;
    for (const auto& x : it->second.e.slots) {
      if (views_[x].convs[conv].accepted.contains(i) || excused_member(x, conv, i))
        continue;
      return fail("liveness", x + " never accepted " + name(conv) + "#" + std::to_string(i) + " (\""
                                  + text + "\" by " + info.author
                                  + ") although it was a member then");
    }
  }
  // A SETUP is ordered, or was refused (a drop checked for its cause when it happened).
  for (const auto& conv : convs_)
    for (const auto& u : users_)
      if (const client_conv* cc = w_.user(u).find(conv);
          cc != nullptr && cc->status == conv_status::pending_setup && !cc->outbox.empty()
          && !w_.router(conv).stopped())
        return fail("liveness", u + "'s SETUP of " + name(conv)
                                    + " was never ordered after the adversary stopped");
  // Every member still in the conversation caught up and has nothing left to send.
  for (const auto& conv : convs_) {
    router_conv& rc = w_.router(conv);
    const conv_state* st = rc.state();
    if (st == nullptr || rc.stopped() || diverged(conv))
      continue;
    for (const auto& m : st->members) {
      if (excused_member(m.id, conv, st->next - 1))
        continue;
      const auto& cv = views_[m.id].convs[conv];
      if (!cv.last_index || *cv.last_index + 1 != st->next)
        return fail("liveness", m.id + " is a member of " + name(conv) + " but accepted up to "
                                    + (cv.last_index ? "#" + std::to_string(*cv.last_index)
                                                     : std::string("nothing"))
                                    + " of " + std::to_string(st->next) + " entries");
      const client_conv* cc = w_.user(m.id).find(conv);
      if (cc != nullptr && !cc->outbox.empty()) {
        const auto& e = cc->outbox.front();
        return fail(
            "liveness",
            m.id + " still has " + std::to_string(cc->outbox.size())
                + " message(s) in its outbox of " + name(conv)
                + " (first: " + std::string(to_string(e.type)) + " aseq " + std::to_string(e.aseq)
                + (e.stale_after ? ", waiting for STALE(" + std::to_string(*e.stale_after) + ")"
                                 : std::string())
                + ")");
      }
    }
  }
}

void sim_driver::check_settled_agreement() {
  if (failed_)
    return;
  // Clients that are neither halted, alarmed nor stalled agree at every index. With no honest
  // mirror this is all detection can give (docs/design.md §1): a fork that, say, removes a member
  // on its branch leaves that member silent for good. Stalled: forked onto a branch the
  // router's log does not hold (nothing it sends can be ordered), or counted a member by the
  // router but not at its last index (or holding no active conversation).
  auto stalled = [&](const std::string& u, const conv_id& conv) {
    if (forked_user(u, conv))
      return true;
    const conv_state* st = w_.router(conv).state();
    if (st == nullptr || !st->is_member(u))
      return false;
    const auto& cv = views_[u].convs[conv];
    return !is_active_member(u, conv) || !cv.last_index || *cv.last_index + 1 != st->next;
  };
  std::map<std::pair<conv_id, uint64_t>, std::pair<hash32, std::string>> seen;
  for (const auto& u : users_) {
    for (const auto& [conv, cv] : views_[u].convs) {
      if (has_alarm_in(u, conv) || stalled(u, conv))
        continue;
      for (const auto& [i, d] : cv.d) {
        auto [it, fresh] = seen.try_emplace({conv, i}, d, u);
        if (!fresh && it->second.first != d)
          return fail("agreement (same entry at every index, or stalled or alarmed)",
                      u + " and " + it->second.second + " hold different entries at " + name(conv)
                          + "#" + std::to_string(i) + " and neither stalled nor raised an alarm");
      }
    }
  }
}

void sim_driver::check_removed_slots() {
  if (failed_ || all_lying())
    return;
  // A removed member gets no block (nothing to decrypt) until an UPDATE adds it again.
  for (const auto& u : users_) {
    for (const auto& [conv, t] : w_.node(u).transcript) {
      auto& log = w_.log(conv);
      for (const auto& e : t) {
        if (e.type != msg_type::update || !in_sorted(e.removes, u))
          continue;
        for (auto it = log.upper_bound(e.index); it != log.end(); ++it) {
          const common& c = it->second.e.c;
          if (c.type == msg_type::update && find_member(c.adds, u) != nullptr)
            break;
          if (in_sorted(it->second.e.slots, u))
            return fail("removed member decrypts nothing after its removal",
                        "entry " + name(conv) + "#" + std::to_string(it->first)
                            + " carries a slot for " + u + ", removed at #"
                            + std::to_string(e.index));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Random actions.

std::optional<conv_id> sim_driver::pick_conv(action_source& src) {
  if (convs_.empty())
    return std::nullopt;
  return convs_[src.pick(static_cast<uint32_t>(convs_.size()))];
}

std::vector<std::string> sim_driver::pick_subset(action_source& src,
                                                 const std::vector<std::string>& from) {
  std::vector<std::string> out;
  for (const auto& x : from)
    if (src.pick(2) == 1)
      out.push_back(x);
  if (out.empty() && !from.empty())
    out.push_back(from[src.pick(static_cast<uint32_t>(from.size()))]);
  return out;
}

void sim_driver::random_action(action_source& src) {
  if (failed_)
    return;
  enum kind : uint8_t {
    k_deliver,
    k_send,
    k_receipt,
    k_receipts_due,
    k_update,
    k_create,
    k_toggle,
    k_reconnect,
    k_crash,
    k_time,
    k_drop,
    k_duplicate,
    k_delay,
    k_swap,
    k_tamper,
    k_misroute,
    k_fork_snapshot,
    k_fork_push,
    k_forge,
    k_mirror_down,
    k_hint,
    k_cheat,
    k_hostile,
    k_count
  };
  uint32_t weight[k_count] = {40, 16, 3, 2, 5, 1, 3, 2, 2, 3, 3, 3,
                              3,  3,  3, 1, 1, 2, 1, 1, 2, 2, 3};
  if (!cfg_.adversary)
    for (int k = k_drop; k <= k_hint; ++k)
      weight[k] = 0;
  if (!cfg_.dishonest_members)
    weight[k_cheat] = 0;
  if (!cfg_.dishonest_members && !cfg_.adversary)
    weight[k_hostile] = 0;
  if (convs_.size() >= cfg_.max_convs)
    weight[k_create] = 0;
  uint32_t total = 0;
  for (uint32_t x : weight)
    total += x;
  uint32_t r = src.pick(total);
  int which = 0;
  while (r >= weight[which])
    r -= weight[which++];

  const auto n_users = static_cast<uint32_t>(users_.size());
  const std::string& someone = users_[src.pick(n_users)];
  const auto net_size = static_cast<uint32_t>(w_.network().size());
  // An online, active member of a random conversation.
  auto actor = [&](conv_id& conv) -> std::optional<std::string> {
    auto c = pick_conv(src);
    if (!c)
      return std::nullopt;
    conv = *c;
    std::vector<std::string> cands;
    for (const auto& u : users_)
      if (w_.node(u).online && is_active_member(u, conv))
        cands.push_back(u);
    if (cands.empty())
      return std::nullopt;
    return cands[src.pick(static_cast<uint32_t>(cands.size()))];
  };
  conv_id conv{};
  switch (static_cast<kind>(which)) {
    case k_deliver: {
      const uint32_t n = 1 + src.pick(8);
      for (uint32_t k = 0; k < n && deliver(); ++k) {
      }
      break;
    }
    case k_send:
      if (auto a = actor(conv))
        send(*a, conv);
      break;
    case k_receipt:
      if (auto a = actor(conv))
        receipt(*a, conv);
      break;
    case k_receipts_due:
      receipts_due();
      break;
    case k_update: {
      auto a = actor(conv);
      if (!a)
        break;
      const client_conv* cc = w_.user(*a).find(conv);
      std::vector<std::string> outside, inside;
      for (const auto& u : users_) {
        if (cc->st.is_member(u)) {
          if (u != *a)
            inside.push_back(u);
        } else {
          outside.push_back(u);
        }
      }
      std::vector<std::string> adds, removes;
      const uint32_t op = src.pick(8);
      if ((op <= 3 || op == 6) && !outside.empty())
        adds.push_back(outside[src.pick(static_cast<uint32_t>(outside.size()))]);
      if ((op == 4 || op == 5 || op == 6) && inside.size() >= 2)
        removes.push_back(inside[src.pick(static_cast<uint32_t>(inside.size()))]);
      if (op == 7 && inside.size() >= 2)
        removes.push_back(*a);  // leaving
      if (adds.empty() && removes.empty())
        break;
      update(*a, conv, adds, removes);
      break;
    }
    case k_create: {
      if (!w_.node(someone).online)
        break;
      std::vector<std::string> others;
      for (const auto& u : users_)
        if (u != someone)
          others.push_back(u);
      others = pick_subset(src, others);
      create(someone, others);
      break;
    }
    case k_toggle:
      set_online(someone, !w_.node(someone).online);
      break;
    case k_reconnect:
      if (w_.node(someone).online)
        reconnect(someone);
      break;
    case k_crash:
      crash(someone);
      break;
    case k_time:
      advance_time(1 + src.pick(90));
      break;
    case k_drop:
      drop(src.pick(net_size));
      break;
    case k_duplicate:
      duplicate(src.pick(net_size), src.pick(net_size + 1));
      break;
    case k_delay:
      delay(src.pick(net_size));
      break;
    case k_swap:
      swap(src.pick(net_size), src.pick(net_size));
      break;
    case k_tamper:
      tamper(src.pick(net_size), src.pick(64), src.pick(1024));
      break;
    case k_misroute:
      misroute(src.pick(net_size), someone);
      break;
    case k_fork_snapshot:
      if (auto c = pick_conv(src))
        fork_snapshot(*c);
      break;
    case k_fork_push: {
      auto c = pick_conv(src);
      if (!c || !forks_.contains(*c))
        break;
      const uint32_t pick = src.pick(8);
      const bool steal = src.pick(2) == 1;
      fork_push(*c, pick, steal, pick_subset(src, members_of(*c)));
      break;
    }
    case k_forge: {
      auto c = pick_conv(src);
      if (!c || w_.router(*c).state() == nullptr)
        break;
      const uint64_t from = src.pick(static_cast<uint32_t>(w_.router(*c).state()->next));
      forge_replay(*c, from, pick_subset(src, members_of(*c)));
      break;
    }
    case k_mirror_down: {
      const size_t k = src.pick(static_cast<uint32_t>(cfg_.mirrors));
      set_mirror_down(k, !w_.mirror_at(k).down);
      break;
    }
    case k_hint: {
      // A forged hint about one of the user's outbox messages.
      auto c = pick_conv(src);
      if (!c)
        break;
      const client_conv* cc = w_.user(someone).find(*c);
      if (cc == nullptr || cc->outbox.empty())
        break;
      const uint64_t aseq = cc->outbox[src.pick(static_cast<uint32_t>(cc->outbox.size()))].aseq;
      rejection rej;
      rej.kind = static_cast<rejection_kind>(1 + src.pick(14));
      rej.value = src.pick(2) == 0 ? src.pick(64) : aseq + src.pick(3);
      forge_rejection(someone, *c, aseq, rej);
      break;
    }
    case k_cheat: {
      auto a = actor(conv);
      if (!a)
        break;
      const client_conv* cc = w_.user(*a).find(conv);
      std::vector<std::string> others, outside;
      for (const auto& u : users_) {
        if (cc->st.is_member(u)) {
          if (u != *a)
            others.push_back(u);
        } else {
          outside.push_back(u);
        }
      }
      const uint32_t how = src.pick(6);
      if (how == 4) {
        // An equivocating UPDATE: add someone, its block for one member is garbage.
        if (outside.empty() || others.empty())
          break;
        const std::string add = outside[src.pick(static_cast<uint32_t>(outside.size()))];
        std::vector<std::string> victims = others;
        victims.push_back(add);
        cheat_update(*a, conv, {add}, {}, victims[src.pick(static_cast<uint32_t>(victims.size()))]);
      } else if (how == 5) {
        if (convs_.size() >= cfg_.max_convs)
          break;
        std::vector<std::string> all;
        for (const auto& u : users_)
          if (u != *a)
            all.push_back(u);
        auto chosen = pick_subset(src, all);
        cheat_create(*a, chosen, chosen[src.pick(static_cast<uint32_t>(chosen.size()))]);
      } else if (how == 2) {
        const member_list& ms = w_.ms();
        cheat_send(*a, conv, cheat::amb, ms[src.pick(static_cast<uint32_t>(ms.size()))].id);
      } else if (!others.empty() || how == 3) {
        const std::string victim =
            others.empty() ? *a : others[src.pick(static_cast<uint32_t>(others.size()))];
        cheat_send(*a, conv, static_cast<cheat>(how), victim);
      }
      break;
    }
    case k_hostile:
      hostile_action(src);
      break;
    case k_count:
      break;
  }
}

void sim_driver::hostile_action(action_source& src) {
  // The moves this run's adversary may make: a dishonest member's, a lying router's or
  // directory's, or both (a dishonest member's UPDATE that a lying router orders).
  std::vector<hostile_move> moves;
  const bool member = cfg_.dishonest_members;
  const bool router = cfg_.adversary;
  if (member) {
    moves.push_back(hostile_move::low_order_setup);
    moves.push_back(hostile_move::low_order_update);
    moves.push_back(hostile_move::void_flood);
    moves.push_back(hostile_move::low_order_ratchet);
  }
  if (router) {
    moves.push_back(hostile_move::bad_attachment);
    moves.push_back(hostile_move::used_prekey);
  }
  if (member && router)
    moves.push_back(hostile_move::wrong_key);
  // Halts come from dishonest members and from the lying directory.
  moves.push_back(hostile_move::readd_halted);
  const hostile_move move = moves[src.pick(static_cast<uint32_t>(moves.size()))];

  auto pick_of = [&](const std::vector<std::string>& from) -> std::optional<std::string> {
    if (from.empty())
      return std::nullopt;
    return from[src.pick(static_cast<uint32_t>(from.size()))];
  };
  // An online, active member of a random conversation, the other members and the outsiders,
  // as that member sees them.
  conv_id conv{};
  std::vector<std::string> others, outside;
  auto actor = [&]() -> std::optional<std::string> {
    auto c = pick_conv(src);
    if (!c)
      return std::nullopt;
    conv = *c;
    std::vector<std::string> cands;
    for (const auto& u : users_)
      if (w_.node(u).online && is_active_member(u, conv))
        cands.push_back(u);
    auto a = pick_of(cands);
    if (!a)
      return std::nullopt;
    const client_conv* cc = w_.user(*a).find(conv);
    for (const auto& u : users_) {
      if (cc->st.is_member(u)) {
        if (u != *a)
          others.push_back(u);
      } else {
        outside.push_back(u);
      }
    }
    return a;
  };
  const std::string& someone = users_[src.pick(static_cast<uint32_t>(users_.size()))];
  std::vector<std::string> not_someone;
  for (const auto& u : users_)
    if (u != someone)
      not_someone.push_back(u);

  switch (move) {
    case hostile_move::low_order_setup: {
      auto chosen = pick_subset(src, not_someone);
      auto named = pick_of(chosen);
      low_order_member(someone, std::nullopt, chosen, *named, src.pick(2) == 1);
      break;
    }
    case hostile_move::low_order_update: {
      auto a = actor();
      if (!a)
        break;
      // Any id that is not a member: a registered outsider, or one nobody registered.
      auto named = pick_of(outside);
      const bool made_up = src.pick(2) == 1 || !named;
      const bool order4 = src.pick(2) == 1;
      low_order_member(*a, conv, {}, made_up ? std::string("mallory") : *named, order4);
      break;
    }
    case hostile_move::bad_attachment: {
      const uint32_t how = src.pick(3);
      auto a = src.pick(2) == 1 ? actor() : std::nullopt;
      if (a && !outside.empty()) {
        bad_attachment_commit(*a, conv, {*pick_of(outside)}, how);
      } else {
        bad_attachment_commit(someone, std::nullopt, pick_subset(src, not_someone), how);
      }
      break;
    }
    case hostile_move::wrong_key: {
      auto a = actor();
      auto added = pick_of(outside);
      if (!a || !added)
        break;
      std::vector<std::string> owners;
      for (const auto& u : users_)
        if (u != *added)
          owners.push_back(u);
      wrong_key_update(*a, conv, *added, *pick_of(owners));
      break;
    }
    case hostile_move::void_flood: {
      auto a = actor();
      auto victim = pick_of(others);
      if (!a || !victim)
        break;
      const size_t n = 8 + src.pick(33);
      void_flood(*a, conv, *victim, n, src.pick(3));
      break;
    }
    case hostile_move::used_prekey: {
      if (!plant_used_prekey(someone))
        break;
      // Someone fetches the owner's keys: a member of a conversation with it that has no key
      // for it yet, else the creator of a new conversation with it.
      const std::string& requester =
          not_someone[src.pick(static_cast<uint32_t>(not_someone.size()))];
      if (!w_.node(requester).online)
        break;
      for (const auto& c : convs_) {
        if (!is_active_member(requester, c) || !is_active_member(someone, c))
          continue;
        const auto missing = w_.user(requester).missing_keys(c);
        if (std::find(missing.begin(), missing.end(), someone) != missing.end()) {
          send(requester, c);
          return;
        }
      }
      if (convs_.size() < cfg_.max_convs) {
        std::vector<std::string> with{someone};
        for (const auto& u : pick_subset(src, not_someone))
          if (u != requester)
            with.push_back(u);
        std::sort(with.begin(), with.end());
        create(requester, with);
      }
      break;
    }
    case hostile_move::low_order_ratchet: {
      auto a = actor();
      if (!a)
        break;
      std::vector<std::string> peers = others;
      for (const auto& o : w_.ms())
        peers.push_back(o.id);
      auto peer = pick_of(peers);
      if (!low_order_ratchet(*a, conv, *peer) || src.pick(2) == 0)
        break;
      // The peer answers soon: its send must not fail.
      if (find_member(w_.ms(), *peer) == nullptr && w_.node(*peer).online
          && is_active_member(*peer, conv)) {
        deliver_all();
        send(*peer, conv);
      }
      break;
    }
    case hostile_move::readd_halted: {
      // An honest member removes a member halted there, then adds it again.
      auto a = actor();
      if (!a)
        break;
      auto halted_members = [&] {
        std::vector<std::string> halted;
        for (const auto& u : others)
          if (const client_conv* hc = w_.user(u).find(conv);
              hc != nullptr && hc->status == conv_status::halted)
            halted.push_back(u);
        return halted;
      };
      std::vector<std::string> halted = halted_members();
      // Halts are rare in a random run; a dishonest member makes one: its UPDATE carries a
      // garbage block for one member, which halts there.
      if (halted.empty() && member && !others.empty()) {
        // The ordering must work for the UPDATEs that follow: every mirror is up, and what
        // waits for a backoff goes out.
        for (size_t k = 0; k < cfg_.mirrors; ++k)
          if (w_.mirror_at(k).down)
            set_mirror_down(k, false);
        advance_time(1);
        deliver_all();
        if (!is_active_member(*a, conv))
          break;
        std::vector<std::string> online;
        for (const auto& u : others)
          if (w_.node(u).online)
            online.push_back(u);
        auto victim = pick_of(online);
        if (!victim)
          break;
        std::vector<std::string> adds;
        if (auto add = pick_of(outside))
          adds.push_back(*add);
        if (!cheat_update(*a, conv, adds, {}, *victim))
          break;
        deliver_all();
        if (!is_active_member(*a, conv))
          break;
        others.clear();
        outside.clear();
        for (const auto& u : users_) {
          if (w_.user(*a).find(conv)->st.is_member(u)) {
            if (u != *a)
              others.push_back(u);
          } else {
            outside.push_back(u);
          }
        }
        halted = halted_members();
      }
      auto h = pick_of(halted);
      if (!h || !update(*a, conv, {}, {*h}))
        break;
      deliver_all();
      if (is_active_member(*a, conv) && !w_.user(*a).find(conv)->st.is_member(*h)
          && update(*a, conv, {*h}, {}))
        ++stats_.hostile[static_cast<size_t>(hostile_move::readd_halted)];
      break;
    }
    case hostile_move::count:
      break;
  }
}

std::optional<violation> run_simulation(const sim_config& cfg, action_source& src,
                                        sim_stats* stats) {
  sim_driver d(cfg);
  // A first conversation, so that the run starts with something to do.
  std::vector<std::string> others;
  for (size_t k = 1; k < d.users().size(); ++k)
    if (k < 3 || src.pick(2) == 1)
      others.push_back(d.users()[k]);
  d.create(d.users()[0], others);
  d.deliver_all();
  for (size_t n = 0; n < cfg.max_actions && !src.exhausted() && !d.failed(); ++n)
    d.random_action(src);
  d.finish();
  if (stats != nullptr)
    *stats = d.stats();
  return d.failed();
}

}  // namespace cowpi::sim

// SPDX-License-Identifier: Apache-2.0
// The client state machine: building messages (§3.2), membership (§3.6), receipts (§3.7) and
// the outbox (§3.8). Acceptance (§3.5) is in client_receive.cpp.
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/validate.hpp"

#include "client_helpers.hpp"

#include <algorithm>

namespace cowpi::protocol {

std::string_view to_string(alarm_kind k) noexcept {
  switch (k) {
    case alarm_kind::provider:
      return "PROVIDER";
    case alarm_kind::fork:
      return "FORK";
    case alarm_kind::sender:
      return "SENDER";
    case alarm_kind::directory:
      return "DIRECTORY";
    case alarm_kind::impersonation:
      return "IMPERSONATION";
  }
  return "UNKNOWN";
}

client_conv client_conv::clone() const {
  client_conv c;
  c.st = st;
  c.status = status;
  c.halt_index = halt_index;
  for (const auto& [peer, ch] : channels)
    c.channels.emplace(peer, ch.clone());
  c.ratchet_next = ratchet_next;
  c.outbox = outbox;
  c.orphans = orphans;
  c.next_outbox_id = next_outbox_id;
  c.voids_pending = voids_pending;
  c.last_foreign = last_foreign;
  c.own_parent = own_parent;
  c.last_receipt_time = last_receipt_time;
  c.alarmed = alarmed;
  c.d_recent = d_recent;
  return c;
}

client::client(identity self, member_list pinned_ms, client_options opts)
    : self_(std::move(self)), pinned_ms_(std::move(pinned_ms)), opts_(opts) {}

client client::clone() const {
  client c(identity::from_secret(self_.id(), self_.export_secret()), pinned_ms_, opts_);
  c.hooks_ = hooks_;
  c.keys_ = keys_.clone();
  for (const auto& [id, cc] : convs_)
    c.convs_.emplace(id, cc.clone());
  c.tombstones_ = tombstones_;
  return c;
}

const client_conv* client::find(const conv_id& conv) const noexcept {
  auto it = convs_.find(conv);
  return it == convs_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------
// Helpers.

namespace {

uint64_t next_aseq(const client_conv& cc, const std::string& self) {
  if (!cc.outbox.empty())
    return cc.outbox.back().aseq + 1;
  auto it = cc.st.aseq_last.find(self);
  return (it == cc.st.aseq_last.end() ? 0 : it->second.value) + 1;
}

const public_key* lpk_for(const client_conv& cc, const common& c, const std::string& id) {
  if (c.type == msg_type::setup) {
    const member* m = find_member(c.members, id);
    return m ? &m->lpk : nullptr;
  }
  if (const member* m = find_member(cc.st.members, id))
    return &m->lpk;
  if (c.type == msg_type::update)
    if (const member* m = find_member(c.adds, id))
      return &m->lpk;
  return nullptr;
}

// The parent and voids of a RECEIPT built now, above `floor` (see `receipt_floor_for`): every
// VOID in (floor, next - 1]. Past MAX_VOIDS, the first MAX_VOIDS are reported and the parent
// drops to just before the next one, so that a later RECEIPT reports the rest; a parent below
// the last UPDATE would be stale, so it never drops below it, and the oldest VOIDs below it
// that do not fit are left unreported (docs/protocol.md §10).
struct receipt_plan {
  uint64_t parent = 0;
  std::vector<uint64_t> voids;
};

receipt_plan plan_receipt(const client_conv& cc, int64_t floor);

receipt_plan plan_receipt(const client_conv& cc, int64_t floor) {
  receipt_plan p;
  p.parent = cc.st.next - 1;
  for (uint64_t x : cc.voids_pending)
    if (static_cast<int64_t>(x) > floor && x <= p.parent)
      p.voids.push_back(x);
  if (p.voids.size() <= max_voids)
    return p;
  const uint64_t lowered = p.voids[max_voids] - 1;
  if (lowered >= cc.st.last_update) {
    p.parent = lowered;
    p.voids.resize(max_voids);
    return p;
  }
  p.parent = cc.st.last_update;
  std::erase_if(p.voids, [&](uint64_t v) { return v > p.parent; });
  if (p.voids.size() > max_voids)
    p.voids.erase(p.voids.begin(), p.voids.end() - static_cast<std::ptrdiff_t>(max_voids));
  return p;
}

}  // namespace

namespace detail {

// The floor our next RECEIPT's voids start above: the parent of our last
// ordered RECEIPT, or of an earlier one still in the outbox.
int64_t receipt_floor_for(const client_conv& cc, const std::string& self, size_t before) {
  int64_t floor = -1;
  if (auto f = cc.st.receipt_floor.find(self); f != cc.st.receipt_floor.end())
    floor = f->second.value;
  for (size_t k = 0; k < before && k < cc.outbox.size(); ++k) {
    const auto& e = cc.outbox[k];
    if (e.type == msg_type::receipt && !e.versions.empty())
      floor = std::max(floor, static_cast<int64_t>(e.versions.back().submit.c.parent));
  }
  return floor;
}

// Sets a RECEIPT template's parent, parent hash and voids. T_parent is always held: the
// parent is at least the last UPDATE.
void set_receipt_range(const client_conv& cc, common& c, int64_t floor) {
  receipt_plan p = plan_receipt(cc, floor);
  const hash32* t = cc.st.t_at(p.parent);
  if (t == nullptr) {  // unreachable (see plan_receipt); keep the template's own parent
    c.voids.clear();
    return;
  }
  c.parent = p.parent;
  c.parent_hash = *t;
  c.voids = std::move(p.voids);
}

common ordered_template(const client_conv& cc, msg_type type, const std::string& self,
                        uint64_t aseq) {
  common c;
  c.conv = cc.st.conv;
  c.version = cc.st.version;
  c.type = type;
  c.author = self;
  c.aseq = aseq;
  c.parent = cc.st.next - 1;
  c.parent_hash = *cc.st.t_at(c.parent);
  return c;
}

}  // namespace detail

using detail::ordered_template;
using detail::receipt_floor_for;
using detail::set_receipt_range;

expected<slot_block> client::send_with_fallback(client_conv& cc, channel& ch, uint64_t& counter,
                                                const conv_id& conv, const std::string& peer,
                                                const public_key& lpk,
                                                const crypto::secret<32>& seed, byte_view ad,
                                                block_mode mode, uint64_t aseq, uint64_t now,
                                                crypto::rng& r) {
  auto send = [&](const send_target& t) -> expected<slot_block> {
    if (mode == block_mode::chain)
      return send_chain_on_channel(self_, ch, counter, conv, peer, lpk, t, seed, ad, aseq, now, r,
                                   /*defer=*/true);
    COWPI_TRY(block b, send_on_channel(self_, ch, counter, conv, peer, lpk, t, seed, ad, now, r));
    return slot_block{b};
  };
  // Chain mode with no step due: the next chain block needs no receiver key.
  if (mode == block_mode::chain && chain_step_due(ch, now) == step_reason::none)
    return send_chain_on_channel(self_, ch, counter, conv, peer, lpk, std::nullopt, seed, ad, aseq,
                                 now, r, /*defer=*/true);
  const bool had_latest = ch.peer_latest.has_value();
  if (auto target = choose_target(ch)) {
    auto b = send(*target);
    if (b)
      return b;
    if (target->ref.kind != key_kind::ratchet) {
      // The fetched key itself is unusable (a lying directory): fetch again.
      ch.first_contact.reset();
      cc.channels[peer].first_contact.reset();
      return b;
    }
    // A bad announced key fails when used (§2): forget it, here and in the conversation (a
    // failed build changes nothing else), and fall back to the peer's LAST_RESORT key.
    ch.peer_latest.reset();
    cc.channels[peer].peer_latest.reset();
  }
  // Without an announced key: the fetched first-contact key. A PREKEY is only good until the
  // peer has seen one of its RATCHET keys referenced on this channel, which is why a sender
  // that falls back from an announced key fetches again rather than reuse it.
  if (ch.first_contact && (ch.first_contact->kind == key_kind::last_resort || !had_latest)) {
    const send_target t{*ch.first_contact, ch.first_contact->pub};
    auto b = send(t);
    if (b)
      return b;
  }
  ch.first_contact.reset();
  cc.channels[peer].first_contact.reset();
  return fail(errc::unknown_key, "no usable key");
}

namespace {

/// The channels one `client::build` works on. A failed build changes nothing: a channel whose
/// next block is a chain block that moves only its send chain (the steady state of chain mode)
/// is changed in place, its chain saved first and put back unless the build commits; any other
/// channel is worked on a copy, with its RATCHET id counter, both kept only by `commit`.
class build_workspace {
public:
  build_workspace(client_conv& cc, block_mode mode, uint64_t now)
      : cc_(cc), mode_(mode), now_(now) {}
  build_workspace(const build_workspace&) = delete;
  build_workspace& operator=(const build_workspace&) = delete;
  ~build_workspace() {
    if (committed_)
      return;
    for (auto u = undo_.rbegin(); u != undo_.rend(); ++u)
      u->first->out.chain.emplace(std::move(u->second));
  }

  channel& channel_for(const std::string& peer) {
    auto it = work_.find(peer);
    if (it != work_.end())
      return it->second;
    auto orig = cc_.channels.find(peer);
    if (orig != cc_.channels.end() && mode_ == block_mode::chain
        && chain_block_only(orig->second, now_)) {
      undo_.emplace_back(&orig->second, orig->second.out.chain->clone());
      return orig->second;
    }
    return work_.emplace(peer, orig == cc_.channels.end() ? channel{} : orig->second.clone())
        .first->second;
  }

  /// After `channel_for(peer)`: a peer not worked on a copy is sealed in place, with a chain
  /// block that never makes a key.
  uint64_t& counter_for(const std::string& peer) {
    if (!work_.contains(peer))
      return unused_counter_;
    auto it = counters_.find(peer);
    if (it != counters_.end())
      return it->second;
    auto orig = cc_.ratchet_next.find(peer);
    return counters_.emplace(peer, orig == cc_.ratchet_next.end() ? 0 : orig->second).first->second;
  }

  /// Keeps every change; the chain steps made belong to the version (`aseq`, `d`).
  void commit(uint64_t aseq, const hash32& d) {
    committed_ = true;
    for (auto& [peer, ch] : work_) {
      // Chain mode: the steps of this build belong to this version (§4.8 "Establishment").
      tag_pending(ch.out, aseq, d);
      cc_.channels[peer] = std::move(ch);
    }
    for (auto& [peer, n] : counters_)
      cc_.ratchet_next[peer] = n;
  }

private:
  client_conv& cc_;
  block_mode mode_;
  uint64_t now_;
  std::map<std::string, channel> work_;
  std::map<std::string, uint64_t> counters_;
  std::vector<std::pair<channel*, send_chain>> undo_;
  uint64_t unused_counter_ = 0;
  bool committed_ = false;
};

}  // namespace

expected<client::build_result> client::build(client_conv& cc, const common& c_template,
                                             const bytes* plaintext, uint64_t now, crypto::rng& r,
                                             const member_list* /*unused*/) {
  common c = c_template;
  // The conversation's mode, from the template: a test hook that rewrites C.version below does
  // not change what the blocks are.
  const block_mode mode = mode_of_version(c_template.version);
  crypto::secret<32> seed;
  submit_msg s;
  if (hooks_.on_common && c.type != msg_type::message)
    hooks_.on_common(c);
  if (c.type == msg_type::message) {
    seed = r.secret_bytes<32>();
    bytes body = seal_body(seed, c.conv, c.author, c.aseq, *plaintext, r);
    c.body_len = body.size();
    c.body_hash = crypto::sha256(body);
    c.body_commit = body_commit(seed);
    s.body = std::move(body);
    if (hooks_.on_common)
      hooks_.on_common(c);
  }
  COWPI_TRY(hash32 h_c, hash_common(c));
  const conv_state* st = c.type == msg_type::setup ? nullptr : &cc.st;
  const auto rcpts = recipients(st, c);
  const member_list& ms = c.type == msg_type::setup ? c.ms : cc.st.ms;

  // A failure changes nothing (see `build_workspace`).
  build_workspace ws(cc, mode, now);

  std::vector<block_digest> digests;
  digests.reserve(rcpts.size());
  s.blocks.reserve(rcpts.size());
  const crypto::secret<32> zero_seed;
  const std::set<std::string>* cut_off = nullptr;
  if (auto u = unreachable_.find(c.conv); u != unreachable_.end())
    cut_off = &u->second;
  for (const auto& rid : rcpts) {
    const public_key* lpk = lpk_for(cc, c, rid);
    if (lpk == nullptr)
      return fail(errc::internal, "recipient without a long-term key");
    channel& ch = ws.channel_for(rid);
    auto ad = ad_block(h_c, c.author, rid);
    crypto::secret<32> rseed = c.type == msg_type::message ? seed.clone() : zero_seed.clone();
    if (hooks_.on_seed)
      hooks_.on_seed(rid, rseed);
    auto b = send_with_fallback(cc, ch, ws.counter_for(rid), c.conv, rid, *lpk, rseed, ad, mode,
                                c.aseq, now, r);
    if (!b) {
      // No key of this member works. If the directory has nothing usable for it either (a
      // member named with a key the directory does not hold), it cannot be reached: it gets a
      // block nobody can open (it reads the entry as VOID), and the others still get theirs,
      // so it never stops us from talking to them or from removing it. Otherwise the caller
      // fetches a key first.
      if (cut_off == nullptr || !cut_off->contains(rid))
        return fail(errc::unknown_key, "no usable key for a member; fetch one");
      b = dead_slot(mode, r);
    }
    if (hooks_.on_block)
      hooks_.on_block(rid, *b);
    digests.push_back(block_digest{rid, block_hash(*b)});
    s.blocks.push_back(recipient_block{rid, std::move(*b)});
  }
  const hash32 root = blocks_root(digests);
  for (const auto& o : ms) {
    channel& ch = ws.channel_for(o.id);
    auto ad = ad_amb(h_c, root, c.author, o.id);
    auto b = send_with_fallback(cc, ch, ws.counter_for(o.id), c.conv, o.id, o.lpk, zero_seed, ad,
                                mode, c.aseq, now, r);
    if (!b)
      return fail(errc::unknown_key, "no usable key for a mirror; fetch one");
    if (hooks_.on_amb)
      hooks_.on_amb(o.id, *b);
    s.ambs.push_back(std::move(*b));
  }
  const uint64_t aseq = c.aseq;
  s.c = std::move(c);
  build_result out;
  out.version.d = entry_digest(h_c, root);
  ws.commit(aseq, out.version.d);
  out.version.submit = std::move(s);
  return out;
}

// ---------------------------------------------------------------------------
// Sending.

std::vector<std::string> client::missing_keys(const conv_id& conv) const {
  std::vector<std::string> out;
  const client_conv* cc = find(conv);
  if (cc == nullptr)
    return out;
  auto check = [&](const std::string& id) {
    if (id == self_.id())
      return;
    auto it = cc->channels.find(id);
    if (it != cc->channels.end() && choose_target(it->second))
      return;
    // The directory had nothing usable for it: not asked again until a restart.
    if (auto u = unreachable_.find(conv); u != unreachable_.end() && u->second.contains(id))
      return;
    out.push_back(id);
  };
  for (const auto& m : cc->st.members)
    check(m.id);
  for (const auto& o : cc->st.ms)
    check(o.id);
  for (const auto& e : cc->outbox)
    for (const auto& a : e.adds)
      check(a.id);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

expected<std::vector<std::string>> client::add_bundles(const conv_id& conv,
                                                       const std::vector<prekey_bundle>& bundles,
                                                       const std::vector<std::string>& requested) {
  auto it = convs_.find(conv);
  if (it == convs_.end())
    return fail(errc::not_found, "no such conversation");
  client_conv& cc = it->second;
  for (const auto& b : bundles)
    if (const member* o = find_member(pinned_ms_, b.owner); o != nullptr && o->lpk != b.lpk)
      return fail(errc::directory, "mirror key differs from the pinned mirror set");
  auto& cut_off = unreachable_[conv];
  std::set<std::string> good;
  for (const auto& b : bundles) {
    if (b.key.kind == key_kind::ratchet)
      continue;
    // The conversation names each member with one long-term key; a bundle for another key
    // cannot reach that member.
    if (const member* m = find_member(cc.st.members, b.owner); m != nullptr && m->lpk != b.lpk)
      continue;
    good.insert(b.owner);
    cut_off.erase(b.owner);
    auto& ch = cc.channels[b.owner];
    if (!ch.peer_latest)
      ch.first_contact = b.key;
  }
  std::vector<std::string> refused;
  for (const auto& id : requested) {
    if (good.contains(id) || !cc.st.is_member(id))
      continue;
    if (auto ch = cc.channels.find(id); ch != cc.channels.end() && choose_target(ch->second))
      continue;
    cut_off.insert(id);
    refused.push_back(id);
  }
  if (cut_off.empty())
    unreachable_.erase(conv);
  return refused;
}

std::vector<std::string> client::unreachable(const conv_id& conv) const {
  auto u = unreachable_.find(conv);
  if (u == unreachable_.end())
    return {};
  return {u->second.begin(), u->second.end()};
}

conv_id client::new_conv_id(crypto::rng& r) const {
  conv_id conv{};
  do {
    conv = r.array<16>();
  } while (convs_.contains(conv) || tombstones_.contains(conv));
  return conv;
}

expected<outgoing> client::create(const member_list& others,
                                  const std::vector<prekey_bundle>& bundles, uint64_t now,
                                  crypto::rng& r, block_mode mode, std::optional<conv_id> chosen) {
  if (others.empty())
    return fail(errc::invalid_argument, "a conversation needs another member");
  if (pinned_ms_.empty())
    return fail(errc::invalid_argument, "no pinned mirror set");
  member_list members = others;
  members.push_back(self_.as_member());
  std::sort(members.begin(), members.end(),
            [](const member& a, const member& b) { return a.id < b.id; });
  if (!is_sorted_unique(members))
    return fail(errc::invalid_argument, "duplicate member");
  if (members.size() > max_members)
    return fail(errc::too_large, "too many members");
  for (const auto& m : members)
    if (!valid_id(m.id))
      return fail(errc::invalid_argument, "malformed member id");

  if (chosen && (convs_.contains(*chosen) || tombstones_.contains(*chosen)))
    return fail(errc::already_exists, "the conversation id is taken");
  const conv_id conv = chosen ? *chosen : new_conv_id(r);

  client_conv cc;
  cc.status = conv_status::pending_setup;
  cc.st.conv = conv;
  cc.st.version = static_cast<uint8_t>(mode);
  auto find_bundle = [&](const std::string& id) -> const prekey_bundle* {
    for (const auto& b : bundles)
      if (b.owner == id)
        return &b;
    return nullptr;
  };
  for (const auto& m : others) {
    const prekey_bundle* b = find_bundle(m.id);
    if (b == nullptr || b->key.kind == key_kind::ratchet)
      return fail(errc::unknown_key, "no pre-key for a member");
    cc.channels[m.id].first_contact = b->key;
  }
  for (const auto& o : pinned_ms_) {
    const prekey_bundle* b = find_bundle(o.id);
    if (b == nullptr || b->key.kind == key_kind::ratchet)
      return fail(errc::unknown_key, "no pre-key for a mirror");
    if (b->lpk != o.lpk)
      return fail(errc::directory, "mirror key differs from the pinned set");
    cc.channels[o.id].first_contact = b->key;
  }
  common c;
  c.conv = conv;
  c.version = static_cast<uint8_t>(mode);
  c.type = msg_type::setup;
  c.author = self_.id();
  c.aseq = 1;
  c.ms = pinned_ms_;
  c.members = std::move(members);
  COWPI_TRY(build_result b, build(cc, c, nullptr, now, r, nullptr));
  outbox_entry e;
  e.id = cc.next_outbox_id++;
  e.aseq = 1;
  e.type = msg_type::setup;
  e.versions.push_back(b.version);
  cc.outbox.push_back(std::move(e));
  outgoing out{conv, 1, b.version.submit};
  convs_.emplace(conv, std::move(cc));
  return out;
}

namespace {
expected<void> check_can_send(const client_conv* cc, const std::string& self) {
  if (cc == nullptr)
    return fail(errc::not_found, "no such conversation");
  if (cc->status == conv_status::halted)
    return fail(errc::bad_state, "conversation halted");
  if (cc->status == conv_status::pending_setup)
    return fail(errc::bad_state, "conversation not yet set up");
  if (!cc->st.is_member(self))
    return fail(errc::bad_state, "not a member");
  return {};
}

}  // namespace

expected<outgoing> client::send_message(const conv_id& conv, byte_view plaintext, uint64_t now,
                                        crypto::rng& r) {
  auto it = convs_.find(conv);
  COWPI_TRY_VOID(check_can_send(it == convs_.end() ? nullptr : &it->second, self_.id()));
  if (plaintext.size() > max_plaintext)
    return fail(errc::too_large, "message too long");
  client_conv& cc = it->second;
  const uint64_t aseq = next_aseq(cc, self_.id());
  common c = ordered_template(cc, msg_type::message, self_.id(), aseq);
  bytes pt(plaintext.begin(), plaintext.end());
  COWPI_TRY(build_result b, build(cc, c, &pt, now, r, nullptr));
  outbox_entry e;
  e.id = cc.next_outbox_id++;
  e.aseq = aseq;
  e.type = msg_type::message;
  e.plaintext = std::move(pt);
  e.versions.push_back(b.version);
  cc.outbox.push_back(std::move(e));
  cc.own_parent = std::max(cc.own_parent, static_cast<int64_t>(c.parent));
  return outgoing{conv, aseq, b.version.submit};
}

expected<outgoing> client::send_receipt(const conv_id& conv, uint64_t now, crypto::rng& r) {
  auto it = convs_.find(conv);
  COWPI_TRY_VOID(check_can_send(it == convs_.end() ? nullptr : &it->second, self_.id()));
  client_conv& cc = it->second;
  const uint64_t aseq = next_aseq(cc, self_.id());
  common c = ordered_template(cc, msg_type::receipt, self_.id(), aseq);
  set_receipt_range(cc, c, receipt_floor_for(cc, self_.id(), cc.outbox.size()));
  COWPI_TRY(build_result b, build(cc, c, nullptr, now, r, nullptr));
  outbox_entry e;
  e.id = cc.next_outbox_id++;
  e.aseq = aseq;
  e.type = msg_type::receipt;
  e.versions.push_back(b.version);
  cc.outbox.push_back(std::move(e));
  cc.own_parent = std::max(cc.own_parent, static_cast<int64_t>(c.parent));
  cc.last_receipt_time = now;
  return outgoing{conv, aseq, b.version.submit};
}

expected<outgoing> client::update(const conv_id& conv, const member_list& adds,
                                  const std::vector<std::string>& removes, uint64_t now,
                                  crypto::rng& r) {
  auto it = convs_.find(conv);
  COWPI_TRY_VOID(check_can_send(it == convs_.end() ? nullptr : &it->second, self_.id()));
  client_conv& cc = it->second;
  member_list a = adds;
  std::sort(a.begin(), a.end(), [](const member& x, const member& y) { return x.id < y.id; });
  std::vector<std::string> rm = removes;
  std::sort(rm.begin(), rm.end());
  if (!is_sorted_unique(a) || !is_sorted_unique(rm))
    return fail(errc::invalid_argument, "duplicate id in ops");
  if (a.empty() && rm.empty())
    return fail(errc::invalid_argument, "an UPDATE needs an op");
  if (a.size() + rm.size() > max_ops)
    return fail(errc::too_large, "too many ops");
  for (const auto& m : a) {
    if (!valid_id(m.id))
      return fail(errc::invalid_argument, "malformed id");
    if (cc.st.is_member(m.id))
      return fail(errc::invalid_argument, "already a member");
    if (find_member(cc.st.ms, m.id) != nullptr)
      return fail(errc::invalid_argument, "a mirror cannot be a member");
  }
  for (const auto& id : rm)
    if (!cc.st.is_member(id))
      return fail(errc::invalid_argument, "not a member");
  member_list result = apply_ops(cc.st.members, a, rm);
  if (result.size() > max_members)
    return fail(errc::too_large, "too many members");
  const uint64_t aseq = next_aseq(cc, self_.id());
  common c = ordered_template(cc, msg_type::update, self_.id(), aseq);
  c.ms = cc.st.ms;
  c.adds = a;
  c.removes = rm;
  c.members = std::move(result);
  COWPI_TRY(build_result b, build(cc, c, nullptr, now, r, nullptr));
  outbox_entry e;
  e.id = cc.next_outbox_id++;
  e.aseq = aseq;
  e.type = msg_type::update;
  e.adds = std::move(a);
  e.removes = std::move(rm);
  e.versions.push_back(b.version);
  cc.outbox.push_back(std::move(e));
  cc.own_parent = std::max(cc.own_parent, static_cast<int64_t>(c.parent));
  return outgoing{conv, aseq, b.version.submit};
}

bool client::receipt_due(const conv_id& conv, uint64_t now) const {
  const client_conv* cc = find(conv);
  if (cc == nullptr || cc->status != conv_status::active || !cc->st.is_member(self_.id()))
    return false;
  const bool something_new = cc->last_foreign > cc->own_parent;
  const int64_t floor = receipt_floor_for(*cc, self_.id(), cc->outbox.size());
  const bool unreported_void =
      std::any_of(cc->voids_pending.begin(), cc->voids_pending.end(),
                  [floor](uint64_t v) { return static_cast<int64_t>(v) > floor; });
  if (!something_new && !unreported_void)
    return false;
  // R(n) = max(10 s, n/5 s) between RECEIPTs.
  const uint64_t rate = std::max<uint64_t>(10, cc->st.members.size() / 5);
  return cc->last_receipt_time == 0 || now >= cc->last_receipt_time + rate;
}

std::vector<outgoing> client::pending(const conv_id& conv) const {
  std::vector<outgoing> out;
  const client_conv* cc = find(conv);
  if (cc == nullptr || cc->status == conv_status::halted)
    return out;
  // A message waiting for its STALE rebuild goes out unchanged too: if the UPDATE never comes
  // (a false or lost hint), only a resend gets it ordered (§3.8).
  for (const auto& e : cc->outbox)
    if (!e.versions.empty())
      out.push_back(outgoing{conv, e.aseq, e.versions.back().submit});
  return out;
}

}  // namespace cowpi::protocol

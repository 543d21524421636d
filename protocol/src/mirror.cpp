// SPDX-License-Identifier: Apache-2.0
// The mirror: PREPARE, COMMIT and mirror blocks (docs/design.md §3.4).
#include "cowpi/protocol/mirror.hpp"

#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/validate.hpp"

#include <algorithm>

namespace cowpi::protocol {

mirror_conv mirror_conv::clone() const {
  mirror_conv c;
  c.st = st;
  for (const auto& [peer, ch] : channels)
    c.channels.emplace(peer, ch.clone());
  c.ratchet_next = ratchet_next;
  c.member_lr = member_lr;
  c.answers = answers;
  return c;
}

mirror::mirror(identity self, mirror_options opts) : self_(std::move(self)), opts_(opts) {}

mirror mirror::clone() const {
  mirror m(identity::from_secret(self_.id(), self_.export_secret()), opts_);
  m.keys_.store = keys_.store.clone();
  m.keys_.prepared_refs = keys_.prepared_refs;
  for (const auto& [id, mc] : convs_)
    m.convs_.emplace(id, mc.clone());
  return m;
}

const mirror_conv* mirror::find(const conv_id& conv) const noexcept {
  auto it = convs_.find(conv);
  return it == convs_.end() ? nullptr : &it->second;
}

namespace {

link_reject reject(std::string why) {
  return link_reject{std::move(why)};
}

}  // namespace

namespace {

/// Whether `ch` still holds the obligation of the first-contact key its peer used.
bool holds_obligation(const channel& ch) noexcept {
  return ch.peer_used_prekey.has_value() || ch.peer_used_last_resort.has_value();
}

}  // namespace

bool reads_keys(const prepare_msg& p, const mirror_conv* mc) noexcept {
  const block* b = block_of(p.amb);
  if (b == nullptr)
    return false;  // a chain block
  if (b->ref.kind != key_kind::ratchet)
    return true;
  if (mc == nullptr)
    return false;
  auto ch = mc->channels.find(p.c.author);
  return ch != mc->channels.end() && holds_obligation(ch->second);
}

struct mirror::checked {
  hash32 h_c{};
  hash32 root{};
  hash32 d{};
  block_effects amb_effects;
};

expected<mirror::checked, link_reject> mirror::check(const mirror_conv* mc, const key_store& keys,
                                                     const prepare_msg& p,
                                                     std::optional<uint64_t> index) const {
  const common& c = p.c;
  const conv_state* st = mc == nullptr ? nullptr : &mc->st;
  // Our own (id, lpk) must be in the conversation's mirror set.
  const member_list& ms = c.type == msg_type::setup || st == nullptr ? c.ms : st->ms;
  const member* me = find_member(ms, self_.id());
  if (me == nullptr || me->lpk != self_.lpk())
    return unexpected{reject("not_in_mirror_set")};

  checked out;
  auto h_c = hash_common(c);
  if (lying_) {
    // Attest anything (tests): only the digest is computed.
    if (!h_c)
      return unexpected{reject("not_canonical")};
    out.h_c = *h_c;
    out.root = blocks_root(p.block_hashes);
    out.d = entry_digest(out.h_c, out.root);
    out.amb_effects.chan = channel_ref{c.conv, c.author};
    out.amb_effects.ref = key_ref{key_kind::ratchet, 0, {}};
    return out;
  }
  std::vector<std::string> ids;
  ids.reserve(p.block_hashes.size());
  for (const auto& bh : p.block_hashes)
    ids.push_back(bh.recipient);
  recipient_check rc;
  rc.full = &ids;
  auto ok =
      validate(st, false, c, rc, index ? validate_at::exactly(*index) : validate_at::prepare());
  if (!ok)
    return unexpected{reject(std::string("invalid:") + std::string(to_string(ok.error())))};

  // LAST_RESORT keys: exactly one per added member (every member for SETUP), in member
  // order, each usable. Every attachment is checked: COMMIT stores them all, and a block to a
  // member must never become impossible to build.
  const member_list* need = nullptr;
  if (c.type == msg_type::setup) {
    need = &c.members;
  } else if (c.type == msg_type::update) {
    need = &c.adds;
  }
  const size_t needed = need == nullptr ? 0 : need->size();
  for (size_t k = 0; k < needed; ++k) {
    if (k >= p.last_resort.size() || p.last_resort[k].member != (*need)[k].id) {
      const auto& id = (*need)[k].id;
      const bool elsewhere =
          std::any_of(p.last_resort.begin(), p.last_resort.end(),
                      [&](const last_resort_attachment& a) { return a.member == id; });
      return unexpected{reject(elsewhere ? "bad_last_resort" : "missing_last_resort")};
    }
    if (p.last_resort[k].key_id == 0 || !usable_public_key(p.last_resort[k].pub))
      return unexpected{reject("bad_last_resort")};
  }
  if (p.last_resort.size() != needed)
    return unexpected{reject("bad_last_resort")};

  if (!h_c)  // validate checked canonical form: unreachable
    return unexpected{reject("not_canonical")};
  out.h_c = *h_c;
  out.root = blocks_root(p.block_hashes);
  out.d = entry_digest(out.h_c, out.root);

  // The author's block to us authenticates the author (deniably).
  const member_list& members = st == nullptr ? c.members : st->members;
  const member* author = find_member(members, c.author);
  if (author == nullptr)  // validate checked membership: unreachable
    return unexpected{reject("invalid:author_not_member")};
  const channel* ch = nullptr;
  if (mc != nullptr)
    if (auto f = mc->channels.find(c.author); f != mc->channels.end())
      ch = &f->second;
  auto ad = ad_amb(out.h_c, out.root, c.author, self_.id());
  auto opened = open_on_channel(self_, keys, ch, c.conv, c.author, author->lpk, p.amb, ad,
                                mode_of_version(c.version));
  if (!opened) {
    return unexpected{reject(opened.error() == block_failure::directory ? "amb_unknown_key"
                                                                        : "amb_does_not_verify")};
  }
  if (!crypto::is_zero(opened->pt.seed.expose()))
    return unexpected{reject("amb_has_seed")};
  out.amb_effects = std::move(opened->effects);

  // Every member that gets a block from us at COMMIT must have a key we can use: one it
  // announced to us, else its LAST_RESORT key (attached now or when it was added).
  for (const auto& u : slots(st, c)) {
    auto a = std::lower_bound(
        p.last_resort.begin(), p.last_resort.end(), u,
        [](const last_resort_attachment& x, const std::string& id) { return x.member < id; });
    if (a != p.last_resort.end() && a->member == u)  // sorted: checked above
      continue;
    if (mc != nullptr) {
      if (mc->member_lr.contains(u))
        continue;
      if (auto f = mc->channels.find(u); f != mc->channels.end() && f->second.peer_latest)
        continue;
    }
    return unexpected{reject("missing_last_resort")};
  }
  return out;
}

link_response mirror::prepare(const prepare_msg& p, uint64_t now) {
  return prepare(find(p.c.conv), keys_, p, now);
}

link_response mirror::prepare(const mirror_conv* mc, mirror_keys& keys, const prepare_msg& p,
                              uint64_t now) const {
  auto ck = check(mc, keys.store, p, std::nullopt);
  if (!ck)
    return ck.error();
  if (const block* amb = block_of(p.amb); amb != nullptr && amb->ref.kind != key_kind::ratchet)
    keys.prepared_refs[{amb->ref.kind, amb->ref.id}] = now;
  return prepared{ck->d};
}

link_response mirror::answer_retry(const conv_id& conv, uint64_t i, const hash32& d,
                                   const std::optional<answer>& stored, const mirror_history& h) {
  // Each index is committed exactly once; a retry gets the stored answer.
  auto held = h.d_at(conv, i);
  if (held && crypto::ct_equal(*held, d)) {
    if (stored)
      return *stored;
    return already_answered{i};
  }
  return conflict{i, held.value_or(hash32{})};
}

namespace {

/// The hash of `u`'s block in `p` (null when it has none).
const hash32* block_hash_of(const prepare_msg& p, const std::string& u) {
  auto bh = std::lower_bound(
      p.block_hashes.begin(), p.block_hashes.end(), u,
      [](const block_digest& b, const std::string& id) { return b.recipient < id; });
  return bh == p.block_hashes.end() || bh->recipient != u ? nullptr : &bh->hash;
}

}  // namespace

expected<slot_block> mirror::mirror_block(mirror_conv& mc, const common& c, uint64_t i,
                                          const hash32& t_i, const std::string& u,
                                          const public_key& lpk, const hash32& bind,
                                          const published_key* lr, uint64_t now,
                                          crypto::rng& r) const {
  const crypto::secret<32> zero_seed;
  auto ad = ad_mirror_block(c.conv, i, t_i, self_.id(), u, bind);
  channel& ch = mc.channels[u];
  // Mirror blocks carry no secret: use the member's announced key, else its LAST_RESORT key,
  // never a PREKEY (§2).
  std::optional<send_target> target;
  if (ch.peer_latest)
    target = send_target{key_ref{key_kind::ratchet, ch.peer_latest->id, {}}, ch.peer_latest->pub};
  auto via_lr = [&]() -> std::optional<send_target> {
    if (lr == nullptr)
      return std::nullopt;
    return send_target{key_ref{key_kind::last_resort, lr->id, lr->pub}, lr->pub};
  };
  if (!target)
    target = via_lr();
  const block_mode bm = mode_of_version(c.version);
  auto send = [&](const std::optional<send_target>& t) -> expected<slot_block> {
    if (bm == block_mode::chain)
      return send_chain_on_channel(self_, ch, mc.ratchet_next[u], c.conv, u, lpk, t, zero_seed, ad,
                                   i, now, r, /*defer=*/false);
    if (!t)
      return fail(errc::unknown_key, "no key for a member");
    COWPI_TRY(block pb, send_on_channel(self_, ch, mc.ratchet_next[u], c.conv, u, lpk, *t,
                                        zero_seed, ad, now, r));
    return slot_block{pb};
  };
  expected<slot_block> b = fail(errc::unknown_key, "no key for a member");
  if (target || (bm == block_mode::chain && chain_step_due(ch, now) == step_reason::none))
    b = send(target);
  if (!b && target && target->ref.kind == key_kind::ratchet) {
    // A bad announced key fails when used: fall back to LAST_RESORT.
    ch.peer_latest.reset();
    if (auto fb = via_lr())
      b = send(fb);
  }
  return b;
}

commit_outcome mirror::commit(const commit_msg& cm, const mirror_history& h, uint64_t now,
                              crypto::rng& r) {
  auto it = convs_.find(cm.payload.c.conv);
  std::optional<mirror_conv> created;
  auto out = commit(it == convs_.end() ? nullptr : &it->second, created, keys_, cm, h, now, r);
  if (created)
    convs_.emplace(cm.payload.c.conv, std::move(*created));
  return out;
}

commit_outcome mirror::commit(mirror_conv* held, std::optional<mirror_conv>& created,
                              mirror_keys& keys, const commit_msg& cm, const mirror_history& h,
                              uint64_t now, crypto::rng& r) const {
  commit_outcome out;
  const common& c = cm.payload.c;
  const uint64_t next = held == nullptr ? 0 : held->st.next;
  const uint64_t i = cm.index;
  if (i < next) {
    std::optional<answer> stored;
    if (auto a = held->answers.find(i); a != held->answers.end())
      stored = a->second;
    out.response = answer_retry(c.conv, i, cm.d, stored, h);
    return out;
  }
  if (i > next) {
    out.response = gap{next};
    return out;
  }
  // COMMIT always re-verifies: PREPARE was only a dry run.
  auto ck = check(held, keys.store, cm.payload, i);
  if (!ck) {
    out.response = ck.error();
    return out;
  }
  if (!crypto::ct_equal(ck->d, cm.d)) {
    out.response = reject("d_mismatch");
    return out;
  }

  // Build every block before anything durable changes: a block that cannot be built is a
  // REJECT with the state untouched, never an abort (PREPARE checked every key it needs).
  const bool fresh = held == nullptr;
  mirror_conv scratch;
  mirror_conv& mc = fresh ? scratch : *held;
  const conv_state* before = fresh ? nullptr : &mc.st;
  const auto slot_ids = slots(before, c);
  const hash32* t_prev = before == nullptr ? &t_genesis : before->t_at(i - 1);
  if (t_prev == nullptr) {  // before->next == i, so T_{i-1} is held: unreachable
    out.response = reject("no_parent_transcript");
    return out;
  }
  const hash32 t_i = transcript_hash(c.conv, i, *t_prev, ck->d);
  // A slot's long-term key: SETUP members, else the members before this entry (removed
  // members still get its block) and the members it adds.
  auto lpk_of = [&](const std::string& u) -> const member* {
    if (before == nullptr)
      return find_member(c.members, u);
    if (const member* m = find_member(before->members, u))
      return m;
    return find_member(c.adds, u);
  };

  // Apply amb's announcement first, so our block to the author uses the key
  // it has just announced (§2).
  // A RATCHET reference changes the key store only when it releases the obligation of the
  // first-contact key the author's channel still holds.
  channel& author_ch = mc.channels[c.author];
  const bool releases = holds_obligation(author_ch);
  if (!lying_)
    apply_effects(author_ch, keys.store, ck->amb_effects);
  out.keys_changed = !lying_ && ck->amb_effects.names_key
                     && (ck->amb_effects.ref.kind != key_kind::ratchet || releases);
  std::map<std::string, published_key> attached;
  for (const auto& a : cm.payload.last_resort)
    attached[a.member] = published_key{a.key_id, a.pub};

  answer ans;
  ans.index = i;
  ans.t = t_i;
  ans.mirror_blocks.reserve(slot_ids.size());
  for (const auto& u : slot_ids) {
    const member* mu = lpk_of(u);
    if (mu == nullptr) {
      if (!lying_) {  // validate checked Recipients(C): unreachable
        out.response = reject("cannot_build_block");
        return out;
      }
      // A lying mirror attesting an entry from a non-member: nobody can read its block.
      ans.mirror_blocks.push_back(dead_slot(mode_of_version(c.version), r));
      continue;
    }
    // The author's block binds the blocks root; another member's, the hash of its own block.
    const hash32* bind = u == c.author ? &ck->root : block_hash_of(cm.payload, u);
    if (bind == nullptr) {
      out.response = reject("cannot_build_block");  // validate checked the recipients
      return out;
    }
    // The member's LAST_RESORT key: attached to this entry, else the one it last attached.
    const published_key* lr = nullptr;
    if (auto k = attached.find(u); k != attached.end()) {
      lr = &k->second;
    } else if (auto k2 = mc.member_lr.find(u); k2 != mc.member_lr.end()) {
      lr = &k2->second;
    }
    auto b = mirror_block(mc, c, i, t_i, u, mu->lpk, *bind, lr, now, r);
    if (!b) {
      // PREPARE and COMMIT checked every key involved: unreachable for honest inputs. The
      // router stops the conversation on a REJECT at COMMIT; this mirror stays up.
      out.response = reject("cannot_build_block");
      return out;
    }
    ans.mirror_blocks.push_back(std::move(*b));
  }

  // Every block is built: advance in place (never a copy of the state per entry).
  if (fresh) {
    mc.st = setup_state(c, i, ck->d);
  } else {
    advance_in_place(mc.st, c, i, ck->d);
  }
  for (auto& [member, key] : attached)
    mc.member_lr[member] = key;
  // Removed members: no more pairwise state (the id counters stay).
  for (const auto& id : c.removes) {
    mc.channels.erase(id);
    mc.member_lr.erase(id);
  }
  mc.answers[i] = ans;
  if (fresh)
    created = std::move(scratch);
  if (const block* amb = block_of(cm.payload.amb);
      amb != nullptr && amb->ref.kind != key_kind::ratchet)
    keys.prepared_refs.erase({amb->ref.kind, amb->ref.id});
  out.response = std::move(ans);
  out.persist = true;
  out.index = i;
  out.d = ck->d;
  return out;
}

bool mirror::ack(const link_ack& a) {
  auto it = convs_.find(a.conv);
  return it != convs_.end() && ack(it->second, a);
}

bool mirror::ack(mirror_conv& mc, const link_ack& a) {
  auto& answers = mc.answers;
  auto end = answers.upper_bound(a.index);
  if (end == answers.begin())
    return false;
  answers.erase(answers.begin(), end);
  return true;
}

status_answer mirror::status(const conv_id& conv) const {
  return status(find(conv));
}

status_answer mirror::status(const mirror_conv* mc) {
  if (mc == nullptr)
    return status_answer{false, 0, {}};
  return status_answer{true, mc->st.next, *mc->st.t_at(mc->st.next - 1)};
}

audit_answer mirror::audit(const audit_query& q, const mirror_history& h) const {
  const mirror_conv* mc = find(q.conv);
  if (mc == nullptr) {
    audit_answer out;
    out.from = q.from;
    return out;
  }
  return audit_range(q, mc->st.next, opts_.max_audit, h);
}

audit_answer mirror::audit_range(const audit_query& q, uint64_t next, uint64_t max_audit,
                                 const mirror_history& h) {
  audit_answer out;
  out.from = q.from;
  if (q.to < q.from || next == 0 || max_audit == 0)
    return out;
  const uint64_t last = std::min({q.to, next - 1, q.from + max_audit - 1});
  for (uint64_t i = q.from; i <= last; ++i) {
    auto d = h.d_at(q.conv, i);
    if (!d)
      break;
    out.d.push_back(*d);
  }
  return out;
}

mirror_prekeys mirror::make_prekeys(size_t count, uint64_t now, crypto::rng& r) {
  mirror_prekeys out;
  auto& ks = keys_.store;
  out.one_time = ks.make_prekeys(self_, std::min(count, max_prekey_batch), now, r);
  auto lr = ks.current_last_resort();
  bool rotate = !lr.has_value();
  if (lr)
    rotate = now >= ks.last_resort().at(lr->id).key.created + opts_.last_resort_period;
  if (rotate) {
    out.last_resort = ks.rotate_last_resort(self_, now, r);
  } else {
    out.last_resort = lr;
  }
  return out;
}

bool mirror::expire_keys(uint64_t now) {
  // Keep what an outstanding PREPARE references (for up to a day): set those
  // PREKEYs aside while the store expires the rest.
  auto& refs = keys_.prepared_refs;
  for (auto it = refs.begin(); it != refs.end();)
    it = now >= it->second + 24 * 3600 ? refs.erase(it) : std::next(it);
  auto& pre = keys_.store.mutable_prekeys();
  std::map<uint64_t, prekey_slot> held;
  for (const auto& [ref, t] : refs) {
    if (ref.first != key_kind::prekey)
      continue;
    if (auto f = pre.find(ref.second); f != pre.end()) {
      held.emplace(f->first, std::move(f->second));
      pre.erase(f);
    }
  }
  const bool changed =
      !keys_.store.expire(now, opts_.prekey_max_age, opts_.last_resort_grace).empty();
  for (auto& [id, slot] : held)
    pre.emplace(id, std::move(slot));
  return changed;
}

}  // namespace cowpi::protocol

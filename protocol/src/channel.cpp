// SPDX-License-Identifier: Apache-2.0
// Pairwise channels, key selection and retirement (docs/design.md §2).
#include "cowpi/protocol/channel.hpp"

namespace cowpi::protocol {

owned_key make_owned_key(const identity& owner, uint64_t now, crypto::rng& r) {
  owned_key k;
  k.esk = r.secret_bytes<32>();
  k.pub = naxos_derive(k.esk, owner).pub;
  k.created = now;
  return k;
}

key_store key_store::clone() const {
  key_store c;
  for (const auto& [id, slot] : prekeys_)
    c.prekeys_.emplace(id, slot.clone());
  for (const auto& [id, slot] : last_resort_)
    c.last_resort_.emplace(id, slot.clone());
  c.published_ = published_;
  c.used_prekeys_ = used_prekeys_;
  c.next_prekey_id_ = next_prekey_id_;
  c.next_last_resort_id_ = next_last_resort_id_;
  c.current_last_resort_ = current_last_resort_;
  return c;
}

std::vector<published_key> key_store::make_prekeys(const identity& owner, size_t count,
                                                   uint64_t now, crypto::rng& r) {
  std::vector<published_key> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t id = next_prekey_id_++;
    owned_key k = make_owned_key(owner, now, r);
    out.push_back(published_key{id, k.pub});
    published_[{key_kind::prekey, id}] = k.pub;
    prekeys_.emplace(id, prekey_slot{std::move(k), std::nullopt});
  }
  return out;
}

published_key key_store::rotate_last_resort(const identity& owner, uint64_t now, crypto::rng& r) {
  if (current_last_resort_ != 0) {
    auto it = last_resort_.find(current_last_resort_);
    if (it != last_resort_.end())
      it->second.retired_at = now;
  }
  const uint64_t id = next_last_resort_id_++;
  owned_key k = make_owned_key(owner, now, r);
  published_key pk{id, k.pub};
  published_[{key_kind::last_resort, id}] = k.pub;
  last_resort_.emplace(id, last_resort_slot{std::move(k), 0, {}});
  current_last_resort_ = id;
  return pk;
}

std::optional<published_key> key_store::current_last_resort() const {
  auto it = last_resort_.find(current_last_resort_);
  if (it == last_resort_.end())
    return std::nullopt;
  return published_key{it->first, it->second.key.pub};
}

std::vector<std::pair<key_kind, uint64_t>> key_store::expire(uint64_t now, uint64_t prekey_max_age,
                                                             uint64_t last_resort_grace) {
  std::vector<std::pair<key_kind, uint64_t>> gone;
  for (auto it = prekeys_.begin(); it != prekeys_.end();) {
    if (now >= it->second.key.created + prekey_max_age) {
      gone.emplace_back(key_kind::prekey, it->first);
      if (it->second.bound)
        used_prekeys_.insert_or_assign(it->first, *it->second.bound);
      it = prekeys_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = last_resort_.begin(); it != last_resort_.end();) {
    const auto& s = it->second;
    if (s.retired_at != 0 && now >= s.retired_at + last_resort_grace && s.pending.empty()) {
      gone.emplace_back(key_kind::last_resort, it->first);
      it = last_resort_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

bool key_store::was_published(key_kind kind, uint64_t id, const public_key& pub) const {
  auto it = published_.find({kind, id});
  return it != published_.end() && it->second == pub;
}

void key_store::consume_prekey(uint64_t id, const channel_ref& chan) {
  if (prekeys_.erase(id) > 0)
    used_prekeys_.insert_or_assign(id, chan);
}

channel channel::clone() const {
  channel c;
  for (const auto& [id, k] : mine)
    c.mine.emplace(id, k.clone());
  c.announced = announced;
  c.announced_referenced = announced_referenced;
  c.peer_latest = peer_latest;
  c.first_contact = first_contact;
  c.peer_used_prekey = peer_used_prekey;
  c.peer_used_last_resort = peer_used_last_resort;
  c.out = out.clone();
  if (in)
    c.in = in->clone();
  c.received_since_announce = received_since_announce;
  c.broken_epoch = broken_epoch;
  return c;
}

std::optional<send_target> choose_target(const channel& ch) {
  if (ch.peer_latest) {
    return send_target{key_ref{key_kind::ratchet, ch.peer_latest->id, public_key{}},
                       ch.peer_latest->pub};
  }
  if (ch.first_contact)
    return send_target{*ch.first_contact, ch.first_contact->pub};
  return std::nullopt;
}

published_key announce(channel& ch, uint64_t& counter, const identity& owner, uint64_t now,
                       crypto::rng& r) {
  if (ch.announced == 0 || ch.announced_referenced || !ch.mine.contains(ch.announced)) {
    // Ids per channel are strictly increasing and never reused (the counter
    // outlives the channel), starting at 1.
    if (counter == 0)
      counter = 1;
    const uint64_t id = counter++;
    ch.mine.emplace(id, make_owned_key(owner, now, r));
    ch.announced = id;
    ch.announced_referenced = false;
  }
  return published_key{ch.announced, ch.mine.at(ch.announced).pub};
}

namespace {

struct found_key {
  const owned_key* key = nullptr;
  bool reused = false;
};

// The receiver key `ref` names: our key store for PREKEY and LAST_RESORT, the channel for
// RATCHET (§4.5).
expected<found_key, block_failure> find_receiver_key(const key_store& keys, const channel* ch,
                                                     const channel_ref& here, const key_ref& ref) {
  found_key out;
  switch (ref.kind) {
    case key_kind::ratchet: {
      // A RATCHET ref names the key by id alone; its pub must be zero.
      if (!crypto::is_zero(ref.pub) || ch == nullptr)
        return unexpected{block_failure::failed};
      auto it = ch->mine.find(ref.id);
      if (it == ch->mine.end())
        return unexpected{block_failure::failed};
      out.key = &it->second;
      break;
    }
    case key_kind::prekey: {
      if (!keys.was_published(key_kind::prekey, ref.id, ref.pub))
        return unexpected{block_failure::directory};
      auto it = keys.prekeys().find(ref.id);
      if (it == keys.prekeys().end()) {
        // Used up on another channel: the directory handed it out twice (§2).
        if (auto u = keys.used_prekeys().find(ref.id);
            u != keys.used_prekeys().end() && u->second != here)
          return unexpected{block_failure::directory};
        return unexpected{block_failure::failed};
      }
      out.key = &it->second.key;
      out.reused = it->second.bound.has_value() && *it->second.bound != here;
      break;
    }
    case key_kind::last_resort: {
      if (!keys.was_published(key_kind::last_resort, ref.id, ref.pub))
        return unexpected{block_failure::directory};
      auto it = keys.last_resort().find(ref.id);
      if (it == keys.last_resort().end())
        return unexpected{block_failure::failed};
      out.key = &it->second.key;
      break;
    }
  }
  return out;
}

bool well_formed(uint64_t id, const public_key& pub) noexcept {
  return id != 0 && !crypto::is_zero(pub);
}

}  // namespace

block_effects block_effects::clone() const {
  block_effects c;
  c.chan = chan;
  c.ref = ref;
  c.announced = announced;
  c.prekey_reused = prekey_reused;
  c.names_key = names_key;
  c.has_announced = has_announced;
  if (new_chain)
    c.new_chain = new_chain->clone();
  if (chain) {
    chain_effects e;
    e.epoch = chain->epoch;
    e.n = chain->n;
    e.from_skipped = chain->from_skipped;
    e.next = chain->next;
    e.next_ck = chain->next_ck.clone();
    for (const auto& [n, k] : chain->newly_skipped)
      e.newly_skipped.emplace_back(n, k.clone());
    c.chain = std::move(e);
  }
  return c;
}

expected<opened_block, block_failure> open_on_channel(const identity& self, const key_store& keys,
                                                      const channel* ch, const conv_id& conv,
                                                      std::string_view sender,
                                                      const public_key& lpk_s, const slot_block& s,
                                                      byte_view ad, block_mode mode) {
  if (mode_of(s) != mode)
    return unexpected{block_failure::failed};
  const channel_ref here{conv, std::string(sender)};
  if (const auto* cb = std::get_if<chain_block>(&s)) {
    const recv_chain* rc = ch != nullptr && ch->in ? &*ch->in : nullptr;
    auto o = open_chain_block(rc, *cb, ad);
    if (!o) {
      // Its epoch began in a DH step the directory broke: that is where the fault lies.
      if (ch != nullptr && ch->broken_epoch != 0 && cb->epoch == ch->broken_epoch
          && (rc == nullptr || rc->epoch != cb->epoch))
        return unexpected{block_failure::directory};
      return unexpected{block_failure::failed};
    }
    if (o->pt.announced && !well_formed(o->pt.announced->id, o->pt.announced->pub))
      return unexpected{block_failure::failed};
    opened_block out;
    if (o->pt.seed)
      out.pt.seed = o->pt.seed->clone();
    out.effects.chan = here;
    out.effects.names_key = false;
    out.effects.has_announced = o->pt.announced.has_value();
    if (o->pt.announced) {
      out.pt.announced_id = o->pt.announced->id;
      out.pt.announced_pub = o->pt.announced->pub;
      out.effects.announced = *o->pt.announced;
    }
    out.effects.chain = std::move(o->effects);
    return out;
  }
  const auto* step = std::get_if<dh_step>(&s);
  const block& b = step != nullptr ? step->b : std::get<block>(s);
  COWPI_TRY(found_key k, find_receiver_key(keys, ch, here, b.ref));
  const crypto::secret<32> e = naxos_secret(k.key->esk, self);
  opened_block out;
  if (step != nullptr) {
    auto o = open_dh_step(self, e, sender, lpk_s, conv, *step, ad);
    if (!o)
      return unexpected{block_failure::failed};
    out.pt = std::move(o->pt);
    out.effects.new_chain = std::move(o->chain);
  } else {
    auto pt = open_block(self, e, sender, lpk_s, conv, b, ad);
    if (!pt)
      return unexpected{block_failure::failed};
    out.pt = std::move(*pt);
  }
  if (!well_formed(out.pt.announced_id, out.pt.announced_pub))
    return unexpected{block_failure::failed};
  out.effects.chan = here;
  out.effects.ref = b.ref;
  out.effects.announced = published_key{out.pt.announced_id, out.pt.announced_pub};
  out.effects.prekey_reused = k.reused;
  return out;
}

void apply_effects(channel& ch, key_store& keys, const block_effects& e) {
  if (e.has_announced && (!ch.peer_latest || e.announced.id > ch.peer_latest->id))
    ch.peer_latest = e.announced;
  if (e.new_chain) {
    ch.in = e.new_chain->clone();
    ch.broken_epoch = 0;
    ++ch.received_since_announce;
  }
  if (e.chain && ch.in) {
    apply_chain_effects(*ch.in, std::move(*e.clone().chain));
    ++ch.received_since_announce;
  }
  if (!e.names_key)
    return;
  switch (e.ref.kind) {
    case key_kind::ratchet: {
      // The peer now holds one of our RATCHET keys: older ones are dead, and
      // the first-contact keys it used on this channel are no longer needed.
      ch.mine.erase(ch.mine.begin(), ch.mine.lower_bound(e.ref.id));
      if (e.ref.id == ch.announced)
        ch.announced_referenced = true;
      if (ch.peer_used_prekey) {
        keys.consume_prekey(*ch.peer_used_prekey, e.chan);
        ch.peer_used_prekey.reset();
      }
      if (ch.peer_used_last_resort) {
        auto it = keys.mutable_last_resort().find(*ch.peer_used_last_resort);
        if (it != keys.mutable_last_resort().end())
          it->second.pending.erase(e.chan);
        ch.peer_used_last_resort.reset();
      }
      break;
    }
    case key_kind::prekey: {
      auto it = keys.mutable_prekeys().find(e.ref.id);
      if (it != keys.mutable_prekeys().end() && !it->second.bound)
        it->second.bound = e.chan;
      if (!e.prekey_reused)
        ch.peer_used_prekey = e.ref.id;
      break;
    }
    case key_kind::last_resort: {
      auto it = keys.mutable_last_resort().find(e.ref.id);
      if (it != keys.mutable_last_resort().end())
        it->second.pending.insert(e.chan);
      ch.peer_used_last_resort = e.ref.id;
      break;
    }
  }
}

expected<block> send_on_channel(const identity& self, channel& ch, uint64_t& counter,
                                const conv_id& conv, std::string_view peer,
                                const public_key& lpk_peer, const send_target& target,
                                const crypto::secret<32>& seed, byte_view ad, uint64_t now,
                                crypto::rng& r) {
  block_plaintext pt;
  pt.seed = seed.clone();
  published_key a = announce(ch, counter, self, now, r);
  pt.announced_id = a.id;
  pt.announced_pub = a.pub;
  return seal_block(self, peer, lpk_peer, conv, target.ref, target.e_pub, pt, ad, r);
}

step_reason chain_step_due(const channel& ch, uint64_t now) noexcept {
  return step_due(ch.out, ch.peer_latest ? ch.peer_latest->id : 0, now);
}

bool chain_announce_due(const channel& ch, uint64_t now) noexcept {
  auto current = ch.mine.find(ch.announced);
  return ch.announced == 0 || current == ch.mine.end()
         || (ch.announced_referenced
             && ((now >= current->second.created
                  && now - current->second.created >= chain_dh_age_seconds)
                 || ch.received_since_announce >= chain_dh_every));
}

bool chain_block_only(const channel& ch, uint64_t now) noexcept {
  return ch.out.chain && chain_step_due(ch, now) == step_reason::none
         && !chain_announce_due(ch, now);
}

expected<slot_block> send_chain_on_channel(const identity& self, channel& ch, uint64_t& counter,
                                           const conv_id& conv, std::string_view peer,
                                           const public_key& lpk_peer,
                                           const std::optional<send_target>& target,
                                           const crypto::secret<32>& seed, byte_view ad,
                                           uint64_t aseq, uint64_t now, crypto::rng& r,
                                           bool defer) {
  const bool step = chain_step_due(ch, now) != step_reason::none;
  if (step && !target)
    return fail(errc::unknown_key, "a DH step is due and there is no receiver key");
  // Like `send_on_channel`, a new announced key stays made if sealing then fails (callers
  // build on copies of their channels); the chain itself is unchanged on failure.
  // Announce a new receive key once the current one was referenced and has aged or carried
  // DH_EVERY blocks (§4.8 "When to step"); keep announcing it until the peer references it.
  if (chain_announce_due(ch, now)) {
    if (counter == 0)
      counter = 1;
    const uint64_t id = counter++;
    ch.mine.emplace(id, make_owned_key(self, now, r));
    ch.announced = id;
    ch.announced_referenced = false;
    ch.received_since_announce = 0;
  }
  chain_plaintext pt;
  if (!crypto::is_zero(seed.expose()))
    pt.seed = seed.clone();
  if (step || !ch.announced_referenced)
    pt.announced = published_key{ch.announced, ch.mine.at(ch.announced).pub};
  const uint64_t latest = ch.peer_latest ? ch.peer_latest->id : 0;
  step_target to{peer, lpk_peer, target ? target->ref : key_ref{},
                 target ? target->e_pub : public_key{}};
  COWPI_TRY(channel_block b,
            seal_channel_block(ch.out, self, conv, to, latest, pt, ad, aseq, now, r, defer));
  if (auto* d = std::get_if<dh_step>(&b))
    return slot_block{std::move(*d)};
  return slot_block{std::move(std::get<chain_block>(b))};
}

slot_block dead_slot(block_mode mode, crypto::rng& r) {
  block b;
  r.fill(b.x);
  b.ref = key_ref{key_kind::ratchet, 0, {}};
  r.fill(b.nonce);
  r.fill(b.ct);
  if (mode == block_mode::chain)
    return dh_step{1, b};
  return b;
}

}  // namespace cowpi::protocol

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

expected<opened_block, block_failure> open_on_channel(const identity& self, const key_store& keys,
                                                      const channel* ch, const conv_id& conv,
                                                      std::string_view sender,
                                                      const public_key& lpk_s, const block& b,
                                                      byte_view ad) {
  const owned_key* key = nullptr;
  bool reused = false;
  const channel_ref here{conv, std::string(sender)};
  switch (b.ref.kind) {
    case key_kind::ratchet: {
      // A RATCHET ref names the key by id alone; its pub must be zero.
      if (!crypto::is_zero(b.ref.pub) || ch == nullptr)
        return unexpected{block_failure::failed};
      auto it = ch->mine.find(b.ref.id);
      if (it == ch->mine.end())
        return unexpected{block_failure::failed};
      key = &it->second;
      break;
    }
    case key_kind::prekey: {
      if (!keys.was_published(key_kind::prekey, b.ref.id, b.ref.pub))
        return unexpected{block_failure::directory};
      auto it = keys.prekeys().find(b.ref.id);
      if (it == keys.prekeys().end()) {
        // Used up on another channel: the directory handed it out twice (§2).
        if (auto u = keys.used_prekeys().find(b.ref.id);
            u != keys.used_prekeys().end() && u->second != here)
          return unexpected{block_failure::directory};
        return unexpected{block_failure::failed};
      }
      key = &it->second.key;
      reused = it->second.bound.has_value() && *it->second.bound != here;
      break;
    }
    case key_kind::last_resort: {
      if (!keys.was_published(key_kind::last_resort, b.ref.id, b.ref.pub))
        return unexpected{block_failure::directory};
      auto it = keys.last_resort().find(b.ref.id);
      if (it == keys.last_resort().end())
        return unexpected{block_failure::failed};
      key = &it->second.key;
      break;
    }
  }
  const crypto::secret<32> e = naxos_secret(key->esk, self);
  auto pt = open_block(self, e, sender, lpk_s, conv, b, ad);
  if (!pt)
    return unexpected{block_failure::failed};
  if (pt->announced_id == 0 || crypto::is_zero(pt->announced_pub))
    return unexpected{block_failure::failed};
  opened_block out;
  out.effects =
      block_effects{here, b.ref, published_key{pt->announced_id, pt->announced_pub}, reused};
  out.pt = std::move(*pt);
  return out;
}

void apply_effects(channel& ch, key_store& keys, const block_effects& e) {
  if (!ch.peer_latest || e.announced.id > ch.peer_latest->id)
    ch.peer_latest = e.announced;
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

}  // namespace cowpi::protocol

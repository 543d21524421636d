// SPDX-License-Identifier: Apache-2.0
#include "cowpi/protocol/chain_channel.hpp"

namespace cowpi::protocol {

std::string_view to_string(step_reason r) noexcept {
  switch (r) {
    case step_reason::none:
      return "none";
    case step_reason::no_epoch:
      return "no epoch";
    case step_reason::newer_key:
      return "newer key";
    case step_reason::dh_every:
      return "DH_EVERY blocks";
    case step_reason::dh_age:
      return "DH_AGE reached";
    case step_reason::void_reported:
      return "VOID reported";
    case step_reason::step_in_flight:
      return "step in flight";
    case step_reason::counter_gap:
      return "counter gap";
  }
  return "unknown";
}

chain_sender chain_sender::clone() const {
  chain_sender c;
  c.last_epoch = last_epoch;
  if (chain)
    c.chain.emplace(chain->clone());
  c.referenced_kind = referenced_kind;
  c.referenced_id = referenced_id;
  c.started_at = started_at;
  c.step_aseq = step_aseq;
  c.void_reported = void_reported;
  c.acked_next = acked_next;
  for (const auto& p : pending)
    c.pending.push_back(p.clone());
  return c;
}

pending_step pending_step::clone() const {
  return pending_step{aseq, d, chain.clone(), referenced_kind, referenced_id, started_at};
}

step_reason step_due(const chain_sender& s, uint64_t announced_id, uint64_t now) noexcept {
  if (!s.pending.empty())
    return step_reason::step_in_flight;
  if (!s.chain)
    return step_reason::no_epoch;
  if (announced_id != 0
      && (s.referenced_kind != key_kind::ratchet || announced_id > s.referenced_id))
    return step_reason::newer_key;
  if (s.chain->next() >= chain_dh_every)
    return step_reason::dh_every;
  if (now >= s.started_at && now - s.started_at >= chain_dh_age_seconds)
    return step_reason::dh_age;
  if (s.void_reported)
    return step_reason::void_reported;
  if (s.chain->next() >= s.acked_next && s.chain->next() - s.acked_next >= chain_max_skip / 2)
    return step_reason::counter_gap;
  return step_reason::none;
}

expected<channel_block> seal_channel_block(chain_sender& s, const identity& sender,
                                           const conv_id& conv, const step_target& to,
                                           uint64_t announced_id, const chain_plaintext& pt,
                                           byte_view ad, uint64_t aseq, uint64_t now,
                                           crypto::rng& r, bool defer) {
  if (step_due(s, announced_id, now) == step_reason::none) {
    COWPI_TRY(chain_block b, s.chain->seal(pt, ad));
    if (!defer)  // a mirror's blocks all reach R
      s.acked_next = s.chain->next();
    return channel_block{std::move(b)};
  }
  if (s.last_epoch == UINT32_MAX)
    return fail(errc::bad_state, "channel epochs spent");
  block_plaintext bp;
  if (pt.seed)
    bp.seed = pt.seed->clone();
  if (pt.announced) {
    bp.announced_id = pt.announced->id;
    bp.announced_pub = pt.announced->pub;
  }
  const uint32_t epoch = s.last_epoch + 1;
  COWPI_TRY(sealed_dh_step st,
            seal_dh_step(sender, to.receiver, to.lpk, conv, to.ref, to.e_pub, bp, epoch, ad, r));
  s.last_epoch = epoch;
  if (defer) {
    s.pending.push_back(
        pending_step{aseq, hash32{}, std::move(st.chain), to.ref.kind, to.ref.id, now});
    return channel_block{std::move(st.step)};
  }
  s.chain.emplace(std::move(st.chain));
  s.referenced_kind = to.ref.kind;
  s.referenced_id = to.ref.id;
  s.started_at = now;
  s.step_aseq = aseq;
  s.void_reported = false;
  s.acked_next = 0;
  return channel_block{std::move(st.step)};
}

void tag_pending(chain_sender& s, uint64_t aseq, const hash32& d) noexcept {
  for (auto& p : s.pending)
    if (p.aseq == aseq && crypto::is_zero(p.d))
      p.d = d;
}

void on_ordered(chain_sender& s, uint64_t aseq, const hash32& d, const slot_block* sent) {
  for (auto& p : s.pending) {
    if (p.aseq != aseq || p.d != d)
      continue;
    s.chain.emplace(std::move(p.chain));
    s.referenced_kind = p.referenced_kind;
    s.referenced_id = p.referenced_id;
    s.started_at = p.started_at;
    s.step_aseq = aseq;
    s.void_reported = false;
    s.acked_next = 0;
    break;
  }
  if (const auto* cb = sent != nullptr ? std::get_if<chain_block>(sent) : nullptr;
      cb != nullptr && s.chain && cb->epoch == s.chain->epoch() && cb->n >= s.acked_next
      && cb->n < UINT32_MAX)
    s.acked_next = cb->n + 1;
  std::erase_if(s.pending, [&](const pending_step& p) { return p.aseq <= aseq; });
}

void on_void_reported(chain_sender& s, uint64_t aseq) noexcept {
  if (s.chain && aseq >= s.step_aseq)
    s.void_reported = true;
}

void on_removed(chain_sender& s) noexcept {
  s.chain.reset();
  s.pending.clear();
  s.acked_next = 0;
  s.referenced_kind = key_kind::prekey;
  s.referenced_id = 0;
  s.started_at = 0;
  s.step_aseq = 0;
  s.void_reported = false;
}

bytes enc_channel_block(const channel_block& b) {
  if (const auto* step = std::get_if<dh_step>(&b)) {
    const auto e = enc_dh_step(*step);
    return bytes(e.begin(), e.end());
  }
  return enc_chain_block(std::get<chain_block>(b));
}

expected<channel_block> decode_channel_block(byte_view in) {
  if (in.size() == dh_step_size) {
    COWPI_TRY(dh_step s, decode_dh_step(in));
    return channel_block{std::move(s)};
  }
  auto b = decode_chain_block(in);
  if (!b.has_value())
    return fail(errc::bad_length, "chain-mode block must be 24, 56, 64, 96 or 189 bytes");
  return channel_block{std::move(*b)};
}

}  // namespace cowpi::protocol

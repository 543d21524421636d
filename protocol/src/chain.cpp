// SPDX-License-Identifier: Apache-2.0
// Symmetric-key chains on a pairwise channel (docs/protocol.md §4.8).
#include "cowpi/protocol/chain.hpp"

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/protocol/encoding.hpp"

#include <sodium.h>

#include <algorithm>

namespace cowpi::protocol {

namespace {

constexpr size_t seed_size = 32;

// Ciphertext lengths and what their plaintext holds.
constexpr size_t ct_tag_only = crypto::aead_tag_size;
constexpr size_t ct_seed = seed_size + crypto::aead_tag_size;
constexpr size_t ct_announce = chain_announce_size + crypto::aead_tag_size;
constexpr size_t ct_both = seed_size + chain_announce_size + crypto::aead_tag_size;

bool valid_ct_size(size_t n) noexcept {
  return n == ct_tag_only || n == ct_seed || n == ct_announce || n == ct_both;
}

void put_be32(uint8_t* out, uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i)
    out[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

uint32_t get_be32(const uint8_t* in) noexcept {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = v << 8 | in[i];
  return v;
}

}  // namespace

chain_plaintext chain_plaintext::clone() const {
  chain_plaintext c;
  if (seed)
    c.seed = seed->clone();
  c.announced = announced;
  return c;
}

bytes enc_chain_block(const chain_block& b) {
  byte_writer w(chain_header_size + b.ct.size());
  w.be32(b.epoch).be32(b.n).raw(b.ct);
  return std::move(w).take();
}

expected<chain_block> decode_chain_block(byte_view in) {
  if (in.size() < chain_header_size || !valid_ct_size(in.size() - chain_header_size))
    return fail(errc::bad_length, "chain block must be 24, 56, 64 or 96 bytes");
  chain_block b;
  b.epoch = get_be32(in.data());
  b.n = get_be32(in.data() + 4);
  b.ct.assign(in.begin() + chain_header_size, in.end());
  return b;
}

std::array<uint8_t, dh_step_size> enc_dh_step(const dh_step& s) noexcept {
  std::array<uint8_t, dh_step_size> out{};
  put_be32(out.data(), s.epoch);
  const auto b = enc_block(s.b);
  std::copy(b.begin(), b.end(), out.begin() + 4);
  return out;
}

expected<dh_step> decode_dh_step(byte_view in) noexcept {
  if (in.size() != dh_step_size)
    return fail(errc::bad_length, "DH step must be 189 bytes");
  dh_step s;
  s.epoch = get_be32(in.data());
  COWPI_TRY(s.b, decode_block(in.subspan(4)));
  return s;
}

crypto::secret<32> chain_key_0(const crypto::secret<32>& k, std::string_view sender,
                               std::string_view receiver, const conv_id& conv, uint32_t epoch) {
  byte_writer info(16 + sender.size() + receiver.size() + 16 + 4);
  info.lp(sender).lp(receiver).raw(conv).be32(epoch);
  return crypto::hkdf32(as_bytes(label("chain")), k.expose(), info.data());
}

chain_step_keys chain_step(const crypto::secret<32>& ck) noexcept {
  // Both outputs are HMACs under CK_n: the keyed state (inner and outer pads) is computed once.
  chain_step_keys out;
  crypto_auth_hmacsha256_state keyed;
  crypto_auth_hmacsha256_init(&keyed, ck.expose().data(), ck.size);
  crypto_auth_hmacsha256_state st = keyed;
  const uint8_t one = 0x01;
  crypto_auth_hmacsha256_update(&st, &one, 1);
  crypto_auth_hmacsha256_final(&st, out.mk.expose().data());
  st = keyed;
  const uint8_t two = 0x02;
  crypto_auth_hmacsha256_update(&st, &two, 1);
  crypto_auth_hmacsha256_final(&st, out.next_ck.expose().data());
  sodium_memzero(&st, sizeof st);
  sodium_memzero(&keyed, sizeof keyed);
  return out;
}

byte_array<24> chain_nonce(uint32_t epoch, uint32_t n) noexcept {
  byte_array<24> nonce{};
  put_be32(nonce.data(), epoch);
  put_be32(nonce.data() + 4, n);
  return nonce;
}

bytes chain_block_ad(uint32_t epoch, uint32_t n, byte_view ad) {
  byte_writer w(32 + ad.size());
  w.raw(label("chain-block")).be32(epoch).be32(n).raw(ad);
  return std::move(w).take();
}

bytes dh_step_ad(uint32_t epoch, byte_view ad) {
  byte_writer w(32 + ad.size());
  w.raw(label("chain-step")).be32(epoch).raw(ad);
  return std::move(w).take();
}

expected<chain_block> seal_chain_block(const crypto::secret<32>& mk, uint32_t epoch, uint32_t n,
                                       const chain_plaintext& pt, byte_view ad) {
  crypto::secret<seed_size + chain_announce_size> plain;
  size_t len = 0;
  auto p = plain.expose();
  if (pt.seed) {
    std::copy_n(pt.seed->expose().data(), seed_size, p.data());
    len += seed_size;
  }
  if (pt.announced) {
    for (size_t i = 0; i < 8; ++i)
      p[len + i] = static_cast<uint8_t>(pt.announced->id >> (56 - 8 * i));
    std::copy_n(pt.announced->pub.data(), 32, p.data() + len + 8);
    len += chain_announce_size;
  }
  chain_block b;
  b.epoch = epoch;
  b.n = n;
  b.ct.resize(len + crypto::aead_tag_size);
  const auto nonce = chain_nonce(epoch, n);
  const bytes full_ad = chain_block_ad(epoch, n, ad);
  COWPI_TRY_VOID(crypto::aead_seal_into(b.ct, mk.expose(), nonce, p.first(len), full_ad));
  return b;
}

expected<chain_plaintext> open_chain_block_with(const crypto::secret<32>& mk, const chain_block& b,
                                                byte_view ad) {
  if (!valid_ct_size(b.ct.size()))
    return fail(errc::bad_length, "chain block ciphertext");
  crypto::secret<seed_size + chain_announce_size> plain;
  const size_t len = b.ct.size() - crypto::aead_tag_size;
  const auto nonce = chain_nonce(b.epoch, b.n);
  const bytes full_ad = chain_block_ad(b.epoch, b.n, ad);
  auto p = plain.expose();
  COWPI_TRY_VOID(crypto::aead_open_into(p.first(len), mk.expose(), nonce, b.ct, full_ad));
  chain_plaintext pt;
  size_t at = 0;
  if (len == seed_size || len == seed_size + chain_announce_size) {
    pt.seed = crypto::secret<32>::from(byte_view(p.data(), seed_size));
    at = seed_size;
  }
  if (len - at == chain_announce_size) {
    published_key a;
    for (size_t i = 0; i < 8; ++i)
      a.id = a.id << 8 | p[at + i];
    std::copy_n(p.data() + at + 8, 32, a.pub.begin());
    pt.announced = a;
  }
  return pt;
}

send_chain send_chain::clone() const {
  send_chain c(epoch_, ck_.clone(), next_);
  c.spent_ = spent_;
  return c;
}

expected<chain_block> send_chain::seal(const chain_plaintext& pt, byte_view ad) {
  if (spent_)
    return fail(errc::bad_state, "chain counter spent: the sender must step");
  chain_step_keys k = chain_step(ck_);
  COWPI_TRY(chain_block b, seal_chain_block(k.mk, epoch_, next_, pt, ad));
  ck_ = std::move(k.next_ck);
  if (next_ == UINT32_MAX)
    spent_ = true;
  else
    ++next_;
  return b;
}

recv_chain recv_chain::clone() const {
  recv_chain c;
  c.epoch = epoch;
  c.next = next;
  c.ck = ck.clone();
  for (const auto& [n, mk] : skipped)
    c.skipped.emplace(n, mk.clone());
  return c;
}

std::string_view to_string(chain_failure f) noexcept {
  switch (f) {
    case chain_failure::unknown_epoch:
      return "unknown epoch";
    case chain_failure::reused_counter:
      return "reused counter";
    case chain_failure::too_far:
      return "counter past MAX_SKIP";
    case chain_failure::decrypt:
      return "decrypt failed";
  }
  return "unknown";
}

expected<opened_chain_block, chain_failure> open_chain_block(const recv_chain* rc,
                                                             const chain_block& b, byte_view ad) {
  if (rc == nullptr || rc->epoch == 0 || b.epoch != rc->epoch)
    return unexpected{chain_failure::unknown_epoch};
  opened_chain_block out;
  out.effects.epoch = b.epoch;
  out.effects.n = b.n;
  if (b.n < rc->next) {
    auto it = rc->skipped.find(b.n);
    if (it == rc->skipped.end())
      return unexpected{chain_failure::reused_counter};
    auto pt = open_chain_block_with(it->second, b, ad);
    if (!pt)
      return unexpected{chain_failure::decrypt};
    out.effects.from_skipped = true;
    out.pt = std::move(*pt);
    return out;
  }
  if (b.n - rc->next > chain_max_skip)
    return unexpected{chain_failure::too_far};
  crypto::secret<32> ck = rc->ck.clone();
  for (uint32_t i = rc->next; i < b.n; ++i) {
    chain_step_keys k = chain_step(ck);
    out.effects.newly_skipped.emplace_back(i, std::move(k.mk));
    ck = std::move(k.next_ck);
  }
  chain_step_keys k = chain_step(ck);
  auto pt = open_chain_block_with(k.mk, b, ad);
  if (!pt)
    return unexpected{chain_failure::decrypt};
  out.pt = std::move(*pt);
  out.effects.next_ck = std::move(k.next_ck);
  // b.n < 2^32 - 1 here or the chain ends: a counter of 2^32 - 1 leaves `next` saturated, so
  // every later block is below it and must come from `skipped`.
  out.effects.next = b.n == UINT32_MAX ? UINT32_MAX : b.n + 1;
  return out;
}

void apply_chain_effects(recv_chain& rc, chain_effects e) {
  if (e.epoch != rc.epoch)
    return;
  if (e.from_skipped) {
    rc.skipped.erase(e.n);
    return;
  }
  if (e.n < rc.next)
    return;
  for (auto& [n, mk] : e.newly_skipped)
    rc.skipped.insert_or_assign(n, std::move(mk));
  while (rc.skipped.size() > chain_max_skip)
    rc.skipped.erase(rc.skipped.begin());
  rc.ck = std::move(e.next_ck);
  rc.next = e.next;
}

expected<sealed_dh_step> seal_dh_step(const identity& sender, std::string_view receiver,
                                      const public_key& lpk_r, const conv_id& conv,
                                      const key_ref& ref, const public_key& e_pub,
                                      const block_plaintext& pt, uint32_t epoch, byte_view ad,
                                      crypto::rng& r) {
  if (epoch == 0)
    return fail(errc::invalid_argument, "epoch 0");
  crypto::secret<32> k;
  const bytes full_ad = dh_step_ad(epoch, ad);
  COWPI_TRY(block b, seal_block(sender, receiver, lpk_r, conv, ref, e_pub, pt, full_ad, r, &k));
  return sealed_dh_step{dh_step{epoch, b},
                        send_chain(epoch, chain_key_0(k, sender.id(), receiver, conv, epoch), 0)};
}

expected<opened_dh_step> open_dh_step(const identity& receiver, const crypto::secret<32>& e_r,
                                      std::string_view sender, const public_key& lpk_s,
                                      const conv_id& conv, const dh_step& s, byte_view ad) {
  if (s.epoch == 0)
    return fail(errc::invalid, "DH step for epoch 0");
  crypto::secret<32> k;
  const bytes full_ad = dh_step_ad(s.epoch, ad);
  COWPI_TRY(block_plaintext pt, open_block(receiver, e_r, sender, lpk_s, conv, s.b, full_ad, &k));
  opened_dh_step out;
  out.pt = std::move(pt);
  out.chain.epoch = s.epoch;
  out.chain.next = 0;
  out.chain.ck = chain_key_0(k, sender, receiver.id(), conv, s.epoch);
  return out;
}

}  // namespace cowpi::protocol

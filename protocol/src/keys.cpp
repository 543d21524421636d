// SPDX-License-Identifier: Apache-2.0
// NAXOS ephemerals and pairwise block protection (docs/design.md §2).
#include "cowpi/protocol/keys.hpp"

#include "cowpi/protocol/encoding.hpp"

#include <algorithm>

namespace cowpi::protocol {

identity identity::generate(std::string id, crypto::rng& r) {
  auto lsk = r.secret_bytes<32>();
  crypto::clamp(lsk.expose());
  return from_secret(std::move(id), lsk);
}

identity identity::from_secret(std::string id, const crypto::secret<32>& lsk) {
  auto pub = crypto::x25519_base(lsk);
  return identity(std::move(id), crypto::locked_secret<32>(lsk), pub);
}

bool usable_public_key(const public_key& pk) {
  // Clamped scalars are multiples of the cofactor 8, so exactly the
  // low-order points give zero.
  crypto::secret<32> eight;
  eight.expose()[0] = 8;
  return crypto::x25519(eight, pk).has_value();
}

crypto::secret<32> naxos_secret(const crypto::secret<32>& esk, const identity& owner) {
  crypto::secret<32> x;
  {
    auto lsk = owner.lsk();
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, esk.expose().data(), esk.size);
    crypto_hash_sha256_update(&st, lsk.expose().data(), 32);
    crypto_hash_sha256_final(&st, x.expose().data());
    sodium_memzero(&st, sizeof st);
  }
  crypto::clamp(x.expose());
  return x;
}

naxos_keypair naxos_derive(const crypto::secret<32>& esk, const identity& owner) {
  naxos_keypair kp;
  kp.x = naxos_secret(esk, owner);
  kp.pub = crypto::x25519_base(kp.x);
  return kp;
}

naxos_keypair naxos_fresh(const identity& owner, crypto::rng& r) {
  auto esk = r.secret_bytes<32>();
  return naxos_derive(esk, owner);  // esk is wiped when it goes out of scope
}

bytes pair_info(const pair_context& ctx) {
  byte_writer w(160);
  auto ref = enc_ref(ctx.ref);
  w.lp(ctx.sender).lp(ctx.receiver).raw(ctx.conv).raw(ref).raw(ctx.x_s);
  return std::move(w).take();
}

namespace {
crypto::secret<32> pair_kdf(const crypto::secret<96>& ikm, const pair_context& ctx) {
  auto info = pair_info(ctx);
  return crypto::hkdf32(as_bytes(label("pair")), ikm.expose(), info);
}
}  // namespace

expected<crypto::secret<32>> pair_key_send(const identity& sender, const crypto::secret<32>& x,
                                           const public_key& lpk_r, const public_key& e_pub,
                                           const pair_context& ctx) {
  crypto::secret<96> ikm;
  auto k = ikm.expose();
  {
    auto lsk = sender.lsk();
    COWPI_TRY_VOID(crypto::x25519_into(k.subspan<0, 32>(), lsk.expose(), e_pub));
  }
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<32, 32>(), x, lpk_r));
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<64, 32>(), x, e_pub));
  return pair_kdf(ikm, ctx);
}

expected<crypto::secret<32>> pair_key_recv(const identity& receiver, const crypto::secret<32>& e_r,
                                           const public_key& lpk_s, const pair_context& ctx) {
  crypto::secret<96> ikm;
  auto k = ikm.expose();
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<0, 32>(), e_r, lpk_s));
  {
    auto lsk = receiver.lsk();
    COWPI_TRY_VOID(crypto::x25519_into(k.subspan<32, 32>(), lsk.expose(), ctx.x_s));
  }
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<64, 32>(), e_r, ctx.x_s));
  return pair_kdf(ikm, ctx);
}

namespace {
void encode_plaintext(std::span<uint8_t, block_plaintext_size> out, const block_plaintext& pt) {
  std::copy_n(pt.seed.expose().data(), 32, out.data());
  for (int i = 0; i < 8; ++i)
    out[32 + static_cast<size_t>(i)] = static_cast<uint8_t>(pt.announced_id >> (56 - 8 * i));
  std::copy(pt.announced_pub.begin(), pt.announced_pub.end(), out.begin() + 40);
}
}  // namespace

expected<block> seal_block(const identity& sender, std::string_view receiver,
                           const public_key& lpk_r, const conv_id& conv, const key_ref& ref,
                           const public_key& e_pub, const block_plaintext& pt, byte_view ad,
                           crypto::rng& r, crypto::secret<32>* key_out) {
  block b;
  b.ref = ref;
  naxos_keypair eph = naxos_fresh(sender, r);
  b.x = eph.pub;
  pair_context ctx{sender.id(), receiver, conv, b.ref, b.x};
  COWPI_TRY(crypto::secret<32> k, pair_key_send(sender, eph.x, lpk_r, e_pub, ctx));
  eph.x.wipe();
  r.fill(b.nonce);
  crypto::secret<block_plaintext_size> plain;
  encode_plaintext(plain.expose(), pt);
  COWPI_TRY_VOID(crypto::aead_seal_into(b.ct, k.expose(), b.nonce, plain.expose(), ad));
  if (key_out != nullptr)
    *key_out = std::move(k);
  return b;
}

expected<block_plaintext> open_block(const identity& receiver, const crypto::secret<32>& e_r,
                                     std::string_view sender, const public_key& lpk_s,
                                     const conv_id& conv, const block& b, byte_view ad,
                                     crypto::secret<32>* key_out) {
  pair_context ctx{sender, receiver.id(), conv, b.ref, b.x};
  COWPI_TRY(crypto::secret<32> k, pair_key_recv(receiver, e_r, lpk_s, ctx));
  crypto::secret<block_plaintext_size> plain;
  COWPI_TRY_VOID(crypto::aead_open_into(plain.expose(), k.expose(), b.nonce, b.ct, ad));
  block_plaintext pt;
  auto p = plain.expose();
  std::copy_n(p.data(), 32, pt.seed.expose().data());
  for (size_t i = 0; i < 8; ++i)
    pt.announced_id = pt.announced_id << 8 | p[32 + i];
  std::copy_n(p.data() + 40, 32, pt.announced_pub.begin());
  if (key_out != nullptr)
    *key_out = std::move(k);
  return pt;
}

}  // namespace cowpi::protocol

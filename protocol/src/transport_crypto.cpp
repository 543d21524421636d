// SPDX-License-Identifier: Apache-2.0
// Transport handshake key derivation and frame ciphers (docs/design.md §2).
#include "cowpi/protocol/transport_crypto.hpp"

#include "cowpi/protocol/encoding.hpp"

namespace cowpi::protocol {

bytes encode_transcript(const handshake_transcript& t) {
  byte_writer w(256);
  w.u8(t.version).u8(static_cast<uint8_t>(t.mode)).lp(t.id_u).lp(t.id_r);
  w.raw(t.lpk_u).raw(t.lpk_r).raw(t.x_u).raw(t.x_r);
  return std::move(w).take();
}

session_keys derive_session_keys(const crypto::secret<96>& ikm, const handshake_transcript& t) {
  bytes th = encode_transcript(t);
  auto salt = label("transport");
  byte_writer c2r;
  c2r.raw(label("c2r")).raw(th);
  byte_writer r2c;
  r2c.raw(label("r2c")).raw(th);
  return session_keys{crypto::hkdf32(as_bytes(salt), ikm.expose(), c2r.data()),
                      crypto::hkdf32(as_bytes(salt), ikm.expose(), r2c.data())};
}

expected<crypto::secret<96>> client_handshake_ikm(const identity& user,
                                                  const crypto::secret<32>& x_u,
                                                  const handshake_transcript& t) {
  crypto::secret<96> ikm;
  auto k = ikm.expose();
  {
    auto lsk = user.lsk();
    COWPI_TRY_VOID(crypto::x25519_into(k.subspan<0, 32>(), lsk.expose(), t.x_r));
  }
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<32, 32>(), x_u, t.lpk_r));
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<64, 32>(), x_u, t.x_r));
  return ikm;
}

expected<crypto::secret<96>> router_handshake_ikm(const identity& router,
                                                  const crypto::secret<32>& x_r,
                                                  const handshake_transcript& t) {
  crypto::secret<96> ikm;
  auto k = ikm.expose();
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<0, 32>(), x_r, t.lpk_u));
  {
    auto lsk = router.lsk();
    COWPI_TRY_VOID(crypto::x25519_into(k.subspan<32, 32>(), lsk.expose(), t.x_u));
  }
  COWPI_TRY_VOID(crypto::x25519_into(k.subspan<64, 32>(), x_r, t.x_u));
  return ikm;
}

expected<session_keys> client_session_keys(const identity& user, const crypto::secret<32>& x_u,
                                           const handshake_transcript& t) {
  COWPI_TRY(crypto::secret<96> ikm, client_handshake_ikm(user, x_u, t));
  return derive_session_keys(ikm, t);
}

expected<session_keys> router_session_keys(const identity& router, const crypto::secret<32>& x_r,
                                           const handshake_transcript& t) {
  COWPI_TRY(crypto::secret<96> ikm, router_handshake_ikm(router, x_r, t));
  return derive_session_keys(ikm, t);
}

crypto::secret<32> rekey_frame_key(const crypto::secret<32>& k) {
  return crypto::hkdf32(as_bytes(label("rekey")), k.expose(), {});
}

byte_array<24> frame_nonce(uint64_t n) noexcept {
  const uint64_t ctr = n % rekey_interval;
  byte_array<24> nonce{};
  for (size_t i = 0; i < 8; ++i)
    nonce[16 + i] = static_cast<uint8_t>(ctr >> (56 - 8 * i));
  return nonce;
}

namespace {
const std::string& frame_ad() {
  static const std::string ad = label("frame");
  return ad;
}
}  // namespace

void frame_cipher::advance() {
  ++n_;
  if (n_ % rekey_interval == 0)
    key_ = rekey_frame_key(key_);
}

bytes frame_cipher::seal(byte_view pt) {
  auto nonce = frame_nonce(n_);
  auto ct = crypto::aead_seal(key_.expose(), nonce, pt, as_bytes(frame_ad()));
  COWPI_ASSERT(ct.has_value());  // key and nonce sizes are fixed
  advance();
  return std::move(ct).value();
}

expected<bytes> frame_cipher::open(byte_view ct) {
  auto nonce = frame_nonce(n_);
  COWPI_TRY(bytes pt, crypto::aead_open(key_.expose(), nonce, ct, as_bytes(frame_ad())));
  advance();
  return pt;
}

void frame_cipher::skip_for_test(uint64_t frames) {
  while (frames > 0) {
    uint64_t to_boundary = rekey_interval - (n_ % rekey_interval);
    if (frames < to_boundary) {
      n_ += frames;
      return;
    }
    n_ += to_boundary - 1;
    advance();  // crosses the boundary and rekeys
    frames -= to_boundary;
  }
}

}  // namespace cowpi::protocol

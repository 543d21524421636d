// SPDX-License-Identifier: Apache-2.0
#include "cowpi/protocol/shard.hpp"

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/protocol/encoding.hpp"

namespace cowpi::protocol {

namespace {
byte_view as_bytes(const std::string& s) noexcept {
  return byte_view(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
}  // namespace

uint64_t shard_weight(const std::string& node, byte_view key) noexcept {
  static const std::string tag = label("shard");
  bytes m;
  m.reserve(tag.size() + 1 + node.size() + key.size());
  m.insert(m.end(), tag.begin(), tag.end());
  m.push_back(static_cast<uint8_t>(node.size()));
  m.insert(m.end(), node.begin(), node.end());
  m.insert(m.end(), key.begin(), key.end());
  const hash32 h = crypto::sha256(m);
  uint64_t w = 0;
  for (size_t i = 0; i < 8; ++i)
    w = (w << 8) | h[i];
  return w;
}

size_t shard_owner(const std::vector<std::string>& nodes, byte_view key) noexcept {
  size_t best = 0;
  uint64_t best_w = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const uint64_t w = shard_weight(nodes[i], key);
    if (i == 0 || w > best_w || (w == best_w && nodes[i] < nodes[best])) {
      best = i;
      best_w = w;
    }
  }
  return best;
}

size_t conv_owner(const std::vector<std::string>& nodes, const conv_id& conv) noexcept {
  return shard_owner(nodes, byte_view(conv.data(), conv.size()));
}

crypto::secret<32> cluster_hello_tag(const identity& me, const std::string& node) {
  static const std::string salt = label("cluster");
  static const std::string info = label("node hello");
  static const std::string tag = label("node");
  crypto::secret<32> key = [&] {
    auto lsk = me.lsk();
    return crypto::hkdf32(as_bytes(salt), lsk.expose(), as_bytes(info));
  }();
  bytes m(tag.begin(), tag.end());
  m.push_back(static_cast<uint8_t>(node.size()));
  m.insert(m.end(), node.begin(), node.end());
  return crypto::hmac_sha256(key.expose(), m);
}

size_t user_owner(const std::vector<std::string>& nodes, const std::string& id) noexcept {
  return shard_owner(nodes, byte_view(reinterpret_cast<const uint8_t*>(id.data()), id.size()));
}

}  // namespace cowpi::protocol

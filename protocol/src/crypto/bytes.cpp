// SPDX-License-Identifier: Apache-2.0
// Hex conversion and the bounds-checked byte reader.
#include "cowpi/crypto/bytes.hpp"

#include <cstring>

namespace cowpi {

std::string to_hex(byte_view b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) {
    s.push_back(digits[c >> 4]);
    s.push_back(digits[c & 0xf]);
  }
  return s;
}

namespace {
int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<bytes> from_hex(std::string_view s) {
  if (s.size() % 2 != 0)
    return std::nullopt;
  bytes out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(s[2 * i]);
    int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

bool byte_reader::raw(std::span<uint8_t> out) noexcept {
  if (b_.size() - pos_ < out.size())
    return false;
  if (!out.empty())
    std::memcpy(out.data(), b_.data() + pos_, out.size());
  pos_ += out.size();
  return true;
}

bool byte_reader::view(size_t n, byte_view& out) noexcept {
  if (b_.size() - pos_ < n)
    return false;
  out = b_.subspan(pos_, n);
  pos_ += n;
  return true;
}

bool byte_reader::lp(byte_view& out, size_t max) noexcept {
  uint32_t n = 0;
  if (!be32(n) || n > max)
    return false;
  return view(n, out);
}

bool byte_reader::be(uint64_t& v, int n) noexcept {
  if (b_.size() - pos_ < static_cast<size_t>(n))
    return false;
  uint64_t t = 0;
  for (int i = 0; i < n; ++i)
    t = t << 8 | b_[pos_++];
  v = t;
  return true;
}

}  // namespace cowpi

// SPDX-License-Identifier: Apache-2.0
// Byte containers and the big-endian, length-prefixed building blocks of every encoding.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cowpi {

/// Owned, growable bytes. Never holds secrets (see `crypto::secret`).
using bytes = std::vector<uint8_t>;
/// A borrowed view of bytes, valid for the duration of the call it is passed to.
using byte_view = std::span<const uint8_t>;
/// Fixed-size public bytes (keys, hashes, ids).
template <size_t N>
using byte_array = std::array<uint8_t, N>;

/// A 32-byte SHA-256 output.
using hash32 = byte_array<32>;

/// Returns a view of the bytes of `s`.
inline byte_view as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

/// Returns lower-case hex of `b`.
std::string to_hex(byte_view b);
/// Parses hex (either case, even length); `std::nullopt` on anything else.
std::optional<bytes> from_hex(std::string_view s);

/// Appends big-endian integers, raw bytes and `lp()` fields to a buffer. The
/// one tool every canonical encoding (docs/design.md notation) is written with.
class byte_writer {
public:
  byte_writer() = default;
  explicit byte_writer(size_t reserve) { buf_.reserve(reserve); }

  byte_writer& u8(uint8_t v) {
    buf_.push_back(v);
    return *this;
  }
  byte_writer& be32(uint32_t v) { return be(v, 4); }
  byte_writer& be40(uint64_t v) { return be(v, 5); }
  byte_writer& be64(uint64_t v) { return be(v, 8); }
  /// Appends the bytes as they are.
  byte_writer& raw(byte_view b) {
    buf_.insert(buf_.end(), b.begin(), b.end());
    return *this;
  }
  byte_writer& raw(std::string_view s) { return raw(as_bytes(s)); }
  /// Appends `be32(len b) || b`. REQUIRES: `b.size() < 2^32`.
  byte_writer& lp(byte_view b) {
    be32(static_cast<uint32_t>(b.size()));
    return raw(b);
  }
  byte_writer& lp(std::string_view s) { return lp(as_bytes(s)); }

  const bytes& data() const& noexcept { return buf_; }
  bytes take() && noexcept { return std::move(buf_); }
  size_t size() const noexcept { return buf_.size(); }

private:
  byte_writer& be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) {
      buf_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    return *this;
  }
  bytes buf_;
};

/// Reads what `byte_writer` writes, from untrusted bytes: every read checks
/// the remaining length and fails (returns false) instead of overrunning.
class byte_reader {
public:
  explicit byte_reader(byte_view b) noexcept : b_(b) {}

  bool u8(uint8_t& v) noexcept {
    if (b_.size() - pos_ < 1) {
      return false;
    }
    v = b_[pos_++];
    return true;
  }
  bool be32(uint32_t& v) noexcept {
    uint64_t t = 0;
    if (!be(t, 4)) {
      return false;
    }
    v = static_cast<uint32_t>(t);
    return true;
  }
  bool be64(uint64_t& v) noexcept { return be(v, 8); }
  /// Reads exactly `out.size()` bytes.
  bool raw(std::span<uint8_t> out) noexcept;
  /// Reads `n` bytes into a view that borrows from the reader's input.
  bool view(size_t n, byte_view& out) noexcept;
  /// Reads an `lp()` field of at most `max` bytes.
  bool lp(byte_view& out, size_t max) noexcept;
  size_t remaining() const noexcept { return b_.size() - pos_; }
  bool at_end() const noexcept { return pos_ == b_.size(); }

private:
  bool be(uint64_t& v, int n) noexcept;
  byte_view b_;
  size_t pos_ = 0;
};

}  // namespace cowpi

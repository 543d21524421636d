// SPDX-License-Identifier: Apache-2.0
// Private to the wire codec: the untrusted-input reader, its error collector and the per-value
// readers and writers shared by the frame, link and value codecs.
#pragma once

#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/wire.hpp"

#include "cowpi.capnp.h"
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace cowpi::protocol::wire::detail {

/// Longest path of pointers from a root to a leaf in the schema is 7 (LinkRequest > Commit >
/// Prepare > Common > List(Member) > Member > Data); twice that leaves room and stays small.
inline constexpr int nesting_limit = 16;
/// Words the reader may traverse beyond the input's own size: every word of a well-formed
/// message is read at most once, so 2x the input plus a constant never refuses one of ours,
/// while an amplification attack (pointers aliasing one object, lists of empty structs) hits it.
inline constexpr uint64_t traversal_slack_words = 64;
/// Most segments a message may have. Our encoder writes a handful even for the largest frame
/// (MallocMessageBuilder doubles its segments); a table claiming more is refused before parsing.
inline constexpr uint32_t max_segments = 64;

/// Collects the first failure while reading one untrusted message. Readers return `false` once
/// something failed, and the caller stops; only the first error is kept.
class read_ctx {
public:
  /// True while nothing has failed.
  bool ok() const noexcept { return !err_.has_value(); }
  /// Records `code`/`context` unless an error is already recorded; returns false.
  bool fail(errc code, std::string context) {
    if (!err_) {
      err_ = error{code, std::move(context)};
    }
    return false;
  }
  const std::optional<error>& err() const noexcept { return err_; }

  /// When set (a SUBMIT inside a client frame), a block of the wrong size or with an unknown
  /// key kind is recorded as a soft problem, answered with BAD_BLOCK_SIZE, instead of failing.
  bool soft_blocks = false;
  /// The first soft block problem, if any.
  std::optional<error> block_error;
  std::optional<rejection> block_answer;

private:
  std::optional<error> err_;
};

// ---------------------------------------------------------------------------------------------
// Leaf conversions.

inline capnp::Data::Reader as_data(byte_view b) noexcept {
  return {b.data(), b.size()};
}
inline capnp::Data::Reader as_data(std::string_view s) noexcept {
  return {reinterpret_cast<const kj::byte*>(s.data()), s.size()};
}
/// Returns a Text reader over `s` (std::string guarantees the NUL terminator capnp needs).
inline capnp::Text::Reader text(const std::string& s) noexcept {
  return {s.c_str(), s.size()};
}
/// Returns `n` as a Cap'n Proto list size. REQUIRES: `n` below capnp's 2^29 element limit
/// (every list we write is bounded far below it by limits.hpp).
inline unsigned list_size(size_t n) noexcept {
  COWPI_ASSERT(n < (size_t{1} << 29));
  return static_cast<unsigned>(n);
}
/// The usual `overloaded` visitor helper.
template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

/// Copies a Data field that must hold exactly N bytes; any other size is malformed.
template <size_t N>
[[nodiscard]] bool read_fixed(read_ctx& ctx, capnp::Data::Reader d, byte_array<N>& out,
                              std::string_view what) {
  if (d.size() != N) {
    return ctx.fail(errc::malformed, std::string(what) + ": expected " + std::to_string(N)
                                         + " bytes, got " + std::to_string(d.size()));
  }
  std::memcpy(out.data(), d.begin(), N);
  return true;
}

/// Copies an id (at most `max_id_len` bytes, else `errc::too_large`). Its form is validate's.
[[nodiscard]] bool read_id(read_ctx& ctx, capnp::Data::Reader d, std::string& out,
                           std::string_view what);
/// Copies human-readable text of at most `max_text_len` bytes (else `errc::too_large`).
[[nodiscard]] bool read_text(read_ctx& ctx, capnp::Text::Reader t, std::string& out,
                             std::string_view what);
/// Parses Data holding enc(slot) (`decode_slot`: its kind follows from its length). Outside
/// soft mode, a wrong size or an unknown key kind is malformed; in soft mode it is recorded as
/// a block problem and reading continues. Whether the kind fits the conversation's mode is
/// the reader's caller's rule (the router's and the client's).
[[nodiscard]] bool read_block(read_ctx& ctx, capnp::Data::Reader d, slot_block& out,
                              std::string_view what);
/// Fails with `errc::too_large` when `n > max`.
[[nodiscard]] bool check_count(read_ctx& ctx, size_t n, size_t max, std::string_view what);

// ---------------------------------------------------------------------------------------------
// Values shared by several messages (values.cpp). Readers copy everything out of the reader;
// writers fill a freshly initialised builder.

[[nodiscard]] bool read_members(read_ctx& ctx, capnp::List<schema::Member>::Reader l, size_t max,
                                member_list& out, std::string_view what);
[[nodiscard]] bool read_ids(read_ctx& ctx, capnp::List<capnp::Data>::Reader l, size_t max,
                            std::vector<std::string>& out, std::string_view what);
[[nodiscard]] bool read_blocks(read_ctx& ctx, capnp::List<capnp::Data>::Reader l, size_t max,
                               std::vector<slot_block>& out, std::string_view what);
[[nodiscard]] bool read_common(read_ctx& ctx, schema::Common::Reader r, common& out);
[[nodiscard]] bool read_submit(read_ctx& ctx, schema::Submit::Reader r, submit_msg& out);
[[nodiscard]] bool read_envelope(read_ctx& ctx, schema::Envelope::Reader r, envelope& out);
[[nodiscard]] bool read_published_keys(read_ctx& ctx, capnp::List<schema::PublishedKey>::Reader l,
                                       std::vector<published_key>& out, std::string_view what);
[[nodiscard]] bool read_published_key(read_ctx& ctx, schema::PublishedKey::Reader r,
                                      published_key& out, std::string_view what);
[[nodiscard]] bool read_prekey_bundle(read_ctx& ctx, schema::PrekeyBundle::Reader r,
                                      prekey_bundle& out);
[[nodiscard]] bool read_error_frame(read_ctx& ctx, schema::ErrorFrame::Reader r, error_frame& out);

void write_members(capnp::List<schema::Member>::Builder l, const member_list& m);
void write_ids(capnp::List<capnp::Data>::Builder l, const std::vector<std::string>& ids);
void write_blocks(capnp::List<capnp::Data>::Builder l, const std::vector<slot_block>& blocks);
void write_common(schema::Common::Builder b, const common& c);
/// `names_free`: the form of docs/wire.md "The names-free SUBMIT" (slots without recipient ids),
/// which a client frame uses in chain mode; otherwise the named form (storage, public-key mode).
void write_submit(schema::Submit::Builder b, const submit_msg& s, bool names_free);
void write_envelope(schema::Envelope::Builder b, const envelope& e);
void write_published_keys(capnp::List<schema::PublishedKey>::Builder l,
                          const std::vector<published_key>& keys);
void write_published_key(schema::PublishedKey::Builder b, const published_key& k);
void write_prekey_bundle(schema::PrekeyBundle::Builder b, const prekey_bundle& p);
void write_error_frame(schema::ErrorFrame::Builder b, const error_frame& e);

// ---------------------------------------------------------------------------------------------
// Message framing.

/// Returns the standard (unpacked) serialisation of `mb`: segment table, then segments.
bytes to_bytes(capnp::MessageBuilder& mb);

/// Checks the framing of untrusted `b` (non-empty, whole words, at most `max_frame_protocol`
/// bytes, a sane segment count), copies it into aligned words and returns them; on failure
/// records the error in `ctx` and returns an empty array.
kj::Array<capnp::word> copy_words(read_ctx& ctx, byte_view b);

/// Returns the reader limits for an input of `words` words.
capnp::ReaderOptions reader_options(size_t words) noexcept;

/// Records a kj::Exception thrown while reading as `errc::malformed` (its description names the
/// Cap'n Proto check that failed, never message bytes).
void record(read_ctx& ctx, const kj::Exception& e);

/// Reads one untrusted message whose root is `Root`: framing checks, then `fn(root)` inside one
/// try block, so every getter that may throw runs there and every field is copied out before
/// the reader goes away. Never throws; returns `ctx.ok()`.
template <class Root, class Fn>
bool read_message(read_ctx& ctx, byte_view b, Fn&& fn) {
  kj::Array<capnp::word> words = copy_words(ctx, b);
  if (!ctx.ok()) {
    return false;
  }
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), reader_options(words.size()));
    if (reader.getEnd() != words.end()) {
      return ctx.fail(errc::malformed, "bytes after the end of the message");
    }
    std::forward<Fn>(fn)(reader.getRoot<Root>());
  } catch (const kj::Exception& e) {
    record(ctx, e);
  }
  return ctx.ok();
}

/// Checks a top-level frame's wire version.
[[nodiscard]] bool check_wire_version(read_ctx& ctx, uint8_t v, std::string_view what);

/// Fails with a context naming the frame kind and the unknown tag (a newer sender).
bool unknown_tag(read_ctx& ctx, std::string_view what, unsigned tag);

/// Converts a finished read into the public result type.
template <class T>
expected<T> finish(const read_ctx& ctx, T value) {
  if (!ctx.ok()) {
    return unexpected<error>{*ctx.err()};
  }
  return value;
}

}  // namespace cowpi::protocol::wire::detail

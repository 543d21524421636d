// SPDX-License-Identifier: Apache-2.0
// A client's persistent state (docs/design.md §3.5 step 5, §3.8, §5): the sealed identity and key
// store, per-conversation state and sealed channels, the sealed outbox, tombstones, and the
// accepted transcript, so that a client that crashes anywhere resumes without losing or
// re-processing a message.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/events.hpp"
#include "cowpi/protocol/expected.hpp"
#include "cowpi/storage/sealer.hpp"
#include "cowpi/storage/store.hpp"

#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

namespace cowpi::storage {

namespace detail {
class row_cache;
}

/// The client's store; also its `client_history` (D_i of every accepted index). Every write is
/// one synced batch holding only the rows the operation changed. Not thread-safe beyond what
/// `protocol::client` is: the caller serialises calls; `d_at` and `transcript` may run anywhere.
class client_store final : public protocol::client_history {
public:
  /// Opens (creating) the client store at `path` and unlocks it with `key` (see `unlock`).
  /// `r` supplies sealing nonces for the store's lifetime and must outlive it.
  [[nodiscard]] static expected<std::unique_ptr<client_store>> open(
      const std::filesystem::path& path, const key_source& key, crypto::rng& r,
      const open_options& o = {});

  client_store(std::unique_ptr<store> s, sealer sl, crypto::rng& r);
  ~client_store() override;
  client_store(const client_store&) = delete;
  client_store& operator=(const client_store&) = delete;

  /// The underlying store, for tests and benchmarks; the runtime uses the typed calls.
  store& raw() noexcept { return *s_; }
  /// The group-commit writer's counters, and whether a write failed (metrics).
  write_stats stats() const noexcept { return s_->stats(); }
  bool failed() const noexcept { return s_->failed(); }

  /// True once `create` ran.
  [[nodiscard]] expected<bool> has_identity() const;
  /// Writes a new client: its identity (lsk sealed), pinned mirror set, key store and whatever
  /// else it holds, in one synced batch. Fails with `errc::already_exists` when the store
  /// already holds an identity.
  [[nodiscard]] expected<void> create(const protocol::client& c);
  /// Loads the client with options `opts`. Envelopes it had buffered ahead of `next` are not
  /// stored (the router resends them from its cursor). Fails with `errc::not_found` before
  /// `create`, `errc::decrypt_failed` for a wrong key, `errc::corruption` for damaged rows.
  [[nodiscard]] expected<protocol::client> load(protocol::client_options opts = {});

  /// After an operation: writes everything `changes` names (conversation records, removed
  /// conversations turned into tombstones, the key store) and the entries it accepted (the
  /// transcript and D history), in ONE synced batch, before anything the operation returned is
  /// sent or acknowledged. Conversations a `changes` does not name are not looked at: after
  /// `add_bundles`, `flush_rebuilds` or `on_rejection` name the conversation yourself, or use
  /// `persist_all`.
  [[nodiscard]] expected<void> persist(const protocol::client& c,
                                       const protocol::client_changes& changes,
                                       const std::vector<protocol::accepted_entry>& accepted = {});
  /// `persist` with every conversation, tombstone and the key store compared.
  [[nodiscard]] expected<void> persist_all(
      const protocol::client& c, const std::vector<protocol::accepted_entry>& accepted = {});

  /// D_i of an accepted index (kept forever). A storage error reads as "not held".
  std::optional<hash32> d_at(const protocol::conv_id& conv, uint64_t i) const override;
  /// The accepted entries of `conv` with index in [from, to], in index order.
  [[nodiscard]] expected<std::vector<protocol::accepted_entry>> transcript(
      const protocol::conv_id& conv, uint64_t from = 0,
      uint64_t to = std::numeric_limits<uint64_t>::max()) const;

private:
  void write_conv(const protocol::client_conv& cc, write_batch& b);
  void write_tombstone(const protocol::client& c, const protocol::conv_id& conv, write_batch& b);
  expected<void> persist_locked(const protocol::client& c, const protocol::client_changes& ch,
                                const std::vector<protocol::accepted_entry>& accepted,
                                std::unique_lock<std::mutex>& g);
  bytes identity_row(const protocol::client& c) const;

  std::unique_ptr<store> s_;
  sealer sealer_;
  crypto::rng& rng_;
  std::mutex mu_;
  std::unique_ptr<detail::row_cache> cache_;
  /// Conversations and tombstones the store holds rows for.
  std::set<protocol::conv_id> known_convs_;
  std::set<protocol::conv_id> known_tombstones_;
};

}  // namespace cowpi::storage

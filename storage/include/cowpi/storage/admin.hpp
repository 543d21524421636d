// SPDX-License-Identifier: Apache-2.0
// Read paths for the admin tool (docs/design.md §6): conversations, log ranges, D history, queue
// depths, users and pre-key pools, read from a RocksDB secondary (or read-only) instance, so
// they work while the daemon runs. Never needs a storage key: it reads clear rows only.
#pragma once

#include "cowpi/protocol/expected.hpp"
#include "cowpi/protocol/types.hpp"
#include "cowpi/storage/store.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::storage {

/// One conversation as the store holds it.
struct conv_summary {
  protocol::conv_id conv{};
  /// Entries ever accepted or logged (the next index).
  uint64_t next = 0;
  uint64_t last_update = 0;
  size_t members = 0;
  size_t mirrors = 0;
  /// Router: stopped after CONFLICT/REJECT at COMMIT.
  bool stopped = false;
  std::string stop_reason;
  /// Router: the first index the log still holds.
  uint64_t log_start = 0;
  /// Router: logged entries still missing mirror answers; mirror: answers not yet acknowledged.
  uint64_t pending = 0;
};

/// One router log entry's public summary.
struct log_summary {
  uint64_t index = 0;
  protocol::msg_type type = protocol::msg_type::message;
  std::string author;
  uint64_t aseq = 0;
  hash32 d{};
  hash32 t{};
  size_t slots = 0;
  uint64_t body_len = 0;
  uint64_t ordered_at = 0;
  /// Every mirror's answer is persisted (deliverable).
  bool complete = false;
};

/// A user's delivery backlog in one conversation.
struct queue_depth {
  std::string user;
  protocol::conv_id conv{};
  /// The first index the user has not acknowledged.
  uint64_t cursor = 0;
  /// Entries from the cursor up to the conversation's next index (or up to its removal).
  uint64_t depth = 0;
  /// The last index it holds a slot in, once removed.
  std::optional<uint64_t> last;
  /// Its cursor is below the log's start (HISTORY_EXPIRED).
  bool expired = false;
};

struct user_summary {
  std::string id;
  crypto::public_key lpk{};
  uint64_t registered_at = 0;
};

/// One directory owner's pre-key pool.
struct pool_level {
  std::string owner;
  /// False for a provider (mirror).
  bool is_user = false;
  uint64_t one_time_remaining = 0;
  uint64_t last_resort_id = 0;
  uint64_t max_prekey_id = 0;
};

/// A read-only view of any cowpi store. Thread-safe for reads; `refresh` must not run
/// concurrently with them.
class admin_reader {
public:
  /// Opens the store at `path` read-only or as a secondary (`o.mode`, with `o.secondary_dir`).
  /// Fails as `open_existing`.
  [[nodiscard]] static expected<std::unique_ptr<admin_reader>> open(
      const std::filesystem::path& path, const open_options& o);

  explicit admin_reader(std::unique_ptr<store> s) : s_(std::move(s)) {}

  role kind() const noexcept { return s_->kind(); }
  /// Secondary: catch up with the primary's writes.
  [[nodiscard]] expected<void> refresh() { return s_->refresh(); }

  /// Every conversation (every role).
  [[nodiscard]] expected<std::vector<conv_summary>> conversations() const;
  /// Router: the log entries of `conv` held with index in [from, to].
  [[nodiscard]] expected<std::vector<log_summary>> log_range(const protocol::conv_id& conv,
                                                             uint64_t from, uint64_t to) const;
  /// D_i for i in [from, to] that the store holds (mirror and client: the D history; router:
  /// its log entries), for the cross-provider audit.
  [[nodiscard]] expected<std::vector<std::pair<uint64_t, hash32>>> d_range(
      const protocol::conv_id& conv, uint64_t from, uint64_t to) const;
  /// Router: every cursor with its backlog.
  [[nodiscard]] expected<std::vector<queue_depth>> queue_depths() const;
  /// Router: registered users.
  [[nodiscard]] expected<std::vector<user_summary>> users() const;
  /// Router: every directory owner's pool.
  [[nodiscard]] expected<std::vector<pool_level>> prekey_pools() const;

private:
  expected<void> require(role r) const;
  std::unique_ptr<store> s_;
};

}  // namespace cowpi::storage

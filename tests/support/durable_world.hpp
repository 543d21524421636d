// SPDX-License-Identifier: Apache-2.0
// A whole deployment (router, mirrors, clients) over the pure state machines in which every
// party persists through its cowpi store before anything it produced leaves it: the storage
// conformance and crash tests restart it from disk at any point and check nothing is lost.
#pragma once

#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/mirror.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/storage/client_store.hpp"
#include "cowpi/storage/mirror_store.hpp"
#include "cowpi/storage/router_store.hpp"

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cowpi::testing {

struct durable_options {
  /// Seeds this incarnation's protocol randomness (use a different one after each restart).
  uint64_t seed = 1;
  size_t mirrors = 2;
  /// This incarnation's clock starts here and advances one second per step.
  uint64_t start_time = 1'000'000;
};

/// The deployment. Every party lives in its own store under `dir` (router/, mirror-a/, ...,
/// client-<id>/, with key files next to them). Constructing it over a directory that holds
/// stores is a restart: everything is loaded, and `recover` resends what was in flight (the
/// network's queue is volatile, like a real one). Not thread-safe.
class durable_world {
public:
  durable_world(std::filesystem::path dir, durable_options o);
  ~durable_world();
  durable_world(const durable_world&) = delete;
  durable_world& operator=(const durable_world&) = delete;

  /// Called after every durable event with a one-line description (crash child reporting):
  /// "sent <user> <text>", "logged <conv> <i>", "accepted <user> <conv> <i>".
  std::function<void(const std::string&)> on_event;

  /// Registers `id` (first run: identity, pre-keys, directory entry; later: loads it and
  /// re-uploads its pre-keys, which is idempotent).
  void add_user(const std::string& id);
  /// After a restart: COMMITs of logged entries without every answer, clients' outboxes, and
  /// delivery from every cursor.
  void recover();

  [[nodiscard]] expected<protocol::conv_id> create(
      const std::string& author, const std::vector<std::string>& others,
      protocol::block_mode mode = protocol::block_mode::pk);
  [[nodiscard]] expected<void> send(const std::string& author, const protocol::conv_id& conv,
                                    std::string_view text);
  [[nodiscard]] expected<void> update(const std::string& author, const protocol::conv_id& conv,
                                      const std::vector<std::string>& adds,
                                      const std::vector<std::string>& removes);
  /// Sends a RECEIPT for every member and conversation where one is due.
  void receipts_due();
  /// Delivers one message; false when nothing is queued.
  bool step();
  size_t run(size_t max_steps = 1000000);
  /// Messages queued on the (volatile) network.
  size_t in_flight() const noexcept { return net_.size(); }
  void advance_time(uint64_t s) { now_ += s; }

  protocol::client& client(const std::string& id) { return *clients_.at(id).c; }
  storage::client_store& client_db(const std::string& id) { return *clients_.at(id).db; }
  storage::router_store& router_db() { return *router_; }
  protocol::mirror& mirror(size_t k) { return mirrors_.at(k).m; }
  storage::mirror_store& mirror_db(size_t k) { return *mirrors_.at(k).db; }
  const protocol::member_list& ms() const noexcept { return ms_; }
  std::vector<std::string> users() const;
  /// Every alarm raised in this incarnation, and the router's stop reasons.
  const std::vector<protocol::alarm>& alarms() const noexcept { return alarms_; }
  const std::vector<std::string>& operator_alarms() const noexcept { return operator_alarms_; }
  /// The entries `user` accepted in this incarnation, in order.
  const std::vector<protocol::accepted_entry>& accepted(const std::string& user,
                                                        const protocol::conv_id& conv) {
    return accepted_[user][conv];
  }
  /// The identity of mirror `k` of the deployment in `dir` (its key file).
  static protocol::identity mirror_identity(const std::filesystem::path& dir, size_t k);
  /// The router's conversation objects loaded so far.
  protocol::router_conv* router_conv_for(const protocol::conv_id& conv);

  /// Checks what must hold across every store at any time (crash or not); returns the
  /// violations found, in words.
  std::vector<std::string> check_consistency();

private:
  struct to_router {
    std::string user;
    uint64_t aseq = 0;
    protocol::submit_msg submit;
  };
  struct to_router_ack {
    std::string user;
    protocol::ack_msg ack;
  };
  struct to_client_envelope {
    std::string user;
    protocol::envelope env;
  };
  struct to_client_rejection {
    std::string user;
    protocol::conv_id conv{};
    uint64_t aseq = 0;
    protocol::rejection rej;
  };
  using message = std::variant<to_router, to_router_ack, to_client_envelope, to_client_rejection>;

  struct client_node {
    std::unique_ptr<storage::client_store> db;
    std::unique_ptr<protocol::client> c;
  };
  struct mirror_node {
    mirror_node(std::unique_ptr<storage::mirror_store> d, protocol::mirror mm)
        : db(std::move(d)), m(std::move(mm)) {}
    std::unique_ptr<storage::mirror_store> db;
    protocol::mirror m;
  };

  void event(const std::string& what);
  void persist_client(const std::string& id, const protocol::client_changes& ch,
                      const std::vector<protocol::accepted_entry>& accepted = {});
  void persist_conv(const std::string& id, const protocol::conv_id& conv);
  void fill_keys(const std::string& id, const protocol::conv_id& conv);
  void submit_all(const std::string& id, std::vector<protocol::outgoing> out);
  void router_submit(const to_router& m);
  void pump(const protocol::conv_id& conv);
  void commit_entry(protocol::router_conv& rc, const protocol::log_entry& e);
  void deliver(const protocol::conv_id& conv);
  void client_envelope(const to_client_envelope& m);
  void client_rejection(const to_client_rejection& m);

  std::filesystem::path dir_;
  durable_options opts_;
  crypto::deterministic_rng rng_;
  crypto::system_rng seal_rng_;
  uint64_t now_;
  protocol::member_list ms_;
  std::unique_ptr<storage::router_store> router_;
  std::vector<mirror_node> mirrors_;
  std::map<std::string, client_node> clients_;
  std::map<protocol::conv_id, std::unique_ptr<protocol::router_conv>> convs_;
  std::map<std::pair<std::string, protocol::conv_id>, uint64_t> sent_upto_;
  std::deque<message> net_;
  std::map<std::string, std::map<protocol::conv_id, std::vector<protocol::accepted_entry>>>
      accepted_;
  std::vector<protocol::alarm> alarms_;
  std::vector<std::string> operator_alarms_;
};

/// Hex of a conversation id (for event lines).
std::string conv_hex(const protocol::conv_id& c);

}  // namespace cowpi::testing

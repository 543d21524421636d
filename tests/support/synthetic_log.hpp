// SPDX-License-Identifier: Apache-2.0
// Synthetic router log entries (random blocks, real state transitions) for storage tests that
// need many entries or exact control over who acknowledged what, without running the protocol.
#pragma once

#include "cowpi/crypto/primitives.hpp"
#include "cowpi/crypto/rng.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/router.hpp"
#include "cowpi/protocol/state.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace cowpi::testing {

/// A conversation whose entries are well-formed for storage (sorted slots, one block per
/// recipient, one amb per mirror, T chained with `transcript_hash`) but carry random bytes
/// instead of real ciphertexts. `rc` follows every entry, as the router's would.
class synthetic_conv {
public:
  /// `chain`: a chain-mode conversation (C.version 2; slots are DH steps and chain blocks of
  /// every length).
  synthetic_conv(uint64_t seed, const std::vector<std::string>& members, size_t mirrors = 2,
                 bool chain = false)
      : rng_(seed),
        rc_(conv_id_from(seed), ms_for(mirrors, seed), protocol::intake_limits{}),
        chain_(chain) {
    conv_ = conv_id_from(seed);
    ms_ = ms_for(mirrors, seed);
    for (const auto& m : members)
      members_.push_back(protocol::member{m, rng_.array<32>()});
    std::sort(members_.begin(), members_.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
  }

  const protocol::conv_id& conv() const noexcept { return conv_; }
  const protocol::router_conv& rc() const noexcept { return rc_; }
  protocol::router_conv& rc() noexcept { return rc_; }
  const protocol::member_list& ms() const noexcept { return ms_; }
  const protocol::member_list& members() const noexcept { return members_; }

  /// The SETUP at index 0 by the first member.
  protocol::log_entry setup() {
    protocol::common c;
    c.conv = conv_;
    c.type = protocol::msg_type::setup;
    if (chain_)
      c.version = protocol::protocol_version_chain;
    c.author = members_.front().id;
    c.ms = ms_;
    c.members = members_;
    return order(std::move(c), nullptr);
  }

  /// A MESSAGE by `author` with a body of `body_len` bytes (40 + 256 n).
  protocol::log_entry message(const std::string& author, uint64_t body_len = 296) {
    protocol::common c = ordered(protocol::msg_type::message, author);
    bytes body(body_len);
    rng_.fill(body);
    c.body_len = body_len;
    c.body_hash = crypto::sha256(body);
    c.body_commit = rng_.array<32>();
    return order(std::move(c), &body);
  }

  /// An UPDATE by `author` adding `adds` (fresh keys) and removing `removes`.
  protocol::log_entry update(const std::string& author, const std::vector<std::string>& adds,
                             const std::vector<std::string>& removes) {
    protocol::common c = ordered(protocol::msg_type::update, author);
    for (const auto& a : adds)
      c.adds.push_back(protocol::member{a, rng_.array<32>()});
    std::sort(c.adds.begin(), c.adds.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    c.removes = removes;
    std::sort(c.removes.begin(), c.removes.end());
    c.ms = ms_;
    c.members = protocol::apply_ops(members_, c.adds, c.removes);
    members_ = c.members;
    return order(std::move(c), nullptr);
  }

  /// One random block per slot for every mirror.
  protocol::mirror_answers answers(const protocol::log_entry& e) {
    protocol::mirror_answers a;
    for (size_t k = 0; k < ms_.size(); ++k) {
      std::vector<protocol::slot_block> blocks;
      for (size_t s = 0; s < e.slots.size(); ++s)
        blocks.push_back(random_block());
      a.emplace_back(std::move(blocks));
    }
    return a;
  }

  /// The conversation id of the synthetic conversation of `seed`.
  static protocol::conv_id conv_id_from(uint64_t seed) {
    crypto::deterministic_rng r(seed ^ 0xc0ffee);
    return r.array<16>();
  }

private:
  static protocol::member_list ms_for(size_t mirrors, uint64_t seed) {
    crypto::deterministic_rng r(seed ^ 0xfeed);
    protocol::member_list ms;
    for (size_t k = 0; k < mirrors; ++k)
      ms.push_back(
          protocol::member{"mirror-" + std::string(1, static_cast<char>('a' + k)), r.array<32>()});
    return ms;
  }

  protocol::block random_pk_block() {
    protocol::block b;
    rng_.fill(b.x);
    b.ref = protocol::key_ref{protocol::key_kind::ratchet, 1, {}};
    rng_.fill(b.nonce);
    rng_.fill(b.ct);
    return b;
  }

  // Public-key mode: a §4.3 block. Chain mode: in turn a DH step and chain blocks of each
  // ciphertext length (16, 48, 56, 88).
  protocol::slot_block random_block() {
    if (!chain_)
      return random_pk_block();
    const uint32_t k = turn_++ % 5;
    if (k == 0)
      return protocol::dh_step{turn_, random_pk_block()};
    static constexpr size_t ct_sizes[] = {16, 48, 56, 88};
    protocol::chain_block c{turn_, turn_ * 7, bytes(ct_sizes[k - 1])};
    rng_.fill(c.ct);
    return c;
  }

  protocol::common ordered(protocol::msg_type t, const std::string& author) {
    const protocol::conv_state* st = rc_.state();
    protocol::common c;
    c.conv = conv_;
    c.version = st->version;
    c.type = t;
    c.author = author;
    c.parent = st->next - 1;
    c.parent_hash = *st->t_at(c.parent);
    return c;
  }

  protocol::log_entry order(protocol::common c, const bytes* body) {
    const protocol::conv_state* st = rc_.state();
    const uint64_t i = st == nullptr ? 0 : st->next;
    auto a = st == nullptr ? 0 : st->aseq_last.at(c.author).value;
    c.aseq = a + 1;
    protocol::log_entry e;
    e.index = i;
    e.slots = protocol::slots(st, c);
    for (const auto& r : protocol::recipients(st, c))
      e.blocks.push_back(protocol::recipient_block{r, random_block()});
    for (size_t k = 0; k < ms_.size(); ++k)
      e.ambs.push_back(random_block());
    if (c.type == protocol::msg_type::setup) {
      for (const auto& m : c.members) {
        e.joiners.push_back(m.id);
        e.last_resort.push_back(protocol::last_resort_attachment{m.id, 1, rng_.array<32>()});
      }
    } else if (c.type == protocol::msg_type::update) {
      for (const auto& m : c.adds) {
        e.joiners.push_back(m.id);
        e.last_resort.push_back(protocol::last_resort_attachment{m.id, 1, rng_.array<32>()});
      }
    }
    if (body != nullptr)
      e.body = *body;
    e.blocks_root = rng_.array<32>();
    e.d = rng_.array<32>();
    e.t_prev = st == nullptr ? protocol::t_genesis : *st->t_at(i - 1);
    protocol::conv_state next = protocol::advance(st, c, i, e.d);
    e.t = *next.t_at(i);
    e.c = std::move(c);
    last_ordered_[e.c.author] = {i, e.d};
    if (e.c.type == protocol::msg_type::update)
      last_update_time_[e.c.author] = 1000 + i;
    rc_.restore(std::move(next), false, "", last_ordered_, last_update_time_);
    return e;
  }

  crypto::deterministic_rng rng_;
  protocol::conv_id conv_{};
  protocol::member_list ms_;
  protocol::member_list members_;
  protocol::router_conv rc_;
  std::map<std::string, std::pair<uint64_t, hash32>> last_ordered_;
  std::map<std::string, uint64_t> last_update_time_;
  bool chain_ = false;
  uint32_t turn_ = 0;
};

}  // namespace cowpi::testing

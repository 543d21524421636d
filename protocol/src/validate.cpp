// SPDX-License-Identifier: Apache-2.0
// validate(): the shared rule function of docs/design.md §3.3.
#include "cowpi/protocol/validate.hpp"

#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/keys.hpp"
#include "cowpi/protocol/limits.hpp"

#include <algorithm>

namespace cowpi::protocol {

std::string_view to_string(rule r) noexcept {
  switch (r) {
    case rule::not_canonical:
      return "not_canonical";
    case rule::bad_version:
      return "bad_version";
    case rule::setup_index:
      return "setup_index";
    case rule::conv_exists:
      return "conv_exists";
    case rule::conv_unknown:
      return "conv_unknown";
    case rule::setup_aseq:
      return "setup_aseq";
    case rule::author_not_member:
      return "author_not_member";
    case rule::too_few_members:
      return "too_few_members";
    case rule::mirror_count:
      return "mirror_count";
    case rule::aseq:
      return "aseq";
    case rule::parent_not_before:
      return "parent_not_before";
    case rule::stale:
      return "stale";
    case rule::parent_hash:
      return "parent_hash";
    case rule::recipients:
      return "recipients";
    case rule::body_len:
      return "body_len";
    case rule::voids:
      return "voids";
    case rule::ms_changed:
      return "ms_changed";
    case rule::add_existing:
      return "add_existing";
    case rule::remove_missing:
      return "remove_missing";
    case rule::add_and_remove:
      return "add_and_remove";
    case rule::no_ops:
      return "no_ops";
    case rule::members_mismatch:
      return "members_mismatch";
    case rule::bad_key:
      return "bad_key";
  }
  return "unknown";
}

namespace {

using result = expected<void, rule>;

unexpected<rule> broke(rule r) {
  return unexpected<rule>{r};
}

result check_setup(const conv_state* s, bool tombstoned, const common& c, validate_at at) {
  if (at.index && *at.index != 0)
    return broke(rule::setup_index);
  if (s != nullptr || tombstoned)
    return broke(rule::conv_exists);
  if (c.aseq != 1)
    return broke(rule::setup_aseq);
  if (find_member(c.members, c.author) == nullptr)
    return broke(rule::author_not_member);
  if (c.members.size() < 2)
    return broke(rule::too_few_members);
  if (c.ms.empty() || c.ms.size() > max_mirrors)
    return broke(rule::mirror_count);
  // Every block to or from these parties needs a DH with their long-term key: a low-order
  // key would make blocks impossible to build (a mirror could not answer COMMIT).
  for (const auto& m : c.members)
    if (!usable_public_key(m.lpk))
      return broke(rule::bad_key);
  for (const auto& o : c.ms)
    if (!usable_public_key(o.lpk))
      return broke(rule::bad_key);
  return {};
}

result check_ordered(const conv_state& s, const common& c, validate_at at) {
  // Every entry carries its SETUP's version: the conversation's block mode (§5.2).
  if (c.version != s.version)
    return broke(rule::bad_version);
  if (!s.is_member(c.author))
    return broke(rule::author_not_member);
  auto a = s.aseq_last.find(c.author);
  if (a == s.aseq_last.end() || a->second.known) {
    uint64_t last = a == s.aseq_last.end() ? 0 : a->second.value;
    if (c.aseq != last + 1)
      return broke(rule::aseq);
  } else if (c.aseq < 1) {
    return broke(rule::aseq);
  }
  // Index-dependent rule: parent < i, or parent < next at PREPARE time.
  const uint64_t bound = at.index ? *at.index : s.next;
  if (c.parent >= bound)
    return broke(rule::parent_not_before);
  if (c.parent < s.last_update)
    return broke(rule::stale);
  const hash32* t = s.t_at(c.parent);
  if (t == nullptr || !crypto::ct_equal(*t, c.parent_hash))
    return broke(rule::parent_hash);
  return {};
}

result check_message(const common& c) {
  if (c.body_len < 40 + pad_block || (c.body_len - 40) % pad_block != 0 || c.body_len > max_body)
    return broke(rule::body_len);
  return {};
}

result check_receipt(const conv_state& s, const common& c) {
  auto f = s.receipt_floor.find(c.author);
  const bool known = f == s.receipt_floor.end() || f->second.known;
  const int64_t floor = f == s.receipt_floor.end() ? -1 : f->second.value;
  // voids are strictly increasing (enc(C) checked it): check the ends.
  if (c.voids.empty())
    return {};
  if (c.voids.back() > c.parent)
    return broke(rule::voids);
  if (known && static_cast<int64_t>(c.voids.front()) <= floor)
    return broke(rule::voids);
  return {};
}

result check_update(const conv_state& s, const common& c) {
  if (c.ms != s.ms)
    return broke(rule::ms_changed);
  if (c.adds.empty() && c.removes.empty())
    return broke(rule::no_ops);
  for (const auto& a : c.adds) {
    if (s.is_member(a.id))
      return broke(rule::add_existing);
    if (std::binary_search(c.removes.begin(), c.removes.end(), a.id))
      return broke(rule::add_and_remove);
  }
  for (const auto& r : c.removes)
    if (!s.is_member(r))
      return broke(rule::remove_missing);
  if (c.members != apply_ops(s.members, c.adds, c.removes))
    return broke(rule::members_mismatch);
  for (const auto& a : c.adds)
    if (!usable_public_key(a.lpk))
      return broke(rule::bad_key);
  return {};
}

result check_recipients(const conv_state* s, const common& c, const recipient_check& rc) {
  if (rc.full == nullptr && !rc.self)
    return {};
  auto expected_r = recipients(s, c);
  if (rc.full != nullptr && *rc.full != expected_r)
    return broke(rule::recipients);
  if (rc.self && !std::binary_search(expected_r.begin(), expected_r.end(), *rc.self))
    return broke(rule::recipients);
  return {};
}

}  // namespace

expected<void, rule> validate(const conv_state* s, bool tombstoned, const common& c,
                              const recipient_check& rc, validate_at at) {
  auto enc = enc_common(c);
  if (!enc) {
    return broke(enc.error().code == errc::unsupported_version ? rule::bad_version
                                                               : rule::not_canonical);
  }
  if (c.type == msg_type::setup) {
    if (auto r = check_setup(s, tombstoned, c, at); !r)
      return r;
  } else {
    if (s == nullptr)
      return broke(rule::conv_unknown);
    if (auto r = check_ordered(*s, c, at); !r)
      return r;
  }
  if (auto r = check_recipients(s, c, rc); !r)
    return r;
  switch (c.type) {
    case msg_type::message:
      return check_message(c);
    case msg_type::receipt:
      return check_receipt(*s, c);
    case msg_type::update:
      return check_update(*s, c);
    case msg_type::setup:
      break;
  }
  return {};
}

}  // namespace cowpi::protocol

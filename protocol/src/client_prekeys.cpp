// SPDX-License-Identifier: Apache-2.0
// The client's pre-keys: making, uploading, expiring and retiring them (§2, docs/protocol.md
// §12).
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/limits.hpp"

#include <algorithm>

namespace cowpi::protocol {

// ---------------------------------------------------------------------------
// Pre-keys.

bool client::last_resort_due(uint64_t now) const noexcept {
  auto lr = keys_.current_last_resort();
  if (!lr)
    return true;
  auto slot = keys_.last_resort().find(lr->id);
  return slot == keys_.last_resort().end()
         || now >= slot->second.key.created + opts_.last_resort_period;
}

upload_prekeys client::make_prekeys(size_t count, uint64_t now, crypto::rng& r) {
  upload_prekeys up;
  up.one_time = keys_.make_prekeys(self_, std::min(count, max_prekey_batch), now, r);
  if (last_resort_due(now))
    up.last_resort = keys_.rotate_last_resort(self_, now, r);
  return up;
}

prekey_upload client::plan_prekey_upload(const status_result* pool, uint64_t now, crypto::rng& r) {
  prekey_upload plan;
  auto& up = plan.up;
  // Keys made earlier that never reached the router (an attempt that did not get through, a
  // crash between persisting and uploading) are still unused: they go first.
  const uint64_t uploaded_upto = pool ? pool->max_prekey_id : 0;
  for (const auto& [id, slot] : keys_.prekeys()) {
    if (up.one_time.size() >= max_prekey_batch)
      break;
    if (id > uploaded_upto && !slot.bound)
      up.one_time.push_back(published_key{id, slot.key.pub});
  }
  size_t need = 0;
  if (pool) {
    need = prekeys_needed(pool->one_time_remaining + up.one_time.size());
  } else if (up.one_time.size() < opts_.prekey_target) {
    need = opts_.prekey_target - up.one_time.size();
  }
  if (need > 0 || last_resort_due(now)) {
    auto made = make_prekeys(std::min(need, max_prekey_batch - up.one_time.size()), now, r);
    up.one_time.insert(up.one_time.end(), made.one_time.begin(), made.one_time.end());
    up.last_resort = made.last_resort;
    plan.keys_changed = true;
  }
  if (!up.last_resort) {
    auto cur = keys_.current_last_resort();
    if (cur && (pool == nullptr || cur->id != pool->last_resort_id))
      up.last_resort = cur;
  }
  return plan;
}

uint64_t client::prekey_retire_floor() const noexcept {
  for (const auto& [id, slot] : keys_.prekeys())
    if (!slot.bound)
      return id;
  return keys_.next_prekey_id();
}

size_t client::prekeys_needed(uint64_t router_remaining) const noexcept {
  if (router_remaining >= opts_.prekey_low_water)
    return 0;
  return opts_.prekey_target > router_remaining ? opts_.prekey_target - router_remaining : 0;
}

bool client::expire_keys(uint64_t now) {
  return !keys_.expire(now, opts_.prekey_max_age, opts_.last_resort_grace).empty();
}

}  // namespace cowpi::protocol

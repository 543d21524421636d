// SPDX-License-Identifier: Apache-2.0
// The client state machine, the outbox: rebuilds after an UPDATE or an orphan, and the router's
// rejections (§3.6, §3.8).
#include "cowpi/protocol/limits.hpp"

#include "client_helpers.hpp"

#include <algorithm>

namespace cowpi::protocol {

using detail::ordered_template;
using detail::receipt_floor_for;
using detail::set_receipt_range;

// ---------------------------------------------------------------------------
// The outbox: rebuilds and rejections (§3.6, §3.8).

std::vector<outgoing> client::rebuild_from(client_conv& cc, size_t first, uint64_t now,
                                           crypto::rng& r) {
  std::vector<outgoing> out;
  if (cc.status != conv_status::active || !cc.st.is_member(self_.id()))
    return out;
  uint64_t aseq = 0;
  if (first == 0) {
    auto it = cc.st.aseq_last.find(self_.id());
    aseq = (it == cc.st.aseq_last.end() ? 0 : it->second.value) + 1;
  } else {
    aseq = cc.outbox[first - 1].aseq + 1;
  }
  size_t k = first;
  while (k < cc.outbox.size()) {
    outbox_entry& e = cc.outbox[k];
    common c = ordered_template(cc, e.type, self_.id(), aseq);
    const bytes* pt = nullptr;
    if (e.type == msg_type::message) {
      pt = &e.plaintext;
    } else if (e.type == msg_type::receipt) {
      set_receipt_range(cc, c, receipt_floor_for(cc, self_.id(), k));
    } else if (e.type == msg_type::update) {
      // Re-apply the ops to the current members; drop those that no longer apply.
      member_list adds;
      for (const auto& a : e.adds)
        if (!cc.st.is_member(a.id))
          adds.push_back(a);
      std::vector<std::string> removes;
      for (const auto& id : e.removes)
        if (cc.st.is_member(id))
          removes.push_back(id);
      if (adds.empty() && removes.empty()) {
        // Nothing left: abandon it. Its versions may still come back ordered.
        for (const auto& v : e.versions)
          cc.orphans.push_back(orphan_version{e.aseq, v.d});
        cc.outbox.erase(cc.outbox.begin() + static_cast<std::ptrdiff_t>(k));
        continue;
      }
      c.ms = cc.st.ms;
      c.adds = adds;
      c.removes = removes;
      c.members = apply_ops(cc.st.members, adds, removes);
    } else {
      ++k;  // a SETUP is never rebuilt
      continue;
    }
    auto b = build(cc, c, pt, now, r, nullptr);
    if (!b) {
      // Missing keys: keep it due; `flush_rebuilds` retries after a fetch.
      e.stale_after = cc.st.last_update;
      break;
    }
    if (e.aseq != aseq) {
      // Its old versions may still be ordered under the old aseq: if one is, this entry
      // is sent (entry_id links them).
      for (const auto& v : e.versions)
        cc.orphans.push_back(orphan_version{e.aseq, v.d, e.plaintext, e.id});
      e.versions.clear();
    }
    e.aseq = aseq;
    e.stale_after.reset();
    e.versions.push_back(b->version);
    cc.own_parent = std::max(cc.own_parent, static_cast<int64_t>(c.parent));
    out.push_back(outgoing{cc.st.conv, aseq, b->version.submit});
    ++aseq;
    ++k;
  }
  return out;
}

std::vector<outgoing> client::flush_rebuilds(const conv_id& conv, uint64_t now, crypto::rng& r) {
  auto it = convs_.find(conv);
  if (it == convs_.end())
    return {};
  client_conv& cc = it->second;
  // Due: a STALE(u) rebuild once the UPDATE at u is processed, or a rebuild that waited for
  // keys (`stale_after` = last_update when it failed, 0 in a conversation with no UPDATE yet:
  // that one is due at once, or a message whose rebuild once lacked a key would never go).
  for (size_t k = 0; k < cc.outbox.size(); ++k) {
    const auto& e = cc.outbox[k];
    if (e.stale_after && *e.stale_after <= cc.st.last_update)
      return rebuild_from(cc, k, now, r);
  }
  return {};
}

rejection_plan plan_rejection(const rejection& r) {
  rejection_plan p;
  p.handled = r;
  if (r.kind == rejection_kind::limit
      && (r.detail == limit_pending || r.detail == limit_update_rate
          || r.detail == limit_setup_rate)) {
    if (r.detail != limit_pending)
      p.wait_s = std::clamp<uint64_t>(r.value, 1, 3600);
    p.handled = rejection{rejection_kind::unavailable, 0, r.detail};
  }
  switch (p.handled.kind) {
    case rejection_kind::unavailable:
    case rejection_kind::aseq_gap:
    case rejection_kind::already_ordered:
      p.keeps_message = true;
      break;
    case rejection_kind::stale:
      p.keeps_message = true;
      p.needs_keys = true;
      break;
    default:
      p.needs_keys = true;
      break;
  }
  return p;
}

rejection_result client::on_rejection(const conv_id& conv, uint64_t aseq, const rejection& rej,
                                      uint64_t now, crypto::rng& r) {
  rejection_result out;
  auto it = convs_.find(conv);
  // A halted conversation sends nothing more (§3.5), not even in answer to a hint.
  if (it == convs_.end() || it->second.status == conv_status::halted)
    return out;
  client_conv& cc = it->second;
  auto pos = std::find_if(cc.outbox.begin(), cc.outbox.end(),
                          [aseq](const outbox_entry& e) { return e.aseq == aseq; });
  if (pos == cc.outbox.end())
    return out;
  const size_t k = static_cast<size_t>(pos - cc.outbox.begin());
  switch (rej.kind) {
    case rejection_kind::stale:
      // STALE(u) means parent < u. If the current version already builds on u or later, the
      // hint is about an older version: rebuilding again would only resend everything.
      if (pos->versions.empty() || pos->versions.back().submit.c.parent >= rej.value)
        return out;
      out.changes.convs.insert(conv);
      if (cc.st.last_update >= rej.value && rej.value > 0) {
        out.resubmit = rebuild_from(cc, k, now, r);
      } else {
        pos->stale_after = rej.value;
      }
      return out;
    case rejection_kind::aseq_gap:
      if (auto own = cc.st.aseq_last.find(self_.id());
          own != cc.st.aseq_last.end() && !own->second.known) {
        // Our aseq is unknown (we rejoined after a halt): take the router's word for it and
        // renumber the outbox from there. A wrong hint only gets the mirrors' REJECT.
        if (rej.value == 0 || rej.value == aseq || k != 0)
          return out;
        own->second.value = rej.value - 1;
        out.changes.convs.insert(conv);
        out.resubmit = rebuild_from(cc, 0, now, r);
        return out;
      }
      if (auto own = cc.st.aseq_last.find(self_.id());
          own != cc.st.aseq_last.end() && rej.value <= own->second.value) {
        // Every mirror attested that aseq to us already: the hint is false, and no resend
        // could satisfy it.
        return out;
      }
      if (rej.value < aseq) {
        // Resend the message the router expects, then this one, unchanged. Every message
        // queued behind a rejected head gets its own ASEQ_GAP (§3.4 step 1): resending the
        // whole outbox from `expected` for each of them multiplies the traffic with every
        // round while the head keeps failing. Nothing is resent while a message in between
        // waits for its STALE rebuild: this one would only meet the same gap again, without
        // end if the UPDATE never comes; it follows the rebuild, or `pending` (§3.8).
        const outbox_entry* head = nullptr;
        for (const auto& e : cc.outbox) {
          if (e.aseq < rej.value || e.aseq > aseq)
            continue;
          if (e.stale_after)
            return out;
          if (e.aseq == rej.value)
            head = &e;
        }
        if (head != nullptr && !head->versions.empty())
          out.resubmit.push_back(outgoing{conv, head->aseq, head->versions.back().submit});
        if (!pos->versions.empty())
          out.resubmit.push_back(outgoing{conv, aseq, pos->versions.back().submit});
      }
      return out;  // expected > aseq: that aseq is taken; wait for the echo
    case rejection_kind::already_ordered:
      return out;
    case rejection_kind::unavailable:
      out.resubmit.push_back(outgoing{conv, aseq, pos->versions.back().submit});
      return out;
    case rejection_kind::not_member:
    case rejection_kind::limit:
    case rejection_kind::bad_block_size:
    case rejection_kind::bad_body:
    case rejection_kind::unknown_mirror:
    case rejection_kind::mirror_reject:
    case rejection_kind::invalid:
    case rejection_kind::stopped:
    case rejection_kind::history_expired:
    case rejection_kind::unknown_user:
      break;
  }
  // A permanent rejection: abandon this aseq; later messages move one down.
  out.dropped = rej;
  out.changes.convs.insert(conv);
  // Rejections are unauthenticated hints: keep every version, in case one is ordered
  // anyway. A refused SETUP leaves the conversation pending: its echo is still accepted.
  for (const auto& v : pos->versions)
    cc.orphans.push_back(orphan_version{aseq, v.d, pos->plaintext});
  if (pos->type == msg_type::setup) {
    cc.outbox.erase(pos);
    return out;
  }
  cc.outbox.erase(pos);
  out.resubmit = rebuild_from(cc, k, now, r);
  return out;
}

}  // namespace cowpi::protocol

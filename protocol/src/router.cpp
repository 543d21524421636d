// SPDX-License-Identifier: Apache-2.0
// The router's sequencing logic (docs/design.md §3.4) and envelope assembly (§3.10).
#include "cowpi/protocol/router.hpp"

#include "cowpi/crypto/secret.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/validate.hpp"

#include <algorithm>

namespace cowpi::protocol {

std::string_view to_string(rejection_kind k) noexcept {
  switch (k) {
    case rejection_kind::stale:
      return "STALE";
    case rejection_kind::aseq_gap:
      return "ASEQ_GAP";
    case rejection_kind::already_ordered:
      return "ALREADY_ORDERED";
    case rejection_kind::not_member:
      return "NOT_MEMBER";
    case rejection_kind::limit:
      return "LIMIT";
    case rejection_kind::bad_block_size:
      return "BAD_BLOCK_SIZE";
    case rejection_kind::bad_body:
      return "BAD_BODY";
    case rejection_kind::unknown_mirror:
      return "UNKNOWN_MIRROR";
    case rejection_kind::mirror_reject:
      return "MIRROR_REJECT";
    case rejection_kind::invalid:
      return "INVALID";
    case rejection_kind::unavailable:
      return "UNAVAILABLE";
    case rejection_kind::stopped:
      return "STOPPED";
    case rejection_kind::history_expired:
      return "HISTORY_EXPIRED";
    case rejection_kind::unknown_user:
      return "UNKNOWN_USER";
  }
  return "UNKNOWN";
}

std::string_view to_string(frame_error_code c) noexcept {
  switch (c) {
    case frame_error_code::malformed:
      return "malformed";
    case frame_error_code::too_large:
      return "too_large";
    case frame_error_code::unsupported_version:
      return "unsupported_version";
    case frame_error_code::unknown_user:
      return "unknown_user";
    case frame_error_code::id_taken:
      return "id_taken";
    case frame_error_code::bad_handshake:
      return "bad_handshake";
    case frame_error_code::busy:
      return "busy";
    case frame_error_code::internal:
      return "internal";
    case frame_error_code::protocol_violation:
      return "protocol_violation";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Log entries and envelopes.

std::vector<block_digest> log_entry::digests() const {
  std::vector<block_digest> out;
  out.reserve(blocks.size());
  for (const auto& rb : blocks)
    out.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
  return out;
}

prepare_msg log_entry::prepare_for(size_t k) const {
  prepare_msg p;
  p.c = c;
  p.block_hashes = digests();
  p.amb = ambs.at(k);
  p.last_resort = last_resort;
  return p;
}

expected<envelope> make_envelope(const log_entry& e, const mirror_answers& a,
                                 const std::string& member) {
  auto slot = std::lower_bound(e.slots.begin(), e.slots.end(), member);
  if (slot == e.slots.end() || *slot != member)
    return fail(errc::not_found, "no slot");
  const size_t pos = static_cast<size_t>(slot - e.slots.begin());
  const bool author = member == e.c.author;
  envelope env;
  env.conv = e.c.conv;
  env.index = e.index;
  env.c = e.c;
  if (!author) {
    env.body = e.body;
    auto rb = std::lower_bound(
        e.blocks.begin(), e.blocks.end(), member,
        [](const recipient_block& b, const std::string& id) { return b.recipient < id; });
    if (rb == e.blocks.end() || rb->recipient != member)
      return fail(errc::internal, "recipient without a block");
    env.block_u = rb->blk;
  }
  env.blocks_root = e.blocks_root;
  env.mirror_blocks.reserve(a.size());
  for (const auto& m : a) {
    if (!m || m->size() != e.slots.size())
      return fail(errc::bad_state, "mirror answer missing");
    env.mirror_blocks.push_back((*m)[pos]);
  }
  if (e.c.type == msg_type::update
      && std::find(e.joiners.begin(), e.joiners.end(), member) != e.joiners.end())
    env.t_prev = e.t_prev;
  return env;
}

// ---------------------------------------------------------------------------
// Rejections and directory policy.

rejection rejection_for(rule r, const conv_state* s, const common& c) {
  switch (r) {
    case rule::stale:
      return rejection{rejection_kind::stale, s ? s->last_update : 0, {}};
    case rule::aseq: {
      uint64_t last = 0;
      if (s != nullptr)
        if (auto a = s->aseq_last.find(c.author); a != s->aseq_last.end())
          last = a->second.value;
      return rejection{rejection_kind::aseq_gap, last + 1, {}};
    }
    case rule::author_not_member:
      return rejection{rejection_kind::not_member, 0, {}};
    default:
      break;
  }
  return rejection{rejection_kind::invalid, 0, std::string(to_string(r))};
}

bool directory_policy::take(fetch_budget& b, uint64_t now) const noexcept {
  if (now >= b.window_start + window) {
    b.window_start = now;
    b.used = 0;
  }
  if (b.used >= budget)
    return false;
  ++b.used;
  return true;
}

// ---------------------------------------------------------------------------
// router_conv.

router_conv::router_conv(const conv_id& conv, member_list configured_ms, intake_limits limits)
    : conv_(conv), configured_ms_(std::move(configured_ms)), limits_(limits) {}

void router_conv::restore(std::optional<conv_state> st, bool stopped, std::string reason,
                          std::map<std::string, std::pair<uint64_t, hash32>> last_ordered,
                          std::map<std::string, uint64_t> last_update_time) {
  st_ = std::move(st);
  stopped_ = stopped;
  stop_reason_ = std::move(reason);
  last_ordered_ = std::move(last_ordered);
  last_update_time_ = std::move(last_update_time);
}

void router_conv::stop(std::string reason) {
  stopped_ = true;
  stop_reason_ = std::move(reason);
}

size_t router_conv::pending() const noexcept {
  size_t n = in_flight_.size();
  for (const auto& [a, q] : queues_)
    n += q.fifo.size();
  return n;
}

uint64_t router_conv::expected_aseq(const std::string& author) const {
  if (auto q = queues_.find(author); q != queues_.end() && !q->second.fifo.empty())
    return q->second.fifo.back().s.c.aseq + 1;
  if (!st_)
    return 1;
  auto a = st_->aseq_last.find(author);
  return (a == st_->aseq_last.end() ? 0 : a->second.value) + 1;
}

expected<uint64_t, rejection> router_conv::intake(submit_msg s, const std::string& session_user,
                                                  uint64_t now) {
  auto no = [](rejection_kind k, uint64_t v = 0, std::string d = {}) {
    return unexpected<rejection>{rejection{k, v, std::move(d)}};
  };
  const common& c = s.c;
  if (stopped_)
    return no(rejection_kind::stopped);
  if (c.conv != conv_)
    return no(rejection_kind::invalid, 0, "conv");
  // The author is the session's user: checked, never overwritten.
  if (c.author != session_user)
    return no(rejection_kind::invalid, 0, "author");
  if (c.type == msg_type::setup) {
    if (c.ms != configured_ms_)
      return no(rejection_kind::unknown_mirror);
  } else {
    if (!st_)
      return no(rejection_kind::invalid, 0, "conv_unknown");
    if (!st_->is_member(c.author))
      return no(rejection_kind::not_member);
  }
  const member_list& ms = c.type == msg_type::setup ? c.ms : st_->ms;
  if (s.ambs.size() != ms.size())
    return no(rejection_kind::bad_block_size);
  // Every slot is of the conversation's mode (§4.8, §5.2): its SETUP's version. A C of another
  // version is refused by `validate` at PREPARE; a slot of the other mode is refused here.
  const block_mode mode =
      (c.type == msg_type::setup ? c.version : st_->version) == protocol_version_chain
          ? block_mode::chain
          : block_mode::pk;
  auto wrong_mode = [&](const slot_block& b) { return mode_of(b) != mode; };
  if (std::any_of(s.ambs.begin(), s.ambs.end(), wrong_mode)
      || std::any_of(s.blocks.begin(), s.blocks.end(),
                     [&](const recipient_block& rb) { return wrong_mode(rb.blk); }))
    return no(rejection_kind::bad_block_size, 0, std::string(to_string(mode)) + " mode");
  if ((c.type == msg_type::message) != s.body.has_value())
    return no(rejection_kind::bad_body);
  if (s.body && (s.body->size() != c.body_len || crypto::sha256(*s.body) != c.body_hash))
    return no(rejection_kind::bad_body);
  if (c.body_len > max_body || c.body_len > limits_.max_body)
    return no(rejection_kind::limit, 0, "body");
  if ((c.type == msg_type::setup || c.type == msg_type::update)
      && c.members.size() > limits_.max_members)
    return no(rejection_kind::limit, 0, "members");
  auto h_c = hash_common(c);
  if (!h_c)
    return no(rejection_kind::invalid, 0, "not_canonical");
  queued q;
  if (s.names_free_root) {
    // The names-free form (docs/wire.md "The names-free SUBMIT"): the slots are named when the
    // SUBMIT reaches the head of its author's queue (`ready`), against the state it will be
    // validated in; an author may have built it after an UPDATE of its own still queued ahead.
    q.root = *s.names_free_root;
  } else {
    q.digests.reserve(s.blocks.size());
    for (const auto& rb : s.blocks)
      q.digests.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
    q.root = blocks_root(q.digests);
  }
  q.d = entry_digest(*h_c, q.root);

  auto& aq = queues_[c.author];
  const uint64_t want = expected_aseq(c.author);
  if (c.aseq != want) {
    for (const auto& x : aq.fifo)
      if (x.s.c.aseq == c.aseq && crypto::ct_equal(x.d, q.d))
        return c.aseq;  // already queued
    if (c.aseq < want) {
      auto lo = last_ordered_.find(c.author);
      const bool was_last =
          st_ && st_->aseq_last.contains(c.author) && st_->aseq_last.at(c.author).value == c.aseq;
      if (lo != last_ordered_.end() && was_last && crypto::ct_equal(lo->second.second, q.d))
        return no(rejection_kind::already_ordered, lo->second.first);
    }
    if (c.type == msg_type::setup && st_)
      return no(rejection_kind::invalid, 0, "conv_exists");
    return no(rejection_kind::aseq_gap, want);
  }
  if (aq.fifo.size() >= limits_.max_pending_per_author)
    return no(rejection_kind::limit, 0, std::string(limit_pending));
  if (pending() >= limits_.max_pending_per_conv)
    return no(rejection_kind::unavailable);
  if (c.type == msg_type::update && limits_.min_update_interval > 0) {
    // One UPDATE per author at a time, and the next one only `min_update_interval` after it
    // was ordered: each UPDATE makes every message in flight STALE, so back-to-back UPDATEs
    // could keep the others from ever being ordered. The value is the wait in seconds.
    const bool outstanding =
        std::any_of(aq.fifo.begin(), aq.fifo.end(),
                    [](const queued& x) { return x.s.c.type == msg_type::update; })
        || (aq.committing && in_flight_.contains(*aq.committing)
            && in_flight_.at(*aq.committing).c.type == msg_type::update);
    if (outstanding)
      return no(rejection_kind::limit, limits_.min_update_interval, std::string(limit_update_rate));
    if (auto t = last_update_time_.find(c.author);
        t != last_update_time_.end() && now < t->second + limits_.min_update_interval)
      return no(rejection_kind::limit, t->second + limits_.min_update_interval - now,
                std::string(limit_update_rate));
  }
  const uint64_t aseq = c.aseq;
  q.s = std::move(s);
  aq.fifo.push_back(std::move(q));
  return aseq;
}

void router_conv::reject_queue(const std::string& author, const rejection& why,
                               std::vector<prepare_decision::rejected>& out) {
  auto& aq = queues_[author];
  if (aq.fifo.empty())
    return;
  const uint64_t head = aq.fifo.front().s.c.aseq;
  out.push_back({author, head, why});
  // Everything queued behind it is rejected too; the client resends them
  // with the same aseqs (§3.4 step 1, §3.8).
  for (size_t k = 1; k < aq.fifo.size(); ++k)
    out.push_back({author, aq.fifo[k].s.c.aseq, rejection{rejection_kind::aseq_gap, head, {}}});
  aq.fifo.clear();
}

std::vector<std::string> router_conv::directory_needs() const {
  std::vector<std::string> ids;
  if (stopped_)
    return ids;
  for (const auto& [author, aq] : queues_) {
    if (aq.job || aq.committing || aq.fifo.empty())
      continue;
    const common& c = aq.fifo.front().s.c;
    if (c.type != msg_type::setup && c.type != msg_type::update)
      continue;
    for (const auto& m : c.type == msg_type::setup ? c.members : c.adds)
      ids.push_back(m.id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<prepare_job> router_conv::ready(const directory_lookup& directory,
                                            std::vector<prepare_decision::rejected>& rejections) {
  std::vector<prepare_job> jobs;
  // Names the slots of a names-free SUBMIT from Recipients(C) in `st`, and holds the author to
  // the blocks_root it computed over its own naming, so that a block is never ordered under the
  // wrong recipient.
  auto name_slots = [](const conv_state* st, queued& q) {
    const auto ids = recipients(st, q.s.c);
    if (ids.size() != q.s.blocks.size())
      return false;
    std::vector<block_digest> ds;
    ds.reserve(ids.size());
    for (size_t k = 0; k < ids.size(); ++k)
      ds.push_back(block_digest{ids[k], block_hash(q.s.blocks[k].blk)});
    if (!crypto::ct_equal(blocks_root(ds), q.root))
      return false;
    for (size_t k = 0; k < ids.size(); ++k)
      q.s.blocks[k].recipient = ids[k];
    q.digests = std::move(ds);
    q.s.names_free_root.reset();
    return true;
  };
  for (auto& [author, aq] : queues_) {
    if (aq.job || aq.committing || aq.fifo.empty())
      continue;
    if (stopped_) {
      reject_queue(author, rejection{rejection_kind::stopped, 0, {}}, rejections);
      continue;
    }
    queued& head = aq.fifo.front();
    const common& c = head.s.c;
    const conv_state* st = st_ ? &*st_ : nullptr;
    if (head.s.names_free_root && !name_slots(st, head)) {
      // The author's naming of its slots is not Recipients(C) in this state: one that has not
      // yet seen an UPDATE is told STALE, as `validate` tells it for the named form.
      auto stale =
          validate(st, false, c, recipient_check{}, validate_at::exactly(st ? st->next : 0));
      reject_queue(author,
                   !stale && stale.error() == rule::stale
                       ? rejection_for(rule::stale, st, c)
                       : rejection{rejection_kind::invalid, 0, "recipients"},
                   rejections);
      continue;
    }
    std::vector<std::string> ids;
    ids.reserve(head.digests.size());
    for (const auto& d : head.digests)
      ids.push_back(d.recipient);
    recipient_check rc;
    rc.full = &ids;
    auto ok = validate(st, false, c, rc, validate_at::exactly(st ? st->next : 0));
    if (!ok) {
      reject_queue(author, rejection_for(ok.error(), st, c), rejections);
      continue;
    }
    std::vector<last_resort_attachment> lr;
    const member_list& added = c.type == msg_type::setup ? c.members : c.adds;
    bool missing = false;
    if (c.type == msg_type::setup || c.type == msg_type::update) {
      for (const auto& m : added) {
        auto entry = directory(m.id);
        if (!entry || !entry->last_resort) {
          reject_queue(author, rejection{rejection_kind::unknown_user, 0, m.id}, rejections);
          missing = true;
          break;
        }
        // A member is named with its registered key, never one the author made up: a wrong
        // key would leave every other member unable to reach it (§3.4 step 1).
        if (!crypto::ct_equal(entry->lpk, m.lpk)) {
          reject_queue(author, rejection{rejection_kind::invalid, 0, "member_key"}, rejections);
          missing = true;
          break;
        }
        lr.push_back(last_resort_attachment{m.id, entry->last_resort->id, entry->last_resort->pub});
      }
    }
    if (missing)
      continue;
    const member_list& ms = st ? st->ms : c.ms;
    prepare_job job;
    job.job = next_job_++;
    job.author = author;
    job.aseq = c.aseq;
    for (size_t k = 0; k < ms.size(); ++k)
      job.per_mirror.push_back(prepare_msg{c, head.digests, head.s.ambs[k], lr});
    job_state js;
    js.author = author;
    js.q = head;
    js.answers.resize(ms.size());
    js.last_resort = std::move(lr);
    jobs_.emplace(job.job, std::move(js));
    aq.job = job.job;
    jobs.push_back(std::move(job));
  }
  return jobs;
}

std::optional<prepare_decision> router_conv::on_prepared(uint64_t job, size_t k,
                                                         const link_response& r, uint64_t now) {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || k >= it->second.answers.size())
    return std::nullopt;
  job_state& js = it->second;
  js.answers[k] = r;
  auto& aq = queues_[js.author];
  auto finish = [&](const rejection& why) {
    prepare_decision d;
    aq.job.reset();
    reject_queue(js.author, why, d.rejections);
    jobs_.erase(it);
    return d;
  };
  // A REJECT from any mirror goes to the author (§3.4 step 3).
  if (const auto* rej = std::get_if<link_reject>(&r))
    return finish(rejection{rejection_kind::mirror_reject, 0, rej->reason});
  const auto* p = std::get_if<prepared>(&r);
  if (p == nullptr || !crypto::ct_equal(p->d, js.q.d))
    return finish(rejection{rejection_kind::unavailable, 0, "mirror disagrees on D"});
  for (const auto& a : js.answers)
    if (!a)
      return std::nullopt;

  // Every mirror answered PREPARED(D): re-run validate at the next index.
  const common& c = js.q.s.c;
  const conv_state* st = st_ ? &*st_ : nullptr;
  const uint64_t i = st ? st->next : 0;
  std::vector<std::string> ids;
  for (const auto& d : js.q.digests)
    ids.push_back(d.recipient);
  recipient_check rc;
  rc.full = &ids;
  auto ok = validate(st, false, c, rc, validate_at::exactly(i));
  if (!ok)
    return finish(rejection_for(ok.error(), st, c));

  log_entry e;
  e.index = i;
  e.c = c;
  e.body = js.q.s.body;
  e.blocks_root = js.q.root;
  e.d = js.q.d;
  e.t_prev = st ? *st->t_at(i - 1) : t_genesis;
  e.slots = slots(st, c);
  e.blocks = js.q.s.blocks;
  e.ambs = js.q.s.ambs;
  e.last_resort = js.last_resort;
  if (c.type == msg_type::setup) {
    for (const auto& m : c.members)
      e.joiners.push_back(m.id);
  } else if (c.type == msg_type::update) {
    for (const auto& m : c.adds)
      e.joiners.push_back(m.id);
  }
  // Advance in place: the state is never copied per entry.
  if (st_) {
    advance_in_place(*st_, c, i, e.d);
  } else {
    st_ = setup_state(c, i, e.d);
  }
  e.t = *st_->t_at(i);
  const size_t mirrors = st_->ms.size();
  last_ordered_[c.author] = {i, e.d};
  if (c.type == msg_type::update)
    last_update_time_[c.author] = now;

  prepare_decision d;
  aq.fifo.pop_front();
  aq.job.reset();
  aq.committing = i;
  in_flight_[i] = e;
  collected_[i] = mirror_answers(mirrors);
  jobs_.erase(it);
  d.ordered = std::move(e);
  return d;
}

std::optional<prepare_decision> router_conv::on_prepare_timeout(uint64_t job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end())
    return std::nullopt;
  prepare_decision d;
  const std::string author = it->second.author;
  queues_[author].job.reset();
  jobs_.erase(it);
  reject_queue(author, rejection{rejection_kind::unavailable, 0, "mirror timeout"}, d.rejections);
  return d;
}

const mirror_answers* router_conv::answers(uint64_t index) const {
  auto it = collected_.find(index);
  return it == collected_.end() ? nullptr : &it->second;
}

void router_conv::resume(log_entry e, mirror_answers known) {
  const uint64_t i = e.index;
  queues_[e.c.author].committing = i;
  known.resize(st_ ? st_->ms.size() : e.ambs.size());
  collected_[i] = std::move(known);
  in_flight_[i] = std::move(e);
}

commit_progress router_conv::on_commit_answer(uint64_t index, size_t k, const link_response& r) {
  commit_progress p;
  auto it = in_flight_.find(index);
  if (it == in_flight_.end())
    return p;  // complete already: a duplicate answer
  auto& got = collected_[index];
  if (k >= got.size())
    return p;
  const log_entry& e = it->second;
  if (const auto* a = std::get_if<answer>(&r)) {
    if (a->index != index || !crypto::ct_equal(a->t, e.t)
        || a->mirror_blocks.size() != e.slots.size()) {
      p.stop_reason = "mirror answer does not match the entry";
    } else {
      got[k] = a->mirror_blocks;
    }
  } else if (const auto* g = std::get_if<gap>(&r)) {
    p.resend_from = g->next;
    return p;
  } else if (std::holds_alternative<already_answered>(r)) {
    if (!got[k])
      p.stop_reason = "mirror pruned an answer the router does not hold";
  } else if (const auto* cf = std::get_if<conflict>(&r)) {
    p.stop_reason = "CONFLICT at index " + std::to_string(cf->index);
  } else if (const auto* rj = std::get_if<link_reject>(&r)) {
    p.stop_reason = "REJECT at COMMIT: " + rj->reason;
  } else {
    p.stop_reason = "unexpected answer to COMMIT";
  }
  if (p.stop_reason) {
    stop(*p.stop_reason);
    return p;
  }
  for (const auto& m : got)
    if (!m)
      return p;
  p.complete = index;
  p.entry = std::move(it->second);
  p.answers = std::move(got);
  queues_[p.entry->c.author].committing.reset();
  in_flight_.erase(it);
  collected_.erase(index);
  return p;
}

std::vector<std::string> cursor_members(const log_entry& e) {
  std::vector<std::string> out = e.joiners;
  if (e.c.type == msg_type::update)
    out.insert(out.end(), e.c.removes.begin(), e.c.removes.end());
  return out;
}

std::vector<std::pair<std::string, delivery_cursor>> cursor_changes(
    const log_entry& e, const std::vector<std::optional<delivery_cursor>>& current,
    uint64_t log_start) {
  const auto members = cursor_members(e);
  std::vector<std::pair<std::string, delivery_cursor>> out;
  for (size_t k = 0; k < members.size() && k < current.size(); ++k) {
    const auto& c = current[k];
    if (k < e.joiners.size()) {
      uint64_t next = e.index;
      if (c && c->next < e.index && c->next >= log_start)
        next = c->next;
      out.emplace_back(members[k], delivery_cursor{next, std::nullopt});
    } else if (c) {
      out.emplace_back(members[k], delivery_cursor{c->next, e.index});
    }
  }
  return out;
}

}  // namespace cowpi::protocol

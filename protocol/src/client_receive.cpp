// SPDX-License-Identifier: Apache-2.0
// The client state machine, receiving: acceptance of one envelope (§3.5), step by step, and
// the buffer of envelopes ahead of the next index. Sending, membership, receipts and the outbox
// are in client.cpp.
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/validate.hpp"

#include <algorithm>

namespace cowpi::protocol {

// ---------------------------------------------------------------------------
// Receiving (§3.5).

namespace {

alarm make_alarm(alarm_kind k, const conv_id& conv, uint64_t i, std::string party,
                 std::string evidence, bool halted = false) {
  return alarm{k, conv, i, std::move(party), std::move(evidence), halted};
}

// The values of one envelope every check below shares.
struct entry_view {
  hash32 h_c{};
  hash32 d{};
  hash32 t_prev{};
  hash32 t{};
};

}  // namespace

receive_result client::receive(const envelope& e, uint64_t now, crypto::rng& r,
                               const client_history* history) {
  receive_result out;
  process_one(e, now, r, history, out);
  // Process buffered envelopes that have become due.
  auto b = buffer_.find(e.conv);
  while (b != buffer_.end()) {
    auto cc = convs_.find(e.conv);
    if (cc == convs_.end() || cc->second.status == conv_status::halted)
      break;
    auto due = b->second.find(cc->second.st.next);
    if (due == b->second.end())
      break;
    envelope next = std::move(due->second);
    b->second.erase(due);
    const uint64_t before = cc->second.st.next;
    process_one(next, now, r, history, out);
    // A removal or a re-creation drops the conversation's buffer: `b` may be gone.
    b = buffer_.find(e.conv);
    auto cc2 = convs_.find(e.conv);
    if (cc2 == convs_.end() || cc2->second.st.next == before)
      break;
  }
  if (b != buffer_.end()) {
    auto cc = convs_.find(e.conv);
    if (cc == convs_.end()) {
      buffer_.erase(b);
    } else {
      // Drop what is no longer ahead.
      auto& m = b->second;
      m.erase(m.begin(), m.lower_bound(cc->second.st.next));
      if (m.empty())
        buffer_.erase(b);
    }
  }
  return out;
}

// One envelope's way through §3.5, step by step: `classify` (steps 0-1: what the entry can be
// for us, duplicates, entries ahead), `verify` (step 2: the entry fixed by every mirror's
// block), `check_rules` (step 3, and the creator rule), `open_entry` (step 4: our own entry, or
// the author's block to us), then `apply` (step 5: advance and apply; nothing there can fail)
// and `settle` (our outbox, a removal, the rebuilds an UPDATE allows). A step that returns
// false ends the envelope's processing: what it found is already in `out`.
struct client::entry_run {
  enum class mode { normal, setup_first, creator, join };

  client& cl;
  const envelope& e;
  const uint64_t now;
  crypto::rng& r;
  const client_history* history;
  receive_result& out;
  const std::string& self;
  const common& c;
  const uint64_t i;
  std::map<conv_id, client_conv>::iterator it;
  client_conv* cc;
  mode m = mode::normal;
  // A scratch conversation for first entries; `cc` for the rest (`tgt`).
  client_conv fresh;
  client_conv* tgt = nullptr;
  bool own = false;
  entry_view v;
  const member_list* ms = nullptr;
  std::vector<block_effects> effects;
  accepted_entry acc;
  std::optional<block_effects> author_effects;
  // A DH step from the author that failed for the directory's sake: its epoch (chain mode).
  std::optional<uint32_t> broken_step;
  // Our own entry: the version that was ordered, when it is still in the outbox.
  const submit_msg* ordered_submit = nullptr;
  bool orphan_echo = false;
  uint64_t orphan_entry = 0;

  entry_run(client& owner, const envelope& env, uint64_t t, crypto::rng& rng,
            const client_history* h, receive_result& result)
      : cl(owner),
        e(env),
        now(t),
        r(rng),
        history(h),
        out(result),
        self(owner.self_.id()),
        c(env.c),
        i(env.index),
        it(owner.convs_.find(env.conv)),
        cc(it == owner.convs_.end() ? nullptr : &it->second) {}

  // A PROVIDER (or DIRECTORY) alarm, once per index; the entry is refused. Returns false.
  bool provider(std::string party, std::string why, alarm_kind k = alarm_kind::provider) {
    bool first = true;
    if (cc != nullptr) {
      first = cc->alarmed.insert(i).second;
      if (first)
        out.changes.convs.insert(e.conv);
    }
    if (first)
      out.alarms.push_back(make_alarm(k, e.conv, i, std::move(party), std::move(why)));
    return false;
  }

  // Halts the conversation on this entry (or refuses a first entry). Returns false.
  bool halt(alarm_kind k, std::string party, std::string why) {
    if (cc == nullptr) {
      // Nothing to halt yet: refuse the entry.
      out.alarms.push_back(make_alarm(k, e.conv, i, std::move(party), std::move(why)));
      return false;
    }
    cc->status = conv_status::halted;
    cc->halt_index = i;
    out.changes.convs.insert(e.conv);
    out.alarms.push_back(make_alarm(k, e.conv, i, std::move(party), std::move(why), true));
    return false;
  }

  bool classify() {
    if (c.conv != e.conv) {
      if (cc != nullptr && cc->alarmed.insert(i).second) {
        out.alarms.push_back(
            make_alarm(alarm_kind::provider, e.conv, i, "router", "envelope conv differs from C"));
        out.changes.convs.insert(e.conv);
      }
      return false;
    }

    // Step 0: what kind of entry this can be for us.
    if (cc == nullptr) {
      const bool setup_for_us =
          c.type == msg_type::setup && i == 0 && find_member(c.members, self) != nullptr;
      // A joining UPDATE from before our removal is a replay: it would re-add us to a past.
      const auto tomb = cl.tombstones_.find(e.conv);
      const bool join_for_us = c.type == msg_type::update && find_member(c.adds, self) != nullptr
                               && (tomb == cl.tombstones_.end() || i >= tomb->second.next);
      if (setup_for_us && !cl.tombstones_.contains(e.conv)) {
        m = mode::setup_first;
      } else if (join_for_us) {
        m = mode::join;
      } else if (cl.tombstones_.contains(e.conv)) {
        // After our removal: nothing for us, and nothing we can verify. No acknowledgement
        // either: a forged or misdirected envelope would move our cursor past the UPDATE
        // that adds us again, and the router would never deliver it.
        return false;
      } else {
        return false;  // not ours; the caller may log it
      }
    } else if (cc->status == conv_status::halted) {
      // A halted member processes nothing more here, not even its own removal (it cannot
      // verify it). An UPDATE that adds it again after the halt is a fresh start (§3.5 step 0
      // (b)): it joins as any removed member would.
      if (c.type != msg_type::update || find_member(c.adds, self) == nullptr || i <= cc->halt_index)
        return false;
      m = mode::join;
    } else if (cc->status == conv_status::pending_setup) {
      if (i != 0 || c.type != msg_type::setup) {
        if (cl.buffer_[e.conv].size() < cl.opts_.max_buffered)
          cl.buffer_[e.conv].emplace(i, e);
        return false;
      }
      m = mode::creator;
    } else {
      // Step 1: duplicates and entries ahead.
      if (i < cc->st.next) {
        auto hc = hash_common(c);
        std::optional<hash32> stored;
        if (auto d = cc->d_recent.find(i); d != cc->d_recent.end()) {
          stored = d->second;
        } else if (history != nullptr) {
          stored = history->d_at(e.conv, i);
        }
        if (stored && (!hc || !crypto::ct_equal(entry_digest(*hc, e.blocks_root), *stored))) {
          if (cc->alarmed.insert(i).second) {
            out.alarms.push_back(make_alarm(alarm_kind::provider, e.conv, i, "router",
                                            "a different entry at an accepted index"));
            out.changes.convs.insert(e.conv);
          }
          return false;
        }
        out.acks.push_back(ack_msg{e.conv, i});
        return false;
      }
      if (i > cc->st.next) {
        if (cl.buffer_[e.conv].size() < cl.opts_.max_buffered)
          cl.buffer_[e.conv].emplace(i, e);
        return false;
      }
    }

    // A first entry naming us with another long-term key than ours (a lying router ordered a
    // SETUP or UPDATE under a key its directory substituted for ours): every mirror block for
    // us was built for that key, so none can open (step 2 would blame a mirror). The directory
    // is at fault: DIRECTORY against the router, and the entry is refused (§3.5 step 3).
    if (m == mode::setup_first || m == mode::join) {
      const member* named = find_member(m == mode::join ? c.adds : c.members, self);
      if (named != nullptr && !crypto::ct_equal(named->lpk, cl.self_.lpk())) {
        if (cc == nullptr || cc->alarmed.insert(i).second) {
          out.alarms.push_back(make_alarm(alarm_kind::directory, e.conv, i, "router",
                                          "our entry carries a different long-term key"));
          if (cc != nullptr)
            out.changes.convs.insert(e.conv);
        }
        return false;
      }
    }
    tgt = m == mode::normal || m == mode::creator ? cc : &fresh;
    own = c.author == self;
    return true;
  }

  // Step 2: the entry itself, fixed by every mirror's block.
  bool verify() {
    client_conv& target = *tgt;
    if (c.type == msg_type::message && !own) {
      if (!e.body || e.body->size() != c.body_len || crypto::sha256(*e.body) != c.body_hash)
        return provider("router", "body does not match C");
    }
    auto h_c = hash_common(c);
    if (!h_c)
      return provider("router", "C is not canonical");
    v.h_c = *h_c;
    v.d = entry_digest(v.h_c, e.blocks_root);
    if (m == mode::normal) {
      v.t_prev = *cc->st.t_at(i - 1);
    } else if (m == mode::join) {
      if (!e.t_prev)
        return provider("router", "joining envelope lacks T_{u-1}");
      v.t_prev = *e.t_prev;
    } else {
      v.t_prev = t_genesis;
    }
    v.t = transcript_hash(e.conv, i, v.t_prev, v.d);
    if (!own && !e.block_u)
      return provider("router", "envelope lacks our block");
    const hash32 bind = own ? e.blocks_root : block_hash(*e.block_u);
    ms = m == mode::normal ? &cc->st.ms : &c.ms;
    if (m != mode::normal && *ms != cl.pinned_ms_)
      return provider("router", "mirror set differs from the pinned set");
    if (e.mirror_blocks.size() != ms->size())
      return provider("router", "wrong number of mirror blocks");
    for (size_t k = 0; k < ms->size(); ++k) {
      const member& o = (*ms)[k];
      const channel* ch = nullptr;
      if (auto f = target.channels.find(o.id); f != target.channels.end())
        ch = &f->second;
      auto ad = ad_mirror_block(e.conv, i, v.t, o.id, self, bind);
      auto opened = open_on_channel(cl.self_, cl.keys_, ch, e.conv, o.id, o.lpk, e.mirror_blocks[k],
                                    ad, mode_of_version(c.version));
      if (!opened) {
        if (opened.error() == block_failure::directory)
          return provider(o.id, "mirror block names a key we never published",
                          alarm_kind::directory);
        return provider(o.id, "mirror block does not verify");
      }
      if (!crypto::is_zero(opened->pt.seed.expose()))
        return provider(o.id, "mirror block carries a seed");
      effects.push_back(std::move(opened->effects));
    }
    return true;
  }

  // Step 3: the rules (or, for a joiner, what it can check), and the creator rule.
  bool check_rules() {
    const member* me_in = nullptr;
    if (m == mode::normal) {
      recipient_check rc;
      if (!own)
        rc.self = self;
      auto ok = validate(&cc->st, false, c, rc, validate_at::exactly(i));
      if (!ok)
        return halt(alarm_kind::fork, "mirrors",
                    std::string("every mirror attested an entry breaking rule ")
                        + std::string(to_string(ok.error())));
    } else if (m == mode::join) {
      me_in = find_member(c.adds, self);
      bool consistent = !c.adds.empty() || !c.removes.empty();
      for (const auto& a : c.adds)
        consistent = consistent && find_member(c.members, a.id) != nullptr;
      for (const auto& id : c.removes)
        consistent = consistent && find_member(c.members, id) == nullptr
                     && find_member(c.adds, id) == nullptr;
      if (!consistent)
        return halt(alarm_kind::fork, "mirrors", "joining UPDATE is inconsistent");
    } else {
      recipient_check rc;
      if (!own)
        rc.self = self;
      auto ok = validate(nullptr, false, c, rc, validate_at::exactly(0));
      if (!ok)
        return halt(alarm_kind::fork, "mirrors",
                    std::string("every mirror attested a SETUP breaking rule ")
                        + std::string(to_string(ok.error())));
      me_in = find_member(c.members, self);
    }
    if (me_in != nullptr && me_in->lpk != cl.self_.lpk())
      return halt(alarm_kind::directory, "router", "our entry carries a different long-term key");

    // The creator rule (§3.5 step 0 (a)): only our own SETUP under our conv id.
    if (m == mode::creator) {
      // Ours if it is a version we submitted: current, or refused but ordered anyway.
      bool ours = false;
      if (own) {
        for (const auto& oe : cc->outbox)
          for (const auto& ov : oe.versions)
            ours = ours || ov.d == v.d;
        for (const auto& o : cc->orphans)
          ours = ours || (o.aseq == 1 && o.d == v.d);
      }
      if (!ours) {
        out.alarms.push_back(make_alarm(alarm_kind::provider, e.conv, i, "router",
                                        "someone else's SETUP under the conv id we chose"));
        // Tombstone the id and, if our SETUP still waits, create the conversation anew under
        // a fresh id.
        std::optional<common> mine;
        if (!cc->outbox.empty() && !cc->outbox.front().versions.empty())
          mine = cc->outbox.front().versions.back().submit.c;
        member_list others;
        std::vector<prekey_bundle> bundles;
        if (mine) {
          for (const auto& mm : mine->members)
            if (mm.id != self)
              others.push_back(mm);
          for (const auto& [peer, ch] : cc->channels)
            if (ch.first_contact)
              bundles.push_back(prekey_bundle{peer, {}, *ch.first_contact});
          for (auto& bb : bundles) {
            if (const member* mm = find_member(mine->members, bb.owner))
              bb.lpk = mm->lpk;
            if (const member* o = find_member(cl.pinned_ms_, bb.owner))
              bb.lpk = o->lpk;
          }
        }
        cl.tombstones_.emplace(e.conv, client_tombstone{});
        cl.convs_.erase(it);
        cl.buffer_.erase(e.conv);
        out.changes.removed_convs.insert(e.conv);
        if (!mine)
          return false;
        auto again = cl.create(others, bundles, now, r, mode_of_version(mine->version));
        if (again) {
          out.recreated = std::make_pair(e.conv, again->conv);
          out.changes.convs.insert(again->conv);
          out.resubmit.push_back(std::move(*again));
        }
        return false;
      }
    }
    return true;
  }

  // Step 4: our own entry, or the author's block to us.
  bool open_entry() {
    client_conv& target = *tgt;
    acc.conv = e.conv;
    acc.index = i;
    acc.type = c.type;
    acc.author = c.author;
    acc.aseq = c.aseq;
    if (c.type != msg_type::setup)
      acc.parent = c.parent;
    acc.d = v.d;
    acc.t = v.t;
    acc.own = own;
    if (own) {
      bool matched = false;
      const bytes* own_text = nullptr;
      for (const auto& oe : target.outbox)
        if (oe.aseq == c.aseq)
          for (const auto& ov : oe.versions)
            if (ov.d == v.d) {
              matched = true;
              own_text = &oe.plaintext;
              ordered_submit = &ov.submit;
            }
      for (const auto& o : target.orphans) {
        if (o.aseq == c.aseq && o.d == v.d && !matched) {
          matched = true;
          orphan_echo = true;
          orphan_entry = o.entry_id;
          own_text = &o.plaintext;
        }
      }
      if (!matched)
        return halt(alarm_kind::impersonation, "router", "our entry with a D we never submitted");
      // The plaintext of the version that was ordered: an orphan's own, never that of the
      // message that has moved into its aseq since.
      if (c.type == msg_type::message && own_text != nullptr)
        acc.plaintext = *own_text;
    } else {
      const public_key* lpk_a = nullptr;
      if (m == mode::normal) {
        if (const member* a = find_member(cc->st.members, c.author))
          lpk_a = &a->lpk;
      } else if (const member* a = find_member(c.members, c.author)) {
        lpk_a = &a->lpk;
      }
      const bool membership = c.type == msg_type::setup || c.type == msg_type::update;
      auto sender_fail = [&](alarm_kind k, std::string why) -> bool {
        // DIRECTORY evidence points at the directory (§2: the router substituted
        // the key), never at the author.
        std::string party = k == alarm_kind::directory ? "router" : c.author;
        if (membership) {
          halt(k, std::move(party), std::move(why));
          return false;
        }
        acc.is_void = true;
        out.alarms.push_back(make_alarm(k, e.conv, i, std::move(party), std::move(why)));
        return true;
      };
      // A joiner added by an author that removed itself in the same UPDATE has
      // no key for it: the mirrors' attestation (they verified amb) stands alone.
      if (lpk_a != nullptr) {
        const channel* ch = nullptr;
        if (auto f = target.channels.find(c.author); f != target.channels.end())
          ch = &f->second;
        auto ad = ad_block(v.h_c, c.author, self);
        auto opened = open_on_channel(cl.self_, cl.keys_, ch, e.conv, c.author, *lpk_a, *e.block_u,
                                      ad, mode_of_version(c.version));
        if (!opened) {
          const bool dir = opened.error() == block_failure::directory;
          const auto* step = std::get_if<dh_step>(&*e.block_u);
          const bool chained = std::holds_alternative<chain_block>(*e.block_u);
          if (!sender_fail(dir ? alarm_kind::directory : alarm_kind::sender,
                           !dir      ? "author block does not open"
                           : chained ? "author chain block of an epoch the directory broke"
                                     : "author block names a key we never published"))
            return false;
          if (dir && step != nullptr)
            broken_step = step->epoch;
        } else {
          bool good = true;
          if (opened->effects.prekey_reused)
            out.alarms.push_back(make_alarm(alarm_kind::directory, e.conv, i, "router",
                                            "a pre-key of ours was handed out twice"));
          if (c.type == msg_type::message) {
            if (!crypto::ct_equal(body_commit(opened->pt.seed), c.body_commit)) {
              good = sender_fail(alarm_kind::sender, "body key does not match its commitment");
            } else {
              auto pt = open_body(opened->pt.seed, e.conv, c.author, c.aseq, *e.body);
              if (!pt) {
                good = sender_fail(alarm_kind::sender, "body does not open");
              } else {
                acc.plaintext = std::move(*pt);
              }
            }
            if (!good && !acc.is_void)
              return false;
          } else if (!crypto::is_zero(opened->pt.seed.expose())) {
            good = sender_fail(alarm_kind::sender, "a seed where none belongs");
            if (!good && !acc.is_void)
              return false;
          }
          if (!acc.is_void)
            author_effects = std::move(opened->effects);
        }
      }
    }
    return true;
  }

  // Step 5 (state part): advance and apply. Nothing here can fail.
  void apply() {
    client_conv& target = *tgt;
    if (c.type == msg_type::receipt) {
      acc.voids = c.voids;
      if (auto f = target.st.receipt_floor.find(c.author); f != target.st.receipt_floor.end())
        acc.floor_before = f->second.value;
    }
    if (m == mode::normal || m == mode::creator) {
      if (m == mode::normal) {
        advance_in_place(target.st, c, i, v.d);
      } else {
        target.st = setup_state(c, i, v.d);
      }
      target.status = conv_status::active;
    } else if (m == mode::setup_first) {
      target.st = setup_state(c, i, v.d);
      target.status = conv_status::active;
    } else {
      uint64_t own_aseq = 0;
      bool own_known = true;
      if (auto t = cl.tombstones_.find(e.conv); t != cl.tombstones_.end()) {
        own_aseq = t->second.own_aseq;
        target.ratchet_next = t->second.ratchet_next;
      } else if (cc != nullptr) {
        // Rejoining after a halt: our aseq is unknown until our next entry is ordered, since an
        // entry of ours still in flight at the halt may have been ordered after it. Start from
        // the last one we saw ordered (those in flight at a halt are normally STALE, built
        // before the UPDATE that halted us); the router's ASEQ_GAP says if it moved on
        // (`on_rejection`). Versions still in flight may come back ordered: orphans now.
        own_aseq = cc->st.aseq_last[self].value;
        for (const auto& oe : cc->outbox)
          for (const auto& ov : oe.versions)
            target.orphans.push_back(orphan_version{oe.aseq, ov.d, oe.plaintext});
        for (const auto& o : cc->orphans)
          target.orphans.push_back(orphan_version{o.aseq, o.d, o.plaintext});
        own_known = false;
        target.ratchet_next = cc->ratchet_next;
        target.next_outbox_id = cc->next_outbox_id;
      }
      target.st = join_state(c, i, v.t_prev, v.d, self, own_aseq);
      target.st.aseq_last[self].known = own_known;
      target.status = conv_status::active;
    }
    COWPI_ASSERT(target.st.t_at(i) != nullptr && *target.st.t_at(i) == v.t);
    // Chain mode: our entry is ordered, so the steps of this version are the epochs the other
    // members now hold; steps of its other versions can never reach them (§4.8).
    if (own) {
      // What the ordered version carried on each channel (chain mode: R's counter).
      std::map<std::string_view, const slot_block*> sent;
      if (ordered_submit != nullptr) {
        for (const auto& rb : ordered_submit->blocks)
          sent.emplace(rb.recipient, &rb.blk);
        for (size_t k = 0; k < ordered_submit->ambs.size() && k < ms->size(); ++k)
          sent.emplace((*ms)[k].id, &ordered_submit->ambs[k]);
      }
      for (auto& [peer, ch] : target.channels) {
        auto f = sent.find(peer);
        on_ordered(ch.out, c.aseq, v.d, f == sent.end() ? nullptr : f->second);
      }
    }
    for (size_t k = 0; k < ms->size(); ++k)
      apply_effects(target.channels[(*ms)[k].id], cl.keys_, effects[k]);
    if (broken_step)
      target.channels[c.author].broken_epoch = *broken_step;
    if (author_effects) {
      apply_effects(target.channels[c.author], cl.keys_, *author_effects);
      // A RECEIPT reporting VOIDs: the author may have lost one of our DH steps, so our channel
      // to it steps at its next block (§4.8; a VOID is not attributed to an entry, so any counts).
      if (c.type == msg_type::receipt && !c.voids.empty()) {
        channel& back = target.channels[c.author];
        on_void_reported(back.out, back.out.step_aseq);
      }
      // It announced a key to us: reachable again.
      if (auto u = cl.unreachable_.find(e.conv); u != cl.unreachable_.end())
        u->second.erase(c.author);
    }
    // `apply_effects` touches the key store only for a block naming one of our keys (a DH step or
    // a first contact); a chain block leaves it alone, and rewriting it per entry cost the client
    // store a sixth of its time (docs/benchmarks.md).
    const auto names_key = [](const block_effects& x) { return x.names_key; };
    if (std::any_of(effects.begin(), effects.end(), names_key)
        || (author_effects && names_key(*author_effects)))
      out.changes.keys = true;

    if (c.type == msg_type::setup || c.type == msg_type::update) {
      acc.members = c.members;
      acc.adds = c.adds;
      acc.removes = c.removes;
      acc.safety_number = safety_number(c.members);
      for (const auto& id : c.removes) {
        target.channels.erase(id);
        if (auto u = cl.unreachable_.find(e.conv); u != cl.unreachable_.end())
          u->second.erase(id);
      }
    }
    if (acc.is_void)
      target.voids_pending.insert(i);
    // A RECEIPT is not itself something to acknowledge (§3.7): counting it would make members
    // answer each other's receipts for ever. Its VOIDs still trigger a RECEIPT (voids_pending).
    if (!own && c.type != msg_type::receipt)
      target.last_foreign = static_cast<int64_t>(i);
    target.d_recent[i] = v.d;
    while (target.d_recent.size() > cl.opts_.d_window)
      target.d_recent.erase(target.d_recent.begin());
  }

  // Our own entry is sent: take it out of the outbox; a first entry becomes the conversation;
  // our removal leaves a tombstone; STALE messages waiting for an UPDATE are rebuilt.
  void settle() {
    client_conv& target = *tgt;
    std::vector<outgoing> rebuilt;
    if (own) {
      if (c.type == msg_type::receipt)
        for (auto vp = target.voids_pending.begin(); vp != target.voids_pending.end();)
          vp = *vp <= c.parent ? target.voids_pending.erase(vp) : std::next(vp);
      if (orphan_echo) {
        // An older version was ordered: the entry it came from is sent; every message
        // still waiting moves after it (§3.6).
        if (orphan_entry != 0) {
          // Its current versions may be in flight under their own aseq: keep them, in case
          // one is ordered too (§3.8), or our own entry would look like an impersonation.
          for (const auto& oe : target.outbox)
            if (oe.id == orphan_entry)
              for (const auto& ov : oe.versions)
                target.orphans.push_back(orphan_version{oe.aseq, ov.d, oe.plaintext});
          std::erase_if(target.outbox,
                        [&](const outbox_entry& oe) { return oe.id == orphan_entry; });
        }
        std::erase_if(target.orphans, [&](const orphan_version& o) { return o.aseq <= c.aseq; });
        if (target.status == conv_status::active)
          rebuilt = cl.rebuild_from(target, 0, now, r);
      } else {
        std::erase_if(target.outbox, [&](const outbox_entry& oe) { return oe.aseq == c.aseq; });
        std::erase_if(target.orphans, [&](const orphan_version& o) { return o.aseq <= c.aseq; });
      }
    }
    out.accepted.push_back(std::move(acc));
    out.acks.push_back(ack_msg{e.conv, i});
    out.changes.convs.insert(e.conv);

    if (m != mode::normal && m != mode::creator) {
      cl.tombstones_.erase(e.conv);
      cl.buffer_.erase(e.conv);
      cl.convs_.insert_or_assign(e.conv, std::move(fresh));
      it = cl.convs_.find(e.conv);
      cc = &it->second;
    }

    // Removed: wipe the conversation's secrets, keep the tombstone (§3.6).
    if (c.type == msg_type::update
        && std::binary_search(c.removes.begin(), c.removes.end(), self)) {
      client_tombstone tomb;
      tomb.own_aseq = cc->st.aseq_last[self].value;
      tomb.ratchet_next = cc->ratchet_next;
      tomb.next = i + 1;
      cl.tombstones_[e.conv] = std::move(tomb);
      cl.convs_.erase(e.conv);
      cl.buffer_.erase(e.conv);
      cl.unreachable_.erase(e.conv);
      out.changes.removed_convs.insert(e.conv);
      return;
    }
    // STALE messages waiting for this UPDATE can now be rebuilt.
    if (c.type == msg_type::update) {
      auto more = cl.flush_rebuilds(e.conv, now, r);
      rebuilt.insert(rebuilt.end(), std::make_move_iterator(more.begin()),
                     std::make_move_iterator(more.end()));
    }
    for (auto& o : rebuilt)
      out.resubmit.push_back(std::move(o));
  }
};

void client::process_one(const envelope& e, uint64_t now, crypto::rng& r,
                         const client_history* history, receive_result& out) {
  entry_run run(*this, e, now, r, history, out);
  if (!run.classify() || !run.verify() || !run.check_rules() || !run.open_entry())
    return;
  run.apply();
  run.settle();
}

}  // namespace cowpi::protocol

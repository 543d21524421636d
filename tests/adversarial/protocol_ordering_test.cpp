// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, ordering at the protocol level: a mirror driven by hand with PREPARE and
// COMMIT (exactly once per index, CONFLICT, stored answers, GAP, re-verification, its mirror set,
// keys held for PREPAREs) and the router's reaction to mirrors that disagree.
#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

#include <set>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

// A copy of mirror-a with its D history, after SETUP, and alice's next message for it.
struct hand_driven {
  world w;
  conv_id conv{};
  mirror m;
  d_history h;
  log_entry entry;  // alice's message, laid out for index 1

  hand_driven() : conv(start_group(w, trio)), m(w.mirror_at(0).m.clone()) {
    h.d = w.mirror_at(0).d;
    EXPECT_TRUE(w.send("alice", conv, "commit me once").has_value());
    entry = forge_entry(take_last_submit(w).submit, 1, *w.router(conv).state());
  }
  commit_msg commit_at(uint64_t i, const log_entry& e) const { return {i, e.d, e.prepare_for(0)}; }
  commit_outcome commit(const commit_msg& cm) { return h.commit(m, cm, w.now(), w.rng()); }
};

TEST(mirror_commit, prepare_is_a_dry_run_that_changes_nothing) {
  hand_driven t;
  const mirror_conv before = t.m.find(t.conv)->clone();
  const link_response r = t.m.prepare(t.entry.prepare_for(0), t.w.now());
  ASSERT_TRUE(std::holds_alternative<prepared>(r));
  EXPECT_EQ(std::get<prepared>(r).d, t.entry.d);
  EXPECT_EQ(t.m.find(t.conv)->st, before.st);
  EXPECT_EQ(t.m.find(t.conv)->answers, before.answers);
  EXPECT_EQ(t.m.status(t.conv).next, 1u);
}

TEST(mirror_commit, a_retried_commit_gets_the_same_stored_answer) {
  hand_driven t;
  const commit_outcome first = t.commit(t.commit_at(1, t.entry));
  ASSERT_TRUE(first.persist);
  ASSERT_TRUE(std::holds_alternative<answer>(first.response));
  const commit_outcome retry = t.commit(t.commit_at(1, t.entry));
  EXPECT_FALSE(retry.persist);
  EXPECT_EQ(retry.response, first.response);  // the very same blocks, not recomputed
  EXPECT_EQ(t.m.status(t.conv).next, 2u);
  // Once the router acknowledged it, the mirror has dropped it: ALREADY_ANSWERED.
  EXPECT_TRUE(t.m.ack(link_ack{t.conv, 1}));
  const commit_outcome late = t.commit(t.commit_at(1, t.entry));
  EXPECT_FALSE(late.persist);
  EXPECT_EQ(late.response, link_response{already_answered{1}});
}

TEST(mirror_commit, a_different_d_at_a_used_index_gets_conflict_with_the_stored_d) {
  hand_driven t;
  ASSERT_TRUE(t.commit(t.commit_at(1, t.entry)).persist);
  ASSERT_TRUE(t.w.send("bob", t.conv, "me at one instead").has_value());
  const log_entry other = forge_entry(take_last_submit(t.w).submit, 1, *t.w.router(t.conv).state());
  const conv_state before = t.m.find(t.conv)->st;
  const commit_outcome o = t.commit(t.commit_at(1, other));
  EXPECT_FALSE(o.persist);
  EXPECT_EQ(o.response, (link_response{conflict{1, t.entry.d}}));
  EXPECT_EQ(t.m.find(t.conv)->st, before);  // never re-processed
  EXPECT_EQ(t.h.d.at(t.conv).at(1), t.entry.d);
}

TEST(mirror_commit, a_commit_ahead_of_the_next_index_gets_gap) {
  hand_driven t;
  log_entry ahead = t.entry;
  ahead.index = 3;
  const commit_outcome o = t.commit(t.commit_at(3, ahead));
  EXPECT_FALSE(o.persist);
  EXPECT_EQ(o.response, link_response{gap{1}});
  EXPECT_EQ(t.m.status(t.conv).next, 1u);
}

TEST(mirror_commit, commit_reverifies_the_amb_that_prepare_accepted) {
  hand_driven t;
  commit_msg cm = t.commit_at(1, t.entry);
  ASSERT_TRUE(std::holds_alternative<prepared>(t.m.prepare(cm.payload, t.w.now())));
  cm.payload.amb = random_block(t.w.rng());  // not part of D: only the amb check can see it
  const commit_outcome o = t.commit(cm);
  EXPECT_FALSE(o.persist);
  EXPECT_EQ(reject_reason(o.response), "amb_does_not_verify");
  EXPECT_EQ(t.m.status(t.conv).next, 1u);
  EXPECT_TRUE(t.commit(t.commit_at(1, t.entry)).persist);
}

TEST(mirror_commit, a_commit_whose_payload_does_not_give_its_d_is_rejected) {
  hand_driven t;
  commit_msg cm = t.commit_at(1, t.entry);
  cm.d[0] ^= 1;
  const commit_outcome o = t.commit(cm);
  EXPECT_FALSE(o.persist);
  EXPECT_EQ(reject_reason(o.response), "d_mismatch");
  EXPECT_EQ(t.m.status(t.conv).next, 1u);
}

TEST(mirror_setup, a_mirror_refuses_a_conversation_whose_mirror_set_does_not_name_it) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  ASSERT_TRUE(w.create("alice", {"bob", "carol"}).has_value());
  const to_router setup = take_last_submit(w);
  std::vector<last_resort_attachment> lr;
  for (const auto& u : trio) {
    const auto k = w.user(u).keys().current_last_resort();
    lr.push_back(last_resort_attachment{u, k->id, k->pub});
  }
  mirror& a = w.mirror_at(0).m;
  ASSERT_TRUE(
      std::holds_alternative<prepared>(a.prepare(prepare_of(setup.submit, 0, lr), w.now())));

  prepare_msg without = prepare_of(setup.submit, 0, lr);
  without.c.ms.erase(without.c.ms.begin());  // drop mirror-a
  EXPECT_EQ(reject_reason(a.prepare(without, w.now())), "not_in_mirror_set");
  prepare_msg impostor = prepare_of(setup.submit, 0, lr);
  impostor.c.ms.front().lpk[0] ^= 1;  // mirror-a's id with another key
  EXPECT_EQ(reject_reason(a.prepare(impostor, w.now())), "not_in_mirror_set");
  prepare_msg no_lr = prepare_of(setup.submit, 0, {});
  EXPECT_EQ(reject_reason(a.prepare(no_lr, w.now())), "missing_last_resort");
}

TEST(mirror_setup, a_second_setup_under_a_known_conv_id_is_refused_as_conv_exists) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  const to_router setup = std::get<to_router>(w.network().back());
  w.run();
  ASSERT_EQ(router_next(w, conv), 1u);
  std::vector<last_resort_attachment> lr;
  for (const auto& u : trio) {
    const auto k = w.user(u).keys().current_last_resort();
    lr.push_back(last_resort_attachment{u, k->id, k->pub});
  }
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(setup.submit, k, lr), w.now())),
              "invalid:conv_exists");
}

TEST(mirror_keys, a_prekey_named_by_an_uncommitted_prepare_is_not_retired_by_age) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  const uint64_t max_age = mirror_options{}.prekey_max_age;
  w.advance_time(max_age - 3600);  // the mirrors' pre-keys are about to age out
  ASSERT_TRUE(w.create("alice", {"bob", "carol"}).has_value());
  const to_router setup = take_last_submit(w);
  std::vector<last_resort_attachment> lr;
  for (const auto& u : trio) {
    const auto k = w.user(u).keys().current_last_resort();
    lr.push_back(last_resort_attachment{u, k->id, k->pub});
  }
  const prepare_msg p = prepare_of(setup.submit, 0, lr);
  ASSERT_EQ(std::get<block>(p.amb).ref.kind, key_kind::prekey);
  mirror m = w.mirror_at(0).m.clone();
  ASSERT_TRUE(std::holds_alternative<prepared>(m.prepare(p, w.now())));

  w.advance_time(3600 + 1);
  EXPECT_TRUE(m.expire_keys(w.now()));
  EXPECT_EQ(m.keys().prekeys().size(), 1u);  // every other pre-key aged out
  EXPECT_TRUE(m.keys().prekeys().contains(std::get<block>(p.amb).ref.id));
  d_history h;
  const commit_outcome o = h.commit(m, commit_msg{0, digest_of(setup.submit), p}, w.now(), w.rng());
  EXPECT_TRUE(o.persist);
  EXPECT_TRUE(std::holds_alternative<answer>(o.response));
}

// ---------------------------------------------------------------------------------------------
// Router intake (§3.4 step 1): what an honest router refuses before any mirror sees it.

TEST(router_intake, a_submit_in_another_members_name_is_refused) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "mine").has_value());
  to_router m = take_last_submit(w);
  m.user = "carol";  // carol's session hands the router alice's message
  network_tap tap(w);
  w.network().push_back(m);
  w.run();
  const auto rej = tap.rejections_for("carol");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::invalid);
  EXPECT_EQ(rej[0].detail, "author");
  EXPECT_EQ(router_next(w, conv), 1u);
}

TEST(router_intake, a_setup_naming_other_mirrors_is_refused_as_unknown_mirror) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  client_test_hooks h;
  h.on_common = [](common& c) { c.ms.pop_back(); };
  w.user("alice").set_hooks_for_test(h);
  network_tap tap(w);
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  w.user("alice").set_hooks_for_test({});
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::unknown_mirror);
  EXPECT_EQ(w.router(conv).state(), nullptr);
}

TEST(router_intake, malformed_blocks_and_bodies_are_refused_before_prepare) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "shape me").has_value());
  const submit_msg good = take_last_submit(w).submit;
  struct bad_case {
    const char* what;
    void (*apply)(submit_msg&);
    rejection_kind kind;
  };
  const bad_case cases[] = {
      {"an amb missing", [](submit_msg& s) { s.ambs.pop_back(); }, rejection_kind::bad_block_size},
      {"an amb too many", [](submit_msg& s) { s.ambs.push_back(s.ambs.back()); },
       rejection_kind::bad_block_size},
      {"no body", [](submit_msg& s) { s.body.reset(); }, rejection_kind::bad_body},
      {"a body of another length", [](submit_msg& s) { s.body->push_back(0); },
       rejection_kind::bad_body},
      {"a body with another hash", [](submit_msg& s) { (*s.body)[40] ^= 1; },
       rejection_kind::bad_body},
      // Slots of the other mode (§4.8): a public-key conversation takes only 185-byte blocks.
      {"a chain block as an author block",
       [](submit_msg& s) {
         s.blocks.back().blk = chain_block{1, 0, bytes(16)};
       },
       rejection_kind::bad_block_size},
      {"a DH step as an amb",
       [](submit_msg& s) {
         s.ambs.front() = dh_step{1, std::get<block>(s.ambs.front())};
       },
       rejection_kind::bad_block_size},
  };
  for (const auto& bc : cases) {
    router_conv rc = w.router(conv);
    submit_msg s = good;
    bc.apply(s);
    auto r = rc.intake(s, "alice", w.now());
    ASSERT_FALSE(r.has_value()) << bc.what;
    EXPECT_EQ(r.error().kind, bc.kind) << bc.what;
    EXPECT_EQ(rc.pending(), 0u) << bc.what;
  }
  router_conv rc = w.router(conv);
  EXPECT_TRUE(rc.intake(good, "alice", w.now()).has_value());
}

TEST(router_intake, a_chain_mode_setup_with_public_key_blocks_is_refused_bad_block_size) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  client_test_hooks h;
  h.on_common = [](common& c) { c.version = protocol_version_chain; };
  w.user("alice").set_hooks_for_test(h);
  network_tap tap(w);
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  w.user("alice").set_hooks_for_test({});
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::bad_block_size);
  EXPECT_EQ(rej[0].detail, "chain mode");
  EXPECT_EQ(w.router(conv).state(), nullptr);
}

TEST(router_intake, an_entry_of_another_version_than_its_setup_is_never_ordered) {
  world w;
  const conv_id conv = start_group(w, trio);
  const uint64_t next = w.router(conv).state()->next;
  client_test_hooks h;
  h.on_common = [](common& c) { c.version = protocol_version_chain; };
  w.user("alice").set_hooks_for_test(h);
  network_tap tap(w);
  ASSERT_TRUE(w.send("alice", conv, "in the other mode").has_value());
  w.user("alice").set_hooks_for_test({});
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_FALSE(rej.empty());
  EXPECT_EQ(rej[0].kind, rejection_kind::invalid);
  EXPECT_EQ(rej[0].detail, "bad_version");
  EXPECT_EQ(w.router(conv).state()->next, next) << "nothing was ordered";
}

// ---------------------------------------------------------------------------------------------
// The router when mirrors disagree.

// Queues alice's next message on a copy of the router and PREPAREs it at every mirror.
struct router_round {
  world w;
  conv_id conv{};
  std::optional<router_conv> rc;
  prepare_job job;

  router_round() : conv(start_group(w, trio)) {
    rc.emplace(w.router(conv));
    EXPECT_TRUE(w.send("alice", conv, "order me").has_value());
    const to_router m = take_last_submit(w);
    EXPECT_TRUE(rc->intake(m.submit, "alice", w.now()).has_value());
    std::vector<prepare_decision::rejected> rejs;
    auto jobs = rc->ready([](const std::string&) { return std::nullopt; }, rejs);
    EXPECT_EQ(jobs.size(), 1u);
    job = jobs.front();
  }
  std::optional<prepare_decision> prepared_by_all() {
    std::optional<prepare_decision> d;
    for (size_t k = 0; k < w.ms().size(); ++k)
      d = rc->on_prepared(job.job, k, w.mirror_at(k).m.prepare(job.per_mirror[k], w.now()),
                          w.now());
    return d;
  }
};

TEST(router_ordering, mirrors_preparing_different_d_use_no_index_and_answer_unavailable) {
  router_round t;
  const hash32 honest =
      std::get<prepared>(t.w.mirror_at(0).m.prepare(t.job.per_mirror[0], t.w.now())).d;
  hash32 other = honest;
  other[0] ^= 1;
  EXPECT_FALSE(t.rc->on_prepared(t.job.job, 0, prepared{honest}, t.w.now()).has_value());
  const auto d = t.rc->on_prepared(t.job.job, 1, prepared{other}, t.w.now());
  ASSERT_TRUE(d.has_value());
  EXPECT_FALSE(d->ordered.has_value());
  ASSERT_EQ(d->rejections.size(), 1u);
  EXPECT_EQ(d->rejections[0].why.kind, rejection_kind::unavailable);
  EXPECT_EQ(t.rc->state()->next, 1u);
  EXPECT_TRUE(t.rc->in_flight().empty());
}

TEST(router_ordering, a_conflict_or_a_reject_at_commit_stops_the_conversation) {
  const link_response bad[] = {link_response{conflict{1, hash32{}}},
                               link_response{link_reject{"invalid:aseq"}}};
  for (const auto& answer_k : bad) {
    router_round t;
    const auto d = t.prepared_by_all();
    ASSERT_TRUE(d.has_value() && d->ordered.has_value());
    EXPECT_EQ(d->ordered->index, 1u);
    const commit_progress p = t.rc->on_commit_answer(1, 1, answer_k);
    ASSERT_TRUE(p.stop_reason.has_value());
    EXPECT_FALSE(p.complete.has_value());
    EXPECT_TRUE(t.rc->stopped());
    // Every later message gets STOPPED; nothing more is ordered.
    ASSERT_TRUE(t.w.send("bob", t.conv, "anyone?").has_value());
    auto r = t.rc->intake(take_last_submit(t.w).submit, "bob", t.w.now());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, rejection_kind::stopped);
  }
}

TEST(router_ordering, a_mirror_answer_for_another_transcript_stops_the_conversation) {
  router_round t;
  const auto d = t.prepared_by_all();
  ASSERT_TRUE(d.has_value() && d->ordered.has_value());
  const log_entry& e = *d->ordered;
  const commit_outcome good = t.w.mirror_at(0).m.commit(commit_msg{1, e.d, e.prepare_for(0)},
                                                        t.w.mirror_at(0), t.w.now(), t.w.rng());
  ASSERT_TRUE(std::holds_alternative<answer>(good.response));
  answer lie = std::get<answer>(good.response);
  lie.t[0] ^= 1;
  const commit_progress p = t.rc->on_commit_answer(1, 0, lie);
  ASSERT_TRUE(p.stop_reason.has_value());
  EXPECT_TRUE(t.rc->stopped());
}

TEST(ordering, directory_needs_names_every_user_ready_looks_up) {
  world w;
  const std::vector<std::string> group{"alice", "bob", "carol"};
  const conv_id conv = start_group(w, group);
  for (const auto& u : {"dave", "erin"})
    w.add_user(u);
  router_conv rc = w.router(conv);
  EXPECT_TRUE(rc.directory_needs().empty());
  // A MESSAGE head needs no directory entry; an UPDATE head needs the users it adds.
  ASSERT_TRUE(w.send("carol", conv, "plain").has_value());
  ASSERT_TRUE(rc.intake(take_last_submit(w).submit, "carol", w.now()).has_value());
  EXPECT_TRUE(rc.directory_needs().empty());
  ASSERT_TRUE(w.update("alice", conv, {"erin", "dave"}, {}).has_value());
  ASSERT_TRUE(rc.intake(take_last_submit(w).submit, "alice", w.now()).has_value());
  EXPECT_EQ(rc.directory_needs(), (std::vector<std::string>{"dave", "erin"}));
  std::set<std::string> asked;
  std::vector<prepare_decision::rejected> rejs;
  const auto jobs = rc.ready(
      [&](const std::string& id) -> std::optional<directory_entry> {
        asked.insert(id);
        return std::nullopt;  // unknown: the UPDATE is rejected
      },
      rejs);
  // It stops at the first unknown one: every id asked was named beforehand.
  EXPECT_EQ(asked, (std::set<std::string>{"dave"}));
  ASSERT_EQ(rejs.size(), 1u);
  EXPECT_EQ(rejs[0].author, "alice");
  ASSERT_EQ(jobs.size(), 1u);  // carol's MESSAGE
  // Carol's head is being PREPAREd and alice's queue is empty: nothing left to look up.
  EXPECT_TRUE(rc.directory_needs().empty());
}

}  // namespace
}  // namespace cowpi::sim::adv

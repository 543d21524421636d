// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, the router lies: it drops, reorders, duplicates, replays, forks, injects,
// lies in its rejections and reorders causality, and honest members and mirrors refuse each lie.
#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

#include <set>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

world_options with_mirrors(size_t n) {
  world_options o;
  o.mirrors = n;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Drops, reorders, duplicates.

TEST(router_drops, a_dropped_envelope_stalls_only_its_member_until_it_is_redelivered) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  bool dropped = false;
  tap.tamper = [&](in_flight& m) {
    const auto* e = std::get_if<to_client_envelope>(&m);
    if (e == nullptr || e->user != "bob" || e->env.index != 1 || dropped)
      return true;
    dropped = true;
    return false;
  };
  ASSERT_TRUE(w.send("alice", conv, "one").has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "two").has_value());
  w.run();
  ASSERT_TRUE(dropped);
  // Bob holds #2 back until #1 arrives: nothing out of order, nothing skipped.
  EXPECT_EQ(next_of(w, "bob", conv), 1u);
  EXPECT_EQ(w.transcript("bob", conv).size(), 1u);
  EXPECT_EQ(w.transcript("carol", conv).size(), 3u);

  w.redeliver("bob");
  w.run();
  ASSERT_EQ(w.transcript("bob", conv).size(), 3u);
  EXPECT_EQ(text_of(w.transcript("bob", conv)[1]), "one");
  EXPECT_EQ(text_of(w.transcript("bob", conv)[2]), "two");
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_drops, a_dropped_submit_is_resent_after_reconnect_and_ordered_once) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  bool dropped = false;
  tap.tamper = [&](in_flight& m) {
    if (!std::holds_alternative<to_router>(m) || dropped)
      return true;
    dropped = true;
    return false;
  };
  ASSERT_TRUE(w.send("alice", conv, "lost once").has_value());
  w.run();
  ASSERT_TRUE(dropped);
  EXPECT_EQ(router_next(w, conv), 1u);
  ASSERT_EQ(w.user("alice").find(conv)->outbox.size(), 1u);  // still unsent

  w.set_online("alice", false);
  w.set_online("alice", true);
  w.run();
  EXPECT_EQ(router_next(w, conv), 2u);
  for (const auto& u : trio) {
    ASSERT_EQ(w.transcript(u, conv).size(), 2u) << u;
    EXPECT_EQ(w.transcript(u, conv)[1].aseq, 2u) << u;
  }
  EXPECT_EQ(text_of(w.transcript("bob", conv)[1]), "lost once");
  EXPECT_TRUE(w.user("alice").find(conv)->outbox.empty());
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_reorders, envelopes_delivered_in_reverse_are_accepted_in_index_order) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  std::vector<in_flight> held;
  bool holding = true;
  tap.tamper = [&](in_flight& m) {
    const auto* e = std::get_if<to_client_envelope>(&m);
    if (!holding || e == nullptr || e->user != "bob")
      return true;
    held.push_back(m);
    return false;
  };
  ASSERT_TRUE(w.send("alice", conv, "first").has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "second").has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "third").has_value());
  w.run();
  ASSERT_EQ(held.size(), 3u);

  holding = false;
  for (auto it = held.rbegin(); it != held.rend(); ++it)
    w.network().push_back(*it);
  w.run();
  const auto& t = w.transcript("bob", conv);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(text_of(t[1]), "first");
  EXPECT_EQ(text_of(t[2]), "second");
  EXPECT_EQ(text_of(t[3]), "third");
  EXPECT_EQ(next_of(w, "bob", conv), 4u);
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_duplicates, a_duplicated_envelope_is_accepted_once_without_an_alarm) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  std::set<uint64_t> copied;
  tap.tamper = [&](in_flight& m) {
    const auto* e = std::get_if<to_client_envelope>(&m);
    if (e != nullptr && e->user == "bob" && copied.insert(e->env.index).second)
      w.network().push_back(m);
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "once").has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "twice?").has_value());
  w.run();
  EXPECT_EQ(tap.envelopes_for("bob", conv, 1), 2u);
  EXPECT_EQ(tap.envelopes_for("bob", conv, 2), 2u);
  EXPECT_EQ(w.transcript("bob", conv).size(), 3u);
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_duplicates, a_duplicated_submit_is_ordered_once_and_answered_already_ordered) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  bool copied = false;
  tap.tamper = [&](in_flight& m) {
    if (std::holds_alternative<to_router>(m) && !copied) {
      copied = true;
      w.network().push_back(m);
    }
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "only once").has_value());
  w.run();
  ASSERT_TRUE(copied);
  EXPECT_EQ(router_next(w, conv), 2u);
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::already_ordered);
  EXPECT_EQ(rej[0].value, 1u);
  EXPECT_TRUE(w.node("alice").dropped.empty());
  for (const auto& u : trio)
    EXPECT_EQ(w.transcript(u, conv).size(), 2u) << u;
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

// ---------------------------------------------------------------------------------------------
// Replays.

TEST(router_replays, an_ordered_message_resubmitted_later_is_never_ordered_twice) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "first").has_value());
  const to_router first = std::get<to_router>(w.network().back());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "second").has_value());
  const to_router second = std::get<to_router>(w.network().back());
  w.run();
  ASSERT_EQ(router_next(w, conv), 3u);

  network_tap tap(w);
  w.network().push_back(second);  // her latest: ALREADY_ORDERED(2)
  w.network().push_back(first);   // an older one: its aseq is taken, ASEQ_GAP(expected 4)
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 2u);
  EXPECT_EQ(rej[0].kind, rejection_kind::already_ordered);
  EXPECT_EQ(rej[0].value, 2u);
  EXPECT_EQ(rej[1].kind, rejection_kind::aseq_gap);
  EXPECT_EQ(rej[1].value, 4u);
  EXPECT_EQ(router_next(w, conv), 3u);
  EXPECT_TRUE(w.node("alice").dropped.empty());
  for (const auto& u : trio)
    EXPECT_EQ(w.transcript(u, conv).size(), 3u) << u;
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_replays, an_envelope_replayed_at_a_later_index_raises_provider_and_is_not_accepted) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "pay bob 10").has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "ok").has_value());
  w.run();
  const auto& se = w.log(conv).at(1);
  auto env = make_envelope(se.e, se.answers, "bob");
  ASSERT_TRUE(env.has_value());
  env->index = 3;  // bob's next index
  w.network().push_back(to_client_envelope{"bob", *env});
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].index, 3u);
  EXPECT_FALSE(al[0].halted);
  EXPECT_EQ(next_of(w, "bob", conv), 3u);
  EXPECT_EQ(w.transcript("bob", conv).size(), 3u);
}

TEST(router_replays, the_latest_message_replayed_at_a_later_index_is_refused_by_the_honest_mirror) {
  world w(with_mirrors(2));
  w.mirror_at(0).lies = true;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "pay bob 10").has_value());
  w.run();
  ASSERT_TRUE(w.send("bob", conv, "thanks").has_value());
  w.run();
  w.branch_mirrors(1);

  // The router orders alice's message again at #3.
  log_entry e = w.log(conv).at(1).e;
  e.index = 3;
  e.t_prev = w.log(conv).at(2).e.t;
  e.t = transcript_hash(conv, 3, e.t_prev, e.d);
  mirror honest = w.mirror_at(1).m.clone();
  const auto out =
      honest.commit(commit_msg{3, e.d, e.prepare_for(1)}, w.mirror_at(1), w.now(), w.rng());
  EXPECT_EQ(reject_reason(out.response), "invalid:aseq");
  EXPECT_FALSE(out.persist);

  const mirror_answers answers = w.commit_on_mirrors(e, 1);
  EXPECT_TRUE(answers[0].has_value());   // the liar attests it
  EXPECT_FALSE(answers[1].has_value());  // the honest mirror does not
  w.push_envelope("bob", world::stored_entry{e, answers});
  w.run();
  auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].party, "mirror-b");
  EXPECT_EQ(al[0].index, 3u);
  EXPECT_FALSE(al[0].halted);
  EXPECT_EQ(w.transcript("bob", conv).size(), 3u);

  // Bob waits at #3 and accepts the honest entry there.
  ASSERT_TRUE(w.send("carol", conv, "still here").has_value());
  w.run();
  ASSERT_EQ(w.transcript("bob", conv).size(), 4u);
  EXPECT_EQ(text_of(w.transcript("bob", conv)[3]), "still here");
  EXPECT_EQ(alarms_of(w, "bob").size(), 1u);
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, {"alice", "carol"}));
}

TEST(router_replays, a_replay_attested_by_every_mirror_breaks_validate_and_halts_the_victim) {
  world w(with_mirrors(2));
  w.mirror_at(0).lies = true;
  w.mirror_at(1).lies = true;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "pay bob 10").has_value());
  w.run();
  ASSERT_TRUE(w.send("bob", conv, "thanks").has_value());
  w.run();
  w.branch_mirrors(1);
  log_entry e = w.log(conv).at(1).e;
  e.index = 3;
  e.t_prev = w.log(conv).at(2).e.t;
  e.t = transcript_hash(conv, 3, e.t_prev, e.d);
  const mirror_answers answers = w.commit_on_mirrors(e, 1);
  ASSERT_TRUE(answers[0].has_value() && answers[1].has_value());
  w.push_envelope("bob", world::stored_entry{e, answers});
  w.run();

  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::fork);
  EXPECT_EQ(al[0].index, 3u);
  EXPECT_TRUE(al[0].halted);
  EXPECT_EQ(w.user("bob").find(conv)->status, conv_status::halted);
  EXPECT_EQ(w.transcript("bob", conv).size(), 3u);
  // A halted member sends nothing more there.
  auto sent = w.send("bob", conv, "anything");
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, errc::bad_state);
  EXPECT_TRUE(no_alarms(w, {"alice", "carol"}));
}

TEST(router_replays, a_message_moved_into_another_conversation_is_refused_by_every_mirror) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  const conv_id x = *w.create("alice", {"bob", "carol"});
  const conv_id y = *w.create("alice", {"bob", "carol"});
  w.run();
  ASSERT_TRUE(w.send("alice", x, "meant for x").has_value());
  const to_router original = take_last_submit(w);

  // An honest router refuses it outright.
  router_conv honest_y = w.router(y);
  auto r = honest_y.intake(original.submit, "alice", w.now());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, rejection_kind::invalid);
  EXPECT_EQ(r.error().detail, "conv");

  // A lying router rewrites conv and parent_hash so that `validate` passes in y: the author's
  // blocks bind x, so every mirror refuses to attest it.
  to_router moved = original;
  moved.submit.c.conv = y;
  moved.submit.c.parent_hash = *w.router(y).state()->t_at(0);
  for (size_t k = 0; k < w.ms().size(); ++k) {
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(moved.submit, k), w.now())),
              "amb_does_not_verify")
        << k;
  }
  network_tap tap(w);
  w.network().push_back(moved);
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::mirror_reject);
  EXPECT_EQ(router_next(w, y), 1u);
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(mirror_next(w, k, y), 1u);
  for (const auto& u : trio)
    EXPECT_EQ(w.transcript(u, y).size(), 1u) << u;

  // Delivered as an entry of y, x's envelope raises PROVIDER there.
  w.network().push_back(original);
  w.run();
  auto env = make_envelope(w.log(x).at(1).e, w.log(x).at(1).answers, "bob");
  ASSERT_TRUE(env.has_value());
  env->conv = y;
  w.network().push_back(to_client_envelope{"bob", *env});
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].conv, y);
  EXPECT_EQ(w.transcript("bob", y).size(), 1u);
  EXPECT_EQ(text_of(w.transcript("bob", x).back()), "meant for x");
  EXPECT_TRUE(same_history(w, x, trio));
  EXPECT_TRUE(same_history(w, y, trio));
}

TEST(router_replays, a_swapped_pipelined_pair_is_refused_by_aseq_and_ordered_in_aseq_order) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "first").has_value());
  ASSERT_TRUE(w.send("alice", conv, "second").has_value());
  const to_router second = take_last_submit(w);
  const to_router first = take_last_submit(w);
  ASSERT_EQ(first.aseq + 1, second.aseq);

  // Neither an honest mirror nor the router accepts the second before the first.
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(second.submit, k), w.now())),
              "invalid:aseq");
  network_tap tap(w);
  w.network().push_back(second);
  w.network().push_back(first);
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_FALSE(rej.empty());
  EXPECT_EQ(rej[0].kind, rejection_kind::aseq_gap);
  EXPECT_EQ(rej[0].value, first.aseq);
  for (const auto& u : trio) {
    const auto& t = w.transcript(u, conv);
    ASSERT_EQ(t.size(), 3u) << u;
    EXPECT_EQ(t[1].aseq, first.aseq) << u;
    EXPECT_EQ(t[2].aseq, second.aseq) << u;
  }
  EXPECT_EQ(text_of(w.transcript("bob", conv)[1]), "first");
  EXPECT_EQ(text_of(w.transcript("bob", conv)[2]), "second");
  EXPECT_TRUE(w.node("alice").dropped.empty());
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_replays, an_author_restarting_after_its_messages_were_ordered_never_orders_them_twice) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  bool hide_echoes = true;
  tap.tamper = [&](in_flight& m) {
    const auto* e = std::get_if<to_client_envelope>(&m);
    return !hide_echoes || e == nullptr || e->user != "alice";
  };
  ASSERT_TRUE(w.send("alice", conv, "one").has_value());
  ASSERT_TRUE(w.send("alice", conv, "two").has_value());
  w.run();
  ASSERT_EQ(router_next(w, conv), 3u);
  ASSERT_EQ(w.user("alice").find(conv)->outbox.size(), 2u);  // echoes not seen yet

  // Alice restarts: she resends her whole outbox, then gets her echoes.
  hide_echoes = false;
  w.crash("alice");
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 2u);
  EXPECT_EQ(rej[0].kind, rejection_kind::aseq_gap);  // "one": its aseq is taken
  EXPECT_EQ(rej[0].value, 4u);
  EXPECT_EQ(rej[1].kind, rejection_kind::already_ordered);  // "two": the last one ordered
  EXPECT_EQ(rej[1].value, 2u);
  EXPECT_EQ(router_next(w, conv), 3u);
  EXPECT_TRUE(w.user("alice").find(conv)->outbox.empty());
  for (const auto& u : trio)
    EXPECT_EQ(w.transcript(u, conv).size(), 3u) << u;
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_replays, same_author_pipelining_is_queued_not_rejected) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  for (int k = 0; k < 4; ++k)
    ASSERT_TRUE(w.send("alice", conv, "burst " + std::to_string(k)).has_value());
  w.run();
  EXPECT_TRUE(tap.rejections().empty());
  const auto& t = w.transcript("carol", conv);
  ASSERT_EQ(t.size(), 5u);
  for (uint64_t k = 1; k < 5; ++k)
    EXPECT_EQ(t[k].aseq, k + 1);
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

// ---------------------------------------------------------------------------------------------
// Forks: two different entries at one index for two halves of the group.

TEST(router_forks, with_one_honest_mirror_the_deceived_half_raises_provider_and_accepts_nothing) {
  // All mirrors but one lie.
  world w(with_mirrors(3));
  w.mirror_at(0).lies = true;
  w.mirror_at(1).lies = true;
  const std::vector<std::string> four{"alice", "bob", "carol", "dave"};
  const conv_id conv = start_group(w, four);
  router_conv snapshot = w.router(conv);
  w.branch_mirrors(1);
  ASSERT_TRUE(w.send("carol", conv, "carol's view").has_value());
  const to_router carols = take_last_submit(w);
  ASSERT_TRUE(w.send("alice", conv, "alice's view").has_value());

  // Half one: alice's message at #1 for alice and bob.
  network_tap tap(w);
  bool split = true;
  tap.tamper = [&](in_flight& m) {
    const auto* e = std::get_if<to_client_envelope>(&m);
    return !split || e == nullptr || e->user == "alice" || e->user == "bob";
  };
  w.run();
  // Half two: carol's message at #1 for carol and dave.
  auto forked = w.fork_order(snapshot, carols, 1);
  ASSERT_TRUE(forked.has_value());
  EXPECT_TRUE(forked->answers[0].has_value());
  EXPECT_TRUE(forked->answers[1].has_value());
  EXPECT_FALSE(forked->answers[2].has_value());  // the honest mirror answered CONFLICT
  const hash32 d_alice = w.log(conv).at(1).e.d;
  mirror honest = w.mirror_at(2).m.clone();
  const auto out = honest.commit(commit_msg{1, forked->e.d, forked->e.prepare_for(2)},
                                 w.mirror_at(2), w.now(), w.rng());
  ASSERT_TRUE(std::holds_alternative<conflict>(out.response));
  EXPECT_EQ(std::get<conflict>(out.response).d, d_alice);
  EXPECT_EQ(w.mirror_at(2).d.at(conv).size(), 2u);  // one D per index, never two
  EXPECT_EQ(w.mirror_at(2).d.at(conv).at(1), d_alice);

  split = false;
  w.push_envelope("carol", *forked);
  w.push_envelope("dave", *forked);
  w.run();
  for (const auto& u : {"carol", "dave"}) {
    const auto al = alarms_of(w, u);
    ASSERT_EQ(al.size(), 1u) << u;
    EXPECT_EQ(al[0].kind, alarm_kind::provider) << u;
    EXPECT_EQ(al[0].party, "mirror-c") << u;
    EXPECT_EQ(al[0].index, 1u) << u;
    EXPECT_FALSE(al[0].halted) << u;
    EXPECT_EQ(w.transcript(u, conv).size(), 1u) << u;
  }

  // The deceived half later accepts the one true #1.
  w.redeliver("carol");
  w.redeliver("dave");
  w.run();
  for (const auto& u : four) {
    ASSERT_EQ(w.transcript(u, conv).size(), 2u) << u;
    EXPECT_EQ(text_of(w.transcript(u, conv)[1]), "alice's view") << u;
  }
  EXPECT_TRUE(same_history(w, conv, four));
  EXPECT_TRUE(no_alarms(w, {"alice", "bob"}));

  // Shown the other branch after accepting #1, a member keeps its entry and raises PROVIDER.
  w.push_envelope("bob", *forked);
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].index, 1u);
  EXPECT_EQ(text_of(w.transcript("bob", conv)[1]), "alice's view");
  EXPECT_EQ(w.transcript("bob", conv).size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Injection and impersonation.

TEST(router_injects, a_message_from_a_removed_member_is_refused_by_router_mirrors_and_members) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("carol", conv, "before").has_value());
  w.run();
  client rogue = w.user("carol").clone();  // carol's device as it was before her removal
  ASSERT_TRUE(w.update("alice", conv, {}, {"carol"}).has_value());
  w.run();
  ASSERT_FALSE(w.user("alice").find(conv)->st.is_member("carol"));

  auto out = rogue.send_message(conv, as_bytes("I am still here"), w.now(), w.rng());
  ASSERT_TRUE(out.has_value());
  network_tap tap(w);
  w.network().push_back(to_router{"carol", out->aseq, out->submit});
  w.run();
  const auto rej = tap.rejections_for("carol");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::not_member);
  EXPECT_EQ(router_next(w, conv), 3u);
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(out->submit, k), w.now())),
              "invalid:author_not_member");

  // Ordered anyway by the router, with no mirror to attest it.
  const log_entry e = forge_entry(out->submit, 3, *w.router(conv).state());
  w.push_envelope("bob", world::stored_entry{e, {}});
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].index, 3u);
  EXPECT_EQ(w.transcript("bob", conv).size(), 3u);
  EXPECT_TRUE(no_alarms(w, {"alice"}));
}

TEST(router_injects, a_message_from_a_non_member_is_refused_by_router_mirrors_and_members) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("mallory");
  submit_msg s;
  s.c.conv = conv;
  s.c.type = msg_type::message;
  s.c.author = "mallory";
  s.c.aseq = 1;
  s.c.parent = 0;
  s.c.parent_hash = *w.router(conv).state()->t_at(0);
  s.body = bytes(40 + 256);
  w.rng().fill(*s.body);
  s.c.body_len = s.body->size();
  s.c.body_hash = crypto::sha256(*s.body);
  w.rng().fill(s.c.body_commit);
  for (const auto& r : {"alice", "bob", "carol"})
    s.blocks.push_back(recipient_block{r, random_block(w.rng())});
  for (size_t k = 0; k < w.ms().size(); ++k)
    s.ambs.push_back(random_block(w.rng()));

  network_tap tap(w);
  w.network().push_back(to_router{"mallory", 1, s});
  w.run();
  const auto rej = tap.rejections_for("mallory");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::not_member);
  EXPECT_EQ(router_next(w, conv), 1u);
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(prepare_of(s, k), w.now())),
              "invalid:author_not_member");

  w.push_envelope("bob", world::stored_entry{forge_entry(s, 1, *w.router(conv).state()), {}});
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(w.transcript("bob", conv).size(), 1u);
}

TEST(router_adds_a_member, a_recipient_list_naming_a_non_member_is_refused_by_every_mirror) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "who reads this?").has_value());
  const to_router m = take_last_submit(w);
  for (size_t k = 0; k < w.ms().size(); ++k) {
    prepare_msg p = prepare_of(m.submit, k);
    hash32 h{};
    w.rng().fill(h);
    p.block_hashes.push_back(block_digest{"mallory", h});  // sorts last
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(p, w.now())), "invalid:recipients") << k;
    p.block_hashes.pop_back();
    p.block_hashes.erase(p.block_hashes.begin());  // leaving a member out fails alike
    EXPECT_EQ(reject_reason(w.mirror_at(k).m.prepare(p, w.now())), "invalid:recipients") << k;
  }
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(mirror_next(w, k, conv), 1u);
}

TEST(router_adds_a_member, a_forged_update_adding_a_member_is_refused_by_the_joiner_and_members) {
  world w;
  const conv_id conv = start_group(w, trio);
  w.add_user("mallory");
  const conv_state& st = *w.router(conv).state();
  submit_msg s;
  s.c.conv = conv;
  s.c.type = msg_type::update;
  s.c.author = "alice";
  s.c.aseq = 2;
  s.c.parent = 0;
  s.c.parent_hash = *st.t_at(0);
  s.c.ms = st.ms;
  s.c.adds = {w.user("mallory").self().as_member()};
  s.c.members = apply_ops(st.members, s.c.adds, {});
  for (const auto& r : {"bob", "carol", "mallory"})
    s.blocks.push_back(recipient_block{r, random_block(w.rng())});
  for (size_t k = 0; k < w.ms().size(); ++k)
    s.ambs.push_back(random_block(w.rng()));
  const world::stored_entry forged{forge_entry(s, 1, st), {}};
  for (const auto& u : {"bob", "carol", "mallory"})
    w.push_envelope(u, forged);
  w.run();
  for (const auto& u : {"bob", "carol", "mallory"}) {
    const auto al = alarms_of(w, u);
    ASSERT_EQ(al.size(), 1u) << u;
    EXPECT_EQ(al[0].kind, alarm_kind::provider) << u;
    EXPECT_EQ(al[0].index, 1u) << u;
  }
  EXPECT_EQ(w.user("mallory").find(conv), nullptr);
  for (const auto& u : trio) {
    EXPECT_FALSE(w.user(u).find(conv)->st.is_member("mallory")) << u;
    EXPECT_EQ(next_of(w, u, conv), 1u) << u;
  }
}

// ---------------------------------------------------------------------------------------------
// Rejections are unauthenticated hints (§3.8): the router says "refused" yet orders the message.

// Lets the SUBMIT with `aseq` reach the router (which orders it) after first telling its author
// that it was refused.
void reject_but_order(world& w, network_tap& tap, uint64_t aseq) {
  tap.tamper = [&w, aseq, done = false](in_flight& m) mutable {
    const auto* s = std::get_if<to_router>(&m);
    if (done || s == nullptr || s->aseq != aseq)
      return true;
    done = true;
    w.network().push_front(to_client_rejection{
        s->user, s->submit.c.conv, aseq, rejection{rejection_kind::invalid, 0, "parent_hash"}});
    return true;
  };
}

TEST(router_lies_in_a_rejection, a_message_refused_but_ordered_anyway_is_accepted_by_its_author) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  reject_but_order(w, tap, 2);
  ASSERT_TRUE(w.send("alice", conv, "refused?").has_value());
  w.run();
  ASSERT_EQ(tap.rejections_for("alice").size(), 1u);
  for (const auto& u : trio) {
    ASSERT_EQ(w.transcript(u, conv).size(), 2u) << u;
    EXPECT_EQ(text_of(w.transcript(u, conv)[1]), "refused?") << u;
  }
  EXPECT_TRUE(w.transcript("alice", conv)[1].own);
  EXPECT_TRUE(w.user("alice").find(conv)->outbox.empty());
  EXPECT_EQ(router_next(w, conv), 2u);
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_lies_in_a_rejection, a_pipelined_pair_refused_but_ordered_is_never_ordered_twice) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  reject_but_order(w, tap, 2);
  ASSERT_TRUE(w.send("alice", conv, "one").has_value());
  ASSERT_TRUE(w.send("alice", conv, "two").has_value());
  w.run();
  // Each message is in the conversation exactly once, whatever the author rebuilt meanwhile.
  const auto& t = w.transcript("bob", conv);
  size_t ones = 0;
  size_t twos = 0;
  for (const auto& e : t) {
    ones += text_of(e) == "one";
    twos += text_of(e) == "two";
  }
  EXPECT_EQ(ones, 1u);
  EXPECT_EQ(twos, 1u);
  EXPECT_EQ(router_next(w, conv), 3u);
  EXPECT_TRUE(w.user("alice").find(conv)->outbox.empty());
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_lies_in_a_rejection, a_setup_refused_but_ordered_anyway_is_accepted_by_its_creator) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  network_tap tap(w);
  reject_but_order(w, tap, 1);
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  w.run();
  ASSERT_EQ(tap.rejections_for("alice").size(), 1u);
  ASSERT_EQ(w.transcript("bob", conv).size(), 1u);
  // Bob and carol hold the conversation alice created: so must she.
  ASSERT_EQ(w.transcript("alice", conv).size(), 1u);
  EXPECT_TRUE(w.transcript("alice", conv)[0].own);
  EXPECT_NE(w.user("alice").find(conv), nullptr);
  EXPECT_TRUE(same_history(w, conv, trio));
  EXPECT_TRUE(no_alarms(w, trio));
}

TEST(router_impersonates, when_every_mirror_lies_an_entry_forged_in_a_name_halts_that_member) {
  world w(with_mirrors(2));
  w.mirror_at(0).lies = true;
  w.mirror_at(1).lies = true;
  const conv_id conv = start_group(w, trio);
  w.branch_mirrors(1);
  ASSERT_TRUE(w.send("alice", conv, "the real one").has_value());
  to_router m = take_last_submit(w);
  m.submit.c.body_commit[0] ^= 1;  // a D alice never submitted
  const log_entry e = forge_entry(m.submit, 1, *w.router(conv).state());
  const mirror_answers answers = w.commit_on_mirrors(e, 1);
  ASSERT_TRUE(answers[0].has_value() && answers[1].has_value());
  w.push_envelope("alice", world::stored_entry{e, answers});
  w.run();
  const auto al = alarms_of(w, "alice");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::impersonation);
  EXPECT_TRUE(al[0].halted);
  EXPECT_EQ(w.user("alice").find(conv)->status, conv_status::halted);
  EXPECT_EQ(w.transcript("alice", conv).size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Causality.

TEST(router_moves_a_reply, before_its_question_is_refused_by_the_router_and_an_honest_mirror) {
  world w(with_mirrors(2));
  w.mirror_at(0).lies = true;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  bool hide_carol = true;
  tap.tamper = [&](in_flight& m) {
    const auto* e = std::get_if<to_client_envelope>(&m);
    return !hide_carol || e == nullptr || e->user != "carol";
  };
  router_conv before = w.router(conv);
  mirror honest_before = w.mirror_at(1).m.clone();
  w.branch_mirrors(1);
  ASSERT_TRUE(w.send("alice", conv, "lunch?").has_value());
  w.run();
  ASSERT_TRUE(w.send("bob", conv, "yes").has_value());
  const to_router reply = std::get<to_router>(w.network().back());
  w.run();
  ASSERT_EQ(w.log(conv).at(2).e.c.parent, 1u);

  // The router's own validate refuses the reply at #1.
  ASSERT_TRUE(before.intake(reply.submit, "bob", w.now()).has_value());
  std::vector<prepare_decision::rejected> rejs;
  auto jobs = before.ready([](const std::string&) { return std::nullopt; }, rejs);
  EXPECT_TRUE(jobs.empty());
  ASSERT_EQ(rejs.size(), 1u);
  EXPECT_EQ(rejs[0].why.kind, rejection_kind::invalid);
  EXPECT_EQ(rejs[0].why.detail, "parent_not_before");
  // So does an honest mirror, at PREPARE and at COMMIT.
  log_entry e = w.log(conv).at(2).e;
  e.index = 1;
  e.t_prev = w.log(conv).at(0).e.t;
  e.t = transcript_hash(conv, 1, e.t_prev, e.d);
  EXPECT_EQ(reject_reason(honest_before.prepare(e.prepare_for(1), w.now())),
            "invalid:parent_not_before");
  d_history h;
  h.d[conv][0] = w.log(conv).at(0).e.d;
  EXPECT_EQ(
      reject_reason(
          h.commit(honest_before, commit_msg{1, e.d, e.prepare_for(1)}, w.now(), w.rng()).response),
      "invalid:parent_not_before");

  // With the lying mirror's attestation alone, carol refuses it.
  const mirror_answers answers = w.commit_on_mirrors(e, 1);
  ASSERT_TRUE(answers[0].has_value());
  ASSERT_FALSE(answers[1].has_value());
  hide_carol = false;
  w.push_envelope("carol", world::stored_entry{e, answers});
  w.run();
  const auto al = alarms_of(w, "carol");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].party, "mirror-b");
  EXPECT_EQ(w.transcript("carol", conv).size(), 1u);
  w.redeliver("carol");
  w.run();
  ASSERT_EQ(w.transcript("carol", conv).size(), 3u);
  EXPECT_EQ(text_of(w.transcript("carol", conv)[1]), "lunch?");
  EXPECT_EQ(text_of(w.transcript("carol", conv)[2]), "yes");
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(router_moves_a_reply, before_its_question_with_every_mirror_lying_halts_the_receiver_by_fork) {
  world w(with_mirrors(2));
  w.mirror_at(0).lies = true;
  w.mirror_at(1).lies = true;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  bool hide_carol = true;
  tap.tamper = [&](in_flight& m) {
    const auto* e = std::get_if<to_client_envelope>(&m);
    return !hide_carol || e == nullptr || e->user != "carol";
  };
  w.branch_mirrors(1);
  ASSERT_TRUE(w.send("alice", conv, "lunch?").has_value());
  w.run();
  ASSERT_TRUE(w.send("bob", conv, "yes").has_value());
  w.run();
  log_entry e = w.log(conv).at(2).e;
  e.index = 1;
  e.t_prev = w.log(conv).at(0).e.t;
  e.t = transcript_hash(conv, 1, e.t_prev, e.d);
  const mirror_answers answers = w.commit_on_mirrors(e, 1);
  ASSERT_TRUE(answers[0].has_value() && answers[1].has_value());
  hide_carol = false;
  w.push_envelope("carol", world::stored_entry{e, answers});
  w.run();
  const auto al = alarms_of(w, "carol");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::fork);
  EXPECT_TRUE(al[0].halted);
  EXPECT_EQ(w.transcript("carol", conv).size(), 1u);
  EXPECT_TRUE(no_alarms(w, {"alice", "bob"}));
}

}  // namespace
}  // namespace cowpi::sim::adv

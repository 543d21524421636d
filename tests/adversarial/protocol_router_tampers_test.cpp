// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, the router tampers and substitutes: every field of C, the body, the author
// block, each mirror block, the PREPARE it hands the mirrors, and the directory's pre-keys.
#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

#include <ostream>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

// Which entry a tampering case targets: bob's copy of an entry of this type by someone else.
struct c_case {
  const char* name;
  msg_type type;
  void (*apply)(common&);
};
void PrintTo(const c_case& c, std::ostream* os) {
  *os << c.name;
}

void flip(hash32& h) {
  h[7] ^= 0x20;
}

// Names each parameterised case after its `name`.
template <class Case>
std::string name_of(const ::testing::TestParamInfo<Case>& p) {
  return p.param.name;
}

// Produces an entry of `type` that bob receives (SETUP is produced by `create`).
void produce(world& w, const conv_id& conv, msg_type type) {
  switch (type) {
    case msg_type::setup:
      break;
    case msg_type::message:
      ASSERT_TRUE(w.send("alice", conv, "tamper with me").has_value());
      break;
    case msg_type::receipt:
      ASSERT_TRUE(w.send("alice", conv, "acknowledge me").has_value());
      w.run();
      ASSERT_TRUE(w.receipt("carol", conv).has_value());
      break;
    case msg_type::update:
      ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
      break;
  }
  w.run();
}

class router_tampers_c_in_an_envelope : public ::testing::TestWithParam<c_case> {};

TEST_P(router_tampers_c_in_an_envelope, raises_provider_never_voids_and_later_takes_the_true_copy) {
  const c_case& p = GetParam();
  world w;
  for (const auto& u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  network_tap tap(w);
  std::optional<uint64_t> target;
  tap.tamper = [&](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (target || e == nullptr || e->user != "bob" || e->env.c.type != p.type
        || e->env.c.author == "bob")
      return true;
    p.apply(e->env.c);
    target = e->env.index;
    return true;
  };
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  w.run();
  produce(w, conv, p.type);
  ASSERT_TRUE(target.has_value());

  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider) << al[0].evidence;
  EXPECT_EQ(al[0].index, *target);
  EXPECT_FALSE(al[0].halted);
  EXPECT_EQ(entry_at(w, "bob", conv, *target), nullptr);
  EXPECT_EQ(next_of(w, "bob", conv), *target);
  EXPECT_TRUE(no_alarms(w, {"alice", "carol", "dave"}));

  w.redeliver("bob");
  w.run();
  const accepted_entry* got = entry_at(w, "bob", conv, *target);
  ASSERT_NE(got, nullptr);
  EXPECT_FALSE(got->is_void);
  EXPECT_EQ(alarms_of(w, "bob").size(), 1u);
  EXPECT_TRUE(same_history(w, conv, {"alice", "bob", "carol"}));
}

const c_case c_cases[] = {
    {"message_version", msg_type::message, [](common& c) { c.version = 2; }},
    {"message_conv", msg_type::message, [](common& c) { c.conv[0] ^= 1; }},
    {"message_type", msg_type::message, [](common& c) { c.type = msg_type::receipt; }},
    {"message_author", msg_type::message, [](common& c) { c.author = "carol"; }},
    {"message_aseq", msg_type::message, [](common& c) { ++c.aseq; }},
    {"message_parent", msg_type::message, [](common& c) { c.parent = 1; }},
    {"message_parent_hash", msg_type::message, [](common& c) { flip(c.parent_hash); }},
    {"message_body_len", msg_type::message, [](common& c) { c.body_len += 256; }},
    {"message_body_hash", msg_type::message, [](common& c) { flip(c.body_hash); }},
    {"message_body_commit", msg_type::message, [](common& c) { flip(c.body_commit); }},
    {"receipt_voids", msg_type::receipt, [](common& c) { c.voids = {1}; }},
    {"receipt_parent", msg_type::receipt, [](common& c) { c.parent = 0; }},
    {"update_ms", msg_type::update, [](common& c) { c.ms.back().lpk[0] ^= 1; }},
    {"update_adds", msg_type::update,
     [](common& c) {
       c.adds.push_back(member{"erin", c.adds.front().lpk});
       c.members.push_back(member{"erin", c.adds.front().lpk});
     }},
    {"update_removes", msg_type::update,
     [](common& c) {
       c.removes = {"carol"};
       std::erase_if(c.members, [](const member& m) { return m.id == "carol"; });
     }},
    {"update_members", msg_type::update, [](common& c) { c.members.front().lpk[0] ^= 1; }},
    {"setup_aseq", msg_type::setup, [](common& c) { c.aseq = 2; }},
    {"setup_ms", msg_type::setup, [](common& c) { c.ms.front().lpk[0] ^= 1; }},
    {"setup_members", msg_type::setup, [](common& c) { c.members.back().lpk[0] ^= 1; }},
};

INSTANTIATE_TEST_SUITE_P(each_field, router_tampers_c_in_an_envelope, ::testing::ValuesIn(c_cases),
                         name_of<c_case>);

// ---------------------------------------------------------------------------------------------
// The body, the author block and the mirror blocks of an envelope.

struct envelope_case {
  const char* name;
  void (*apply)(envelope&);
  alarm_kind expect;
};
void PrintTo(const envelope_case& c, std::ostream* os) {
  *os << c.name;
}

class router_tampers_an_envelope : public ::testing::TestWithParam<envelope_case> {};

TEST_P(router_tampers_an_envelope, raises_the_right_alarm_never_voids_and_takes_the_true_copy) {
  const envelope_case& p = GetParam();
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  bool done = false;
  tap.tamper = [&](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (done || e == nullptr || e->user != "bob")
      return true;
    p.apply(e->env);
    done = true;
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "tamper with my envelope").has_value());
  w.run();
  ASSERT_TRUE(done);
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, p.expect) << al[0].evidence;
  EXPECT_EQ(al[0].index, 1u);
  EXPECT_FALSE(al[0].halted);
  EXPECT_EQ(w.transcript("bob", conv).size(), 1u);
  EXPECT_TRUE(no_alarms(w, {"alice", "carol"}));

  w.redeliver("bob");
  w.run();
  ASSERT_EQ(w.transcript("bob", conv).size(), 2u);
  EXPECT_FALSE(w.transcript("bob", conv)[1].is_void);
  EXPECT_EQ(text_of(w.transcript("bob", conv)[1]), "tamper with my envelope");
  EXPECT_TRUE(same_history(w, conv, trio));
}

const envelope_case envelope_cases[] = {
    {"body_bit", [](envelope& e) { (*e.body)[30] ^= 1; }, alarm_kind::provider},
    {"body_truncated", [](envelope& e) { e.body->pop_back(); }, alarm_kind::provider},
    {"body_missing", [](envelope& e) { e.body.reset(); }, alarm_kind::provider},
    {"blocks_root", [](envelope& e) { flip(e.blocks_root); }, alarm_kind::provider},
    {"author_block_x", [](envelope& e) { std::get<block>(*e.block_u).x[0] ^= 1; },
     alarm_kind::provider},
    {"author_block_ref_kind",
     [](envelope& e) { std::get<block>(*e.block_u).ref.kind = key_kind::last_resort; },
     alarm_kind::provider},
    {"author_block_ref_id", [](envelope& e) { ++std::get<block>(*e.block_u).ref.id; },
     alarm_kind::provider},
    {"author_block_ref_pub", [](envelope& e) { std::get<block>(*e.block_u).ref.pub[0] ^= 1; },
     alarm_kind::provider},
    {"author_block_nonce", [](envelope& e) { std::get<block>(*e.block_u).nonce[0] ^= 1; },
     alarm_kind::provider},
    {"author_block_ct", [](envelope& e) { std::get<block>(*e.block_u).ct[0] ^= 1; },
     alarm_kind::provider},
    {"author_block_missing", [](envelope& e) { e.block_u.reset(); }, alarm_kind::provider},
    {"first_mirror_block_x", [](envelope& e) { std::get<block>(e.mirror_blocks[0]).x[0] ^= 1; },
     alarm_kind::provider},
    {"first_mirror_block_nonce",
     [](envelope& e) { std::get<block>(e.mirror_blocks[0]).nonce[0] ^= 1; }, alarm_kind::provider},
    {"first_mirror_block_ct", [](envelope& e) { std::get<block>(e.mirror_blocks[0]).ct[5] ^= 1; },
     alarm_kind::provider},
    // A mirror block naming a key bob never published: the directory's doing.
    {"first_mirror_block_ref_id",
     [](envelope& e) { std::get<block>(e.mirror_blocks[0]).ref.id += 100; }, alarm_kind::directory},
    {"first_mirror_block_ref_pub",
     [](envelope& e) { std::get<block>(e.mirror_blocks[0]).ref.pub[0] ^= 1; },
     alarm_kind::directory},
    {"first_mirror_block_ref_kind",
     [](envelope& e) { std::get<block>(e.mirror_blocks[0]).ref.kind = key_kind::prekey; },
     alarm_kind::directory},
    {"last_mirror_block_ct",
     [](envelope& e) { std::get<block>(e.mirror_blocks.back()).ct[87] ^= 1; },
     alarm_kind::provider},
    {"mirror_blocks_swapped",
     [](envelope& e) { std::swap(e.mirror_blocks[0], e.mirror_blocks[1]); }, alarm_kind::provider},
    {"mirror_block_missing", [](envelope& e) { e.mirror_blocks.pop_back(); }, alarm_kind::provider},
};

INSTANTIATE_TEST_SUITE_P(each_part, router_tampers_an_envelope, ::testing::ValuesIn(envelope_cases),
                         name_of<envelope_case>);

TEST(router_tampers, a_swapped_body_raises_provider_and_is_never_voided) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "pay carol 10").has_value());
  w.run();
  const bytes other_body = *w.log(conv).at(1).e.body;
  network_tap tap(w);
  bool swapped = false;
  tap.tamper = [&](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (swapped || e == nullptr || e->user != "bob" || e->env.index != 2)
      return true;
    EXPECT_EQ(e->env.body->size(), other_body.size());
    e->env.body = other_body;  // a real body of the same size, from another message
    swapped = true;
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "pay dave 99").has_value());
  w.run();
  ASSERT_TRUE(swapped);
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(al[0].party, "router");
  EXPECT_EQ(w.transcript("bob", conv).size(), 2u);
  for (const auto& e : w.transcript("bob", conv))
    EXPECT_FALSE(e.is_void);
  EXPECT_TRUE(w.user("bob").find(conv)->voids_pending.empty());

  w.redeliver("bob");
  w.run();
  ASSERT_EQ(w.transcript("bob", conv).size(), 3u);
  EXPECT_EQ(text_of(w.transcript("bob", conv)[2]), "pay dave 99");
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(router_substitutes, an_older_valid_block_for_the_recipient_raises_provider_not_sender) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "first").has_value());
  w.run();
  const auto& first = w.log(conv).at(1).e;
  const slot_block old = std::find_if(first.blocks.begin(), first.blocks.end(), [](const auto& b) {
                           return b.recipient == "bob";
                         })->blk;
  network_tap tap(w);
  tap.tamper = [&](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (e != nullptr && e->user == "bob" && e->env.index == 2)
      e->env.block_u = old;
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "second").has_value());
  w.run();
  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::provider);
  EXPECT_EQ(w.transcript("bob", conv).size(), 2u);
  EXPECT_TRUE(w.user("bob").find(conv)->voids_pending.empty());
}

// ---------------------------------------------------------------------------------------------
// Tampering before ordering: whatever the router changes in a PREPARE, no honest mirror attests.

struct prepare_case {
  const char* name;
  void (*apply)(prepare_msg&);
  const char* reason;
};
void PrintTo(const prepare_case& c, std::ostream* os) {
  *os << c.name;
}

class router_tampers_a_prepare : public ::testing::TestWithParam<prepare_case> {};

TEST_P(router_tampers_a_prepare, every_honest_mirror_refuses_it_and_changes_nothing) {
  const prepare_case& p = GetParam();
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "sealed for the mirrors").has_value());
  const to_router m = take_last_submit(w);
  for (size_t k = 0; k < w.ms().size(); ++k) {
    const conv_state before = w.mirror_at(k).m.find(conv)->st;
    prepare_msg pm = prepare_of(m.submit, k);
    p.apply(pm);
    const link_response r = w.mirror_at(k).m.prepare(pm, w.now());
    EXPECT_EQ(reject_reason(r), p.reason) << w.ms()[k].id;
    d_history h;
    h.d[conv][0] = w.log(conv).at(0).e.d;
    mirror copy = w.mirror_at(k).m.clone();
    const auto out = h.commit(copy, commit_msg{1, digest_of(m.submit), pm}, w.now(), w.rng());
    EXPECT_FALSE(out.persist) << w.ms()[k].id;
    EXPECT_NE(reject_reason(out.response), "") << w.ms()[k].id;
    EXPECT_EQ(w.mirror_at(k).m.find(conv)->st, before);
  }
  // The untampered PREPARE is fine: the refusal came from the tampering.
  EXPECT_TRUE(
      std::holds_alternative<prepared>(w.mirror_at(0).m.prepare(prepare_of(m.submit, 0), w.now())));
}

const prepare_case prepare_cases[] = {
    {"c_version", [](prepare_msg& p) { p.c.version = 2; }, "invalid:bad_version"},
    {"c_type", [](prepare_msg& p) { p.c.type = msg_type::receipt; }, "invalid:not_canonical"},
    {"c_author", [](prepare_msg& p) { p.c.author = "carol"; }, "invalid:aseq"},
    {"c_aseq", [](prepare_msg& p) { ++p.c.aseq; }, "invalid:aseq"},
    {"c_parent", [](prepare_msg& p) { p.c.parent = 1; }, "invalid:parent_not_before"},
    {"c_parent_hash", [](prepare_msg& p) { flip(p.c.parent_hash); }, "invalid:parent_hash"},
    {"c_body_len", [](prepare_msg& p) { p.c.body_len += 256; }, "amb_does_not_verify"},
    {"c_body_hash", [](prepare_msg& p) { flip(p.c.body_hash); }, "amb_does_not_verify"},
    {"c_body_commit", [](prepare_msg& p) { flip(p.c.body_commit); }, "amb_does_not_verify"},
    {"a_block_hash", [](prepare_msg& p) { flip(p.block_hashes.front().hash); },
     "amb_does_not_verify"},
    {"a_recipient_dropped", [](prepare_msg& p) { p.block_hashes.pop_back(); },
     "invalid:recipients"},
    {"amb_ct", [](prepare_msg& p) { std::get<block>(p.amb).ct[10] ^= 1; }, "amb_does_not_verify"},
    {"amb_nonce", [](prepare_msg& p) { std::get<block>(p.amb).nonce[0] ^= 1; },
     "amb_does_not_verify"},
    {"amb_x", [](prepare_msg& p) { std::get<block>(p.amb).x[0] ^= 1; }, "amb_does_not_verify"},
    {"amb_ref_unpublished",
     [](prepare_msg& p) {
       std::get<block>(p.amb).ref = key_ref{key_kind::prekey, 9999, std::get<block>(p.amb).x};
     },
     "amb_unknown_key"},
};

INSTANTIATE_TEST_SUITE_P(each_field, router_tampers_a_prepare, ::testing::ValuesIn(prepare_cases),
                         name_of<prepare_case>);

TEST(router_tampers, a_submit_altered_before_ordering_is_refused_at_prepare_and_uses_no_index) {
  world w;
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  tap.tamper = [&](in_flight& m) {
    if (auto* s = std::get_if<to_router>(&m))
      std::get<block>(s->submit.blocks.front().blk).ct[0] ^= 1;
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "do not touch").has_value());
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::mirror_reject);
  EXPECT_EQ(rej[0].detail, "amb_does_not_verify");
  EXPECT_EQ(router_next(w, conv), 1u);
  EXPECT_FALSE(w.log(conv).contains(1));
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(mirror_next(w, k, conv), 1u);
  for (const auto& u : trio)
    EXPECT_EQ(w.transcript(u, conv).size(), 1u) << u;
  EXPECT_TRUE(no_alarms(w, trio));
}

// ---------------------------------------------------------------------------------------------
// The directory lies.

TEST(router_substitutes, a_substituted_prekey_raises_directory_not_sender_and_the_channel_heals) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  public_key fake{};
  w.rng().fill(fake);
  size_t substituted = 0;
  w.set_directory_interceptor([&](const std::string& requester, prekey_bundle& b) {
    if (requester != "alice" || b.owner != "bob")
      return;
    b.key = key_ref{key_kind::prekey, 9999, fake};
    ++substituted;
  });
  // Carol creates: alice and bob have never talked, so alice fetches a key for bob.
  const conv_id conv = *w.create("carol", {"alice", "bob"});
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "hi bob").has_value());
  w.run();
  ASSERT_EQ(substituted, 1u);

  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::directory);
  EXPECT_NE(al[0].party, "alice");  // the evidence points at the directory, not the sender
  EXPECT_FALSE(al[0].halted);
  EXPECT_TRUE(alarms_of(w, "bob", alarm_kind::sender).empty());
  ASSERT_EQ(w.transcript("bob", conv).size(), 2u);
  EXPECT_TRUE(w.transcript("bob", conv)[1].is_void);
  EXPECT_EQ(text_of(w.transcript("carol", conv)[1]), "hi bob");
  EXPECT_TRUE(same_history(w, conv, trio));

  // Bob speaks, alice learns his announced key, and the channel works again.
  ASSERT_TRUE(w.send("bob", conv, "I could not read that").has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "hi again").has_value());
  w.run();
  ASSERT_EQ(w.transcript("bob", conv).size(), 4u);
  EXPECT_EQ(text_of(w.transcript("bob", conv)[3]), "hi again");
  EXPECT_EQ(alarms_of(w, "bob").size(), 1u);
  EXPECT_TRUE(no_alarms(w, {"alice", "carol"}));
  EXPECT_TRUE(same_history(w, conv, trio));
}

TEST(router_substitutes, a_substituted_mirror_prekey_is_refused_at_prepare_as_an_unknown_key) {
  world w;
  for (const auto& u : trio)
    w.add_user(u);
  public_key fake{};
  w.rng().fill(fake);
  w.set_directory_interceptor([&](const std::string&, prekey_bundle& b) {
    if (b.owner == "mirror-a")
      b.key = key_ref{key_kind::prekey, 9999, fake};
  });
  network_tap tap(w);
  const conv_id conv = *w.create("alice", {"bob", "carol"});
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::mirror_reject);
  EXPECT_EQ(rej[0].detail, "amb_unknown_key");
  EXPECT_EQ(w.router(conv).state(), nullptr);
  for (size_t k = 0; k < w.ms().size(); ++k)
    EXPECT_EQ(w.mirror_at(k).m.find(conv), nullptr);
  for (const auto& u : trio)
    EXPECT_TRUE(w.transcript(u, conv).empty()) << u;
}

TEST(router_substitutes, a_prekey_handed_to_two_channels_raises_directory_and_both_are_read) {
  world w;
  for (const auto& u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  // Alice and carol each fetch a key for bob: both get the same one-time pre-key.
  std::optional<key_ref> first;
  std::string first_requester;
  w.set_directory_interceptor([&](const std::string& requester, prekey_bundle& b) {
    if (b.owner != "bob" || (requester != "alice" && requester != "carol"))
      return;
    if (!first) {
      first = b.key;
      first_requester = requester;
    } else if (requester != first_requester) {
      b.key = *first;
    }
  });
  const conv_id conv = *w.create("dave", {"alice", "bob", "carol"});
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "from alice").has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "from carol").has_value());
  w.run();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->kind, key_kind::prekey);

  const auto al = alarms_of(w, "bob");
  ASSERT_EQ(al.size(), 1u);
  EXPECT_EQ(al[0].kind, alarm_kind::directory);
  EXPECT_EQ(al[0].index, 2u);
  const auto& t = w.transcript("bob", conv);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(text_of(t[1]), "from alice");
  EXPECT_EQ(text_of(t[2]), "from carol");
  EXPECT_TRUE(same_history(w, conv, {"alice", "bob", "carol", "dave"}));
}

}  // namespace
}  // namespace cowpi::sim::adv

// SPDX-License-Identifier: Apache-2.0
// Chain-mode conversations (docs/protocol.md §4.8) end to end in the in-process world: the
// first block of each channel is a DH step, later ones are chain blocks; what members accept is
// what they would accept in public-key mode; a router replaying chain blocks, dropping steps or
// substituting slots of the other mode is caught.
#include "cowpi/protocol/chain.hpp"
#include "cowpi/protocol/wire.hpp"

#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

#include <set>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

conv_id start_chain_group(world& w, const std::vector<std::string>& users) {
  for (const auto& u : users)
    w.add_user(u);
  std::vector<std::string> others(users.begin() + 1, users.end());
  auto conv = w.create(users.front(), others, block_mode::chain);
  EXPECT_TRUE(conv.has_value()) << conv.error().message();
  w.run();
  return *conv;
}

std::vector<std::string> plaintexts(world& w, const std::string& u, const conv_id& conv) {
  std::vector<std::string> out;
  for (const auto& e : w.transcript(u, conv))
    if (e.type == msg_type::message && !e.is_void)
      out.emplace_back(e.plaintext.begin(), e.plaintext.end());
  return out;
}

size_t slot_size(const slot_block& s) {
  return enc_slot(s).size();
}

TEST(chain_mode, every_member_accepts_every_message_and_later_blocks_are_chain_blocks) {
  world w;
  const conv_id conv = start_chain_group(w, trio);
  ASSERT_NE(w.router(conv).state(), nullptr);
  EXPECT_EQ(w.router(conv).state()->version, protocol_version_chain);
  std::vector<std::string> sent;
  for (int round = 0; round < 4; ++round) {
    for (const auto& u : trio) {
      sent.push_back(u + " says " + std::to_string(round));
      ASSERT_TRUE(w.send(u, conv, sent.back()).has_value());
      w.run();
    }
  }
  for (const auto& u : trio) {
    EXPECT_EQ(plaintexts(w, u, conv), sent) << u;
    EXPECT_TRUE(alarms_of(w, u).empty()) << u;
  }
  // SETUP: every slot is a DH step. The last round: author blocks carry only the seed (56 B)
  // and mirror blocks only the tag (24 B); nobody steps again.
  const auto& log = w.log(conv);
  const auto& setup = log.at(0);
  for (const auto& rb : setup.e.blocks)
    EXPECT_TRUE(std::holds_alternative<dh_step>(rb.blk)) << rb.recipient;
  const auto& last = log.rbegin()->second;
  for (const auto& rb : last.e.blocks)
    EXPECT_EQ(slot_size(rb.blk), 56u) << rb.recipient;
  for (const auto& a : last.answers) {
    ASSERT_TRUE(a.has_value());
    for (const auto& b : *a)
      EXPECT_EQ(slot_size(b), 24u);
  }
}

TEST(chain_mode, a_build_that_fails_after_chain_blocks_were_sealed_changes_no_send_chain) {
  world w;
  const conv_id conv = start_chain_group(w, {"alice", "bob", "carol", "dave"});
  // Three rounds: each channel has stepped to the key its peer announced in reply.
  for (int round = 0; round < 3; ++round) {
    for (const std::string u : {"alice", "bob", "carol", "dave"}) {
      ASSERT_TRUE(w.send(u, conv, u + " warms up").has_value());
      w.run();
    }
  }
  client& alice = w.user("alice");
  client_conv& cc = alice.mutable_convs().at(conv);
  struct saved {
    uint32_t epoch;
    uint32_t next;
    crypto::secret<32> ck;
  };
  std::map<std::string, saved> before;
  for (const std::string peer : {"bob", "carol", "dave"}) {
    const auto& ch = cc.channels.at(peer);
    ASSERT_TRUE(ch.out.chain.has_value()) << peer;
    ASSERT_EQ(chain_step_due(ch, w.now()), step_reason::none) << peer << ": a chain block is next";
    before.emplace(peer,
                   saved{ch.out.chain->epoch(), ch.out.chain->next(), ch.out.chain->key().clone()});
  }
  const auto ratchet_before = cc.ratchet_next;
  const size_t outbox_before = cc.outbox.size();
  // The mirror's channel, built after every member's block, must step and has no key left.
  const std::string mirror_id = w.ms().front().id;
  channel& to_mirror = cc.channels.at(mirror_id);
  const auto latest = to_mirror.peer_latest;
  const auto first_contact = to_mirror.first_contact;
  to_mirror.out.void_reported = true;
  to_mirror.peer_latest.reset();
  to_mirror.first_contact.reset();

  auto failed =
      alice.send_message(conv, as_bytes(std::string_view("never sent")), w.now(), w.rng());
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, errc::unknown_key);
  for (const auto& [peer, was] : before) {
    const auto& chain = cc.channels.at(peer).out.chain;
    ASSERT_TRUE(chain.has_value()) << peer;
    EXPECT_EQ(chain->epoch(), was.epoch) << peer;
    EXPECT_EQ(chain->next(), was.next) << peer << ": the counter the failed build used is back";
    EXPECT_TRUE(chain->key().ct_equals(was.ck)) << peer;
  }
  EXPECT_EQ(cc.ratchet_next, ratchet_before);
  EXPECT_EQ(cc.outbox.size(), outbox_before);

  // With the mirror's key back, the next MESSAGE goes out on the same counters and is read.
  to_mirror.peer_latest = latest;
  to_mirror.first_contact = first_contact;
  ASSERT_TRUE(w.send("alice", conv, "after the failure").has_value());
  w.run();
  const auto& last = w.log(conv).rbegin()->second.e;
  for (const auto& rb : last.blocks) {
    const auto* cb = std::get_if<chain_block>(&rb.blk);
    ASSERT_NE(cb, nullptr) << rb.recipient;
    EXPECT_EQ(cb->n, before.at(rb.recipient).next) << rb.recipient;
  }
  for (const std::string u : {"bob", "carol", "dave"}) {
    EXPECT_EQ(plaintexts(w, u, conv).back(), "after the failure") << u;
    EXPECT_TRUE(alarms_of(w, u).empty()) << u;
  }
}

TEST(chain_mode, receipts_updates_and_removals_work_and_a_re_added_member_steps_again) {
  world w;
  const conv_id conv = start_chain_group(w, {"alice", "bob", "carol", "dave"});
  ASSERT_TRUE(w.send("alice", conv, "one").has_value());
  w.run();
  ASSERT_TRUE(w.update("alice", conv, {}, {"dave"}).has_value());
  w.run();
  ASSERT_TRUE(w.send("bob", conv, "two").has_value());
  w.run();
  ASSERT_TRUE(w.update("carol", conv, {"dave"}, {}).has_value());
  w.run();
  ASSERT_TRUE(w.send("dave", conv, "three").has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "four").has_value());
  w.run();
  for (const auto& u : {"alice", "bob", "carol"}) {
    EXPECT_EQ(plaintexts(w, u, conv), (std::vector<std::string>{"one", "two", "three", "four"}))
        << u;
    EXPECT_TRUE(alarms_of(w, u).empty()) << u;
  }
  EXPECT_EQ(plaintexts(w, "dave", conv), (std::vector<std::string>{"one", "three", "four"}))
      << "dave missed only what was sent while it was out";
  EXPECT_TRUE(alarms_of(w, "dave").empty());
  // dave's first block after the re-add is a DH step: the channel started again.
  const auto& log = w.log(conv);
  const auto& three = std::prev(log.end(), 2)->second.e;
  ASSERT_EQ(three.c.author, "dave");
  for (const auto& rb : three.blocks)
    EXPECT_TRUE(std::holds_alternative<dh_step>(rb.blk)) << rb.recipient;
  const auto& four = log.rbegin()->second.e;
  const auto to_dave = std::find_if(four.blocks.begin(), four.blocks.end(),
                                    [](const auto& rb) { return rb.recipient == "dave"; });
  ASSERT_NE(to_dave, four.blocks.end());
  EXPECT_TRUE(std::holds_alternative<dh_step>(to_dave->blk))
      << "alice's channel to dave starts again after the re-add";
}

TEST(chain_mode, a_router_replaying_a_chain_block_from_another_entry_is_caught) {
  world w;
  const conv_id conv = start_chain_group(w, trio);
  for (int k = 0; k < 2; ++k) {
    ASSERT_TRUE(w.send("alice", conv, "warm up " + std::to_string(k)).has_value());
    w.run();
  }
  const slot_block earlier = std::find_if(w.log(conv).rbegin()->second.e.blocks.begin(),
                                          w.log(conv).rbegin()->second.e.blocks.end(),
                                          [](const auto& rb) { return rb.recipient == "bob"; })
                                 ->blk;
  ASSERT_TRUE(std::holds_alternative<chain_block>(earlier));
  network_tap tap(w);
  tap.tamper = [&](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (e != nullptr && e->user == "bob" && e->env.c.type == msg_type::message)
      e->env.block_u = earlier;
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "replayed under").has_value());
  w.run();
  EXPECT_FALSE(alarms_of(w, "bob", alarm_kind::provider).empty())
      << "blocks_root binds bob's block: a swapped one is the router's doing";
  const auto bob = plaintexts(w, "bob", conv);
  EXPECT_EQ(std::count(bob.begin(), bob.end(), "replayed under"), 0);
}

TEST(chain_mode, a_slot_of_the_other_mode_in_a_delivery_is_caught) {
  world w;
  const conv_id conv = start_chain_group(w, trio);
  network_tap tap(w);
  tap.tamper = [&](in_flight& m) {
    auto* e = std::get_if<to_client_envelope>(&m);
    if (e != nullptr && e->user == "carol" && e->env.c.type == msg_type::message) {
      if (const block* b = block_of(e->env.mirror_blocks[0]))
        e->env.mirror_blocks[0] = *b;  // a DH step's block presented as a §4.3 block
      else
        e->env.mirror_blocks[0] = block{};
    }
    return true;
  };
  ASSERT_TRUE(w.send("alice", conv, "hello").has_value());
  w.run();
  EXPECT_FALSE(alarms_of(w, "carol", alarm_kind::provider).empty());
  EXPECT_TRUE(plaintexts(w, "carol", conv).empty());
  EXPECT_EQ(plaintexts(w, "bob", conv), std::vector<std::string>{"hello"});
}

// The directory hands carol a PREKEY of bob's that another channel already used: bob cannot
// open her DH step, nor the chain blocks of its epoch that follow. Every one of them is the
// directory's fault (DIRECTORY against the router), never carol's; the channel heals when she
// steps to the key bob announces.
TEST(chain_mode, chain_blocks_after_a_step_the_directory_broke_blame_the_directory) {
  world w;
  for (const auto& u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  const std::optional<key_ref> used = used_prekey_of_bob(w);
  ASSERT_TRUE(used.has_value());

  w.set_directory_interceptor([&](const std::string& requester, prekey_bundle& b) {
    if (requester == "carol" && b.owner == "bob")
      b.key = *used;
  });
  const conv_id conv = *w.create("dave", {"bob", "carol"}, block_mode::chain);
  w.run();
  for (const auto* text : {"hello bob", "still there?", "and again"}) {
    ASSERT_TRUE(w.send("carol", conv, text).has_value());
    w.run();
  }
  w.set_directory_interceptor(nullptr);
  const auto& log = w.log(conv);
  auto slot_to_bob = [&](uint64_t i) -> const slot_block& {
    const auto& blocks = log.at(i).e.blocks;
    return std::find_if(blocks.begin(), blocks.end(),
                        [](const auto& rb) { return rb.recipient == "bob"; })
        ->blk;
  };
  ASSERT_TRUE(std::holds_alternative<dh_step>(slot_to_bob(1)));
  ASSERT_TRUE(std::holds_alternative<chain_block>(slot_to_bob(2)));
  ASSERT_TRUE(std::holds_alternative<chain_block>(slot_to_bob(3)));
  const uint32_t epoch = std::get<dh_step>(slot_to_bob(1)).epoch;
  for (uint64_t i = 1; i <= 3; ++i) {
    const accepted_entry* e = entry_at(w, "bob", conv, i);
    ASSERT_NE(e, nullptr) << i;
    EXPECT_TRUE(e->is_void) << i;
  }
  const auto dir = alarms_of(w, "bob", alarm_kind::directory);
  ASSERT_EQ(dir.size(), 3u);
  for (const auto& a : dir)
    EXPECT_EQ(a.party, "router");
  EXPECT_TRUE(alarms_of(w, "bob", alarm_kind::sender).empty());
  EXPECT_EQ(w.user("bob").find(conv)->channels.at("carol").broken_epoch, epoch);
  EXPECT_EQ(plaintexts(w, "dave", conv),
            (std::vector<std::string>{"hello bob", "still there?", "and again"}));

  // Bob announces a RATCHET key to carol; her next block steps to it and opens.
  ASSERT_TRUE(w.send("bob", conv, "reach me here").has_value());
  w.run();
  ASSERT_TRUE(w.send("carol", conv, "healed").has_value());
  w.run();
  EXPECT_EQ(plaintexts(w, "bob", conv), (std::vector<std::string>{"reach me here", "healed"}));
  EXPECT_EQ(w.user("bob").find(conv)->channels.at("carol").broken_epoch, 0u);
  EXPECT_EQ(alarms_of(w, "bob").size(), 3u);
}

// The names-free SUBMIT (docs/wire.md "The names-free SUBMIT"): the router names the slots from
// Recipients(C) and holds the author to its blocks_root.
submit_msg names_free(const submit_msg& s) {
  auto d = wire::decode_client_frame(wire::encode(client_frame{1, s}));
  EXPECT_TRUE(d.has_value()) << d.error().err.message();
  auto* got = std::get_if<submit_msg>(&d->body);
  EXPECT_NE(got, nullptr);
  EXPECT_TRUE(got->names_free_root.has_value());
  return *got;
}

TEST(chain_mode_submit, the_router_names_the_slots_and_refuses_a_root_that_does_not_match) {
  world w;
  const conv_id conv = start_chain_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "named by the router").has_value());
  const to_router m = take_last_submit(w);
  const submit_msg nf = names_free(m.submit);
  for (const auto& rb : nf.blocks)
    EXPECT_TRUE(rb.recipient.empty());

  // As sent: accepted, and the entry the router orders carries the ids the author used.
  {
    router_conv rc = w.router(conv);
    ASSERT_TRUE(rc.intake(nf, "alice", w.now()).has_value());
    std::vector<prepare_decision::rejected> rejs;
    auto jobs = rc.ready([&](const std::string& id) { return w.directory_of(id); }, rejs);
    EXPECT_TRUE(rejs.empty());
    ASSERT_EQ(jobs.size(), 1u);
    ASSERT_FALSE(jobs[0].per_mirror.empty());
    std::vector<block_digest> want;
    for (const auto& rb : m.submit.blocks)
      want.push_back(block_digest{rb.recipient, block_hash(rb.blk)});
    EXPECT_EQ(jobs[0].per_mirror[0].block_hashes, want);
  }
  struct bad_case {
    const char* what;
    void (*apply)(submit_msg&);
  };
  const bad_case cases[] = {
      {"another root", [](submit_msg& s) { (*s.names_free_root)[0] ^= 1; }},
      {"a slot missing", [](submit_msg& s) { s.blocks.pop_back(); }},
      {"a slot too many", [](submit_msg& s) { s.blocks.push_back(s.blocks.back()); }},
      {"two slots swapped", [](submit_msg& s) { std::swap(s.blocks[0], s.blocks[1]); }},
  };
  for (const auto& bc : cases) {
    router_conv rc = w.router(conv);
    submit_msg s = nf;
    bc.apply(s);
    // Queued as it came (the author may have built it after its own UPDATE still queued
    // ahead), then refused when it reaches the head of the queue and is named.
    ASSERT_TRUE(rc.intake(s, "alice", w.now()).has_value()) << bc.what;
    std::vector<prepare_decision::rejected> rejs;
    auto jobs = rc.ready([&](const std::string& id) { return w.directory_of(id); }, rejs);
    EXPECT_TRUE(jobs.empty()) << bc.what;
    ASSERT_EQ(rejs.size(), 1u) << bc.what;
    EXPECT_EQ(rejs[0].why.kind, rejection_kind::invalid) << bc.what;
    EXPECT_EQ(rejs[0].why.detail, "recipients") << bc.what;
    EXPECT_EQ(rc.pending(), 0u) << bc.what;
  }
}

TEST(chain_mode_submit, a_message_queued_behind_the_authors_own_update_is_told_stale_not_invalid) {
  world w;
  const conv_id conv = start_chain_group(w, trio);
  w.add_user("dave");
  network_tap tap(w);
  // Both SUBMITs reach the router before either is ordered. The MESSAGE's slots are for bob and
  // carol; named when it reaches the head of alice's queue, after her UPDATE added dave, they are
  // not Recipients(C): the answer is STALE (alice rebuilds it for dave too), never INVALID, which
  // would be final.
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  ASSERT_TRUE(w.send("alice", conv, "after my update").has_value());
  w.run();
  ASSERT_FALSE(tap.rejections_for("alice").empty());
  for (const auto& r : tap.rejections_for("alice"))
    EXPECT_EQ(r.kind, rejection_kind::stale) << to_string(r.kind) << " " << r.detail;
  for (const auto& u : {"alice", "bob", "carol", "dave"}) {
    const auto p = plaintexts(w, u, conv);
    EXPECT_EQ(std::count(p.begin(), p.end(), "after my update"), 1) << u;
  }
  EXPECT_TRUE(no_alarms(w, {"alice", "bob", "carol", "dave"}));
}

TEST(chain_mode_submit, an_author_behind_an_update_is_told_stale_and_its_rebuild_is_ordered) {
  world w;
  const conv_id conv = start_chain_group(w, trio);
  w.add_user("dave");
  ASSERT_TRUE(w.send("alice", conv, "built before dave").has_value());
  const to_router held = take_last_submit(w);
  ASSERT_TRUE(w.update("bob", conv, {"dave"}, {}).has_value());
  w.run();
  ASSERT_TRUE(w.router(conv).state()->is_member("dave"));
  // Alice's slots were made for bob and carol; the router now counts dave too.
  router_conv rc = w.router(conv);
  ASSERT_TRUE(rc.intake(names_free(held.submit), "alice", w.now()).has_value());
  std::vector<prepare_decision::rejected> rejs;
  EXPECT_TRUE(rc.ready([&](const std::string& id) { return w.directory_of(id); }, rejs).empty());
  ASSERT_EQ(rejs.size(), 1u);
  EXPECT_EQ(rejs[0].why.kind, rejection_kind::stale);
  // Delivered as a real router would answer it, alice rebuilds for dave as well.
  network_tap tap(w);
  w.network().push_back(held);
  w.run();
  ASSERT_FALSE(tap.rejections_for("alice").empty());
  EXPECT_EQ(tap.rejections_for("alice")[0].kind, rejection_kind::stale);
  for (const auto& u : {"alice", "bob", "carol", "dave"}) {
    const auto p = plaintexts(w, u, conv);
    EXPECT_EQ(std::count(p.begin(), p.end(), "built before dave"), 1) << u;
  }
  EXPECT_TRUE(no_alarms(w, {"alice", "bob", "carol", "dave"}));
}

}  // namespace
}  // namespace cowpi::sim::adv

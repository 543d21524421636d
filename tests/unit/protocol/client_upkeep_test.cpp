// SPDX-License-Identifier: Apache-2.0
// The client's upkeep policies: which pre-keys to upload (§2, docs/protocol.md §12) and when a
// standalone RECEIPT is due (§3.7).
#include "cowpi/protocol/client.hpp"
#include "cowpi/protocol/limits.hpp"
#include "cowpi/sim/world.hpp"

#include <gtest/gtest.h>

namespace cowpi::protocol {
namespace {

client make_client(size_t target, size_t low_water) {
  crypto::deterministic_rng r(11);
  client_options o;
  o.prekey_target = target;
  o.prekey_low_water = low_water;
  return client(identity::generate("bob", r), {}, o);
}

std::vector<uint64_t> ids_of(const upload_prekeys& up) {
  std::vector<uint64_t> ids;
  for (const auto& k : up.one_time)
    ids.push_back(k.id);
  return ids;
}

TEST(prekey_upload, registration_sends_every_unbound_key_topped_up_to_the_target) {
  client c = make_client(5, 2);
  crypto::deterministic_rng r(1);
  const uint64_t t0 = 1000;
  auto first = c.plan_prekey_upload(nullptr, t0, r);
  EXPECT_TRUE(first.keys_changed);
  EXPECT_EQ(ids_of(first.up), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  ASSERT_TRUE(first.up.last_resort.has_value());

  // A second attempt (the first never got through) sends the same keys, makes none.
  auto again = c.plan_prekey_upload(nullptr, t0 + 1, r);
  EXPECT_FALSE(again.keys_changed);
  EXPECT_EQ(again.up, first.up);
}

TEST(prekey_upload, a_top_up_sends_what_the_router_lacks_and_nothing_when_it_has_enough) {
  client c = make_client(5, 2);
  crypto::deterministic_rng r(2);
  const uint64_t t0 = 1000;
  const auto reg = c.plan_prekey_upload(nullptr, t0, r).up;
  const uint64_t lr = reg.last_resort->id;

  // The router holds all five and the current LAST_RESORT key: nothing to send.
  status_result full{5, lr, 5};
  auto none = c.plan_prekey_upload(&full, t0, r);
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(none.keys_changed);

  // At the low-water mark it is still enough; below it, new keys fill the pool to the target.
  status_result low{2, lr, 5};
  EXPECT_TRUE(c.plan_prekey_upload(&low, t0, r).empty());
  status_result drained{1, lr, 5};
  auto more = c.plan_prekey_upload(&drained, t0, r);
  EXPECT_TRUE(more.keys_changed);
  EXPECT_EQ(ids_of(more.up), (std::vector<uint64_t>{6, 7, 8, 9}));
  EXPECT_FALSE(more.up.last_resort.has_value());

  // Keys made but never uploaded (the router's highest id is below them) go first and count.
  status_result behind{3, lr, 7};
  auto resend = c.plan_prekey_upload(&behind, t0, r);
  EXPECT_FALSE(resend.keys_changed);
  EXPECT_EQ(ids_of(resend.up), (std::vector<uint64_t>{8, 9}));

  // A router holding another LAST_RESORT key gets ours.
  status_result old_lr{5, lr + 7, 9};
  auto lr_only = c.plan_prekey_upload(&old_lr, t0, r);
  EXPECT_TRUE(lr_only.up.one_time.empty());
  ASSERT_TRUE(lr_only.up.last_resort.has_value());
  EXPECT_EQ(lr_only.up.last_resort->id, lr);
}

TEST(prekey_upload, a_due_last_resort_key_is_rotated_and_a_batch_never_exceeds_the_limit) {
  client c = make_client(max_prekey_batch + 10, 2);
  crypto::deterministic_rng r(3);
  const uint64_t t0 = 1000;
  auto reg = c.plan_prekey_upload(nullptr, t0, r);
  EXPECT_EQ(reg.up.one_time.size(), max_prekey_batch);
  const uint64_t lr = reg.up.last_resort->id;
  EXPECT_FALSE(c.last_resort_due(t0 + c.options().last_resort_period - 1));
  ASSERT_TRUE(c.last_resort_due(t0 + c.options().last_resort_period));

  status_result full{max_prekey_batch, lr, max_prekey_batch};
  auto rotated = c.plan_prekey_upload(&full, t0 + c.options().last_resort_period, r);
  EXPECT_TRUE(rotated.keys_changed);
  EXPECT_TRUE(rotated.up.one_time.empty());
  ASSERT_TRUE(rotated.up.last_resort.has_value());
  EXPECT_NE(rotated.up.last_resort->id, lr);
  EXPECT_EQ(c.keys().current_last_resort()->id, rotated.up.last_resort->id);
}

TEST(receipt_due, content_is_answered_after_the_rate_limit_and_receipts_alone_never) {
  sim::world w;
  w.add_user("alice");
  w.add_user("bob");
  auto conv = *w.create("alice", {"bob"});
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "one").has_value());
  w.run();
  // A message from alice: bob answers it, once R(n) = 10 s has passed since his last RECEIPT.
  w.advance_time(60);
  ASSERT_TRUE(w.user("bob").receipt_due(conv, w.now()));
  ASSERT_TRUE(w.receipt("bob", conv).has_value());
  w.run();
  ASSERT_TRUE(w.send("alice", conv, "two").has_value());
  w.run();
  EXPECT_FALSE(w.user("bob").receipt_due(conv, w.now() + 9));
  EXPECT_TRUE(w.user("bob").receipt_due(conv, w.now() + 10));
  ASSERT_TRUE(w.send("bob", conv, "three").has_value());
  w.run();
  // Bob's message acknowledged "two": nothing is due.
  EXPECT_FALSE(w.user("bob").receipt_due(conv, w.now() + 60));

  // Only alice's RECEIPT is new: it is not answered, now or a day later (answering RECEIPTs
  // would have the members answer each other's for ever).
  w.advance_time(60);
  ASSERT_TRUE(w.receipt("alice", conv).has_value());
  w.run();
  EXPECT_FALSE(w.user("bob").receipt_due(conv, w.now() + 60));
  EXPECT_FALSE(w.user("bob").receipt_due(conv, w.now() + 2 * 24 * 3600));
}

}  // namespace
}  // namespace cowpi::protocol

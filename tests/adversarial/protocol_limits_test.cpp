// SPDX-License-Identifier: Apache-2.0
// Adversarial suite, limits: each protocol constant of docs/design.md §3.3 holds at the edge and
// fails clearly past it, while configured intake limits are stricter and apply at the router only.
#include "cowpi/protocol/limits.hpp"

#include "protocol_adversary.hpp"
#include <gtest/gtest.h>

#include <cstdio>

namespace cowpi::sim::adv {
namespace {

const std::vector<std::string> trio{"alice", "bob", "carol"};

// `n` distinct well-formed members, sorted, with arbitrary keys.
member_list many_members(size_t n, crypto::rng& r, const std::string& prefix = "u") {
  member_list out;
  for (size_t k = 0; k < n; ++k) {
    char id[16];
    std::snprintf(id, sizeof id, "%05zu", k);
    member m{prefix + id, {}};
    r.fill(m.lpk);
    out.push_back(m);
  }
  return out;
}

common setup_with(member_list members, member_list ms) {
  common c;
  c.type = msg_type::setup;
  c.conv[0] = 7;
  c.author = members.front().id;
  c.aseq = 1;
  c.members = std::move(members);
  c.ms = std::move(ms);
  return c;
}

// The rule `validate` reported broken, if any.
std::optional<rule> broken(const expected<void, rule>& r) {
  if (r)
    return std::nullopt;
  return r.error();
}

expected<void, rule> check_setup(const common& c) {
  const auto ids = recipients(nullptr, c);
  recipient_check rc;
  rc.full = &ids;
  return validate(nullptr, false, c, rc, validate_at::exactly(0));
}

// A state in which `c` (an ordered message by "u00000") can be checked.
struct ordered_state {
  conv_state st;
  explicit ordered_state(const member_list& members, crypto::rng& r) {
    common s = setup_with(members, many_members(1, r, "m"));
    hash32 d{};
    st = advance(nullptr, s, 0, d);
  }
  common next(msg_type type) const {
    common c;
    c.conv = st.conv;
    c.type = type;
    c.author = st.members.front().id;
    c.aseq = 2;
    c.parent = st.next - 1;
    c.parent_hash = *st.t_at(c.parent);
    return c;
  }
  expected<void, rule> check(const common& c) const {
    const auto ids = recipients(&st, c);
    recipient_check rc;
    rc.full = &ids;
    return validate(&st, false, c, rc, validate_at::exactly(st.next));
  }
};

TEST(limits, max_members_holds_at_the_edge_and_fails_clearly_past_it) {
  crypto::deterministic_rng r(7);
  const member_list ms = many_members(1, r, "m");
  EXPECT_TRUE(check_setup(setup_with(many_members(max_members, r), ms)).has_value());
  EXPECT_EQ(broken(check_setup(setup_with(many_members(max_members + 1, r), ms))),
            rule::not_canonical);
  auto enc = enc_common(setup_with(many_members(max_members + 1, r), ms));
  ASSERT_FALSE(enc.has_value());
  EXPECT_EQ(enc.error().context, "members over limit");

  // The client refuses to build it.
  world w;
  w.add_user("alice");
  auto too_many = w.user("alice").create(many_members(max_members, r, "x"), {}, w.now(), w.rng());
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(too_many.error().code, errc::too_large);
}

TEST(limits, configured_member_limit_is_stricter_at_router_intake_only) {
  world_options o;
  o.limits.max_members = 3;
  world w(o);
  for (const auto& u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  network_tap tap(w);
  const conv_id conv = *w.create("alice", {"bob", "carol", "dave"});
  const to_router setup = std::get<to_router>(w.network().back());
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::limit);
  EXPECT_EQ(rej[0].detail, "members");
  EXPECT_EQ(w.router(conv).state(), nullptr);
  // Mirrors apply no configured limit: the same SETUP is fine for them.
  std::vector<last_resort_attachment> lr;
  for (const auto& u : {"alice", "bob", "carol", "dave"}) {
    const auto k = w.user(u).keys().current_last_resort();
    lr.push_back(last_resort_attachment{u, k->id, k->pub});
  }
  EXPECT_TRUE(std::holds_alternative<prepared>(
      w.mirror_at(0).m.prepare(prepare_of(setup.submit, 0, lr), w.now())));
}

TEST(limits, max_mirrors_holds_at_the_edge_and_fails_clearly_past_it) {
  crypto::deterministic_rng r(8);
  const member_list members = many_members(2, r);
  EXPECT_TRUE(check_setup(setup_with(members, many_members(max_mirrors, r, "m"))).has_value());
  EXPECT_EQ(broken(check_setup(setup_with(members, many_members(max_mirrors + 1, r, "m")))),
            rule::not_canonical);
  auto enc = enc_common(setup_with(members, many_members(max_mirrors + 1, r, "m")));
  ASSERT_FALSE(enc.has_value());
  EXPECT_EQ(enc.error().context, "MS over limit");
  EXPECT_EQ(broken(check_setup(setup_with(members, {}))), rule::mirror_count);
}

TEST(limits, an_id_of_64_bytes_is_accepted_and_one_of_65_is_refused) {
  EXPECT_EQ(max_id_len, 64u);
  const std::string edge(64, 'a');
  const std::string over(65, 'a');
  EXPECT_TRUE(valid_id(edge));
  EXPECT_FALSE(valid_id(over));
  crypto::deterministic_rng r(9);
  // "aaa..." sorts before "u00000".
  member_list ok = many_members(1, r);
  ok.insert(ok.begin(), member{edge, {}});
  r.fill(ok.front().lpk);  // a usable key: a zero one breaks rule bad_key
  EXPECT_TRUE(check_setup(setup_with(ok, many_members(1, r, "m"))).has_value());
  member_list bad = many_members(1, r);
  bad.insert(bad.begin(), member{over, {}});
  EXPECT_EQ(broken(check_setup(setup_with(bad, many_members(1, r, "m")))), rule::not_canonical);

  world w;
  w.add_user("alice");
  auto made = w.user("alice").create({member{over, {}}}, {}, w.now(), w.rng());
  ASSERT_FALSE(made.has_value());
  EXPECT_EQ(made.error().code, errc::invalid_argument);
}

TEST(limits, the_largest_body_is_sent_and_read_and_one_byte_more_is_refused) {
  world w;
  const conv_id conv = start_group(w, trio);
  const std::string largest(max_plaintext, 'x');
  ASSERT_TRUE(w.send("alice", conv, largest).has_value());
  EXPECT_EQ(std::get<to_router>(w.network().back()).submit.c.body_len, max_body);
  w.run();
  EXPECT_EQ(text_of(w.transcript("bob", conv).back()), largest);

  auto over = w.send("alice", conv, std::string(max_plaintext + 1, 'x'));
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, errc::too_large);

  ordered_state s(many_members(2, w.rng()), w.rng());
  common c = s.next(msg_type::message);
  c.body_len = max_body;
  EXPECT_TRUE(s.check(c).has_value());
  c.body_len = max_body + pad_block;
  EXPECT_EQ(broken(s.check(c)), rule::body_len);
  c.body_len = 40;  // no padded block at all
  EXPECT_EQ(broken(s.check(c)), rule::body_len);
  c.body_len = 40 + pad_block + 1;
  EXPECT_EQ(broken(s.check(c)), rule::body_len);
}

TEST(limits, a_body_over_max_body_is_refused_at_router_intake_as_limit) {
  world w;
  const conv_id conv = start_group(w, trio);
  ASSERT_TRUE(w.send("alice", conv, "small").has_value());
  to_router m = take_last_submit(w);
  m.submit.body->resize(max_body + pad_block);
  m.submit.c.body_len = m.submit.body->size();
  m.submit.c.body_hash = crypto::sha256(*m.submit.body);
  auto r = w.router(conv).intake(m.submit, "alice", w.now());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, rejection_kind::limit);
  EXPECT_EQ(r.error().detail, "body");
}

TEST(limits, configured_body_limit_is_stricter_at_router_intake_only) {
  world_options o;
  o.limits.max_body = 40 + pad_block;
  world w(o);
  const conv_id conv = start_group(w, trio);
  network_tap tap(w);
  ASSERT_TRUE(w.send("alice", conv, std::string(300, 'y')).has_value());
  const to_router m = std::get<to_router>(w.network().back());
  ASSERT_EQ(m.submit.c.body_len, 40 + 2 * pad_block);
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::limit);
  EXPECT_EQ(rej[0].detail, "body");
  EXPECT_EQ(router_next(w, conv), 1u);
  EXPECT_TRUE(
      std::holds_alternative<prepared>(w.mirror_at(0).m.prepare(prepare_of(m.submit, 0), w.now())));
}

TEST(limits, max_voids_holds_at_the_edge_and_fails_clearly_past_it) {
  crypto::deterministic_rng r(10);
  ordered_state s(many_members(2, r), r);
  // A long history so that every void is within (floor, parent].
  for (uint64_t i = 1; i <= max_voids + 1; ++i) {
    hash32 d{};
    d[0] = static_cast<uint8_t>(i);
    common m = s.next(msg_type::message);
    m.author = s.st.members.back().id;
    m.aseq = i;
    m.body_len = 40 + pad_block;
    s.st = advance(&s.st, m, i, d);
  }
  common c = s.next(msg_type::receipt);
  for (uint64_t v = 1; v <= max_voids; ++v)
    c.voids.push_back(v);
  EXPECT_TRUE(s.check(c).has_value());
  c.voids.push_back(max_voids + 1);
  EXPECT_EQ(broken(s.check(c)), rule::not_canonical);
  auto enc = enc_common(c);
  ASSERT_FALSE(enc.has_value());
  EXPECT_EQ(enc.error().context, "voids over limit");
}

TEST(limits, max_ops_holds_at_the_edge_and_fails_clearly_past_it) {
  crypto::deterministic_rng r(11);
  ordered_state s(many_members(2, r), r);
  auto update_adding = [&](size_t n) {
    common c = s.next(msg_type::update);
    c.ms = s.st.ms;
    c.adds = many_members(n, r, "new");
    c.members = apply_ops(s.st.members, c.adds, {});
    return c;
  };
  EXPECT_TRUE(s.check(update_adding(max_ops)).has_value());
  EXPECT_EQ(broken(s.check(update_adding(max_ops + 1))), rule::not_canonical);
  auto enc = enc_common(update_adding(max_ops + 1));
  ASSERT_FALSE(enc.has_value());
  EXPECT_EQ(enc.error().context, "adds over limit");

  world w;
  const conv_id conv = start_group(w, trio);
  auto too_many =
      w.user("alice").update(conv, many_members(max_ops + 1, w.rng(), "new"), {}, w.now(), w.rng());
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(too_many.error().code, errc::too_large);
}

TEST(limits, a_flooding_author_hits_its_pending_limit_without_delaying_anyone_else) {
  world_options o;
  o.limits.max_pending_per_author = 2;
  world w(o);
  const conv_id conv = start_group(w, trio);
  router_conv rc = w.router(conv);  // a router whose PREPAREs are slow: nothing leaves the queue
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(w.send("carol", conv, "flood").has_value());
    auto r = rc.intake(take_last_submit(w).submit, "carol", w.now());
    if (k < 2) {
      EXPECT_TRUE(r.has_value()) << k;
    } else {
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().kind, rejection_kind::limit);
      EXPECT_EQ(r.error().detail, "pending");
    }
  }
  ASSERT_TRUE(w.send("alice", conv, "not delayed").has_value());
  EXPECT_TRUE(rc.intake(take_last_submit(w).submit, "alice", w.now()).has_value());
  std::vector<prepare_decision::rejected> rejs;
  const auto jobs = rc.ready([](const std::string&) { return std::nullopt; }, rejs);
  EXPECT_TRUE(rejs.empty());
  ASSERT_EQ(jobs.size(), 2u);  // one head per author, PREPAREd side by side
  EXPECT_NE(jobs[0].author, jobs[1].author);
}

TEST(limits, a_configured_update_rate_is_enforced_at_router_intake) {
  world_options o;
  o.limits.min_update_interval = 3600;
  world w(o);
  const conv_id conv = start_group(w, trio);
  for (const auto& u : {"dave", "erin", "frank"})
    w.add_user(u);
  network_tap tap(w);
  ASSERT_TRUE(w.update("alice", conv, {"dave"}, {}).has_value());
  w.run();
  ASSERT_TRUE(w.update("alice", conv, {"erin"}, {}).has_value());
  w.run();
  const auto rej = tap.rejections_for("alice");
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].kind, rejection_kind::limit);
  EXPECT_EQ(rej[0].detail, "update_rate");
  // Another author is not held back by alice's rate.
  ASSERT_TRUE(w.update("bob", conv, {"frank"}, {}).has_value());
  w.run();
  EXPECT_TRUE(w.user("carol").find(conv)->st.is_member("frank"));
  EXPECT_FALSE(w.user("carol").find(conv)->st.is_member("erin"));
}

}  // namespace
}  // namespace cowpi::sim::adv

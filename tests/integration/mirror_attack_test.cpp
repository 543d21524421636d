// SPDX-License-Identifier: Apache-2.0
// A real mirror process under attack over its link: this test connects to a running mirror
// with the router's TLS identity (as a lying router would) and sends COMMITs a hostile member
// and a lying router can make: a SETUP naming a member with a low-order long-term key, and a
// SETUP with two LAST_RESORT attachments for one member, one all-zero. The mirror must answer
// REJECT, keep running, and keep serving the honest router and its conversations.
#include "cowpi/config/provider_config.hpp"
#include "cowpi/protocol/channel.hpp"
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/protocol/wire.hpp"

#include "client_harness.hpp"
#include "type_ids.hpp"
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>

namespace cowpi::testing {
namespace {

using namespace std::chrono_literals;
using protocol::member;

// A CAF node holding the router's TLS identity: what a lying router would hold.
struct link_client {
  explicit link_client(const config::provider_config& router) {
    cfg.load<caf::io::middleman>();
    cfg.load<caf::openssl::manager>();
    cfg.add_message_types<caf::id_block::cowpi>();
    cfg.set("middleman.app-identifiers", std::vector<std::string>{"cowpi/1"});
    cfg.openssl_certificate = router.tls.certificate.string();
    cfg.openssl_key = router.tls.key.string();
    cfg.openssl_cafile = router.tls.ca.string();
    sys = std::make_unique<caf::actor_system>(cfg);
    self = std::make_unique<caf::scoped_actor>(*sys);
  }
  ~link_client() {
    remote = nullptr;
    self.reset();
    sys.reset();
  }
  link_client(const link_client&) = delete;
  link_client& operator=(const link_client&) = delete;

  bool connect(const config::endpoint& a) {
    auto r = caf::openssl::remote_actor<caf::actor>(*sys, a.host, a.port);
    if (!r)
      return false;
    remote = *r;
    return true;
  }
  // One link request (from one sender: the mirror remembers who said HELLO); nullopt when no
  // answer comes.
  std::optional<protocol::link_response> call(const protocol::link_request& req) {
    std::optional<protocol::link_response> out;
    (*self)
        ->request(remote, 10s, actors::link_atom_v, actors::link_frame{protocol::wire::encode(req)})
        .receive(
            [&](const actors::link_frame& f) {
              auto r = protocol::wire::decode_link_response(f.bytes);
              if (r)
                out = std::move(*r);
            },
            [](const caf::error&) {});
    return out;
  }

  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<caf::scoped_actor> self;
  caf::actor remote;
};

std::string reject_reason(const std::optional<protocol::link_response>& r) {
  if (!r)
    return "<no answer>";
  const auto* j = std::get_if<protocol::link_reject>(&*r);
  return j == nullptr ? "<not a reject>" : j->reason;
}

// alice's SETUP with bob under `bob_key`: a random block for bob, and a valid amb for the
// mirror under its LAST_RESORT key `mirror_lr`, so that the mirror authenticates alice.
protocol::prepare_msg hostile_setup(const protocol::identity& alice, const member& mirror,
                                    const protocol::member_list& ms,
                                    const protocol::published_key& mirror_lr,
                                    const protocol::public_key& bob_key, crypto::rng& r) {
  protocol::common c;
  r.fill(c.conv);
  c.type = protocol::msg_type::setup;
  c.author = alice.id();
  c.aseq = 1;
  c.ms = ms;
  c.members = {alice.as_member(), member{"bob", bob_key}};
  protocol::block junk;
  r.fill(junk.x);
  r.fill(junk.nonce);
  r.fill(junk.ct);
  junk.ref = protocol::key_ref{protocol::key_kind::ratchet, 1, {}};
  protocol::prepare_msg p;
  p.block_hashes = {protocol::block_digest{"bob", protocol::block_hash(junk)}};
  const auto h_c = protocol::hash_common(c);
  EXPECT_TRUE(h_c.has_value());
  const hash32 root = protocol::blocks_root(p.block_hashes);
  protocol::channel ch;
  uint64_t counter = 0;
  const protocol::send_target t{
      protocol::key_ref{protocol::key_kind::last_resort, mirror_lr.id, mirror_lr.pub},
      mirror_lr.pub};
  auto amb = protocol::send_on_channel(
      alice, ch, counter, c.conv, mirror.id, mirror.lpk, t, crypto::secret<32>{},
      protocol::ad_amb(h_c ? *h_c : hash32{}, root, c.author, mirror.id), 1'000'000, r);
  EXPECT_TRUE(amb.has_value());
  p.amb = amb ? *amb : protocol::block{};
  p.c = std::move(c);
  return p;
}

protocol::commit_msg commit_of(const protocol::prepare_msg& p) {
  const auto h_c = protocol::hash_common(p.c);
  return protocol::commit_msg{
      0, protocol::entry_digest(h_c ? *h_c : hash32{}, protocol::blocks_root(p.block_hashes)), p};
}

bool alive(tools::provider_process& p) {
  return !p.wait(std::chrono::milliseconds(0)).has_value();
}

TEST(mirror_under_attack, hostile_commits_get_reject_and_the_mirror_process_lives_on) {
  live_deployment dep("mirror-attack");
  ASSERT_TRUE(dep.ok()) << dep.error();
  auto router_cfg = config::load_provider_config(dep.layout().config_path("router"));
  ASSERT_TRUE(router_cfg.has_value()) << router_cfg.error().message();
  const auto& mirror_peer = router_cfg->mirrors.front();
  protocol::member_list ms;
  for (const auto& m : dep.run().deployment.mirrors)
    ms.push_back(member{m.name, m.public_key});
  const member* mirror = protocol::find_member(ms, mirror_peer.name);
  ASSERT_NE(mirror, nullptr);

  link_client liar(*router_cfg);
  ASSERT_TRUE(liar.connect(mirror_peer.address));
  auto hello = liar.call(protocol::link_hello{
      router_cfg->name, dep.run().deployment.router.public_key, protocol::transport_version});
  ASSERT_TRUE(hello.has_value() && std::holds_alternative<protocol::link_hello>(*hello));
  auto keys = liar.call(protocol::topup{1});
  ASSERT_TRUE(keys.has_value());
  const auto* pk = std::get_if<protocol::mirror_prekeys>(&*keys);
  ASSERT_TRUE(pk != nullptr && pk->last_resort.has_value());

  crypto::system_rng r;
  const auto alice = protocol::identity::generate("alice", r);
  const auto bob = protocol::identity::generate("bob", r);
  const protocol::published_key bob_lr{1, bob.lpk()};
  const protocol::published_key alice_lr{1, alice.lpk()};

  // 1. Bob under a low-order key (u = 1). The mirror used to abort building his block.
  protocol::public_key order_four{};
  order_four[0] = 1;
  auto low = hostile_setup(alice, *mirror, ms, *pk->last_resort, order_four, r);
  low.last_resort = {{"alice", alice_lr.id, alice_lr.pub}, {"bob", bob_lr.id, bob_lr.pub}};
  EXPECT_EQ(reject_reason(liar.call(commit_of(low))), "invalid:bad_key");

  // 2. Bob's real key, but two attachments for him, the second all-zero.
  auto twice = hostile_setup(alice, *mirror, ms, *pk->last_resort, bob.lpk(), r);
  twice.last_resort = {{"alice", alice_lr.id, alice_lr.pub},
                       {"bob", bob_lr.id, bob_lr.pub},
                       {"bob", 2, protocol::public_key{}}};
  EXPECT_EQ(reject_reason(liar.call(commit_of(twice))), "bad_last_resort");

  // The mirror process is alive, still answers, and still serves the honest router.
  EXPECT_TRUE(alive(dep.process(mirror_peer.name)));
  auto status = liar.call(protocol::status_query{twice.c.conv});
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(std::get<protocol::status_answer>(*status).known);
  for (auto u : {"carol", "dave"})
    dep.add_user(u);
  auto conv = dep.user("carol").create({"dave"});
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_TRUE(dep.user("carol").send(*conv, "the mirrors are fine").has_value());
  ASSERT_TRUE(dep.settle());
  EXPECT_EQ(texts(dep.transcript("dave", *conv)), std::vector<std::string>{"the mirrors are fine"});
  EXPECT_TRUE(alive(dep.process(mirror_peer.name)));
}

}  // namespace
}  // namespace cowpi::testing

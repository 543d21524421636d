// SPDX-License-Identifier: Apache-2.0
// cowpi-sim: alice, bob and carol with a router and two mirrors in one process; a
// conversation, identical transcripts, then a forking router caught in the act.
#include "cowpi/protocol/encoding.hpp"
#include "cowpi/sim/world.hpp"

#include <CLI/CLI.hpp>
#include <sodium.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace cowpi::sim;  // NOLINT(google-build-using-namespace): a demo main

std::string text(const accepted_entry& e) {
  return std::string(e.plaintext.begin(), e.plaintext.end());
}

std::string describe(const accepted_entry& e) {
  std::string s;
  switch (e.type) {
    case msg_type::setup: {
      s = e.author + " created the conversation with";
      for (const auto& m : e.members)
        if (m.id != e.author)
          s += " " + m.id;
      break;
    }
    case msg_type::message:
      s = e.author + ": " + (e.is_void ? "<could not read>" : "\"" + text(e) + "\"");
      if (e.parent && e.index - *e.parent > 1)
        s += "  (written before #" + std::to_string(*e.parent + 1) + " was seen)";
      break;
    case msg_type::receipt: {
      s = e.author + " read up to #" + std::to_string(*e.parent);
      for (auto v : e.voids)
        s += " (could not read #" + std::to_string(v) + ")";
      break;
    }
    case msg_type::update:
      s = e.author;
      for (const auto& a : e.adds)
        s += " added " + a.id;
      for (const auto& r : e.removes)
        s += (r == e.author ? " left" : " removed " + r);
      break;
  }
  return s;
}

void print_transcript(world& w, const std::string& who, const conv_id& conv) {
  std::printf("\n%s's transcript:\n", who.c_str());
  for (const auto& e : w.transcript(who, conv))
    std::printf("  #%-3llu T=%.16s  %s\n", static_cast<unsigned long long>(e.index),
                cowpi::to_hex(e.t).c_str(), describe(e).c_str());
}

// Every pair of members agrees on T at every index both accepted.
bool identical(world& w, const conv_id& conv, const std::vector<std::string>& users) {
  std::map<uint64_t, std::pair<std::string, cowpi::hash32>> seen;
  bool same = true;
  for (const auto& u : users) {
    for (const auto& e : w.transcript(u, conv)) {
      auto [it, fresh] = seen.emplace(e.index, std::make_pair(u, e.t));
      if (!fresh && it->second.second != e.t) {
        std::printf("  DIFFER at #%llu: %s and %s\n", static_cast<unsigned long long>(e.index),
                    it->second.first.c_str(), u.c_str());
        same = false;
      }
    }
  }
  return same;
}

void print_alarms(world& w) {
  for (const auto& [who, alarms] : w.alarms())
    for (const auto& a : alarms)
      std::printf("  ALARM at %s: %s at #%llu, blaming %s: %s%s\n", who.c_str(),
                  std::string(to_string(a.kind)).c_str(), static_cast<unsigned long long>(a.index),
                  a.party.c_str(), a.evidence.c_str(), a.halted ? " (conversation halted)" : "");
}

void must(const cowpi::expected<void>& r) {
  if (!r) {
    std::fprintf(stderr, "error: %s\n", r.error().message().c_str());
    std::exit(1);
  }
}

int honest_run(uint64_t seed) {
  std::printf("== An honest deployment: router + mirror-a + mirror-b, seed %llu\n",
              static_cast<unsigned long long>(seed));
  world_options o;
  o.seed = seed;
  world w(o);
  for (auto u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  auto conv = w.create("alice", {"bob", "carol"});
  if (!conv)
    return std::fprintf(stderr, "error: %s\n", conv.error().message().c_str()), 1;
  w.run();
  std::printf("safety number (compare out of band):\n%s\n",
              cowpi::protocol::safety_number(w.user("alice").find(*conv)->st.members).c_str());
  must(w.send("alice", *conv, "Are you going to the protest?"));
  w.run();
  must(w.send("bob", *conv, "Yes, at noon."));
  w.run();
  w.advance_time(60);
  w.receipts_due();
  w.run();
  std::printf("\ncarol goes offline; alice and bob keep talking\n");
  w.set_online("carol", false);
  must(w.send("alice", *conv, "Have you had lunch yet?"));
  must(w.send("bob", *conv, "No... Yes."));
  w.run();
  std::printf("carol comes back and catches up\n");
  w.set_online("carol", true);
  w.run();
  std::printf("bob adds dave; alice removes carol\n");
  must(w.update("bob", *conv, {"dave"}, {}));
  w.run();
  must(w.send("dave", *conv, "Hi all, thanks for adding me."));
  w.run();
  must(w.update("alice", *conv, {}, {"carol"}));
  w.run();
  must(w.send("alice", *conv, "Carol has left."));
  w.run();
  w.advance_time(60);
  w.receipts_due();
  w.run();
  const std::vector<std::string> users = {"alice", "bob", "carol", "dave"};
  for (const auto& u : users)
    print_transcript(w, u, *conv);
  const bool same = identical(w, *conv, users);
  std::printf("\ntranscripts identical at every common index: %s\n", same ? "yes" : "NO");
  print_alarms(w);
  return same && w.alarms().empty() ? 0 : 1;
}

int forking_run(uint64_t seed, bool all_lie) {
  std::printf("\n== A forking router, %s\n",
              all_lie ? "with BOTH mirrors lying" : "with mirror-a lying and mirror-b honest");
  world_options o;
  o.seed = seed;
  world w(o);
  for (auto u : {"alice", "bob", "carol", "dave"})
    w.add_user(u);
  w.mirror_at(0).lies = true;
  w.mirror_at(1).lies = all_lie;
  auto conv = *w.create("alice", {"bob", "carol", "dave"});
  w.run();
  must(w.send("alice", conv, "Let's go to the protest if 3 people want to?"));
  w.run();
  // The router orders alice's message for alice and bob, and carol's at the
  // same index for carol and dave.
  router_conv snapshot = w.router(conv);
  w.branch_mirrors(1);
  must(w.send("carol", conv, "I am in."));
  to_router carols = std::get<to_router>(w.network().back());
  w.network().pop_back();
  must(w.send("alice", conv, "I want to go."));
  w.set_interceptor([](in_flight& m) {
    if (auto* e = std::get_if<to_client_envelope>(&m))
      return e->user == "alice" || e->user == "bob";
    return true;
  });
  w.run();
  w.set_interceptor(nullptr);
  if (auto forked = w.fork_order(snapshot, carols, 1)) {
    w.push_envelope("carol", *forked);
    w.push_envelope("dave", *forked);
  }
  w.run();
  if (all_lie) {
    // Every mirror lies, so each half accepts its own branch... until the
    // router replays alice's message into carol's branch: every mirror
    // attests it, and validate catches the replayed aseq.
    auto e = w.log(conv).at(1).e;
    const auto& last = w.transcript("dave", conv).back();
    e.index = last.index + 1;
    e.t_prev = last.t;
    e.t = cowpi::protocol::transcript_hash(conv, e.index, e.t_prev, e.d);
    w.branch_mirrors(2);
    auto answers = w.commit_on_mirrors(e, 1);
    w.push_envelope("dave", world::stored_entry{e, answers});
    w.run();
  }
  for (const auto& u : {"alice", "bob", "carol", "dave"})
    print_transcript(w, u, conv);
  std::printf("\n");
  print_alarms(w);
  const bool caught = !w.alarms().empty();
  std::printf("fork caught: %s\n", caught ? "yes" : "NO");
  return caught ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cowpi-sim: a whole Mobile CoWPI deployment (router, two mirrors, four users) in one\n"
      "process, on the real protocol state machines. Runs an honest conversation and shows\n"
      "every member's transcript identical, then a router that forks the conversation and\n"
      "shows the clients catch it."};
  uint64_t seed = 1;
  bool honest_only = false;
  app.add_option("--seed", seed, "seed of the deterministic randomness")->capture_default_str();
  app.add_flag("--honest-only", honest_only, "run only the honest deployment");
  CLI11_PARSE(app, argc, argv);
  if (sodium_init() < 0)
    return 1;
  int rc = honest_run(seed);
  if (!honest_only) {
    rc |= forking_run(seed, false);
    rc |= forking_run(seed, true);
  }
  return rc;
}

// SPDX-License-Identifier: Apache-2.0
// An in-memory client<->router transport pair for the session tests: identities from a seeded
// rng, a tiny directory, chunked delivery and event filters. Header-only, free of GoogleTest.
#pragma once

#include "cowpi/protocol/session.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace cowpi::protocol::session_testing {

/// Returns the events of type `T` in `ev`, in order.
template <class T, class Event>
std::vector<T> all_of(const std::vector<Event>& ev) {
  std::vector<T> out;
  for (const auto& e : ev) {
    if (const T* t = std::get_if<T>(&e)) {
      out.push_back(*t);
    }
  }
  return out;
}

/// Returns the first event of type `T` in `ev`, or nullptr.
template <class T, class Event>
const T* first_of(const std::vector<Event>& ev) {
  for (const auto& e : ev) {
    if (const T* t = std::get_if<T>(&e)) {
      return t;
    }
  }
  return nullptr;
}

/// Returns how many events of type `T` `ev` holds.
template <class T, class Event>
size_t count_of(const std::vector<Event>& ev) {
  return static_cast<size_t>(std::count_if(
      ev.begin(), ev.end(), [](const Event& e) { return std::holds_alternative<T>(e); }));
}

/// Returns the bytes of every `send_frame` in `ev`, concatenated in order.
template <class Event>
bytes sent_bytes(const std::vector<Event>& ev) {
  bytes out;
  for (const auto& e : ev) {
    if (const auto* s = std::get_if<send_frame>(&e)) {
      out.insert(out.end(), s->data.begin(), s->data.end());
    }
  }
  return out;
}

/// Appends `more` to `ev`.
template <class Event>
void append(std::vector<Event>& ev, std::vector<Event>&& more) {
  for (auto& e : more) {
    ev.push_back(std::move(e));
  }
}

/// Feeds `in` to `s` in chunks of `chunk` bytes and returns every event.
template <class Session>
auto feed_chunked(Session& s, byte_view in, size_t chunk = std::numeric_limits<size_t>::max()) {
  decltype(s.feed(in)) out;
  while (!in.empty()) {
    const size_t n = std::min(chunk, in.size());
    append(out, s.feed(in.first(n)));
    in = in.subspan(n);
  }
  return out;
}

/// The directory a router consults (docs/design.md §2 LOGIN and REGISTER rules).
struct directory {
  std::map<std::string, public_key> users;
  std::vector<std::string> provider_ids;

  lookup_result answer(const need_lookup& q) const {
    auto it = users.find(q.id);
    if (q.mode == hello_mode::login) {
      return it != users.end() && it->second == q.lpk ? lookup_result::ok
                                                      : lookup_result::unknown_user;
    }
    const bool provider =
        std::find(provider_ids.begin(), provider_ids.end(), q.id) != provider_ids.end();
    return it == users.end() && !provider ? lookup_result::ok : lookup_result::id_taken;
  }
};

/// A router identity, a user identity, and a session for each, wired in memory. The client
/// takes id_R and lpk_R from `router_identity`, like a deployment file.
struct session_pair {
  explicit session_pair(uint64_t seed = 1, size_t max_frame = max_frame_protocol,
                        std::string user_id = "alice")
      : rng(seed),
        router_identity(identity::generate("router", rng)),
        user(identity::generate(std::move(user_id), rng)),
        router(router_identity, max_frame),
        client(user, router_identity.id(), router_identity.lpk(), max_frame) {
    dir.provider_ids = {"router", "mirror-a", "mirror-b"};
  }

  crypto::deterministic_rng rng;
  identity router_identity;
  identity user;
  router_session router;
  client_session client;
  directory dir;

  /// Registers the user in the directory (as a finished REGISTER would have).
  void register_user() { dir.users[user.id()] = user.lpk(); }

  /// Bytes client -> router in chunks; answers a `need_lookup` from the directory.
  std::vector<router_event> to_router(byte_view b,
                                      size_t chunk = std::numeric_limits<size_t>::max()) {
    auto ev = feed_chunked(router, b, chunk);
    if (const auto* q = first_of<need_lookup>(ev)) {
      auto more = router.resolve_lookup(dir.answer(*q), rng);
      if (more.has_value()) {
        append(ev, std::move(more).value());
      }
    }
    return ev;
  }

  /// Bytes router -> client in chunks.
  std::vector<client_event> to_client(byte_view b,
                                      size_t chunk = std::numeric_limits<size_t>::max()) {
    return feed_chunked(client, b, chunk);
  }

  /// HELLO, lookup and HELLO_ACK; returns the client's events (session_ready on success).
  std::vector<client_event> handshake(hello_mode mode,
                                      size_t chunk = std::numeric_limits<size_t>::max()) {
    auto hello_bytes = client.start(mode, rng);
    if (!hello_bytes.has_value()) {
      return {};
    }
    auto rev = to_router(*hello_bytes, chunk);
    return to_client(sent_bytes(rev), chunk);
  }

  /// Seals `f` at the client and delivers it; returns the router's events.
  std::vector<router_event> request(const client_frame& f,
                                    size_t chunk = std::numeric_limits<size_t>::max()) {
    auto sealed = client.seal(f);
    if (!sealed.has_value()) {
      return {};
    }
    return to_router(*sealed, chunk);
  }

  /// Seals `f` at the router and delivers it; returns the client's events.
  std::vector<client_event> push(const router_frame& f,
                                 size_t chunk = std::numeric_limits<size_t>::max()) {
    auto sealed = router.seal(f);
    if (!sealed.has_value()) {
      return {};
    }
    return to_client(*sealed, chunk);
  }

  /// A full LOGIN (registering the user first) or REGISTER plus a first `ping`; returns
  /// true iff both sides are established.
  bool establish(hello_mode mode = hello_mode::login) {
    if (mode == hello_mode::login) {
      register_user();
    }
    auto cev = handshake(mode);
    if (first_of<session_ready>(cev) == nullptr) {
      return false;
    }
    auto rev = request(client_frame{1, ping{}});
    if (first_of<authenticated>(rev) == nullptr) {
      return false;
    }
    if (mode == hello_mode::register_user) {
      register_user();
    }
    return router.is_established() && client.is_ready();
  }
};

}  // namespace cowpi::protocol::session_testing

// SPDX-License-Identifier: Apache-2.0
// The cowpi subcommands over the client runtime's blocking API.
#include "commands.hpp"

#include "cowpi/config/common.hpp"

#include "render.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

namespace cowpi::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// -- the user's folder --------------------------------------------------------------------

fs::path deployment_path(const global_options& g) {
  return g.home / "deployment.toml";
}
fs::path store_path(const global_options& g) {
  return g.home / "store";
}
fs::path key_path(const global_options& g) {
  return g.home / "storage.key";
}

unexpected<cli_error> failure(std::string message, std::string hint = {}) {
  return unexpected<cli_error>{cli_error{std::move(message), std::move(hint)}};
}

std::string router_hint(const global_options& g) {
  return "is the router running? check the deployment file (" + deployment_path(g).string() + ")"
         + (g.proxy ? " and the --proxy address" : " / --proxy");
}

// The user-facing form of a runtime error while `doing` something.
cli_error explain(const error& e, const std::string& doing, const global_options& g) {
  cli_error out{doing + ": " + e.message(), {}};
  switch (e.code) {
    case errc::unavailable:
      out.hint = router_hint(g);
      break;
    case errc::timeout:
      out.hint =
          "the router did not answer within --timeout; " + router_hint(g) + ", or raise --timeout";
      break;
    case errc::not_found:
      if (e.context.find("does not know this user") != std::string::npos)
        out.hint = "run `cowpi register` first";
      break;
    case errc::already_exists:
      out.hint = "the id is taken: choose another id (`cowpi init` in a new --home)";
      break;
    case errc::storage:
    case errc::corruption:
      out.hint = "is another cowpi (a chat?) using " + g.home.string()
                 + "? check that the folder is readable and writable";
      break;
    case errc::decrypt_failed:
      out.hint = "the storage key (" + key_path(g).string() + ") does not open this store";
      break;
    case errc::config:
      out.hint = "check " + deployment_path(g).string();
      break;
    case errc::rejected:
      if (e.context.find("NOT_MEMBER") != std::string::npos) {
        out.message = doing + ": you are not a member of this conversation any more";
        out.hint = "`cowpi sync` shows who removed you; ask a member to add you again";
      } else {
        out.hint = "the router refused the request; see the reason above";
      }
      break;
    default:
      break;
  }
  return out;
}

// -- a session: one runtime, the events it reported ---------------------------------------

// What the runtime reports, kept for the command's output (and printed live in chat mode).
struct event_sink {
  std::mutex mu;
  std::vector<actors::client_event> events;
  std::function<void(const actors::client_event&)> live;
};

class session {
public:
  ~session() {
    if (rt_)
      rt_->close();
    rt_.reset();
    sys_.reset();
  }

  static expected<std::unique_ptr<session>, cli_error> open(const global_options& g, bool online) {
    std::error_code ec;
    if (!fs::exists(deployment_path(g), ec) || !fs::is_directory(store_path(g), ec)) {
      return failure("no cowpi store at " + g.home.string(),
                     "run `cowpi init --deployment FILE --id ID` first (or point --home / "
                     "$COWPI_HOME at an existing one)");
    }
    auto dep = config::load_deployment_file(deployment_path(g));
    if (!dep)
      return failure("cannot read the deployment file: " + dep.error().message(),
                     "fix or replace " + deployment_path(g).string());
    auto s = std::unique_ptr<session>(new session());
    s->g_ = g;
    s->sys_ = std::make_unique<actors::client_system>(actors::client_system_options{2});
    auto o = options(g, *dep);
    o.on_event = [sink = s->sink_](const actors::client_event& ev) {
      std::lock_guard<std::mutex> lock(sink->mu);
      sink->events.push_back(ev);
      if (sink->live)
        sink->live(ev);
    };
    auto rt = actors::client_runtime::load(*s->sys_, std::move(o));
    if (!rt) {
      if (rt.error().code == errc::not_found)
        return failure("no cowpi store at " + g.home.string(),
                       "run `cowpi init --deployment FILE --id ID` first");
      return unexpected<cli_error>{explain(rt.error(), "cannot open the store", g)};
    }
    s->rt_ = std::move(*rt);
    if (online) {
      auto c = s->rt_->connect();
      if (!c)
        return unexpected<cli_error>{explain(c.error(), "cannot reach the router", g)};
    }
    return s;
  }

  static actors::client_runtime_options options(const global_options& g,
                                                const config::deployment_file& dep) {
    actors::client_runtime_options o;
    o.deployment = dep;
    o.store_path = store_path(g);
    o.key = storage::key_file{key_path(g)};
    o.connect_timeout = g.timeout;
    o.request_timeout = g.timeout;
    o.proxy = g.proxy;
    o.reconnect_min = std::chrono::milliseconds(200);
    o.reconnect_max = std::chrono::seconds(5);
    o.quiet_period = std::chrono::milliseconds(300);
    o.housekeeping_interval = std::chrono::milliseconds(250);
    return o;
  }

  actors::client_runtime& rt() { return *rt_; }
  const global_options& globals() const { return g_; }

  void set_live(std::function<void(const actors::client_event&)> f) {
    std::lock_guard<std::mutex> lock(sink_->mu);
    sink_->live = std::move(f);
  }

  std::vector<actors::client_event> take_events() {
    std::lock_guard<std::mutex> lock(sink_->mu);
    return std::exchange(sink_->events, {});
  }

  // Syncs for up to `bound` so that acknowledgements and due receipts go out.
  expected<actors::client_sync_report, cli_error> sync(std::chrono::milliseconds bound) {
    auto r = rt_->sync(bound);
    if (!r)
      return unexpected<cli_error>{explain(r.error(), "sync failed", g_)};
    return *r;
  }

  // Resolves a conversation given as its hex id or a unique prefix of it.
  expected<actors::conversation_info, cli_error> find_conv(const std::string& text) {
    auto list = rt_->conversations();
    if (!list)
      return unexpected<cli_error>{explain(list.error(), "cannot list conversations", g_)};
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::vector<actors::conversation_info> hits;
    for (const auto& c : *list) {
      const std::string hex = actors::conv_to_hex(c.conv);
      if (hex == lower)
        return c;
      if (!lower.empty() && hex.rfind(lower, 0) == 0)
        hits.push_back(c);
    }
    if (hits.size() == 1)
      return hits.front();
    if (hits.size() > 1)
      return failure("conversation prefix '" + text + "' is ambiguous",
                     "give more hex digits (see `cowpi conversations`)");
    return failure("no conversation '" + text + "' in this store",
                   "list yours with `cowpi conversations`; someone must add you first");
  }

  // Fails unless we may still send in `c`.
  expected<void, cli_error> check_member(const actors::conversation_info& c) {
    if (c.status == actors::conversation_status::removed)
      return failure("you are not a member of conversation " + actors::conv_to_hex(c.conv)
                         + " any more (removed or left)",
                     "ask a member to add you again (`cowpi add CONV ID`)");
    if (c.status == actors::conversation_status::halted)
      return failure(
          "conversation " + actors::conv_to_hex(c.conv) + " halted at #"
              + std::to_string(c.halt_index) + " after an alarm",
          "see `cowpi log " + actors::conv_to_hex(c.conv) + "`; nothing more can be sent there");
    return {};
  }

  // Fails naming the ids the router does not know.
  expected<void, cli_error> check_registered(const std::vector<std::string>& ids) {
    auto l = rt_->lookup(ids);
    if (!l)
      return unexpected<cli_error>{explain(l.error(), "cannot look the users up", g_)};
    if (!l->unknown.empty()) {
      std::string names;
      for (const auto& u : l->unknown)
        names += (names.empty() ? "" : ", ") + u;
      return failure("unknown user" + std::string(l->unknown.size() > 1 ? "s" : "") + ": " + names
                         + " (not registered with this router)",
                     "ask them to run `cowpi register` (or check the spelling)");
    }
    return {};
  }

private:
  session() = default;

  global_options g_;
  std::shared_ptr<event_sink> sink_ = std::make_shared<event_sink>();
  // Declared before the runtime: destroyed after it.
  std::unique_ptr<actors::client_system> sys_;
  std::unique_ptr<actors::client_runtime> rt_;
};

// The events of a command as JSON: the entries accepted while it ran (ours included), alarms,
// and other notices (refused messages, re-created conversations, storage failures).
void add_events(json& out, const std::vector<actors::client_event>& events) {
  json entries = json::array();
  json alarms = json::array();
  json notices = json::array();
  for (const auto& ev : events) {
    if (const auto* e = std::get_if<actors::entry_event>(&ev)) {
      entries.push_back(entry_json(e->entry));
    } else if (const auto* a = std::get_if<actors::alarm_event>(&ev)) {
      alarms.push_back(alarm_json(a->alarm));
    } else if (const auto* d = std::get_if<actors::dropped_event>(&ev)) {
      notices.push_back({{"kind", "dropped"},
                         {"conv", actors::conv_to_hex(d->conv)},
                         {"aseq", d->aseq},
                         {"text", std::string(d->plaintext.begin(), d->plaintext.end())},
                         {"why", std::string(protocol::to_string(d->why.kind))}});
    } else if (const auto* r = std::get_if<actors::recreated_event>(&ev)) {
      notices.push_back({{"kind", "recreated"},
                         {"old_conv", actors::conv_to_hex(r->old_conv)},
                         {"new_conv", actors::conv_to_hex(r->new_conv)}});
    } else if (const auto* h = std::get_if<actors::history_expired_event>(&ev)) {
      notices.push_back({{"kind", "history_expired"}, {"detail", h->detail}});
    } else if (const auto* f = std::get_if<actors::storage_failure_event>(&ev)) {
      notices.push_back({{"kind", "storage_failure"}, {"detail", f->cause.message()}});
    }
  }
  out["entries"] = entries;
  out["alarms"] = alarms;
  out["notices"] = notices;
}

json base(const std::string& command) {
  return {{"ok", true}, {"command", command}};
}

// The echo of our message `aseq` in `conv` among `events`, if it came.
const protocol::accepted_entry* find_echo(const std::vector<actors::client_event>& events,
                                          const protocol::conv_id& conv, uint64_t aseq) {
  for (const auto& ev : events)
    if (const auto* e = std::get_if<actors::entry_event>(&ev))
      if (e->entry.own && e->entry.conv == conv && e->entry.aseq == aseq)
        return &e->entry;
  return nullptr;
}

std::chrono::milliseconds brief(const global_options& g) {
  return std::min<std::chrono::milliseconds>(g.timeout, std::chrono::seconds(3));
}

}  // namespace

// -- the commands -------------------------------------------------------------------------

expected<actors::socks5_proxy, cli_error> parse_proxy(const std::string& text) {
  std::string_view t = text;
  constexpr std::string_view scheme = "socks5://";
  if (t.rfind(scheme, 0) == 0)
    t.remove_prefix(scheme.size());
  else if (t.find("://") != std::string_view::npos)
    return failure("--proxy '" + text + "': only socks5:// proxies are supported",
                   "e.g. --proxy socks5://127.0.0.1:9050 (Tor)");
  if (!t.empty() && t.back() == '/')
    t.remove_suffix(1);
  auto e = config::parse_endpoint(t);
  if (!e || e->port == 0)
    return failure("--proxy '" + text + "' is not socks5://HOST:PORT",
                   "e.g. --proxy socks5://127.0.0.1:9050 (Tor)");
  return actors::socks5_proxy{e->host, e->port};
}

result cmd_init(const global_options& g, const fs::path& deployment, const std::string& id) {
  auto dep = config::load_deployment_file(deployment);
  if (!dep)
    return failure("cannot read the deployment file: " + dep.error().message(),
                   "pass the deployment.toml your provider gave you (a local one: "
                   "`cowpi-local up` prints its path)");
  std::error_code ec;
  if (fs::exists(deployment_path(g), ec) || fs::exists(store_path(g), ec))
    return failure(g.home.string() + " already holds a cowpi user",
                   "use it as it is, or pick another --home for a new user");
  const bool made_home = !fs::exists(g.home, ec);
  fs::create_directories(g.home, ec);
  if (ec)
    return failure("cannot create " + g.home.string() + ": " + ec.message(),
                   "choose a writable --home");
  fs::permissions(g.home, fs::perms::owner_all, fs::perm_options::replace, ec);
  auto undo = [&] {
    std::error_code ignore;
    if (made_home)
      fs::remove_all(g.home, ignore);
    else
      fs::remove_all(store_path(g), ignore);
  };
  expected<json, cli_error> out = base("init");
  {
    actors::client_system sys(actors::client_system_options{1});
    auto rt = actors::client_runtime::init(sys, id, session::options(g, *dep));
    if (!rt) {
      cli_error e = explain(rt.error(), "cannot create the user", g);
      if (rt.error().code == errc::invalid_argument)
        e.hint = "an id is 1-64 bytes of UTF-8 without controls or invisible characters";
      undo();
      return unexpected<cli_error>{std::move(e)};
    }
    (*out)["id"] = (*rt)->id();
    (*out)["lpk"] = to_hex((*rt)->lpk());
    (*rt)->close();
  }
  fs::copy_file(deployment, deployment_path(g), fs::copy_options::overwrite_existing, ec);
  if (ec) {
    undo();
    return failure("cannot copy the deployment file into " + g.home.string() + ": " + ec.message());
  }
  (*out)["home"] = g.home.string();
  (*out)["router"] = config::to_string(dep->router.address);
  json mirrors = json::array();
  for (const auto& m : dep->mirrors)
    mirrors.push_back(m.name);
  (*out)["mirrors"] = mirrors;
  return out;
}

result cmd_register(const global_options& g) {
  COWPI_TRY(auto s, session::open(g, false));
  auto r = s->rt().register_user();
  if (!r)
    return unexpected<cli_error>{explain(r.error(), "registration failed", g)};
  json out = base("register");
  out["id"] = s->rt().id();
  out["registered"] = true;
  return out;
}

result cmd_create(const global_options& g, std::vector<std::string> ids,
                  protocol::block_mode mode) {
  COWPI_TRY(auto s, session::open(g, true));
  COWPI_TRY_VOID(s->check_registered(ids));
  auto conv = s->rt().create(ids, mode);
  if (!conv)
    return unexpected<cli_error>{explain(conv.error(), "cannot create the conversation", g)};
  COWPI_TRY_VOID(s->sync(brief(g)));
  COWPI_TRY(auto info, s->find_conv(actors::conv_to_hex(*conv)));
  json out = base("create");
  out["id"] = s->rt().id();
  out["conv"] = actors::conv_to_hex(*conv);
  out["members"] = member_ids(info.members);
  out["safety_number"] = info.safety_number;
  out["mode"] = std::string(protocol::to_string(info.mode));
  add_events(out, s->take_events());
  return out;
}

result cmd_send(const global_options& g, const std::string& conv, const std::string& text) {
  COWPI_TRY(auto s, session::open(g, true));
  COWPI_TRY(auto info, s->find_conv(conv));
  COWPI_TRY_VOID(s->check_member(info));
  auto sent = s->rt().send(info.conv, text);
  if (!sent)
    return unexpected<cli_error>{explain(sent.error(), "cannot send", g)};
  COWPI_TRY(auto report, s->sync(g.timeout));
  const auto events = s->take_events();
  const auto* echo = find_echo(events, info.conv, sent->aseq);
  json out = base("send");
  out["id"] = s->rt().id();
  out["conv"] = actors::conv_to_hex(info.conv);
  out["aseq"] = sent->aseq;
  out["queued"] = sent->queued;
  out["ordered"] = echo != nullptr;
  out["index"] = echo != nullptr ? json(echo->index) : json(nullptr);
  out["outbox"] = report.outbox;
  add_events(out, events);
  return out;
}

result cmd_update(const global_options& g, const std::string& op, const std::string& conv,
                  std::vector<std::string> ids) {
  COWPI_TRY(auto s, session::open(g, true));
  COWPI_TRY(auto info, s->find_conv(conv));
  COWPI_TRY_VOID(s->check_member(info));
  expected<actors::sent_message> sent = fail(errc::internal);
  if (op == "add") {
    COWPI_TRY_VOID(s->check_registered(ids));
    sent = s->rt().add(info.conv, ids);
  } else if (op == "remove") {
    for (const auto& id : ids) {
      const bool member = std::any_of(info.members.begin(), info.members.end(),
                                      [&](const protocol::member& m) { return m.id == id; });
      if (!member)
        return failure(id + " is not a member of " + actors::conv_to_hex(info.conv),
                       "see the members with `cowpi conversations`");
    }
    sent = s->rt().remove(info.conv, ids);
  } else {
    sent = s->rt().leave(info.conv);
  }
  if (!sent)
    return unexpected<cli_error>{explain(sent.error(), "cannot " + op, g)};
  COWPI_TRY(auto report, s->sync(g.timeout));
  const auto events = s->take_events();
  const auto* echo = find_echo(events, info.conv, sent->aseq);
  json out = base(op);
  out["id"] = s->rt().id();
  out["conv"] = actors::conv_to_hex(info.conv);
  out["aseq"] = sent->aseq;
  out["ordered"] = echo != nullptr;
  out["index"] = echo != nullptr ? json(echo->index) : json(nullptr);
  out["members"] = echo != nullptr ? member_ids(echo->members) : json(nullptr);
  out["outbox"] = report.outbox;
  add_events(out, events);
  return out;
}

result cmd_sync(const global_options& g) {
  COWPI_TRY(auto s, session::open(g, true));
  COWPI_TRY(auto report, s->sync(g.timeout));
  json out = base("sync");
  out["id"] = s->rt().id();
  out["idle"] = report.idle;
  out["outbox"] = report.outbox;
  add_events(out, s->take_events());
  // Everything accepted during the command: entries also arrive while it connects.
  out["accepted"] = out["entries"].size();
  return out;
}

result cmd_log(const global_options& g, const std::string& conv) {
  COWPI_TRY(auto s, session::open(g, false));
  COWPI_TRY(auto info, s->find_conv(conv));
  auto t = s->rt().transcript(info.conv);
  if (!t)
    return unexpected<cli_error>{explain(t.error(), "cannot read the transcript", g)};
  json out = base("log");
  out["id"] = s->rt().id();
  out["conv"] = actors::conv_to_hex(info.conv);
  out["status"] = std::string(actors::to_string(info.status));
  out["members"] = member_ids(info.members);
  json lines = json::array();
  for (const auto& l : *t)
    lines.push_back(line_json(l));
  out["entries"] = lines;
  return out;
}

result cmd_conversations(const global_options& g) {
  COWPI_TRY(auto s, session::open(g, false));
  auto list = s->rt().conversations();
  if (!list)
    return unexpected<cli_error>{explain(list.error(), "cannot list conversations", g)};
  json out = base("conversations");
  out["id"] = s->rt().id();
  json convs = json::array();
  for (const auto& c : *list)
    convs.push_back(conversation_json(c));
  out["conversations"] = convs;
  return out;
}

// -- chat ---------------------------------------------------------------------------------

int cmd_chat(const global_options& g, const std::string& conv) {
  std::mutex out_mu;
  auto say = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(out_mu);
    std::cout << line << std::endl;
  };
  auto fail_with = [&](const cli_error& e) {
    if (g.json)
      say(json{{"ok", false}, {"error", e.message}, {"hint", e.hint}}.dump());
    else
      std::cerr << "cowpi: " << e.message << (e.hint.empty() ? "" : "\n  hint: " + e.hint)
                << std::endl;
    return 1;
  };
  auto opened = session::open(g, false);
  if (!opened)
    return fail_with(opened.error());
  auto& s = **opened;
  auto found = s.find_conv(conv);
  if (!found)
    return fail_with(found.error());
  const protocol::conv_id cid = found->conv;
  const std::string self = s.rt().id();
  s.set_live([&, cid, self](const actors::client_event& ev) {
    if (const auto* e = std::get_if<actors::entry_event>(&ev)) {
      if (e->entry.conv != cid || e->entry.type == protocol::msg_type::receipt)
        return;
      const json j = entry_json(e->entry);
      say(g.json ? json{{"event", "entry"}, {"entry", j}}.dump() : entry_text(j, self));
    } else if (const auto* a = std::get_if<actors::alarm_event>(&ev)) {
      const json j = alarm_json(a->alarm);
      say(g.json ? json{{"event", "alarm"}, {"alarm", j}}.dump() : "!! " + alarm_text(j));
    } else if (const auto* c = std::get_if<actors::connection_event>(&ev)) {
      const std::string state(actors::to_string(c->state));
      if (g.json) {
        say(json{{"event", "connection"}, {"state", state}, {"detail", c->detail}}.dump());
      } else if (c->state == actors::client_connection_state::waiting) {
        say("-- connection lost (" + c->detail + "); retrying in "
            + std::to_string(c->retry_in.count()) + " ms");
      } else if (c->state == actors::client_connection_state::online) {
        say("-- online");
      } else if (c->state == actors::client_connection_state::failed) {
        say("-- connection failed: " + c->detail);
      }
    } else if (const auto* d = std::get_if<actors::dropped_event>(&ev)) {
      if (d->conv != cid)
        return;
      say(g.json ? json{{"event", "dropped"},
                        {"aseq", d->aseq},
                        {"why", std::string(protocol::to_string(d->why.kind))}}
                       .dump()
                 : "!! the router refused your message (aseq " + std::to_string(d->aseq)
                       + "): " + std::string(protocol::to_string(d->why.kind)));
    }
  });
  if (auto c = s.rt().connect(); !c)
    return fail_with(explain(c.error(), "cannot reach the router", g));
  if (auto ok = s.check_member(*found); !ok)
    return fail_with(ok.error());
  if (!g.json) {
    json others = json::array();
    for (const auto& m : found->members)
      if (m.id != self)
        others.push_back(m.id);
    say("chat in " + actors::conv_to_hex(cid) + " as " + self + " with "
        + (others.empty() ? std::string("nobody else") : join(others)));
    if (auto t = s.rt().transcript(cid); t) {
      const size_t from = t->size() > 10 ? t->size() - 10 : 0;
      for (size_t k = from; k < t->size(); ++k)
        if ((*t)[k].entry.type != protocol::msg_type::receipt)
          say(line_text(line_json((*t)[k]), self));
    }
    say("-- type a line and press enter to send it; /quit or Ctrl-D leaves");
  } else {
    say(json{{"event", "ready"}, {"conv", actors::conv_to_hex(cid)}, {"id", self}}.dump());
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line == "/quit")
      break;
    if (line.empty())
      continue;
    auto sent = s.rt().send(cid, line);
    if (!sent) {
      const cli_error e = explain(sent.error(), "not sent", g);
      say(g.json ? json{{"event", "error"}, {"error", e.message}, {"hint", e.hint}}.dump()
                 : "!! " + e.message + (e.hint.empty() ? "" : " (" + e.hint + ")"));
    }
  }
  // Let the outbox drain and acknowledgements go out before closing.
  (void)s.rt().sync(brief(g));
  s.set_live({});
  if (!g.json)
    say("-- bye");
  return 0;
}

// -- text output --------------------------------------------------------------------------

namespace {

void print_events(const json& out, const std::string& self, bool skip_own) {
  if (out.contains("entries"))
    for (const auto& e : out["entries"]) {
      if (skip_own && e.value("own", false))
        continue;
      std::cout << "  [" << e.value("conv", std::string()).substr(0, 8) << "] "
                << entry_text(e, self) << "\n";
    }
  if (out.contains("alarms"))
    for (const auto& a : out["alarms"])
      std::cout << "!! " << alarm_text(a) << "\n";
  if (out.contains("notices"))
    for (const auto& n : out["notices"])
      std::cout << "!! " << n.dump() << "\n";
}

void print_ordered(const json& out, const std::string& what) {
  if (out.value("ordered", false))
    std::cout << what << " in " << out["conv"].get<std::string>() << " as #"
              << out["index"].get<uint64_t>() << " (aseq " << out["aseq"].get<uint64_t>() << ")\n";
  else
    std::cout << what << " but not ordered yet (aseq " << out["aseq"].get<uint64_t>()
              << "): it stays in the outbox and goes out with the next cowpi command\n";
}

}  // namespace

void print_text(const std::string& command, const json& out) {
  const std::string self = out.value("id", std::string());
  if (command == "init") {
    std::cout << "created user " << out["id"].get<std::string>() << " in "
              << out["home"].get<std::string>() << " (router at "
              << out["router"].get<std::string>() << ", mirrors " << join(out["mirrors"])
              << ")\nnext: cowpi register\n";
  } else if (command == "register") {
    std::cout << "registered " << out["id"].get<std::string>() << " with the router\n";
  } else if (command == "create") {
    std::cout << out["conv"].get<std::string>() << "\nmembers: " << join(out["members"])
              << "\nblock mode: " << out["mode"].get<std::string>() << "\nsafety number:\n"
              << out["safety_number"].get<std::string>() << "\n";
    print_events(out, self, true);
  } else if (command == "send") {
    print_ordered(out, "sent");
    print_events(out, self, true);
  } else if (command == "add" || command == "remove" || command == "leave") {
    print_ordered(out, command == "add" ? "added" : command == "remove" ? "removed" : "left");
    if (out["members"].is_array())
      std::cout << "members now: " << join(out["members"]) << "\n";
    print_events(out, self, true);
  } else if (command == "sync") {
    std::cout << out["accepted"].get<uint64_t>() << " new entr"
              << (out["accepted"].get<uint64_t>() == 1 ? "y" : "ies")
              << (out.value("idle", false) ? "" : " (not drained before --timeout)") << "\n";
    print_events(out, self, false);
    if (out.value("outbox", uint64_t{0}) > 0)
      std::cout << out["outbox"].get<uint64_t>() << " of your messages still wait for ordering\n";
  } else if (command == "log") {
    std::cout << "conversation " << out["conv"].get<std::string>() << " ("
              << out["status"].get<std::string>() << "), members: " << join(out["members"]) << "\n";
    for (const auto& l : out["entries"])
      std::cout << line_text(l, self) << "\n";
  } else if (command == "conversations") {
    if (out["conversations"].empty())
      std::cout << "no conversations yet (create one with `cowpi create ID...`)\n";
    for (const auto& c : out["conversations"]) {
      std::cout << c["conv"].get<std::string>() << "  " << c["status"].get<std::string>()
                << "  members: " << join(c["members"]) << "  next #" << c["next"].get<uint64_t>();
      if (c["mode"].is_string())
        std::cout << "  " << c["mode"].get<std::string>();
      if (c["outbox"].get<uint64_t>() > 0)
        std::cout << "  outbox " << c["outbox"].get<uint64_t>();
      std::cout << "\n";
      std::istringstream sn(c["safety_number"].get<std::string>());
      std::string l;
      while (std::getline(sn, l))
        std::cout << "    " << l << "\n";
    }
  } else {
    std::cout << out.dump(2) << "\n";
  }
}

}  // namespace cowpi::cli

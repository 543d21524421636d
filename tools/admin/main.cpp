// SPDX-License-Identifier: Apache-2.0
// cowpi-admin: the operator tool (docs/design.md §6, docs/admin.md). Stored data comes from the
// node's RocksDB through a secondary instance (works while the daemon runs, and when it is
// down); live state and the audit come from the daemon's admin socket.
#include "cowpi/config/provider_config.hpp"
#include "cowpi/crypto/bytes.hpp"
#include "cowpi/protocol/shard.hpp"
#include "cowpi/storage/admin.hpp"

#include "admin_socket.hpp"
#include "reshard.hpp"
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace cowpi;
using json = nlohmann::json;

// Exit codes (docs/admin.md).
constexpr int exit_ok = 0;
constexpr int exit_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_mismatch = 3;
constexpr int exit_incomplete = 4;

constexpr auto status_timeout = std::chrono::seconds(5);
constexpr auto audit_timeout = std::chrono::seconds(20);

struct options {
  std::filesystem::path config;
  std::filesystem::path data_dir;
  bool json_out = false;
  std::string conv;
  std::optional<uint64_t> from;
  std::optional<uint64_t> to;
  size_t limit = 1000;
  std::string section;
};

struct tool_error {
  std::string message;
};

[[noreturn]] void die(const std::string& why) {
  throw tool_error{why};
}

std::string short_hex(const cowpi::hash32& h) {
  return to_hex(byte_view(h.data(), 4));
}

std::string utc(uint64_t secs) {
  if (secs == 0) {
    return "-";
  }
  const auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// A plain text table: a header row and rows, columns padded to their widest cell.
class table {
public:
  explicit table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.size() == 1; }
  void print(std::ostream& out) const {
    std::vector<size_t> w;
    for (const auto& r : rows_) {
      w.resize(std::max(w.size(), r.size()));
      for (size_t k = 0; k < r.size(); ++k) {
        w[k] = std::max(w[k], r[k].size());
      }
    }
    for (const auto& r : rows_) {
      std::string line;
      for (size_t k = 0; k < r.size(); ++k) {
        line += r[k];
        if (k + 1 < r.size()) {
          line += std::string(w[k] - r[k].size() + 2, ' ');
        }
      }
      out << line << '\n';
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
};

// The node: its config, its store (opened lazily) and its admin socket.
class node {
public:
  node(const std::filesystem::path& config_path, const std::filesystem::path& data_dir) {
    if (config_path.empty()) {
      die("--config PATH (the node's provider.toml) is required");
    }
    std::error_code ec;
    if (!std::filesystem::exists(config_path, ec)) {
      die("no such config file: " + config_path.string());
    }
    config::provider_overrides overrides;
    if (!data_dir.empty()) {
      overrides.data_dir = std::filesystem::absolute(data_dir, ec);
      if (ec) {
        die("--data-dir " + data_dir.string() + ": " + ec.message());
      }
    }
    auto c = config::load_provider_config(config_path, overrides);
    if (!c) {
      die("cannot load the config: " + c.error().message());
    }
    cfg_ = std::move(*c);
  }
  node(const node&) = delete;
  node& operator=(const node&) = delete;
  ~node() {
    reader_.reset();
    if (!secondary_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(secondary_, ec);
    }
  }

  const config::provider_config& cfg() const { return cfg_; }
  bool is_router() const { return cfg_.role == config::role::router; }
  std::filesystem::path db_path() const {
    return cfg_.data_dir / (is_router() ? "router.db" : "mirror.db");
  }

  storage::admin_reader& reader() {
    if (reader_) {
      return *reader_;
    }
    const auto path = db_path();
    std::error_code ec;
    if (!std::filesystem::exists(path / "CURRENT", ec)) {
      die("no store at " + path.string() + " (has this node ever started?)");
    }
    // The secondary instance keeps its own info log and state in a private temp folder.
    std::string tmpl = (std::filesystem::temp_directory_path() / "cowpi-admin-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      die("cannot create a temporary folder for the RocksDB secondary instance");
    }
    secondary_ = tmpl;
    storage::open_options o;
    o.mode = storage::open_mode::secondary;
    o.secondary_dir = secondary_;
    auto r = storage::admin_reader::open(path, o);
    if (!r) {
      die("cannot open the store " + path.string() + ": " + r.error().message());
    }
    reader_ = std::move(*r);
    return *reader_;
  }

  void need_router(const std::string& what) const {
    if (!is_router()) {
      die("'" + what + "' needs a router node; " + cfg_.name + " is a mirror");
    }
  }

  /// The daemon's answer, or a failure saying why the socket is unreachable.
  expected<json> call(const json& req, std::chrono::milliseconds timeout) const {
    return tools::admin_call(cfg_.admin_socket, req, timeout);
  }

  json call_or_die(const json& req, std::chrono::milliseconds timeout) const {
    auto a = call(req, timeout);
    if (!a) {
      die(a.error().message());
    }
    if (!a->value("ok", false)) {
      die("the daemon refused the request: " + a->value("error", std::string("?")));
    }
    return *a;
  }

private:
  config::provider_config cfg_;
  std::filesystem::path secondary_;
  std::unique_ptr<storage::admin_reader> reader_;
};

template <class T>
T ok_or_die(expected<T> v, const std::string& what) {
  if (!v) {
    die(what + ": " + v.error().message());
  }
  return std::move(*v);
}

protocol::conv_id parse_conv(const std::string& hex) {
  auto raw = from_hex(hex);
  protocol::conv_id c{};
  if (!raw || raw->size() != c.size()) {
    die("a conversation id is 32 hex digits, not '" + hex + "'");
  }
  std::copy(raw->begin(), raw->end(), c.begin());
  return c;
}

// D and T at the conversation's last index, when the store still holds them.
struct last_digest {
  std::optional<hash32> d;
  std::optional<hash32> t;
};

last_digest last_of(node& n, const storage::conv_summary& s) {
  last_digest out;
  if (s.next == 0) {
    return out;
  }
  if (n.is_router()) {
    auto l = ok_or_die(n.reader().log_range(s.conv, s.next - 1, s.next - 1), "log");
    if (!l.empty()) {
      out.d = l.front().d;
      out.t = l.front().t;
    }
  } else {
    auto d = ok_or_die(n.reader().d_range(s.conv, s.next - 1, s.next - 1), "D history");
    if (!d.empty()) {
      out.d = d.front().second;
    }
  }
  return out;
}

json conv_json(const storage::conv_summary& s, const last_digest& ld) {
  json j{{"conv", to_hex(s.conv)},
         {"members", s.members},
         {"mirrors", s.mirrors},
         {"length", s.next},
         {"last_index", s.next == 0 ? json(nullptr) : json(s.next - 1)},
         {"last_update", s.last_update},
         {"log_start", s.log_start},
         {"pending", s.pending},
         {"stopped", s.stopped},
         {"last_d", ld.d ? json(to_hex(*ld.d)) : json(nullptr)},
         {"last_t", ld.t ? json(to_hex(*ld.t)) : json(nullptr)}};
  if (s.stopped) {
    j["stop_reason"] = s.stop_reason;
  }
  return j;
}

int cmd_conversations(node& n, const options& o) {
  auto convs = ok_or_die(n.reader().conversations(), "conversations");
  json out = json::array();
  table t({"CONVERSATION", "MEMBERS", "LENGTH", "LAST", "LOG_START", "PENDING", "D(LAST)",
           "T(LAST)", "STATE"});
  for (const auto& s : convs) {
    const auto ld = last_of(n, s);
    out.push_back(conv_json(s, ld));
    t.add({to_hex(s.conv), std::to_string(s.members), std::to_string(s.next),
           s.next == 0 ? "-" : std::to_string(s.next - 1), std::to_string(s.log_start),
           std::to_string(s.pending), ld.d ? short_hex(*ld.d) : "-", ld.t ? short_hex(*ld.t) : "-",
           s.stopped ? "stopped: " + s.stop_reason : "ok"});
  }
  if (o.json_out) {
    std::cout << json{{"node", n.cfg().name}, {"conversations", out}}.dump(2) << '\n';
  } else if (convs.empty()) {
    std::cout << "no conversations\n";
  } else {
    t.print(std::cout);
  }
  return exit_ok;
}

int cmd_conversation(node& n, const options& o) {
  const auto conv = parse_conv(o.conv);
  auto convs = ok_or_die(n.reader().conversations(), "conversations");
  auto it = std::find_if(convs.begin(), convs.end(),
                         [&](const storage::conv_summary& s) { return s.conv == conv; });
  if (it == convs.end()) {
    die("no conversation " + o.conv + " in " + n.db_path().string());
  }
  const auto& s = *it;
  const uint64_t from = o.from.value_or(n.is_router() ? s.log_start : 0);
  uint64_t to = o.to.value_or(s.next == 0 ? 0 : s.next - 1);
  if (!o.to && to >= from && to - from >= o.limit) {
    to = from + o.limit - 1;
  }
  json entries = json::array();
  // A router shows its log entries' public parts; a mirror holds only its D history here.
  table t(n.is_router()
              ? std::vector<std::string>{"INDEX", "TYPE", "AUTHOR", "ASEQ", "SLOTS", "BODY",
                                         "ORDERED_AT(UTC)", "DELIVERABLE", "D", "T"}
              : std::vector<std::string>{"INDEX", "D"});
  if (s.next > 0 && from <= to) {
    if (n.is_router()) {
      for (const auto& l : ok_or_die(n.reader().log_range(conv, from, to), "log")) {
        entries.push_back({{"index", l.index},
                           {"type", std::string(protocol::to_string(l.type))},
                           {"author", l.author},
                           {"aseq", l.aseq},
                           {"slots", l.slots},
                           {"body_len", l.body_len},
                           {"ordered_at", l.ordered_at},
                           {"complete", l.complete},
                           {"d", to_hex(l.d)},
                           {"t", to_hex(l.t)}});
        t.add({std::to_string(l.index), std::string(protocol::to_string(l.type)), l.author,
               std::to_string(l.aseq), std::to_string(l.slots), std::to_string(l.body_len),
               utc(l.ordered_at), l.complete ? "yes" : "no", short_hex(l.d), short_hex(l.t)});
      }
    } else {
      for (const auto& [i, d] : ok_or_die(n.reader().d_range(conv, from, to), "D history")) {
        entries.push_back({{"index", i}, {"d", to_hex(d)}});
        t.add({std::to_string(i), short_hex(d)});
      }
    }
  }
  const auto ld = last_of(n, s);
  if (o.json_out) {
    json j = conv_json(s, ld);
    j["from"] = from;
    j["to"] = to;
    j["entries"] = std::move(entries);
    std::cout << j.dump(2) << '\n';
    return exit_ok;
  }
  std::cout << "conversation " << to_hex(conv) << " on " << n.cfg().name << '\n'
            << "  members " << s.members << ", mirrors " << s.mirrors << ", length " << s.next
            << ", last update at " << s.last_update << ", log start " << s.log_start << ", pending "
            << s.pending << (s.stopped ? ", STOPPED: " + s.stop_reason : "") << '\n';
  if (ld.d) {
    std::cout << "  D(last) " << to_hex(*ld.d) << '\n';
  }
  if (ld.t) {
    std::cout << "  T(last) " << to_hex(*ld.t) << '\n';
  }
  if (t.empty()) {
    std::cout << "  no entries held in [" << from << ", " << to << "]\n";
  } else {
    t.print(std::cout);
    if (!o.to && s.next > 0 && to < s.next - 1) {
      std::cout << "(" << (s.next - 1 - to) << " more; use --from/--to)\n";
    }
  }
  return exit_ok;
}

int cmd_users(node& n, const options& o) {
  n.need_router("users");
  auto users = ok_or_die(n.reader().users(), "users");
  auto pools = ok_or_die(n.reader().prekey_pools(), "pre-key pools");
  std::map<std::string, storage::pool_level> by_owner;
  for (const auto& p : pools) {
    by_owner[p.owner] = p;
  }
  json out = json::array();
  table t({"USER", "LPK", "REGISTERED(UTC)", "ONE_TIME", "LAST_RESORT_ID", "MAX_PREKEY_ID"});
  for (const auto& u : users) {
    const auto p = by_owner.find(u.id);
    const bool has = p != by_owner.end();
    out.push_back({{"user", u.id},
                   {"lpk", to_hex(u.lpk)},
                   {"registered_at", u.registered_at},
                   {"one_time_remaining", has ? p->second.one_time_remaining : 0},
                   {"last_resort_id", has ? p->second.last_resort_id : 0},
                   {"max_prekey_id", has ? p->second.max_prekey_id : 0}});
    t.add({u.id, to_hex(byte_view(u.lpk.data(), 8)), utc(u.registered_at),
           has ? std::to_string(p->second.one_time_remaining) : "-",
           has && p->second.last_resort_id != 0 ? std::to_string(p->second.last_resort_id) : "-",
           has ? std::to_string(p->second.max_prekey_id) : "-"});
  }
  if (o.json_out) {
    std::cout << json{{"node", n.cfg().name}, {"users", out}}.dump(2) << '\n';
  } else if (users.empty()) {
    std::cout << "no registered users\n";
  } else {
    t.print(std::cout);
  }
  return exit_ok;
}

int cmd_prekeys(node& n, const options& o) {
  n.need_router("prekeys");
  auto pools = ok_or_die(n.reader().prekey_pools(), "pre-key pools");
  json out = json::array();
  table t({"OWNER", "KIND", "ONE_TIME", "LAST_RESORT_ID", "MAX_PREKEY_ID"});
  for (const auto& p : pools) {
    out.push_back({{"owner", p.owner},
                   {"kind", p.is_user ? "user" : "mirror"},
                   {"one_time_remaining", p.one_time_remaining},
                   {"last_resort_id", p.last_resort_id},
                   {"max_prekey_id", p.max_prekey_id}});
    t.add({p.owner, p.is_user ? "user" : "mirror", std::to_string(p.one_time_remaining),
           p.last_resort_id != 0 ? std::to_string(p.last_resort_id) : "-",
           std::to_string(p.max_prekey_id)});
  }
  if (o.json_out) {
    std::cout << json{{"node", n.cfg().name}, {"pools", out}}.dump(2) << '\n';
  } else {
    t.print(std::cout);
  }
  return exit_ok;
}

int cmd_queues(node& n, const options& o) {
  n.need_router("queues");
  auto depths = ok_or_die(n.reader().queue_depths(), "cursors");
  // Live: which users are connected, with their delivery windows (best effort).
  std::map<std::string, json> online;
  std::optional<std::string> live_error;
  auto live = n.call({{"get", "status"}, {"section", "queues"}}, status_timeout);
  if (live && live->value("ok", false)) {
    const auto& q = (*live)["sections"]["queues"];
    if (q.contains("users") && q["users"].is_array()) {
      for (const auto& u : q["users"]) {
        online[u.value("user", std::string())] = u;
      }
    }
  } else {
    live_error =
        live ? live->value("error", std::string("no queues section")) : live.error().message();
  }
  json out = json::array();
  table t({"USER", "CONVERSATION", "CURSOR", "DEPTH", "REMOVED_AFTER", "EXPIRED", "ONLINE"});
  for (const auto& q : depths) {
    const bool on = online.contains(q.user);
    out.push_back({{"user", q.user},
                   {"conv", to_hex(q.conv)},
                   {"cursor", q.cursor},
                   {"depth", q.depth},
                   {"last", q.last ? json(*q.last) : json(nullptr)},
                   {"expired", q.expired},
                   {"online", live_error ? json(nullptr) : json(on)}});
    t.add({q.user, to_hex(q.conv), std::to_string(q.cursor), std::to_string(q.depth),
           q.last ? std::to_string(*q.last) : "-", q.expired ? "yes" : "no",
           live_error ? "?" : (on ? "yes" : "no")});
  }
  if (o.json_out) {
    json j{{"node", n.cfg().name}, {"queues", out}};
    if (live_error) {
      j["live_error"] = *live_error;
    } else {
      j["live"] = (*live)["sections"]["queues"];
    }
    std::cout << j.dump(2) << '\n';
    return exit_ok;
  }
  if (depths.empty()) {
    std::cout << "no cursors\n";
  } else {
    t.print(std::cout);
  }
  if (live_error) {
    std::cout << "(live state unavailable: " << *live_error << ")\n";
  }
  return exit_ok;
}

std::string scalar(const json& v) {
  if (v.is_string()) {
    return v.get<std::string>();
  }
  if (v.is_null()) {
    return "-";
  }
  return v.dump();
}

int cmd_status(node& n, const options& o) {
  json req{{"get", "status"}};
  if (!o.section.empty()) {
    req["section"] = o.section;
  }
  auto a = n.call_or_die(req, status_timeout);
  if (o.json_out) {
    std::cout << a.dump(2) << '\n';
    return exit_ok;
  }
  std::cout << n.cfg().name << " (" << (n.is_router() ? "router" : "mirror") << "), up "
            << a.value("uptime_s", 0) << " s, admin socket " << n.cfg().admin_socket.string()
            << '\n';
  for (const auto& [name, body] : a["sections"].items()) {
    std::cout << "[" << name << "]\n";
    if (!body.is_object()) {
      std::cout << "  " << body.dump() << '\n';
      continue;
    }
    for (const auto& [k, v] : body.items()) {
      std::string s = v.is_structured() ? v.dump() : scalar(v);
      if (s.size() > 160) {
        s = s.substr(0, 157) + "...";
      }
      std::cout << "  " << k << ": " << s << '\n';
    }
  }
  return exit_ok;
}

int cmd_links(node& n, const options& o) {
  n.need_router("links");
  auto a = n.call_or_die({{"get", "status"}}, status_timeout);
  json links = json::array();
  table t({"MIRROR", "UP", "KEYS", "TOPUPS", "REQUESTS", "FAILURES", "CONNECTS", "LAST_ERROR"});
  for (const auto& [name, body] : a["sections"].items()) {
    if (name.rfind("link:", 0) != 0) {
      continue;
    }
    json l = body;
    l["section"] = name;
    links.push_back(l);
    // A mirror cluster's node links read "mirror/node".
    std::string who = body.value("mirror", name.substr(5));
    if (const std::string node = body.value("node", who); node != who) {
      who += "/" + node;
    }
    t.add({who, body.contains("error") ? "?" : (body.value("up", false) ? "yes" : "NO"),
           body.contains("error") ? "?" : (body.value("keys", false) ? "yes" : "NO"),
           scalar(body.value("topups", json(nullptr))),
           scalar(body.value("requests", json(nullptr))),
           scalar(body.value("failures", json(nullptr))),
           scalar(body.value("connects", json(nullptr))),
           body.contains("error") ? scalar(body["error"])
                                  : scalar(body.value("last_error", json("")))});
  }
  if (o.json_out) {
    std::cout << json{{"node", n.cfg().name}, {"links", links}}.dump(2) << '\n';
  } else {
    t.print(std::cout);
  }
  return exit_ok;
}

// The provider's nodes as this node sees them. A router: every node of every mirror, with its
// link (live), its pre-key pool in the directory and the conversations it owns among the
// router's (stored). A mirror: its cluster and what it holds.
int cmd_cluster(node& n, const options& o) {
  const auto& cfg = n.cfg();
  const auto live = n.call({{"get", "status"}}, status_timeout);
  const json sections =
      live && live->value("ok", false) && live->contains("sections") ? (*live)["sections"] : json();
  const std::string down = live ? "" : live.error().message();
  if (!n.is_router()) {
    const json m =
        sections.is_object() && sections.contains("mirror") ? sections["mirror"] : json();
    const auto convs = ok_or_die(n.reader().conversations(), "conversations");
    json out{{"node", cfg.cluster.self},
             {"provider", cfg.name},
             {"nodes", cfg.cluster.nodes},
             {"conversations", convs.size()},
             {"up", m.is_object()},
             {"wrong_node", m.is_object() ? m.value("wrong_node", json(0)) : json(nullptr)},
             {"router_links", m.is_object() ? m.value("router_links", json(0)) : json(nullptr)}};
    if (!down.empty()) {
      out["error"] = down;
    }
    if (o.json_out) {
      std::cout << out.dump(2) << '\n';
      return exit_ok;
    }
    std::cout << cfg.name << ": node " << cfg.cluster.self << " of " << cfg.cluster.nodes.size()
              << " (";
    for (size_t k = 0; k < cfg.cluster.nodes.size(); ++k) {
      std::cout << (k == 0 ? "" : ", ") << cfg.cluster.nodes[k];
    }
    std::cout << ")\n  conversations held: " << convs.size() << "\n  daemon: "
              << (m.is_object() ? "up" : "DOWN" + (down.empty() ? "" : " (" + down + ")")) << "\n";
    if (m.is_object()) {
      std::cout << "  router links: " << scalar(out["router_links"])
                << "\n  requests refused for another node's conversation: "
                << scalar(out["wrong_node"]) << "\n";
    }
    return exit_ok;
  }
  const auto convs = ok_or_die(n.reader().conversations(), "conversations");
  const auto pools = ok_or_die(n.reader().prekey_pools(), "pre-key pools");
  json out = json::array();
  table t({"MIRROR", "NODE", "UP", "KEYS", "POOL", "CONVERSATIONS", "FAILURES", "LAST_ERROR"});
  for (const auto& m : cfg.mirrors) {
    const auto ids = config::node_ids_of(m);
    std::vector<size_t> owned(ids.size(), 0);
    for (const auto& c : convs) {
      ++owned[ids.size() <= 1 ? 0 : protocol::conv_owner(ids, c.conv)];
    }
    for (size_t j = 0; j < ids.size(); ++j) {
      const std::string section = "link:" + ids[j];
      const json l =
          sections.is_object() && sections.contains(section) ? sections[section] : json();
      uint64_t pool = 0;
      for (const auto& p : pools) {
        if (!p.is_user && p.owner == ids[j]) {
          pool = p.one_time_remaining;
        }
      }
      const bool known = l.is_object() && !l.contains("error");
      json row{{"mirror", m.name},
               {"node", ids[j]},
               {"address", config::to_string(config::nodes_of(m)[j].address)},
               {"up", known ? l.value("up", json(false)) : json(nullptr)},
               {"keys", known ? l.value("keys", json(false)) : json(nullptr)},
               {"keys_here", known ? l.value("keys_here", json(true)) : json(nullptr)},
               {"pool", pool},
               {"conversations", owned[j]},
               {"failures", known ? l.value("failures", json(0)) : json(nullptr)},
               {"last_error", known ? l.value("last_error", json("")) : json(down)}};
      out.push_back(row);
      t.add({m.name, ids[j], !known ? "?" : (row["up"].get<bool>() ? "yes" : "NO"),
             !known                        ? "?"
             : !l.value("keys_here", true) ? "-"
             : row["keys"].get<bool>()     ? "yes"
                                           : "NO",
             std::to_string(pool), std::to_string(owned[j]), scalar(row["failures"]),
             scalar(row["last_error"])});
    }
  }
  // A router cluster: every node as this one sees it (its link to each from the live state).
  const bool clustered = cfg.cluster.nodes.size() > 1;
  const json cl =
      sections.is_object() && sections.contains("cluster") ? sections["cluster"] : json();
  json routers = json::array();
  table rt({"NODE", "INTERNAL", "UP", "LAST_ERROR"});
  for (size_t k = 0; clustered && k < cfg.cluster.nodes.size(); ++k) {
    const auto& id = cfg.cluster.nodes[k];
    const std::string address = k < cfg.cluster.addresses.size()
                                    ? config::to_string(cfg.cluster.addresses[k].internal)
                                    : std::string();
    const bool self = id == cfg.cluster.self;
    const json p = cl.is_object() && cl["peers"].contains(id) ? cl["peers"][id] : json();
    json row{{"node", id},
             {"internal", address},
             {"self", self},
             {"up", self ? json(cl.is_object()) : (p.is_object() ? p["up"] : json(nullptr))},
             {"last_error", p.is_object() ? p["last_error"] : json(self ? "" : down)}};
    rt.add({id + (self ? " (this node)" : ""), address,
            row["up"].is_null() ? "?" : (row["up"].get<bool>() ? "yes" : "NO"),
            scalar(row["last_error"])});
    routers.push_back(std::move(row));
  }
  if (o.json_out) {
    json j{{"node", cfg.cluster.self},
           {"provider", cfg.name},
           {"conversations", convs.size()},
           {"mirror_nodes", out}};
    if (clustered) {
      j["router_nodes"] = routers;
      j["remote_sessions"] = cl.is_object() ? cl["remote_sessions"] : json(nullptr);
      j["requests_served"] = cl.is_object() ? cl["requests_served"] : json(nullptr);
      j["refused"] = cl.is_object() ? cl["refused"] : json(nullptr);
    }
    std::cout << j.dump(2) << '\n';
  } else if (clustered) {
    std::cout << cfg.name << ": node " << cfg.cluster.self << " of " << cfg.cluster.nodes.size()
              << ", " << convs.size() << " conversations held here; router nodes:\n";
    rt.print(std::cout);
    std::cout << "mirror nodes (as this node's links see them):\n";
    t.print(std::cout);
  } else {
    std::cout << cfg.name << " (router, one node), " << convs.size()
              << " conversations; mirror nodes:\n";
    t.print(std::cout);
  }
  return exit_ok;
}

int cmd_metrics(node& n, const options& o) {
  auto a = n.call_or_die({{"get", "metrics"}}, status_timeout);
  const auto text = a.value("metrics", std::string());
  if (o.json_out) {
    std::cout << json{{"node", n.cfg().name}, {"metrics", text}}.dump(2) << '\n';
  } else {
    std::cout << text;
  }
  return exit_ok;
}

void print_audit_conv(const json& c) {
  std::cout << "conversation " << c.value("conv", std::string()) << ": length "
            << c.value("next", 0) << ", router holds " << c.value("router_held", 0)
            << " (log start " << c.value("log_start", 0) << ")\n";
  for (const auto& m : c["mirrors"]) {
    std::cout << "  " << m.value("mirror", std::string()) << ": ";
    if (!m["error"].is_null()) {
      std::cout << "ERROR " << scalar(m["error"]) << " (checked " << m.value("checked", 0) << ")\n";
      continue;
    }
    std::cout << "checked " << m.value("checked", 0) << ", held " << m.value("held", 0) << ", "
              << m.value("mismatch_count", 0) << " mismatches, " << m.value("missing_count", 0)
              << " missing";
    if (!m["in_flight"].empty()) {
      std::cout << ", " << m["in_flight"].size() << " in flight";
    }
    std::cout << '\n';
    for (const auto& x : m["mismatches"]) {
      std::cout << "    MISMATCH at " << x.value("index", 0) << ": router "
                << x.value("router", std::string()) << "\n                 mirror "
                << x.value("mirror", std::string()) << '\n';
    }
    if (!m["missing"].empty()) {
      std::cout << "    missing: " << m["missing"].dump() << '\n';
    }
  }
  for (const auto& x : c["cross_mirror"]) {
    std::cout << "  MIRRORS DISAGREE at " << x.value("index", 0) << ": " << x["values"].dump()
              << '\n';
  }
}

int cmd_audit(node& n, const options& o) {
  n.need_router("audit");
  json req{{"do", "audit"}};
  if (!o.conv.empty()) {
    (void)parse_conv(o.conv);
    req["conv"] = o.conv;
  }
  auto a = n.call_or_die(req, audit_timeout);
  const uint64_t mismatches = a.value("mismatches", uint64_t{0});
  const uint64_t incomplete = a.value("incomplete", uint64_t{0});
  if (o.json_out) {
    std::cout << a.dump(2) << '\n';
  } else {
    if (a.contains("conversations")) {
      for (const auto& c : a["conversations"]) {
        print_audit_conv(c);
      }
      if (a.value("truncated", false)) {
        std::cout << "(audited " << a.value("audited", 0) << " of " << a.value("total", 0)
                  << " conversations; audit the others one by one)\n";
      }
    } else {
      print_audit_conv(a);
    }
    std::cout << (mismatches > 0
                      ? "AUDIT FAILED: " + std::to_string(mismatches) + " mismatching D value(s)"
                  : incomplete > 0 ? "audit incomplete: " + std::to_string(incomplete)
                                         + " mirror result(s) with errors or missing D values"
                                   : std::string("audit clean"))
              << '\n';
  }
  if (mismatches > 0) {
    return exit_mismatch;
  }
  return incomplete > 0 ? exit_incomplete : exit_ok;
}

int cmd_collect(node& n, const options& o) {
  n.need_router("collect");
  auto a = n.call_or_die(json{{"do", "collect"}}, audit_timeout);
  if (o.json_out) {
    std::cout << a.dump(2) << '\n';
  } else {
    const uint64_t deleted = a.value("deleted", uint64_t{0});
    const uint64_t convs = a.value("conversations", uint64_t{0});
    std::cout << "retention: deleted " << deleted << (deleted == 1 ? " log entry" : " log entries")
              << " over " << convs << (convs == 1 ? " conversation" : " conversations") << " in "
              << static_cast<uint64_t>(a.value("ms", 0.0)) << " ms\n";
    if (a.value("errors", uint64_t{0}) > 0)
      std::cout << a.value("errors", uint64_t{0})
                << " conversation(s) not collected: " << a.value("first_error", std::string())
                << '\n';
  }
  return a.value("errors", uint64_t{0}) > 0 ? exit_error : exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cowpi-admin: inspect a cowpi provider node; reshard a stopped cluster.\n"
      "Stored data (conversations, conversation, users, prekeys, queues) is read from the node's\n"
      "RocksDB through a secondary instance, whether or not the daemon runs; live state\n"
      "(status, links, metrics) and the audit come from the daemon's admin socket; reshard\n"
      "opens the stopped nodes' stores itself.\n"
      "Exit codes: 0 ok, 1 error (config, store, daemon unreachable, reshard refused), 2 usage,\n"
      "3 audit found a mismatch, 4 audit incomplete (a mirror unreachable or missing D values).\n"
      "See docs/admin.md (installed: /usr/share/doc/cowpi-provider/admin.md).",
      "cowpi-admin"};
  app.require_subcommand(1);
  options o;
  app.add_option("--config", o.config, "the node's provider.toml (finds its data dir and socket)")
      ->required();
  app.add_option("--data-dir", o.data_dir,
                 "the node's data directory, when it runs with cowpi-provider --data-dir");
  app.add_flag("--json", o.json_out, "machine-readable JSON instead of tables");

  auto* conversations = app.add_subcommand(
      "conversations", "every conversation: members, log length, last index, last D and T");
  auto* conversation =
      app.add_subcommand("conversation",
                         "one conversation's metadata and log range (index, type, author, size, "
                         "digests; never plaintext)");
  conversation->add_option("CONV", o.conv, "conversation id (32 hex digits)")->required();
  conversation->add_option("--from", o.from, "first index (default: the log's start)");
  conversation->add_option("--to", o.to, "last index, inclusive (default: --limit entries)");
  conversation->add_option("--limit", o.limit, "most entries without --to (default 1000)");
  auto* users =
      app.add_subcommand("users", "registered users with their pre-key pool levels (router)");
  auto* prekeys = app.add_subcommand(
      "prekeys", "every directory owner's pre-key pool, users and mirrors (router)");
  auto* queues = app.add_subcommand(
      "queues",
      "delivery backlog per (user, conversation) from stored cursors, with who is "
      "online (router)");
  auto* status = app.add_subcommand("status", "the daemon's live state, every section");
  status->add_option("--section", o.section, "only this section (e.g. queues, link:mirror-a)");
  auto* links = app.add_subcommand("links", "health of the router's mirror links (router)");
  auto* cluster = app.add_subcommand(
      "cluster",
      "the provider's nodes: on a router, every mirror node with its link, pre-key pool and "
      "the conversations it owns; on a mirror node, its cluster and what it holds");
  auto* metrics = app.add_subcommand(
      "metrics",
      "the daemon's metrics in the Prometheus text format (what [metrics] listen serves)");
  auto* audit = app.add_subcommand(
      "audit",
      "compare every mirror's stored D_i with the router's (and each other's); exit 3 "
      "on a mismatch (router)");
  audit->add_option("CONV", o.conv, "one conversation (default: all, capped at 64)");
  auto* collect = app.add_subcommand(
      "collect",
      "run the retention collector now: delete the log entries every member acknowledged or "
      "older than [retention] max_age_s (router; it also runs every collect_interval_s)");

  tools::reshard_args ra;
  auto* reshard = app.add_subcommand(
      "reshard",
      "offline: move a cluster's conversations (and, for a router cluster, users) to their "
      "owners under a new node list (every node stopped, and for a mirror cluster the router "
      "too; --config is one node, CONFIGS every other, new nodes too, each listing the new "
      "nodes in [cluster] nodes)");
  reshard->add_option("CONFIGS", ra.others, "the other nodes' provider.toml files")->required();
  reshard->add_option("--router", ra.router,
                      "a mirror cluster: the router's provider.toml (stopped: its store is "
                      "checked for entries in flight that cannot move); not for a router cluster");
  reshard->add_flag("--dry-run", ra.dry_run, "print the moves and change nothing");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    (void)app.exit(e);
    return exit_usage;
  }

  if (reshard->parsed()) {
    ra.config = o.config;
    ra.data_dir = o.data_dir;
    ra.json_out = o.json_out;
    return tools::run_reshard(ra);
  }
  try {
    node n(o.config, o.data_dir);
    if (conversations->parsed()) {
      return cmd_conversations(n, o);
    }
    if (conversation->parsed()) {
      return cmd_conversation(n, o);
    }
    if (users->parsed()) {
      return cmd_users(n, o);
    }
    if (prekeys->parsed()) {
      return cmd_prekeys(n, o);
    }
    if (queues->parsed()) {
      return cmd_queues(n, o);
    }
    if (cluster->parsed()) {
      return cmd_cluster(n, o);
    }
    if (status->parsed()) {
      return cmd_status(n, o);
    }
    if (links->parsed()) {
      return cmd_links(n, o);
    }
    if (metrics->parsed()) {
      return cmd_metrics(n, o);
    }
    if (audit->parsed()) {
      return cmd_audit(n, o);
    }
    if (collect->parsed()) {
      return cmd_collect(n, o);
    }
  } catch (const tool_error& e) {
    std::cerr << "cowpi-admin: " << e.message << '\n';
    return exit_error;
  } catch (const nlohmann::json::exception& e) {
    // An answer from the daemon without a field this tool expects (version skew).
    std::cerr << "cowpi-admin: unexpected answer from the daemon: " << e.what() << '\n';
    return exit_error;
  }
  return exit_usage;
}

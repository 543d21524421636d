// SPDX-License-Identifier: Apache-2.0
// Strict reads of toml++ tables: types, ranges, ids, keys and endpoints, each failure positioned.
#include "detail/toml_reader.hpp"

#include "cowpi/protocol/limits.hpp"
#include "cowpi/protocol/types.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <tuple>

namespace cowpi::config::detail {

std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        // TOML forbids raw control characters (DEL included) in basic strings.
        if (c < 0x20 || c == 0x7f) {
          static constexpr std::string_view digits = "0123456789ABCDEF";
          out += "\\u00";
          out.push_back(digits[c >> 4]);
          out.push_back(digits[c & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

expected<std::string> read_file(const std::filesystem::path& path) {
  const std::string where = path.string() + ":1:1: ";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(errc::config, where + "cannot open the file");
  }
  std::string text;
  std::array<char, 4096> buf{};
  while (in.read(buf.data(), buf.size()) || in.gcount() > 0) {
    text.append(buf.data(), static_cast<size_t>(in.gcount()));
    // Checked while reading, so a device or a huge file is never read whole.
    if (text.size() > max_file_size) {
      return fail(errc::config, where + "the file is larger than 1 MiB");
    }
  }
  if (in.bad()) {
    return fail(errc::config, where + "cannot read the file");
  }
  return text;
}

unexpected<error> reporter::fail(const toml::source_region& r, std::string_view reason) const {
  const auto line = r.begin.line == 0 ? 1u : r.begin.line;
  const auto column = r.begin.line == 0 ? 1u : r.begin.column;
  std::string s = source_;
  s += ':';
  s += std::to_string(line);
  s += ':';
  s += std::to_string(column);
  s += ": ";
  s += reason;
  return cowpi::fail(errc::config, std::move(s));
}

expected<toml::table> reporter::parse(std::string_view text) const {
  try {
    return toml::parse(text, std::string_view{source_});
  } catch (const toml::parse_error& e) {
    return fail(e.source(), e.description());
  }
}

std::string_view describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "a value";
}

const toml::node* table_reader::find(std::string_view key) const {
  return t_ == nullptr ? nullptr : t_->get(key);
}

std::string table_reader::qualified(std::string_view key) const {
  if (name_.empty()) {
    return std::string(key);
  }
  return name_ + "." + std::string(key);
}

std::string table_reader::display() const {
  return name_.empty() ? std::string("the top level") : "[" + name_ + "]";
}

expected<void> table_reader::check_keys(std::initializer_list<std::string_view> allowed,
                                        std::initializer_list<std::string_view> other_role,
                                        std::string_view other_role_name,
                                        std::string_view this_role_name) const {
  if (t_ == nullptr) {
    return {};
  }
  // toml::table iterates in key order; report the offending key that comes first in the file.
  const toml::key* first = nullptr;
  const toml::node* first_value = nullptr;
  auto before = [](const toml::key& a, const toml::key& b) {
    return std::tie(a.source().begin.line, a.source().begin.column)
           < std::tie(b.source().begin.line, b.source().begin.column);
  };
  for (auto&& [k, v] : *t_) {
    const bool ok = std::find(allowed.begin(), allowed.end(), k.str()) != allowed.end();
    if (!ok && (first == nullptr || before(k, *first))) {
      first = &k;
      first_value = &v;
    }
  }
  if (first == nullptr) {
    return {};
  }
  const std::string_view k = first->str();
  if (std::find(other_role.begin(), other_role.end(), k) != other_role.end()) {
    // A top-level key is a section: name it as it is written, [x] or [[x]].
    std::string what = qualified(k);
    if (name_.empty() && first_value->is_table()) {
      what = "[" + what + "]";
    }
    if (name_.empty() && first_value->is_array()) {
      what = "[[" + what + "]]";
    }
    return rep_->fail(*first, what + " is for the " + std::string(other_role_name)
                                  + " only (this is a " + std::string(this_role_name) + " config)");
  }
  if (name_.empty()) {
    return rep_->fail(*first, "unknown table or key " + quote(k));
  }
  return rep_->fail(*first, "unknown key " + quote(k) + " in " + display());
}

expected<void> table_reader::check_removed(std::string_view key, std::string_view why) const {
  if (t_ == nullptr) {
    return {};
  }
  const auto it = t_->find(key);
  if (it == t_->end()) {
    return {};
  }
  return rep_->fail(it->first, qualified(key) + " was removed: " + std::string(why));
}

unexpected<error> table_reader::missing(std::string_view key) const {
  const std::string reason = display() + " is missing the required key " + quote(key);
  if (t_ == nullptr) {
    return rep_->fail(toml::source_region{}, reason);
  }
  return rep_->fail(*t_, reason);
}

unexpected<error> table_reader::fail_at(std::string_view key, std::string_view reason) const {
  const toml::node* n = find(key);
  COWPI_ASSERT(n != nullptr);
  return rep_->fail(*n, reason);
}

expected<const toml::table*> table_reader::table(std::string_view key) const {
  const toml::node* n = find(key);
  if (n == nullptr) {
    return static_cast<const toml::table*>(nullptr);
  }
  if (!n->is_table()) {
    return rep_->fail(*n, qualified(key) + " must be a table, not " + std::string(describe(*n)));
  }
  return n->as_table();
}

expected<const toml::array*> table_reader::array(std::string_view key) const {
  const toml::node* n = find(key);
  if (n == nullptr) {
    return static_cast<const toml::array*>(nullptr);
  }
  if (!n->is_array()) {
    return rep_->fail(*n, qualified(key) + " must be an array, not " + std::string(describe(*n)));
  }
  return n->as_array();
}

expected<std::optional<std::string>> table_reader::value_string(std::string_view key) const {
  const toml::node* n = find(key);
  if (n == nullptr) {
    return std::optional<std::string>{};
  }
  if (!n->is_string()) {
    return rep_->fail(*n, qualified(key) + " must be a string, not " + std::string(describe(*n)));
  }
  return std::optional<std::string>{n->as_string()->get()};
}

expected<std::optional<int64_t>> table_reader::value_integer(std::string_view key) const {
  const toml::node* n = find(key);
  if (n == nullptr) {
    return std::optional<int64_t>{};
  }
  if (!n->is_integer()) {
    return rep_->fail(*n, qualified(key) + " must be an integer, not " + std::string(describe(*n)));
  }
  return std::optional<int64_t>{n->as_integer()->get()};
}

expected<std::optional<bool>> table_reader::value_bool(std::string_view key) const {
  const toml::node* n = find(key);
  if (n == nullptr) {
    return std::optional<bool>{};
  }
  if (!n->is_boolean()) {
    return rep_->fail(*n,
                      qualified(key) + " must be true or false, not " + std::string(describe(*n)));
  }
  return std::optional<bool>{n->as_boolean()->get()};
}

expected<std::string> table_reader::string(std::string_view key) const {
  COWPI_TRY(auto v, value_string(key));
  if (!v) {
    return missing(key);
  }
  return std::move(*v);
}

expected<std::optional<size_t>> table_reader::choice(
    std::string_view key, std::initializer_list<std::string_view> choices) const {
  COWPI_TRY(auto v, value_string(key));
  if (!v) {
    return std::optional<size_t>{};
  }
  const auto it = std::find(choices.begin(), choices.end(), *v);
  if (it != choices.end()) {
    return std::optional<size_t>{static_cast<size_t>(std::distance(choices.begin(), it))};
  }
  std::string reason = qualified(key) + " must be ";
  size_t i = 0;
  for (std::string_view c : choices) {
    if (i > 0) {
      reason += i + 1 == choices.size() ? " or " : ", ";
    }
    reason += quote(c);
    ++i;
  }
  reason += ", not " + quote(*v);
  return fail_at(key, reason);
}

expected<std::string> table_reader::id(std::string_view key) const {
  COWPI_TRY(auto v, string(key));
  if (protocol::valid_id(v)) {
    return v;
  }
  if (v.empty()) {
    return fail_at(key, qualified(key) + " is empty; an id has 1 to 64 bytes");
  }
  if (v.size() > protocol::max_id_len) {
    return fail_at(key, qualified(key) + " is " + std::to_string(v.size())
                            + " bytes long; an id has at most 64");
  }
  return fail_at(key, qualified(key)
                          + " is not a valid id: it holds malformed UTF-8 or a control, invisible"
                            " or bidi formatting character");
}

expected<uint64_t> table_reader::check_range(std::string_view key, int64_t v, uint64_t lo,
                                             uint64_t hi, std::string_view lo_why,
                                             std::string_view hi_why) const {
  auto why = [](std::string_view w) {
    return w.empty() ? std::string() : " (" + std::string(w) + ")";
  };
  if (v < 0 || static_cast<uint64_t>(v) < lo) {
    return fail_at(key, qualified(key) + " = " + std::to_string(v) + " is below the minimum "
                            + std::to_string(lo) + why(lo_why));
  }
  if (static_cast<uint64_t>(v) > hi) {
    return fail_at(key, qualified(key) + " = " + std::to_string(v) + " is above the maximum "
                            + std::to_string(hi) + why(hi_why));
  }
  return static_cast<uint64_t>(v);
}

expected<uint64_t> table_reader::integer(std::string_view key, uint64_t def, uint64_t lo,
                                         uint64_t hi, std::string_view lo_why,
                                         std::string_view hi_why) const {
  COWPI_TRY(auto v, value_integer(key));
  if (!v) {
    return def;
  }
  return check_range(key, *v, lo, hi, lo_why, hi_why);
}

expected<uint64_t> table_reader::required_integer(std::string_view key, uint64_t lo, uint64_t hi,
                                                  std::string_view lo_why,
                                                  std::string_view hi_why) const {
  COWPI_TRY(auto v, value_integer(key));
  if (!v) {
    return missing(key);
  }
  return check_range(key, *v, lo, hi, lo_why, hi_why);
}

expected<std::optional<std::filesystem::path>> table_reader::path(std::string_view key) const {
  COWPI_TRY(auto v, value_string(key));
  if (!v) {
    return std::optional<std::filesystem::path>{};
  }
  if (v->empty()) {
    return fail_at(key, qualified(key) + " must not be empty");
  }
  if (v->find('\0') != std::string::npos) {
    return fail_at(key, qualified(key) + " must not hold a NUL character");
  }
  return std::optional<std::filesystem::path>{std::filesystem::path(*v)};
}

expected<endpoint> table_reader::endpoint_value(std::string_view key, bool allow_port0) const {
  COWPI_TRY(auto v, string(key));
  auto e = parse_endpoint(v);
  if (!e) {
    return fail_at(key,
                   qualified(key) + " = " + quote(v) + " is not host:port: " + e.error().context);
  }
  if (!allow_port0 && e->port == 0) {
    return fail_at(key, qualified(key) + " has port 0; a peer's address needs its real port");
  }
  return std::move(e).value();
}

expected<crypto::public_key> table_reader::public_key(std::string_view key) const {
  COWPI_TRY(auto v, string(key));
  // Never echo the value: a secret key pasted by mistake must not reach a log.
  const std::string what =
      qualified(key) + " must be 64 hex characters (a 32-byte X25519 public key)";
  if (v.size() != 2 * crypto::x25519_key_size) {
    return fail_at(key, what + "; it has " + std::to_string(v.size()));
  }
  auto b = from_hex(v);
  if (!b) {
    return fail_at(key, what + "; it holds a character that is not hex");
  }
  crypto::public_key k{};
  std::copy(b->begin(), b->end(), k.begin());
  if (std::all_of(k.begin(), k.end(), [](uint8_t x) { return x == 0; })) {
    return fail_at(key, qualified(key) + " is all zeros, which is no public key");
  }
  return k;
}

namespace {

// `nodes = [{ id = "...", address = "host:port" }, ...]`: a mirror cluster's nodes.
expected<std::vector<mirror_node>> read_mirror_nodes(const table_reader& m) {
  const reporter& rep = m.rep();
  COWPI_TRY(const toml::array* arr, m.array("nodes"));
  if (arr == nullptr || arr->empty()) {
    return m.fail_at("nodes", "mirrors.nodes is empty; list the mirror cluster's nodes");
  }
  if (arr->size() > max_mirror_nodes) {
    return rep.fail((*arr)[max_mirror_nodes],
                    "more than " + std::to_string(max_mirror_nodes) + " nodes in one mirror");
  }
  std::vector<mirror_node> out;
  for (const toml::node& e : *arr) {
    if (!e.is_table()) {
      return rep.fail(e,
                      "each mirrors.nodes entry must be a table ({ id = ..., address = ... }), "
                      "not "
                          + std::string(describe(e)));
    }
    table_reader t(rep, e.as_table(), "mirrors.nodes");
    COWPI_TRY_VOID(t.check_keys({"id", "address"}));
    mirror_node node;
    COWPI_TRY(node.id, t.id("id"));
    COWPI_TRY(node.address, t.endpoint_value("address", false));
    for (const auto& seen : out) {
      if (seen.id == node.id) {
        return t.fail_at("id", "mirror node " + quote(node.id) + " appears twice");
      }
      if (seen.address == node.address) {
        return t.fail_at("address", "mirror nodes " + quote(seen.id) + " and " + quote(node.id)
                                        + " have the same address");
      }
    }
    out.push_back(std::move(node));
  }
  return out;
}

}  // namespace

expected<std::vector<mirror_peer>> read_mirrors(const table_reader& top,
                                                std::string_view router_name,
                                                const std::optional<crypto::public_key>& router_key,
                                                bool with_address) {
  const reporter& rep = top.rep();
  COWPI_TRY(const toml::array* arr, top.array("mirrors"));
  const std::string bounds = "1 to " + std::to_string(protocol::max_mirrors);
  if (arr == nullptr) {
    return rep.fail(*top.get(), "missing [[mirrors]]: the mirror set needs " + bounds + " mirrors");
  }
  if (arr->empty()) {
    return rep.fail(*arr, "mirrors is empty; the mirror set needs " + bounds);
  }
  if (arr->size() > protocol::max_mirrors) {
    return rep.fail(
        (*arr)[protocol::max_mirrors],
        "more than " + std::to_string(protocol::max_mirrors) + " mirrors (protocol::max_mirrors)");
  }
  std::vector<mirror_peer> out;
  std::vector<const toml::table*> where;
  for (const toml::node& n : *arr) {
    if (!n.is_table()) {
      return rep.fail(
          n, "each mirrors entry must be a table ([[mirrors]]), not " + std::string(describe(n)));
    }
    table_reader m(rep, n.as_table(), "mirrors");
    if (with_address) {
      COWPI_TRY_VOID(m.check_keys({"name", "address", "nodes", "public_key"}));
    } else {
      COWPI_TRY_VOID(m.check_keys({"name", "public_key"}));
    }
    mirror_peer p;
    COWPI_TRY(p.name, m.id("name"));
    if (with_address) {
      if (m.find("nodes") != nullptr) {
        if (m.find("address") != nullptr) {
          return m.fail_at("address",
                           "mirrors.address and mirrors.nodes exclude each other: a mirror "
                           "cluster lists each node's address in nodes");
        }
        COWPI_TRY(p.nodes, read_mirror_nodes(m));
      } else {
        COWPI_TRY(p.address, m.endpoint_value("address", false));
      }
    }
    COWPI_TRY(p.public_key, m.public_key("public_key"));
    if (p.name == router_name) {
      return m.fail_at("name", "mirrors.name " + quote(p.name) + " is the router's name");
    }
    if (router_key && p.public_key == *router_key) {
      return m.fail_at("public_key", "mirrors.public_key is the router's public key");
    }
    for (size_t i = 0; i < out.size(); ++i) {
      const std::string first_line = std::to_string(where[i]->source().begin.line);
      if (out[i].name == p.name) {
        return m.fail_at("name", "mirror " + quote(p.name) + " appears twice (first at line "
                                     + first_line + ")");
      }
      if (out[i].public_key == p.public_key) {
        return m.fail_at("public_key", "mirrors.public_key is the same as that of mirror "
                                           + quote(out[i].name) + " (line " + first_line + ")");
      }
    }
    out.push_back(std::move(p));
    where.push_back(n.as_table());
  }
  // Every node id names a pre-key pool in the router's directory: no two may be equal, and
  // none may be another mirror's name or the router's.
  for (size_t i = 0; i < out.size(); ++i) {
    for (const auto& node : out[i].nodes) {
      const table_reader m(rep, where[i], "mirrors");
      if (node.id == router_name) {
        return m.fail_at("nodes", "mirror node " + quote(node.id) + " is the router's name");
      }
      for (size_t j = 0; j < out.size(); ++j) {
        if (j == i) {
          continue;
        }
        const auto& other = out[j];
        const bool clash = other.name == node.id
                           || std::any_of(other.nodes.begin(), other.nodes.end(),
                                          [&](const mirror_node& o) { return o.id == node.id; });
        if (clash) {
          return m.fail_at("nodes", "mirror node " + quote(node.id) + " is also a node or the name "
                                        "of mirror " + quote(other.name));
        }
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const mirror_peer& a, const mirror_peer& b) { return a.name < b.name; });
  return out;
}

}  // namespace cowpi::config::detail

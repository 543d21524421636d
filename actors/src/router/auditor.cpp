// SPDX-License-Identifier: Apache-2.0
// The cross-provider audit (docs/design.md §5, §6): AUDIT(conv, from, to) to every mirror link in
// parallel, batch by batch, each mirror's D_i compared with the router's log entries it still
// holds and, below the log's start, with the other mirrors'. Bounded by one deadline.
#include "auditor.hpp"

#include "cowpi/crypto/bytes.hpp"
#include "cowpi/storage/thread_guard.hpp"

#include "../type_ids.hpp"
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace cowpi::actors {

namespace {

using clock_type = std::chrono::steady_clock;

struct mirror_view {
  std::map<uint64_t, hash32> d;
  std::optional<std::string> error;
};

struct conv_audit {
  protocol::conv_id conv{};
  uint64_t next = 0;
  uint64_t log_start = 0;
  /// D_i of the log entries the router still holds.
  std::map<uint64_t, hash32> router_d;
  /// Entries still missing mirror answers (a mirror may not hold them yet).
  std::set<uint64_t> in_flight;
  std::vector<mirror_view> mirrors;
};

struct audit_job {
  std::vector<conv_audit> convs;
  bool single = false;
  size_t total_convs = 0;
  size_t chains_left = 0;
  clock_type::time_point deadline;
  caf::response_promise rp;
};

using job_ptr = std::shared_ptr<audit_job>;

struct auditor_state {
  auditor_deps d;
  static inline const char* name = "auditor";
};

using auditor_actor = caf::stateful_actor<auditor_state>;

std::string error_json(const std::string& why) {
  return nlohmann::json{{"ok", false}, {"error", why}}.dump();
}

// Reads what the router holds of `conv`: next, log start, D_i per held entry, in-flight ones.
expected<conv_audit> load_conv(storage::router_store& store, const protocol::conv_id& conv,
                               size_t mirrors) {
  COWPI_TRY(auto rows, store.audit_view(conv));
  conv_audit out;
  out.conv = conv;
  out.next = rows.next;
  out.log_start = rows.log_start;
  out.router_d = std::move(rows.d);
  out.in_flight = std::move(rows.in_flight);
  out.mirrors.resize(mirrors);
  return out;
}

nlohmann::json capped(const std::vector<nlohmann::json>& items, size_t max) {
  nlohmann::json a = nlohmann::json::array();
  for (size_t k = 0; k < items.size() && k < max; ++k) {
    a.push_back(items[k]);
  }
  return a;
}

// The report of one conversation; adds its mismatches (router-vs-mirror and, where the router
// holds nothing, mirror-vs-mirror) to `mismatches` and incomplete mirrors to `incomplete`.
nlohmann::json report(const auditor_deps& d, const conv_audit& c, uint64_t& mismatches,
                      uint64_t& incomplete) {
  nlohmann::json ms = nlohmann::json::array();
  for (size_t k = 0; k < c.mirrors.size(); ++k) {
    const auto& m = c.mirrors[k];
    uint64_t checked = 0;
    std::vector<nlohmann::json> bad;
    std::vector<nlohmann::json> missing;
    std::vector<nlohmann::json> in_flight;
    for (const auto& [i, rd] : c.router_d) {
      auto it = m.d.find(i);
      if (it == m.d.end()) {
        continue;
      }
      ++checked;
      if (it->second != rd) {
        bad.push_back({{"index", i}, {"router", to_hex(rd)}, {"mirror", to_hex(it->second)}});
      }
    }
    if (!m.error) {
      for (uint64_t i = 0; i < c.next; ++i) {
        if (m.d.contains(i)) {
          continue;
        }
        (c.in_flight.contains(i) ? in_flight : missing).emplace_back(i);
      }
    }
    mismatches += bad.size();
    if (m.error || !missing.empty()) {
      ++incomplete;
    }
    ms.push_back({{"mirror", d.mirrors[k].id},
                  {"held", m.d.size()},
                  {"checked", checked},
                  {"mismatch_count", bad.size()},
                  {"mismatches", capped(bad, d.max_listed)},
                  {"missing_count", missing.size()},
                  {"missing", capped(missing, d.max_listed)},
                  {"in_flight", capped(in_flight, d.max_listed)},
                  {"error", m.error ? nlohmann::json(*m.error) : nlohmann::json(nullptr)}});
  }
  // Below the router's log start only the mirrors hold D: they must agree with each other.
  std::vector<nlohmann::json> cross;
  std::set<uint64_t> indices;
  for (const auto& m : c.mirrors) {
    for (const auto& [i, v] : m.d) {
      if (!c.router_d.contains(i)) {
        indices.insert(i);
      }
    }
  }
  for (uint64_t i : indices) {
    std::optional<hash32> first;
    bool differ = false;
    nlohmann::json values = nlohmann::json::object();
    for (size_t k = 0; k < c.mirrors.size(); ++k) {
      auto it = c.mirrors[k].d.find(i);
      if (it == c.mirrors[k].d.end()) {
        continue;
      }
      values[d.mirrors[k].id] = to_hex(it->second);
      if (first && *first != it->second) {
        differ = true;
      }
      first = it->second;
    }
    if (differ) {
      cross.push_back({{"index", i}, {"values", std::move(values)}});
    }
  }
  mismatches += cross.size();
  return {{"conv", to_hex(c.conv)},
          {"next", c.next},
          {"log_start", c.log_start},
          {"router_held", c.router_d.size()},
          {"mirrors", std::move(ms)},
          {"cross_mirror_count", cross.size()},
          {"cross_mirror", capped(cross, d.max_listed)}};
}

void finish(auditor_actor* self, const job_ptr& job) {
  uint64_t mismatches = 0;
  uint64_t incomplete = 0;
  nlohmann::json out;
  if (job->single) {
    out = report(self->state.d, job->convs.front(), mismatches, incomplete);
  } else {
    nlohmann::json convs = nlohmann::json::array();
    for (const auto& c : job->convs) {
      convs.push_back(report(self->state.d, c, mismatches, incomplete));
    }
    out["conversations"] = std::move(convs);
    out["audited"] = job->convs.size();
    out["total"] = job->total_convs;
    out["truncated"] = job->convs.size() < job->total_convs;
  }
  out["ok"] = true;
  out["mismatches"] = mismatches;
  out["incomplete"] = incomplete;
  out["clean"] = mismatches == 0 && incomplete == 0;
  job->rp.deliver(out.dump());
}

void chain_done(auditor_actor* self, const job_ptr& job) {
  if (--job->chains_left == 0) {
    finish(self, job);
  }
}

// Fetches mirror k's D values of conversation c from index `from` on, then moves to the next
// conversation; one outstanding request per mirror at a time.
void fetch(auditor_actor* self, job_ptr job, size_t k, size_t c, uint64_t from) {
  for (; c < job->convs.size(); ++c, from = 0) {
    const auto& cv = job->convs[c];
    if (from < cv.next && !cv.mirrors[k].error) {
      break;
    }
  }
  if (c >= job->convs.size()) {
    chain_done(self, job);
    return;
  }
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(job->deadline - clock_type::now());
  if (left.count() <= 0) {
    for (; c < job->convs.size(); ++c) {
      job->convs[c].mirrors[k].error = "audit deadline passed";
    }
    chain_done(self, job);
    return;
  }
  const auto& cv = job->convs[c];
  protocol::link_request req{protocol::audit_query{cv.conv, from, cv.next - 1}};
  self->request(self->state.d.mirrors[k].link_for(cv.conv),
                std::min(left, self->state.d.batch_timeout), link_atom_v, std::move(req))
      .then(
          [=](const protocol::link_response& r) {
            auto& m = job->convs[c].mirrors[k];
            const uint64_t next = job->convs[c].next;
            if (const auto* a = std::get_if<protocol::audit_answer>(&r)) {
              for (size_t j = 0; j < a->d.size(); ++j) {
                m.d.emplace(a->from + j, a->d[j]);
              }
              const uint64_t reached = a->from + a->d.size();
              // An empty answer, or one that stopped short of a full batch, means the mirror
              // holds nothing further (it stops at its first missing index).
              if (a->d.empty() || reached >= next || a->d.size() < protocol::max_audit_batch) {
                fetch(self, job, k, c + 1, 0);
              } else {
                fetch(self, job, k, c, reached);
              }
              return;
            }
            if (const auto* rj = std::get_if<protocol::link_reject>(&r)) {
              m.error = "mirror refused AUDIT: " + rj->reason;
            } else {
              m.error = "unexpected answer to AUDIT";
            }
            fetch(self, job, k, c + 1, 0);
          },
          [=](const caf::error& e) {
            job->convs[c].mirrors[k].error =
                e == caf::sec::request_receiver_down ? std::string("link down")
                : e == caf::sec::request_timeout     ? std::string("no answer in time")
                                                     : "no answer: " + self->system().render(e);
            fetch(self, job, k, c + 1, 0);
          });
}

caf::behavior auditor(auditor_actor* self, auditor_deps deps) {
  self->state.d = std::move(deps);
  // Detached: this thread is the actor's own, and its store calls may block here.
  storage::mark_nonblocking_thread(false);
  return {
      [=](command_atom, const std::string& line) -> caf::result<std::string> {
        const auto& d = self->state.d;
        auto req = nlohmann::json::parse(line, nullptr, false);
        if (req.is_discarded() || !req.is_object()) {
          return error_json("a JSON object expected");
        }
        auto job = std::make_shared<audit_job>();
        std::vector<protocol::conv_id> convs;
        if (req.contains("conv")) {
          const auto hex = req["conv"].is_string() ? req["conv"].get<std::string>() : "";
          auto raw = from_hex(hex);
          if (!raw || raw->size() != protocol::conv_id{}.size()) {
            return error_json("\"conv\" must be 32 hex digits");
          }
          protocol::conv_id conv{};
          std::copy(raw->begin(), raw->end(), conv.begin());
          auto n = d.store->next_index(conv);
          if (!n) {
            return error_json("storage: " + n.error().message());
          }
          if (*n == 0) {
            return error_json("unknown conversation " + hex);
          }
          convs.push_back(conv);
          job->single = true;
        } else {
          auto all = d.store->conversations();
          if (!all) {
            return error_json("storage: " + all.error().message());
          }
          job->total_convs = all->size();
          all->resize(std::min(all->size(), d.max_conversations));
          convs = std::move(*all);
        }
        for (const auto& conv : convs) {
          auto c = load_conv(*d.store, conv, d.mirrors.size());
          if (!c) {
            return error_json("storage: " + c.error().message());
          }
          job->convs.push_back(std::move(*c));
        }
        job->deadline = clock_type::now() + d.deadline;
        job->rp = self->make_response_promise();
        if (d.mirrors.empty() || job->convs.empty()) {
          job->chains_left = 1;
          chain_done(self, job);
        } else {
          job->chains_left = d.mirrors.size();
          for (size_t k = 0; k < d.mirrors.size(); ++k) {
            fetch(self, job, k, 0, 0);
          }
        }
        return caf::delegated<std::string>{};
      },
  };
}

}  // namespace

caf::actor spawn_auditor(caf::actor_system& sys, auditor_deps deps) {
  return sys.spawn<caf::detached>(auditor, std::move(deps));
}

}  // namespace cowpi::actors

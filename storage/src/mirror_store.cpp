// SPDX-License-Identifier: Apache-2.0
// The mirror store: conversation records split in rows, sealed channels, D history, answers
// until acknowledged and the sealed key store; every COMMIT result in one synced batch.
#include "cowpi/storage/mirror_store.hpp"

#include "detail/open_sealed.hpp"
#include "detail/rows.hpp"
#include "detail/scan_error.hpp"
#include "detail/task_thread.hpp"

#include <future>
#include <map>

namespace cowpi::storage {

using protocol::conv_id;

namespace {

/// `conv`'s record in `m`; null (and `done` failed) when there is none.
const protocol::mirror_conv* find_or_fail(const protocol::mirror& m, const conv_id& conv,
                                          store::done_fn& done) {
  const protocol::mirror_conv* mc = m.find(conv);
  if (mc == nullptr)
    done(fail(errc::bad_state, "no such conversation in the mirror"));
  return mc;
}

}  // namespace

expected<std::unique_ptr<mirror_store>> mirror_store::open(const std::filesystem::path& path,
                                                           const key_source& key, crypto::rng& r,
                                                           const open_options& o) {
  return detail::open_sealed<mirror_store>(path, role::mirror, key, r, o);
}

mirror_store::mirror_store(std::unique_ptr<store> s, sealer sl, crypto::rng& r)
    : s_(std::move(s)),
      sealer_(std::move(sl)),
      rng_(r),
      cache_(std::make_unique<detail::row_cache>()),
      reader_(std::make_unique<detail::task_thread>()) {
  COWPI_ASSERT(s_ && s_->kind() == role::mirror);
}

mirror_store::~mirror_store() {
  reader_.reset();  // no audit runs while the members it reads go
}

void mirror_store::audit_async(const protocol::audit_query& q, uint64_t next, uint64_t max_audit,
                               std::function<void(protocol::audit_answer)> done) {
  reader_->post([this, q, next, max_audit, done = std::move(done)] {
    done(protocol::mirror::audit_range(q, next, max_audit, *this));
  });
}

expected<protocol::mirror> mirror_store::load(protocol::identity self,
                                              protocol::mirror_options opts) {
  std::lock_guard<std::mutex> g(mu_);
  COWPI_TRY(auto bound, s_->get(column::meta, keys::meta_identity()));
  if (bound) {
    COWPI_TRY(identity_binding b, decode_identity_binding(*bound));
    if (b.id != self.id() || b.lpk != self.lpk())
      return fail(errc::bad_state,
                  "this data directory belongs to another mirror identity; a mirror with lost "
                  "or restored data must start afresh under a new identity");
  } else if (s_->mode() == open_mode::read_write) {
    write_batch b;
    b.put(column::meta, keys::meta_identity(),
          encode_identity_binding(identity_binding{self.id(), self.lpk()}));
    COWPI_TRY_VOID(s_->apply(std::move(b)));
  }

  protocol::mirror m(std::move(self), opts);
  auto cache = std::make_unique<detail::row_cache>();
  COWPI_TRY_VOID(detail::load_keys(*s_, sealer_, *cache, m.mutable_keys()));

  std::map<conv_id, detail::conv_rows> rows;
  COWPI_TRY_VOID(
      detail::scan_conv_rows(*s_, rows, [&](std::string_view key, conv_row kind, byte_view v) {
        if (kind == conv_row::t) {
          cache->note_ordered(column::conv, std::string(key));
        } else {
          cache->note(column::conv, std::string(key), v);
        }
      }));

  auto& convs = m.mutable_convs();
  for (auto& [conv, cr] : rows) {
    if (!cr.header)
      return fail(errc::corruption, "a conversation without its header row");
    COWPI_TRY(mirror_header h, decode_mirror_header(*cr.header));
    protocol::mirror_conv mc;
    mc.st.last_update = h.last_update;
    mc.st.next = h.next;
    mc.st.joiner = h.joiner;
    for (const auto& [id, p] : cr.peers) {
      if (p.ratchet_next)
        mc.ratchet_next[id] = *p.ratchet_next;
      if (p.member_lr)
        mc.member_lr[id] = *p.member_lr;
    }
    detail::assemble_state(conv, cr, mc.st);
    convs.emplace(conv, std::move(mc));
  }

  COWPI_TRY_VOID(detail::load_channels(*s_, sealer_, *cache, convs));

  detail::scan_error se;
  COWPI_TRY_VOID(s_->scan(column::answers, "", "", [&](std::string_view key, byte_view v) {
    auto conv = keys::conv_of(key);
    auto i = keys::be64_at(key, 16);
    if (!conv || !i || key.size() != 24)
      return se.set(error{errc::corruption, "answer row key"});
    auto it = convs.find(*conv);
    if (it == convs.end())
      return se.set(error{errc::corruption, "an answer without its conversation"});
    auto a = decode_answer(*i, v);
    if (!a)
      return se.set(a.error());
    it->second.answers.emplace(*i, std::move(*a));
    cache->note_ordered(column::answers, std::string(key));
    return true;
  }));
  COWPI_TRY_VOID(se.result());
  cache_ = std::move(cache);
  return m;
}

void mirror_store::conv_rows(const protocol::mirror_conv& mc, write_batch& b) {
  const conv_id& conv = mc.st.conv;
  detail::row_image img;
  img.put(column::conv, keys::conv_row_key(conv, conv_row::header),
          encode_mirror_header(mirror_header{mc.st.last_update, mc.st.next, mc.st.joiner}));
  detail::add_state_rows(img, mc.st,
                         detail::peer_extras{nullptr, nullptr, &mc.ratchet_next, &mc.member_lr});
  for (const auto& [peer, ch] : mc.channels)
    img.put_sealed(column::channels, keys::channel(conv, peer), detail::fingerprint(ch),
                   [&c = ch] { return encode_channel(c); });
  auto ranges = detail::state_ranges(conv);
  ranges.emplace_back(column::conv, keys::conv_row_key(conv, conv_row::header));
  ranges.emplace_back(column::channels, keys::conv_prefix(conv));
  cache_->sync(ranges, std::move(img), &sealer_, rng_, b);
  cache_->sync_ordered(
      column::conv, keys::conv_row_key(conv, conv_row::t), mc.st.t,
      [](const hash32& h) { return encode_hash(h); }, b);
  cache_->sync_ordered(
      column::answers, keys::conv_prefix(conv), mc.answers,
      [](const protocol::answer& a) { return encode_answer(a); }, b);
}

void mirror_store::persist_commit_async(const protocol::mirror& m, const conv_id& conv,
                                        uint64_t index, const hash32& d, bool keys_changed,
                                        store::done_fn done) {
  const protocol::mirror_conv* mc = find_or_fail(m, conv, done);
  if (mc == nullptr)
    return;
  persist_commit_async(*mc, index, d, keys_changed ? &m.keys() : nullptr, std::move(done));
}

void mirror_store::persist_commit_async(const protocol::mirror_conv& mc, uint64_t index,
                                        const hash32& d, const protocol::key_store* keys,
                                        store::done_fn done) {
  std::lock_guard<std::mutex> g(mu_);
  const sealer::batch key_open(sealer_);  // one unprotect for the conversation and key rows
  write_batch b;
  conv_rows(mc, b);
  b.put(column::dhist, keys::indexed(mc.st.conv, index), encode_hash(d));
  // The key rows are rebuilt and compared only when the commit may have changed them: a chain
  // block (the steady state) names no key.
  if (keys != nullptr) {
    detail::row_image keys_img;
    detail::add_key_rows(keys_img, *keys);
    cache_->sync(detail::key_ranges(), std::move(keys_img), &sealer_, rng_, b);
    detail::sync_published(*cache_, *keys, b);
  }
  // Queued under the lock: the row cache already describes this batch, so the next one built
  // must reach the writer after it.
  s_->apply_async(std::move(b), std::move(done));
}

namespace {

// Waits for an `apply_async`-style call.
template <class Start>
expected<void> wait_for(Start&& start) {
  std::promise<expected<void>> p;
  auto f = p.get_future();
  start([&p](expected<void> r) { p.set_value(std::move(r)); });
  return f.get();
}

}  // namespace

expected<void> mirror_store::persist_commit(const protocol::mirror& m, const conv_id& conv,
                                            uint64_t index, const hash32& d, bool keys_changed) {
  return wait_for([&](store::done_fn done) {
    persist_commit_async(m, conv, index, d, keys_changed, std::move(done));
  });
}

void mirror_store::persist_ack_async(const protocol::mirror& m, const conv_id& conv,
                                     store::done_fn done) {
  const protocol::mirror_conv* mc = find_or_fail(m, conv, done);
  if (mc == nullptr)
    return;
  persist_ack_async(*mc, std::move(done));
}

void mirror_store::persist_ack_async(const protocol::mirror_conv& mc, store::done_fn done) {
  std::lock_guard<std::mutex> g(mu_);
  write_batch b;
  cache_->sync_ordered(
      column::answers, keys::conv_prefix(mc.st.conv), mc.answers,
      [](const protocol::answer& a) { return encode_answer(a); }, b);
  if (b.empty()) {
    done(expected<void>{});
    return;
  }
  // Lazy (docs/storage.md §6): a deletion lost to a power loss leaves answers the router
  // already holds, which the next ACK (it covers every lower index) deletes again.
  b.set_lazy();
  s_->apply_async(std::move(b), std::move(done));
}

expected<void> mirror_store::persist_ack(const protocol::mirror& m, const conv_id& conv) {
  return wait_for([&](store::done_fn done) { persist_ack_async(m, conv, std::move(done)); });
}

void mirror_store::barrier_async(store::done_fn done) {
  std::lock_guard<std::mutex> g(mu_);
  write_batch b;
  b.set_lazy();
  s_->apply_async(std::move(b), std::move(done));
}

void mirror_store::persist_keys_async(const protocol::mirror& m, store::done_fn done) {
  persist_keys_async(m.keys(), std::move(done));
}

void mirror_store::persist_keys_async(const protocol::key_store& keys, store::done_fn done) {
  std::lock_guard<std::mutex> g(mu_);
  const sealer::batch key_open(sealer_);
  write_batch b;
  detail::row_image img;
  detail::add_key_rows(img, keys);
  cache_->sync(detail::key_ranges(), std::move(img), &sealer_, rng_, b);
  detail::sync_published(*cache_, keys, b);
  if (b.empty()) {
    done(expected<void>{});
    return;
  }
  // Queued under the lock, like a COMMIT's batch: the row cache already describes it.
  s_->apply_async(std::move(b), std::move(done));
}

expected<void> mirror_store::persist_keys(const protocol::mirror& m) {
  return wait_for([&](store::done_fn done) { persist_keys_async(m, std::move(done)); });
}

void mirror_store::answer_retry_async(const conv_id& conv, uint64_t i, const hash32& d,
                                      std::optional<protocol::answer> stored,
                                      std::function<void(protocol::link_response)> done) {
  reader_->post([this, conv, i, d, stored = std::move(stored), done = std::move(done)] {
    done(protocol::mirror::answer_retry(conv, i, d, stored, *this));
  });
}

std::optional<hash32> mirror_store::d_at(const conv_id& conv, uint64_t i) const {
  auto raw = s_->get(column::dhist, keys::indexed(conv, i));
  if (!raw || !*raw)
    return std::nullopt;
  auto h = decode_hash(**raw);
  if (!h)
    return std::nullopt;
  return *h;
}

}  // namespace cowpi::storage

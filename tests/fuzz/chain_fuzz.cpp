// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for chain blocks (docs/protocol.md §4.8). An even first byte feeds the rest
// to the chain-block and DH-step decoders (a successful decode must round-trip). An odd first
// byte runs a channel: the input chooses what the sender seals, which blocks reach the
// receiver, in what order, tampered or not, whether an opened block's entry is accepted, and
// raw bytes posing as blocks. A model of the receiver's rule table says what must open; any
// disagreement, a forged block that opens, or a skipped-key set past MAX_SKIP aborts.
#include "cowpi/protocol/chain.hpp"
#include "cowpi/protocol/limits.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using namespace cowpi;            // NOLINT(google-build-using-namespace)
using namespace cowpi::protocol;  // NOLINT(google-build-using-namespace)

[[noreturn]] void broken(const char* how) {
  std::fprintf(stderr, "chain rule broken: %s\n", how);
  std::abort();
}

void decoders(byte_view in) {
  if (auto b = decode_chain_block(in); b.has_value()) {
    const bytes e = enc_chain_block(*b);
    if (e != bytes(in.begin(), in.end()))
      broken("chain block re-encodes differently");
    auto again = decode_chain_block(e);
    if (!again.has_value() || !(*again == *b))
      broken("chain block does not round-trip");
  }
  if (auto s = decode_dh_step(in); s.has_value()) {
    const auto e = enc_dh_step(*s);
    if (!std::equal(e.begin(), e.end(), in.begin(), in.end()))
      broken("DH step re-encodes differently");
  }
}

/// Reads the input a byte at a time; 0 once it is used up.
struct reader {
  const uint8_t* p;
  const uint8_t* end;
  bool more() const noexcept { return p < end; }
  uint8_t next() noexcept { return p < end ? *p++ : 0; }
};

struct sent {
  bytes wire;
  chain_plaintext pt;
};

bool same_plaintext(const chain_plaintext& a, const chain_plaintext& b) {
  if (a.seed.has_value() != b.seed.has_value() || a.announced != b.announced)
    return false;
  return !a.seed || crypto::ct_equal(a.seed->expose(), b.seed->expose());
}

/// The receiver as docs/protocol.md §4.8's table states it.
struct model {
  uint32_t next = 0;
  std::set<uint32_t> skipped;

  /// What opening a genuine block at counter `n` of the current epoch must give.
  std::optional<chain_failure> expect(uint32_t n) const {
    if (n < next)
      return skipped.count(n) ? std::nullopt : std::optional{chain_failure::reused_counter};
    if (n - next > chain_max_skip)
      return chain_failure::too_far;
    return std::nullopt;
  }
  void accept(uint32_t n) {
    if (n < next) {
      skipped.erase(n);
      return;
    }
    for (uint32_t i = next; i < n; ++i)
      skipped.insert(i);
    while (skipped.size() > chain_max_skip)
      skipped.erase(skipped.begin());
    next = n + 1;
  }
};

void check_state(const recv_chain& rc, const model& m) {
  if (rc.next != m.next)
    broken("receiver's next differs from the model");
  if (rc.skipped.size() > chain_max_skip)
    broken("more than MAX_SKIP skipped keys kept");
  if (rc.skipped.size() != m.skipped.size()
      || !std::equal(rc.skipped.begin(), rc.skipped.end(), m.skipped.begin(),
                     [](const auto& kv, uint32_t n) { return kv.first == n; }))
    broken("receiver's skipped counters differ from the model");
}

void channel(reader in) {
  crypto::secret<32> ck;
  for (size_t i = 0; i < ck.expose().size(); ++i)
    ck.expose()[i] = static_cast<uint8_t>(i * 7 + 1);
  const uint32_t epoch = 1U + in.next();
  const bytes ad = {'c', 'h', 'a', 'i', 'n', '-', 'f', 'u', 'z', 'z'};
  send_chain sender(epoch, ck.clone(), 0);
  recv_chain receiver;
  receiver.epoch = epoch;
  receiver.ck = ck.clone();
  model m;
  std::map<uint32_t, sent> sealed;  // every block the sender made, by counter

  auto deliver = [&](const bytes& wire, bool accept) -> bool {
    auto b = decode_chain_block(wire);
    if (!b.has_value())
      return false;
    auto o = open_chain_block(&receiver, *b, ad);
    if (!o.has_value())
      return false;
    if (accept) {
      apply_chain_effects(receiver, std::move(o->effects));
    }
    return true;
  };

  while (in.more()) {
    const uint8_t op = in.next();
    const uint8_t arg = in.next();
    switch (op % 6) {
      case 0:
      case 1: {  // the sender seals arg % 8 + 1 blocks, the low bits picking what they carry
        for (int k = 0; k <= arg % 8; ++k) {
          chain_plaintext pt;
          if (op & 0x10) {
            pt.seed.emplace();
            std::fill(pt.seed->expose().begin(), pt.seed->expose().end(), arg);
          }
          if (op & 0x20)
            pt.announced = published_key{arg, public_key{}};
          const uint32_t n = sender.next();
          auto b = sender.seal(pt, ad);
          if (!b.has_value())
            broken("sealing on a fresh chain failed");
          if (b->n != n || b->epoch != epoch)
            broken("a sealed block's header does not match the chain");
          sealed[n] = sent{enc_chain_block(*b), std::move(pt)};
        }
        break;
      }
      case 2: {  // a genuine block arrives; bit 0x10: its entry is not accepted
        if (sealed.empty())
          break;
        auto it = sealed.begin();
        std::advance(it, static_cast<long>(arg % sealed.size()));
        const uint32_t n = it->first;
        const bool accept = (op & 0x10) == 0;
        const auto want = m.expect(n);
        auto b = decode_chain_block(it->second.wire);
        if (!b.has_value())
          broken("a sealed block does not decode");
        auto o = open_chain_block(&receiver, *b, ad);
        if (want.has_value() != !o.has_value())
          broken("a genuine block opened against the rule table, or failed within it");
        if (want.has_value()) {
          if (o.error() != *want)
            broken("a genuine block failed for the wrong reason");
          break;
        }
        if (!same_plaintext(o->pt, it->second.pt))
          broken("a block opened to another plaintext");
        if (accept) {
          apply_chain_effects(receiver, std::move(o->effects));
          m.accept(n);
        }
        break;
      }
      case 3: {  // a genuine block with one byte flipped never opens
        if (sealed.empty())
          break;
        auto it = sealed.begin();
        std::advance(it, static_cast<long>(arg % sealed.size()));
        bytes wire = it->second.wire;
        const uint8_t at = in.next();
        const uint8_t mask = static_cast<uint8_t>(in.next() | 1);
        wire[at % wire.size()] ^= mask;
        if (deliver(wire, true))
          broken("a tampered block opened");
        break;
      }
      case 4: {  // raw bytes posing as a block open only if they are a sealed block
        bytes wire;
        const size_t len = arg % 100;
        for (size_t k = 0; k < len && in.more(); ++k)
          wire.push_back(in.next());
        auto b = decode_chain_block(wire);
        if (!b.has_value())
          break;
        auto o = open_chain_block(&receiver, *b, ad);
        if (!o.has_value())
          break;
        auto it = sealed.find(b->n);
        if (b->epoch != epoch || it == sealed.end() || it->second.wire != wire)
          broken("a forged block opened");
        if (m.expect(b->n).has_value())
          broken("a block opened against the rule table");
        apply_chain_effects(receiver, std::move(o->effects));
        m.accept(b->n);
        break;
      }
      case 5: {  // a block of another epoch, or on a channel with no chain, is unknown
        if (sealed.empty())
          break;
        auto b = decode_chain_block(sealed.begin()->second.wire);
        if (!b.has_value())
          broken("a sealed block does not decode");
        b->epoch = epoch + 1U + static_cast<uint32_t>(arg);
        auto o = open_chain_block(&receiver, *b, ad);
        if (o.has_value() || o.error() != chain_failure::unknown_epoch)
          broken("a block of another epoch was not an unknown epoch");
        auto none = open_chain_block(nullptr, *b, ad);
        if (none.has_value() || none.error() != chain_failure::unknown_epoch)
          broken("a block on a channel with no chain was not an unknown epoch");
        break;
      }
      default:
        break;
    }
    check_state(receiver, m);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  if ((data[0] & 1) == 0) {
    decoders(byte_view(data + 1, size - 1));
    return 0;
  }
  channel(reader{data + 1, data + size});
  return 0;
}

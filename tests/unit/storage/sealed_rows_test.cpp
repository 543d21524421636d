// SPDX-License-Identifier: Apache-2.0
// Sealed rows are bound to their place: a sealed value swapped with another row of its column,
// or copied to another column under the same key, is refused with a clear error and nothing
// else is lost; a store sealed in the earlier format (rows not bound) is refused at open.
#include "cowpi/storage/client_store.hpp"
#include "cowpi/storage/mirror_store.hpp"
#include "cowpi/storage/store.hpp"

#include "durable_world.hpp"
#include "state_compare.hpp"
#include "temp_dir.hpp"
#include <gtest/gtest.h>
#include <sodium.h>

#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cowpi::storage {
namespace {

using testing::durable_world;
using testing::temp_dir;

using row_map = std::map<std::pair<column, std::string>, bytes>;

// Every row of every column of the (closed) store at `db`, through a read-only instance.
row_map dump(const std::filesystem::path& db) {
  open_options o;
  o.mode = open_mode::read_only;
  auto s = open_existing(db, o);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  row_map out;
  if (!s)
    return out;
  for (column c : columns_of((*s)->kind()))
    EXPECT_TRUE((*s)->scan(c, "", "",
                           [&](std::string_view k, byte_view v) {
                             out.emplace(std::make_pair(c, std::string(k)),
                                         bytes(v.begin(), v.end()));
                             return true;
                           })
                    .has_value());
  return out;
}

// The keys of column `c` in `rows` that start with `prefix`, in key order.
std::vector<std::string> keys_in(const row_map& rows, column c, const std::string& prefix = "") {
  std::vector<std::string> out;
  for (const auto& [ck, v] : rows)
    if (ck.first == c && ck.second.starts_with(prefix))
      out.push_back(ck.second);
  return out;
}

// Writes `b` to the (closed) store at `db` with plain RocksDB writes, as anyone who can write
// the disk could.
void raw_apply(const std::filesystem::path& db, role r, write_batch b) {
  auto s = open_store(db, r);
  ASSERT_TRUE(s.has_value()) << s.error().message();
  ASSERT_TRUE((*s)->apply(std::move(b)).has_value());
}

// `rows` with the values of (c, a) and (c, b) exchanged.
row_map swapped(row_map rows, column c, const std::string& a, const std::string& b) {
  std::swap(rows.at({c, a}), rows.at({c, b}));
  return rows;
}

// A batch that exchanges the values of two rows of column `c`.
write_batch swap_batch(const row_map& rows, column c, const std::string& a, const std::string& b) {
  write_batch w;
  w.put(c, a, rows.at({c, b}));
  w.put(c, b, rows.at({c, a}));
  return w;
}

std::unique_ptr<client_store> open_client(const temp_dir& d, const std::string& user,
                                          crypto::rng& r) {
  auto s = client_store::open(d.path() / ("client-" + user),
                              key_file{d.path() / ("client-" + user + ".key")}, r);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

std::unique_ptr<mirror_store> open_mirror(const temp_dir& d, crypto::rng& r) {
  auto s = mirror_store::open(d.path() / "mirror-a", key_file{d.path() / "mirror-a.key"}, r);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

// Checks that `e` is the refusal of a sealed row found out of its place in column `c`.
void expect_misplaced(const error& e, column c) {
  EXPECT_EQ(e.code, errc::corruption) << e.message();
  EXPECT_NE(e.context.find("'" + std::string(column_name(c)) + "'"), std::string::npos)
      << e.message();
  EXPECT_NE(e.context.find("moved"), std::string::npos) << e.message();
}

// Three members; bob leaves two messages unsent, so his outbox holds two rows.
struct client_fixture {
  temp_dir d{"sealed"};
  protocol::conv_id conv{};
  std::map<std::string, protocol::client> live;
  std::vector<protocol::accepted_entry> bob_accepted;

  client_fixture() {
    durable_world w(d.path(), {});
    for (const char* u : {"alice", "bob", "carol"})
      w.add_user(u);
    conv = w.create("alice", {"bob", "carol"}).value();
    w.run();
    for (int k = 0; k < 4; ++k) {
      EXPECT_TRUE(w.send(k % 2 ? "alice" : "carol", conv, "m" + std::to_string(k)).has_value());
      w.run();
    }
    EXPECT_TRUE(w.send("bob", conv, "unsent 1").has_value());
    EXPECT_TRUE(w.send("bob", conv, "unsent 2").has_value());
    for (const auto& u : w.users())
      live.emplace(u, w.client(u).clone());
    bob_accepted = w.accepted("bob", conv);
  }
  std::filesystem::path db(const std::string& user) const { return d.path() / ("client-" + user); }
};

// Swaps two sealed rows of `c` in bob's store: the load (or, for the transcript, the read)
// fails naming the column, writes nothing, and swapping them back restores everything.
void swap_in_client(column c) {
  SCOPED_TRACE(std::string(column_name(c)));
  client_fixture f;
  const auto path = f.db("bob");
  const row_map before = dump(path);
  const std::string prefix = c == column::keys ? keys::key_prefix(key_row::prekey) : "";
  const auto ks = keys_in(before, c, prefix);
  ASSERT_GE(ks.size(), 2u);
  raw_apply(path, role::client, swap_batch(before, c, ks[0], ks[1]));
  const row_map tampered = dump(path);
  ASSERT_EQ(tampered, swapped(before, c, ks[0], ks[1]));

  crypto::system_rng r;
  {
    auto s = open_client(f.d, "bob", r);
    ASSERT_NE(s, nullptr);
    if (c == column::transcript) {
      auto tr = s->transcript(f.conv);
      ASSERT_FALSE(tr.has_value()) << "swapped transcript rows were read as each other";
      expect_misplaced(tr.error(), c);
    } else {
      auto loaded = s->load();
      ASSERT_FALSE(loaded.has_value()) << "swapped rows were loaded under each other's keys";
      expect_misplaced(loaded.error(), c);
    }
  }
  EXPECT_EQ(dump(path), tampered) << "a refused load wrote to the store";

  raw_apply(path, role::client, swap_batch(tampered, c, ks[0], ks[1]));
  auto s = open_client(f.d, "bob", r);
  ASSERT_NE(s, nullptr);
  auto loaded = s->load();
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  EXPECT_TRUE(testing::same_client(*loaded, f.live.at("bob")));
  auto tr = s->transcript(f.conv);
  ASSERT_TRUE(tr.has_value()) << tr.error().message();
  EXPECT_EQ(*tr, f.bob_accepted);
}

TEST(sealed_rows, two_swapped_channel_rows_are_refused_at_load_and_nothing_else_is_lost) {
  swap_in_client(column::channels);
}

TEST(sealed_rows, two_swapped_outbox_rows_are_refused_at_load_and_nothing_else_is_lost) {
  swap_in_client(column::outbox);
}

TEST(sealed_rows, two_swapped_prekey_slots_are_refused_at_load_and_nothing_else_is_lost) {
  swap_in_client(column::keys);
}

TEST(sealed_rows, two_swapped_transcript_rows_are_refused_when_read) {
  swap_in_client(column::transcript);
}

TEST(sealed_rows, a_sealed_row_copied_to_another_column_under_the_same_key_is_refused) {
  client_fixture f;
  const auto path = f.db("bob");
  const row_map before = dump(path);
  // Outbox and transcript keys are both `conv || be64(n)`.
  const auto outbox = keys_in(before, column::outbox);
  const auto transcript = keys_in(before, column::transcript);
  ASSERT_FALSE(outbox.empty());
  ASSERT_FALSE(transcript.empty());
  crypto::system_rng r;

  // An outbox entry put in the transcript under its own key.
  write_batch to_transcript;
  to_transcript.put(column::transcript, outbox[0], before.at({column::outbox, outbox[0]}));
  raw_apply(path, role::client, std::move(to_transcript));
  {
    auto s = open_client(f.d, "bob", r);
    ASSERT_NE(s, nullptr);
    auto tr = s->transcript(f.conv);
    ASSERT_FALSE(tr.has_value()) << "an outbox row was read as a transcript entry";
    expect_misplaced(tr.error(), column::transcript);
  }

  // A transcript entry put in the outbox under its own key.
  write_batch to_outbox;
  if (before.contains({column::transcript, outbox[0]}))
    to_outbox.put(column::transcript, outbox[0], before.at({column::transcript, outbox[0]}));
  else
    to_outbox.del(column::transcript, outbox[0]);
  to_outbox.put(column::outbox, transcript[0], before.at({column::transcript, transcript[0]}));
  raw_apply(path, role::client, std::move(to_outbox));
  {
    auto s = open_client(f.d, "bob", r);
    ASSERT_NE(s, nullptr);
    auto tr = s->transcript(f.conv);
    ASSERT_TRUE(tr.has_value()) << tr.error().message();
    auto loaded = s->load();
    ASSERT_FALSE(loaded.has_value()) << "a transcript row was loaded as an outbox entry";
    expect_misplaced(loaded.error(), column::outbox);
  }
}

TEST(sealed_rows, swapped_mirror_channels_and_prekey_slots_are_refused_at_load) {
  temp_dir d("sealed");
  protocol::mirror live = [&] {
    durable_world w(d.path(), {});
    for (const char* u : {"alice", "bob", "carol"})
      w.add_user(u);
    auto conv = w.create("alice", {"bob", "carol"}).value();
    w.run();
    EXPECT_TRUE(w.send("bob", conv, "hello").has_value());
    w.run();
    return w.mirror(0).clone();
  }();
  const auto path = d.path() / "mirror-a";
  const row_map before = dump(path);
  crypto::system_rng r;
  for (auto [c, prefix] : {std::pair<column, std::string>{column::channels, ""},
                           {column::keys, keys::key_prefix(key_row::prekey)}}) {
    SCOPED_TRACE(std::string(column_name(c)));
    const auto ks = keys_in(before, c, prefix);
    ASSERT_GE(ks.size(), 2u);
    raw_apply(path, role::mirror, swap_batch(before, c, ks[0], ks[1]));
    {
      auto s = open_mirror(d, r);
      ASSERT_NE(s, nullptr);
      auto m = s->load(durable_world::mirror_identity(d.path(), 0));
      ASSERT_FALSE(m.has_value()) << "swapped rows were loaded under each other's keys";
      expect_misplaced(m.error(), c);
    }
    EXPECT_EQ(dump(path), swapped(before, c, ks[0], ks[1]));
    raw_apply(path, role::mirror, swap_batch(swapped(before, c, ks[0], ks[1]), c, ks[0], ks[1]));
  }
  auto s = open_mirror(d, r);
  ASSERT_NE(s, nullptr);
  auto m = s->load(durable_world::mirror_identity(d.path(), 0));
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_TRUE(testing::same_mirror(*m, live));
}

// The key check record exactly as the earlier format sealed it: `u8(1) || nonce[24] ||
// crypto_secretbox_easy(check string)`, under the store's key file.
bytes format1_check(const std::filesystem::path& key_path) {
  std::ifstream in(key_path, std::ios::binary);
  const std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(key.size(), size_t{crypto_secretbox_KEYBYTES});
  const std::string_view pt = seal_check_plaintext;
  bytes out(1 + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + pt.size());
  out[0] = 1;
  randombytes_buf(out.data() + 1, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(out.data() + 1 + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const uint8_t*>(pt.data()), pt.size(), out.data() + 1,
                        reinterpret_cast<const uint8_t*>(key.data()));
  return out;
}

TEST(sealed_rows, a_client_store_of_the_earlier_sealed_format_is_refused_at_open_untouched) {
  temp_dir d("sealed");
  {
    durable_world w(d.path(), {});
    w.add_user("alice");
  }
  const auto path = d.path() / "client-alice";
  write_batch b;
  b.put(column::meta, keys::meta_seal_check(), format1_check(d.path() / "client-alice.key"));
  raw_apply(path, role::client, std::move(b));
  const row_map before = dump(path);

  crypto::system_rng r;
  auto s = client_store::open(path, key_file{d.path() / "client-alice.key"}, r);
  ASSERT_FALSE(s.has_value()) << "a format-1 store was opened";
  EXPECT_EQ(s.error().code, errc::unsupported_layout);
  const std::string& why = s.error().context;
  EXPECT_NE(why.find("sealed-record format 1"), std::string::npos) << why;
  EXPECT_NE(why.find("not bound to their keys"), std::string::npos) << why;
  EXPECT_NE(why.find("cowpi init"), std::string::npos) << why;
  EXPECT_EQ(dump(path), before) << "the refused open wrote to the store";
}

TEST(sealed_rows, a_mirror_store_of_the_earlier_sealed_format_is_refused_at_open_untouched) {
  temp_dir d("sealed");
  {
    durable_world w(d.path(), {});
    w.add_user("alice");
  }
  const auto path = d.path() / "mirror-a";
  write_batch b;
  b.put(column::meta, keys::meta_seal_check(), format1_check(d.path() / "mirror-a.key"));
  raw_apply(path, role::mirror, std::move(b));
  const row_map before = dump(path);

  crypto::system_rng r;
  auto s = mirror_store::open(path, key_file{d.path() / "mirror-a.key"}, r);
  ASSERT_FALSE(s.has_value()) << "a format-1 store was opened";
  EXPECT_EQ(s.error().code, errc::unsupported_layout);
  const std::string& why = s.error().context;
  EXPECT_NE(why.find("sealed-record format 1"), std::string::npos) << why;
  EXPECT_NE(why.find("new identity"), std::string::npos) << why;
  EXPECT_EQ(dump(path), before) << "the refused open wrote to the store";
}

}  // namespace
}  // namespace cowpi::storage

# SPDX-License-Identifier: Apache-2.0
# Storage-private record schema: the variable-shape rows of the router, mirror and client stores
# (docs/storage.md lists every row and which of them are sealed).
@0xb9d3320fc24c3993;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("cowpi::storage::schema");

# Conventions:
# - Evolve only by appending fields (new ordinals); nothing is renumbered, retyped or reused. A
#   change that old readers must not silently accept bumps the layout version (keys.hpp) instead.
# - Ids are Data (raw bytes, compared bytewise). Keys and hashes are Data of exactly 32 bytes,
#   conversation ids 16 bytes, blocks exactly enc(block) = 185 bytes; a reader refuses other sizes.
# - Optional values are pointer fields that are either null (absent) or hold a value; an optional
#   integer is wrapped in `OptU64`.

struct OptU64 {
  value @0 :UInt64;
}

struct Member {
  id @0 :Data;
  lpk @1 :Data;
}

struct PublishedKey {
  id @0 :UInt64;
  pub @1 :Data;
}

struct KeyRef {
  kind @0 :UInt8;       # PREKEY 1, LAST_RESORT 2, RATCHET 3 (enc(ref)'s numbers)
  id @1 :UInt64;
  pub @2 :Data;
}

struct OwnedKey {
  esk @0 :Data;         # secret: only inside sealed records
  pub @1 :Data;
  created @2 :UInt64;
}

struct ChannelRef {
  conv @0 :Data;
  peer @1 :Data;
}

# ---------------------------------------------------------------------------------------------
# Conversation records (the `conv` column family), split so that a message rewrites only the
# header, its author's row and one T row.

struct RouterConvHeader {
  lastUpdate @0 :UInt64;
  next @1 :UInt64;
  joiner @2 :Bool;
  stopped @3 :Bool;
  stopReason @4 :Text;
}

struct MirrorConvHeader {
  lastUpdate @0 :UInt64;
  next @1 :UInt64;
  joiner @2 :Bool;
}

struct ClientConvHeader {
  lastUpdate @0 :UInt64;
  next @1 :UInt64;
  joiner @2 :Bool;
  status @3 :UInt8;     # conv_status: pending_setup 1, active 2, halted 3
  haltIndex @4 :UInt64;
  lastForeign @5 :Int64;
  ownParent @6 :Int64;
  lastReceiptTime @7 :UInt64;
  nextOutboxId @8 :UInt64;
}

# The client's small sets: VOIDs not yet reported and indices already alarmed.
struct ClientConvSets {
  voidsPending @0 :List(UInt64);
  alarmed @1 :List(UInt64);
}

struct AseqValue {
  known @0 :Bool;
  value @1 :UInt64;
}

struct FloorValue {
  known @0 :Bool;
  value @1 :Int64;
}

struct IndexedHash {
  index @0 :UInt64;
  hash @1 :Data;
}

# One row per id that any per-member map of the conversation names.
struct PeerRow {
  aseq @0 :AseqValue;           # aseq_last[id]; null: absent
  floor @1 :FloorValue;         # receipt_floor[id]; null: absent
  lastOrdered @2 :IndexedHash;  # router: (index, D) of id's last ordered message
  lastUpdateTime @3 :OptU64;    # router: when id's last UPDATE was ordered
  ratchetNext @4 :OptU64;       # mirror, client: RATCHET id counter towards id
  memberLr @5 :PublishedKey;    # mirror: id's LAST_RESORT key attached by the router
}

# ---------------------------------------------------------------------------------------------
# Secret-bearing records: stored only sealed (sealer.hpp).

struct MineKey {
  id @0 :UInt64;
  key @1 :OwnedKey;
}

struct Channel {
  mine @0 :List(MineKey);
  announced @1 :UInt64;
  announcedReferenced @2 :Bool;
  peerLatest @3 :PublishedKey;
  firstContact @4 :KeyRef;
  peerUsedPrekey @5 :OptU64;
  peerUsedLastResort @6 :OptU64;
  # Chain mode (docs/protocol.md §4.8); absent in a public-key conversation.
  chainOut @7 :ChainSender;
  chainIn @8 :RecvChain;        # null: no DH step accepted from the peer
  receivedSinceAnnounce @9 :UInt32;
  brokenEpoch @10 :UInt32;      # the peer's latest DH step the directory broke; 0: none
}

struct ChainSender {
  lastEpoch @0 :UInt32;
  chain @1 :SendChain;          # null: no current epoch
  referencedKind @2 :UInt8;
  referencedId @3 :UInt64;
  startedAt @4 :UInt64;
  stepAseq @5 :UInt64;
  voidReported @6 :Bool;
  pending @7 :List(PendingStep);  # client: steps in entries not yet ordered
  ackedNext @8 :UInt32;         # client: counter after the last block known to be ordered
}

struct PendingStep {
  aseq @0 :UInt64;
  d @1 :Data;                   # 32 bytes: D of the version that carries the step
  chain @2 :SendChain;
  referencedKind @3 :UInt8;
  referencedId @4 :UInt64;
  startedAt @5 :UInt64;
}

struct SendChain {
  epoch @0 :UInt32;
  next @1 :UInt32;
  ck @2 :Data;                  # CK_next, 32 bytes
  spent @3 :Bool;
}

struct RecvChain {
  epoch @0 :UInt32;
  next @1 :UInt32;
  ck @2 :Data;                  # CK_next, 32 bytes
  skipped @3 :List(SkippedKey);
}

struct SkippedKey {
  n @0 :UInt32;
  mk @1 :Data;                  # 32 bytes
}

struct PrekeySlot {
  key @0 :OwnedKey;
  bound @1 :ChannelRef;         # null: not yet used on a channel
}

struct LastResortSlot {
  key @0 :OwnedKey;
  retiredAt @1 :UInt64;
  pending @2 :List(ChannelRef);
}

struct OutboxVersion {
  d @0 :Data;
  submit @1 :Data;              # the wire encoding of the SUBMIT (wire::encode_submit)
}

# Versions of abandoned aseqs the router may still order (sealed: they carry plaintext).
struct Orphan {
  aseq @0 :UInt64;
  d @1 :Data;
  plaintext @2 :Data;
  entryId @3 :UInt64;
}

struct ClientOrphans {
  orphans @0 :List(Orphan);
}

struct OutboxEntry {
  id @7 :UInt64;                # stable for the entry's life; the row key
  aseq @0 :UInt64;
  type @1 :UInt8;               # msg_type: SETUP 1, MESSAGE 2, RECEIPT 3, UPDATE 4
  plaintext @2 :Data;
  adds @3 :List(Member);
  removes @4 :List(Data);
  versions @5 :List(OutboxVersion);
  staleAfter @6 :OptU64;
}

struct AcceptedEntry {
  type @0 :UInt8;
  author @1 :Data;
  aseq @2 :UInt64;
  parent @3 :OptU64;
  d @4 :Data;
  t @5 :Data;
  own @6 :Bool;
  isVoid @7 :Bool;
  plaintext @8 :Data;
  members @9 :List(Member);
  adds @10 :List(Member);
  removes @11 :List(Data);
  safetyNumber @12 :Text;
  floorBefore @13 :Int64;
  voids @14 :List(UInt64);
}

# ---------------------------------------------------------------------------------------------
# Clear records.

struct PeerCounter {
  id @0 :Data;
  value @1 :UInt64;
}

struct Tombstone {
  ownAseq @0 :UInt64;
  ratchetNext @1 :List(PeerCounter);
  next @2 :UInt64;              # the index after the UPDATE that removed us (0: none)
}

struct IdentityRecord {
  id @0 :Data;
  lpk @1 :Data;
  sealedLsk @2 :Data;           # the clamped lsk, sealed
  pinnedMs @3 :List(Member);
}

# The router's log entry at (conv, i): everything but the per-recipient blocks.
struct LogEntry {
  common @0 :Data;              # the wire encoding of C (wire::encode_common)
  body @1 :Data;                # null: none (every type but MESSAGE)
  blocksRoot @2 :Data;
  d @3 :Data;
  tPrev @4 :Data;
  t @5 :Data;
  slots @6 :List(Data);         # slots(C), sorted: a member's slot is its position here
  joiners @7 :List(Data);
  orderedAt @8 :UInt64;         # the router's clock when the entry was logged (retention cap)
}

struct LastResortAttachment {
  member @0 :Data;
  keyId @1 :UInt64;
  pub @2 :Data;
}

# What COMMIT needs besides the log entry, kept until every mirror's answer is persisted.
struct PendingCommit {
  ambs @0 :List(Data);          # enc(block) of each amb_o, in MS order
  lastResort @1 :List(LastResortAttachment);
}

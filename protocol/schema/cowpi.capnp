# SPDX-License-Identifier: Apache-2.0
# The cowpi wire schema: every client<->router frame and router<->mirror link message (docs/wire.md).
@0xa1eff586f2e601bb;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("cowpi::protocol::wire::schema");

# Conventions (docs/wire.md has the full rules):
# - Evolve only by appending: a new field, union member or enumerant takes the next ordinal;
#   nothing is renumbered, retyped or reused.
# - Fixed-size values travel as Data of exactly that size: keys, hashes and D values 32 bytes,
#   conversation ids 16 bytes, blocks exactly enc(block) = 185 bytes (docs/design.md §3.10).
#   Any other size is malformed; in a SUBMIT a block of another size is answered BAD_BLOCK_SIZE.
# - Ids are Data (bytes, compared bytewise, at most 64 of them); validate() checks their form.
# - Optional values are pointer fields that are either absent (null) or hold a value.
# - Every enum starts with `unspecified @0`, which no sender writes: a reader refuses it, as it
#   refuses any enumerant or union member it does not know.
# - Top-level frames (ClearFrame, ClientFrame, RouterFrame, LinkRequest, LinkResponse) carry
#   `version`, the wire version (1); a reader refuses any other value.

# ---------------------------------------------------------------------------------------------
# Values shared by several messages.

struct Member {
  id @0 :Data;
  lpk @1 :Data;       # 32 bytes
}

enum KeyKind {
  unspecified @0;
  prekey @1;
  lastResort @2;
  ratchet @3;
}

# ref = (kind, id, pub): a receiver key. The numbers of enc(ref) are those of KeyKind.
struct KeyRef {
  kind @0 :KeyKind;
  id @1 :UInt64;
  pub @2 :Data;       # 32 bytes
}

# The common part C of a conversation message (docs/design.md §3.2). The union holds exactly the
# fields of C's type, so a C with fields of another type cannot be expressed.
struct Common {
  version @0 :UInt8;  # the conversation protocol version (1)
  conv @1 :Data;      # 16 bytes
  author @2 :Data;
  aseq @3 :UInt64;
  union {
    setup :group {
      ms @4 :List(Member);
      members @5 :List(Member);
    }
    message :group {
      parent @6 :UInt64;
      parentHash @7 :Data;    # 32 bytes
      bodyLen @8 :UInt64;
      bodyHash @9 :Data;      # 32 bytes
      bodyCommit @10 :Data;   # 32 bytes
    }
    receipt :group {
      parent @11 :UInt64;
      parentHash @12 :Data;   # 32 bytes
      voids @13 :List(UInt64);
    }
    update :group {
      parent @14 :UInt64;
      parentHash @15 :Data;   # 32 bytes
      ms @16 :List(Member);
      adds @17 :List(Member);
      removes @18 :List(Data);
      members @19 :List(Member);
    }
  }
}

struct RecipientBlock {
  recipient @0 :Data;
  block @1 :Data;     # enc(block), 185 bytes
}

# SUBMIT (client -> router).
struct Submit {
  c @0 :Common;
  body @1 :Data;                  # MESSAGE only; absent otherwise
  blocks @2 :List(RecipientBlock); # sorted by recipient id
  ambs @3 :List(Data);            # one enc(block) per mirror, in MS order
  # The names-free form of chain mode (C.version 2; docs/wire.md "The names-free SUBMIT"):
  # `blocks` is empty, `slots` holds u8(len) || enc(slot) per recipient in Recipients(C)
  # order, and `blocksRoot` (32 bytes; its presence marks the form) is the author's
  # blocks_root.
  slots @4 :Data;
  blocksRoot @5 :Data;
}

# ENVELOPE (router -> member U) for index `index`.
struct Envelope {
  conv @0 :Data;                  # 16 bytes
  index @1 :UInt64;
  c @2 :Common;
  body @3 :Data;                  # absent: not a MESSAGE, or the author's own echo
  blockU @4 :Data;                # absent for the author
  blocksRoot @5 :Data;            # 32 bytes
  mirrorBlocks @6 :List(Data);    # one per mirror, in MS order
  tPrev @7 :Data;                 # T_{index-1}: present iff U is added at `index`
}

struct PublishedKey {
  id @0 :UInt64;
  pub @1 :Data;       # 32 bytes
}

struct PrekeyBundle {
  owner @0 :Data;
  lpk @1 :Data;       # 32 bytes
  key @2 :KeyRef;
}

# ---------------------------------------------------------------------------------------------
# Client <-> router, clear frames (the handshake, docs/design.md §2).

enum HelloMode {
  unspecified @0;
  login @1;
  register @2;
}

struct Hello {
  version @0 :UInt8;  # the transport version bound into th
  mode @1 :HelloMode;
  id @2 :Data;
  lpk @3 :Data;       # 32 bytes
  x @4 :Data;         # 32 bytes
}

struct HelloAck {
  version @0 :UInt8;
  x @1 :Data;         # 32 bytes
}

enum ErrorCode {
  unspecified @0;
  malformed @1;
  tooLarge @2;
  unsupportedVersion @3;
  unknownUser @4;
  idTaken @5;
  badHandshake @6;
  busy @7;
  internal @8;
  protocolViolation @9;
}

struct ErrorFrame {
  code @0 :ErrorCode;
  message @1 :Text;   # for humans, at most 1024 bytes
}

struct ClearFrame {
  version @0 :UInt8;
  union {
    hello @1 :Hello;
    helloAck @2 :HelloAck;
    error @3 :ErrorFrame;
  }
}

# ---------------------------------------------------------------------------------------------
# Client -> router, encrypted frames.

struct Ack {
  conv @0 :Data;      # 16 bytes
  index @1 :UInt64;
}

struct UploadPrekeys {
  oneTime @0 :List(PublishedKey);
  lastResort @1 :PublishedKey;    # absent: keep the current one
}

struct FetchPrekeys {
  owners @0 :List(Data);
}

# FETCH_PREKEYS for one conversation: a clustered mirror's keys are handed out from the pool
# of the node owning that conversation, so a fetch naming such a mirror must name it. A
# separate arm of the union, so that FETCH_PREKEYS keeps its encoding.
struct FetchPrekeysFor {
  owners @0 :List(Data);
  conv @1 :Data;      # 16 bytes
}

struct LookupUsers {
  ids @0 :List(Data);
}

# The caller's one-time pre-keys with ids below `below` are retired: drop them from the pool.
struct RetirePrekeys {
  below @0 :UInt64;
}

struct AccountStatus {}
struct Subscribe {}
struct Ping {}
struct Drain {}

struct ClientFrame {
  version @0 :UInt8;
  requestId @1 :UInt64;
  union {
    submit @2 :Submit;
    ack @3 :Ack;
    uploadPrekeys @4 :UploadPrekeys;
    fetchPrekeys @5 :FetchPrekeys;
    lookupUsers @6 :LookupUsers;
    accountStatus @7 :AccountStatus;
    subscribe @8 :Subscribe;
    ping @9 :Ping;
    drain @10 :Drain;
    fetchPrekeysFor @11 :FetchPrekeysFor;
    retirePrekeys @12 :RetirePrekeys;
  }
}

# ---------------------------------------------------------------------------------------------
# Router -> client, encrypted frames.

enum RejectionKind {
  unspecified @0;
  stale @1;
  aseqGap @2;
  alreadyOrdered @3;
  notMember @4;
  limit @5;
  badBlockSize @6;
  badBody @7;
  unknownMirror @8;
  mirrorReject @9;
  invalid @10;
  unavailable @11;
  stopped @12;
  historyExpired @13;
  unknownUser @14;
}

struct Rejection {
  kind @0 :RejectionKind;
  value @1 :UInt64;
  detail @2 :Text;    # at most 1024 bytes
}

struct Ok {}

struct PrekeysResult {
  bundles @0 :List(PrekeyBundle);
}

struct UsersResult {
  users @0 :List(Member);
  unknown @1 :List(Data);
}

struct StatusResult {
  oneTimeRemaining @0 :UInt64;
  lastResortId @1 :UInt64;
  maxPrekeyId @2 :UInt64;
}

struct Response {
  requestId @0 :UInt64;
  union {
    ok @1 :Ok;
    rejection @2 :Rejection;
    prekeys @3 :PrekeysResult;
    users @4 :UsersResult;
    status @5 :StatusResult;
  }
}

struct RouterFrame {
  version @0 :UInt8;
  union {
    response @1 :Response;
    envelope @2 :Envelope;
    error @3 :ErrorFrame;
  }
}

# ---------------------------------------------------------------------------------------------
# Router <-> mirror link (docs/design.md §3.4, §3.10).

struct LinkHello {
  id @0 :Data;
  lpk @1 :Data;       # 32 bytes
  version @2 :UInt8;  # the link protocol version, checked against configuration
}

struct BlockDigest {
  recipient @0 :Data;
  hash @1 :Data;      # 32 bytes: H(block_R)
}

struct LastResortAttachment {
  member @0 :Data;
  keyId @1 :UInt64;
  pub @2 :Data;       # 32 bytes
}

struct Prepare {
  c @0 :Common;
  blockHashes @1 :List(BlockDigest);
  amb @2 :Data;       # enc(block), 185 bytes
  lastResort @3 :List(LastResortAttachment);
}

struct Commit {
  index @0 :UInt64;
  d @1 :Data;         # 32 bytes
  payload @2 :Prepare;
}

struct LinkAck {
  conv @0 :Data;      # 16 bytes
  index @1 :UInt64;
}

struct StatusQuery {
  conv @0 :Data;      # 16 bytes
}

struct Topup {
  count @0 :UInt32;
}

struct AuditQuery {
  conv @0 :Data;      # 16 bytes
  from @1 :UInt64;
  to @2 :UInt64;      # inclusive
}

struct LinkRequest {
  version @0 :UInt8;
  union {
    hello @1 :LinkHello;
    prepare @2 :Prepare;
    commit @3 :Commit;
    ack @4 :LinkAck;
    status @5 :StatusQuery;
    topup @6 :Topup;
    audit @7 :AuditQuery;
  }
}

struct Prepared {
  d @0 :Data;         # 32 bytes
}

struct LinkReject {
  reason @0 :Text;    # at most 1024 bytes
}

struct Answer {
  index @0 :UInt64;
  t @1 :Data;         # 32 bytes
  mirrorBlocks @2 :List(Data);    # one enc(block) per member of slots(C), in that order
}

struct AlreadyAnswered {
  index @0 :UInt64;
}

struct Conflict {
  index @0 :UInt64;
  d @1 :Data;         # 32 bytes
}

struct Gap {
  next @0 :UInt64;
}

struct StatusAnswer {
  known @0 :Bool;
  next @1 :UInt64;
  tLast @2 :Data;     # 32 bytes
}

struct MirrorPrekeys {
  oneTime @0 :List(PublishedKey);
  lastResort @1 :PublishedKey;    # absent: keep the current one
}

struct AuditAnswer {
  from @0 :UInt64;
  d @1 :List(Data);   # 32 bytes each
}

struct Acked {}

struct LinkResponse {
  version @0 :UInt8;
  union {
    hello @1 :LinkHello;
    prepared @2 :Prepared;
    reject @3 :LinkReject;
    answer @4 :Answer;
    alreadyAnswered @5 :AlreadyAnswered;
    conflict @6 :Conflict;
    gap @7 :Gap;
    status @8 :StatusAnswer;
    prekeys @9 :MirrorPrekeys;
    audit @10 :AuditAnswer;
    acked @11 :Acked;
  }
}

# ---------------------------------------------------------------------------------------------
# Router cluster: between nodes of one routing provider (docs/architecture.md "Router
# clusters"). Everything else nodes exchange is a client frame or router frame above.

# One id's directory entry, read by another node of the router (the users a SETUP or UPDATE
# adds live on their home nodes).
struct DirectoryEntry {
  id @0 :Data;
  registered @1 :Bool;
  lpk @2 :Data;                 # 32 bytes when registered
  lastResort @3 :PublishedKey;  # absent: none
}

struct DirectoryEntries {
  version @0 :UInt8;
  entries @1 :List(DirectoryEntry);
}

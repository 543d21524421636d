/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * The conversation ordering rule of Mobile CoWPI, model-checked with Spin
 * (docs/protocol.md §7, §8 and §17; docs/design.md §1 "Acceptance", §3.3-§3.5).
 * tests/model/run checks every property below and every rejected variant.
 *
 * Parties:
 *   - the router: Byzantine. It is not a process: each of its moves is a nondeterministic
 *     offer of an entry, to mirror H as a COMMIT or to a member as an ENVELOPE. It drops,
 *     delays, reorders, replays and forks at will, sends different entries to different
 *     members, and lies in every answer (which makes honest authors rebuild their message).
 *   - mirror H: honest. The one writer of its copy of the conversation: it commits each
 *     index once, only an entry that passes validate against its own state, and attests
 *     (i, T_i) only after that state is synced. It may crash, losing what it had not synced.
 *   - mirror Z: Byzantine. It attests whatever the router asks, two different D for one
 *     index included, so a member always holds Z's block: Z is not a process either.
 *   - members A and B: honest. A chose the conversation id and submitted the SETUP.
 *   - member M: malicious, colluding with the router. Its entries are in the router's
 *     offers: any aseq, any parent, the parent hash of any party's chain (or none that
 *     exists), two versions of each (same C, different blocks: different D), and a SETUP
 *     under A's conversation id.
 *
 * Cryptography is abstract. D names an entry (its C and blocks_root): equal entries have
 * equal D, different entries different D. T_i = H(T_{i-1}, D_i) names the whole prefix
 * 0..i: T ids come from a table that interns (T_{i-1}, D_i), so equal prefixes give equal
 * ids and different prefixes different ids (collision resistance). A block of mirror o for
 * index i binds (i, T_i) and only o can make it; H's blocks are the set `att`. Author
 * authentication (amb, author blocks) is abstract too: nobody makes H accept an entry in an
 * honest member's name, so an honest author's entries in the offers are only the versions
 * it submitted.
 *
 * Compile-time variants (spin -DNAME), each a rule the design rejects:
 *   EARLY_ANSWER       H answers COMMIT before its batch is synced (and can crash between)
 *   ROUTER_ONLY        a member accepts on the router's word, without checking mirror blocks
 *   ONE_MIRROR         a member accepts when one mirror of MS (any one) attests
 *   NO_CREATOR_RULE    the creator accepts any SETUP naming it under the id it chose
 *   MIRROR_NO_VALIDATE H attests entries without running validate
 * and one that shows a limit of the model:
 *   BLOCKS_BIND_D      a mirror block binds (i, D_i) instead of (i, T_i); members here hold
 *                      the whole history from index 0, so agreement still holds (a joiner,
 *                      which is not modelled, is what needs T_i)
 */

#define N        3   /* indices 0 .. N-1; index 0 is the SETUP. copy_view, the parents of
                      * M's MESSAGEs (OFFER_MA, decode) and `agreement` are written out for 3 */
#define A        0   /* honest member, creator of the conversation id */
#define B        1   /* honest member */
#define M        2   /* malicious member */
#define NAUTH    3
#define SETUP    1
#define MSG      2
#define MAXT     16  /* capacity of the chain table (T ids) */
#define MAXVER   2   /* versions of its message an honest author submits (rebuilds) */
#define MAXCRASH 1   /* crashes of mirror H */

/*
 * Entries (D). 0 = none.
 *   1        A's SETUP (aseq 1)
 *   2        M's SETUP under A's conversation id (aseq 1)
 *   3, 4     A's MESSAGE, versions 0 and 1 (fields in hmsg_*[D - 3], set when written)
 *   5, 6     B's MESSAGE, versions 0 and 1
 *   MBASE..  M's MESSAGEs: MENC(aseq, parent, parent hash, version)
 */
#define SETUP_A  1
#define SETUP_M  2
#define MBASE    8
#define MENC(a, p, h, v) (MBASE + ((((h) * 3 + (a) - 1) * 2 + (p)) * 2 + (v)))

byte hmsg_aseq[2 * MAXVER];
byte hmsg_parent[2 * MAXVER];
byte hmsg_phash[2 * MAXVER];
byte nsub[2];        /* versions A and B have written */

/* T ids: 0 = T_{-1}; 1 .. nt-1 = H(tprev, td). */
byte tprev[MAXT];
byte td[MAXT];
byte nt = 1;

/* What a party holds after accepting (or, for H, committing) indices 0 .. held-1. */
typedef View {
  byte held;         /* the next index */
  byte D[N];
  byte T[N];
  byte aseq[NAUTH]   /* aseq_last per author */
};

View mv[2];          /* members A and B */
bool halted[2];      /* halted, or (A) tombstoned its conversation id */
bool forked[2];      /* every mirror attested an entry that fails validate: FORK */
bool acausal[2];     /* every mirror attested an entry whose parent is not in its prefix */
bool tomb;           /* A refused someone else's SETUP under its id (§8 step 0) */

View vol;            /* H's working state */
View dur;            /* H's synced state */
bool pend;           /* vol holds a committed index not yet synced */
byte crashes;
byte att[2 * N];     /* T ids H attested at index i: slots 2i and 2i+1 (0 = none) */
bool hm_double;      /* H attested two different T for one index */

/* Scratch for one step (reset at its end, so it never tells two states apart):
 * the offered entry's D and fields, the index, T_{i-1}, T_i, a verdict. */
byte cd, ck, cau, cas, cpa, cph, cva, cx;
byte ci, cp, ct;
bool cok;

inline reset_scratch() {
  cd = 0; ck = 0; cau = 0; cas = 0; cpa = 0; cph = 0; cva = 0; cx = 0;
  ci = 0; cp = 0; ct = 0; cok = false
}

inline copy_view(to, from) {
  to.held = from.held;
  to.D[0] = from.D[0]; to.D[1] = from.D[1]; to.D[2] = from.D[2];
  to.T[0] = from.T[0]; to.T[1] = from.T[1]; to.T[2] = from.T[2];
  to.aseq[0] = from.aseq[0]; to.aseq[1] = from.aseq[1]; to.aseq[2] = from.aseq[2]
}

/* The fields of entry cd. */
inline decode() {
  if
  :: cd == SETUP_A -> ck = SETUP; cau = A; cas = 1
  :: cd == SETUP_M -> ck = SETUP; cau = M; cas = 1
  :: cd >= 3 && cd <= 6 ->
     ck = MSG;
     if
     :: cd <= 4 -> cau = A
     :: else -> cau = B
     fi;
     cas = hmsg_aseq[cd - 3]; cpa = hmsg_parent[cd - 3]; cph = hmsg_phash[cd - 3];
     cva = (cd - 3) % 2
  :: cd >= MBASE ->
     ck = MSG; cau = M;
     cx = cd - MBASE;
     cva = cx % 2; cx = cx / 2;
     cpa = cx % 2; cx = cx / 2;
     cas = cx % 3 + 1; cph = cx / 3
  fi
}

/* ct := H(cp, cd), 0 if nobody computed it. */
inline lookup_chain() {
  ct = 1;
  do
  :: ct >= nt -> ct = 0; break
  :: ct < nt && tprev[ct] == cp && td[ct] == cd -> break
  :: else -> ct++
  od
}

/* ct := H(cp, cd). */
inline intern_chain() {
  lookup_chain();
  if
  :: ct == 0 ->
     assert(nt < MAXT);
     ct = nt; tprev[ct] = cp; td[ct] = cd; nt++
  :: else -> skip
  fi
}

/* cok := validate(view, entry, ci) (docs/protocol.md §6), the rules that bear on the
 * order: a SETUP at 0 of an unknown conversation, with aseq 1; otherwise a known
 * conversation, aseq = aseq_last + 1, parent < i and parent_hash = T_parent. (Every author
 * is a member; with no UPDATE, `stale` cannot fire.) */
inline validate(vw) {
  if
  :: ck == SETUP -> cok = (ci == 0 && vw.held == 0 && cas == 1)
  :: ck == MSG -> cok = (vw.held > 0 && cas == vw.aseq[cau] + 1 && cpa < ci && cph == vw.T[cpa])
  fi
}

/* The router's move: ST applied to any entry it can offer, when G holds: A's and M's SETUP,
 * each version an honest author wrote, and M's MESSAGEs (aseq 1-3, parent 0-1, two
 * versions, parent hash from H's working chain, from A's or B's, or T_{-1}, which is no
 * index's hash). Each option is one indivisible step. */
#define OFFER_MV(G, a, p, h, ST) \
  :: d_step { G; cd = MENC(a, p, h, 0); ST } \
  :: d_step { G; cd = MENC(a, p, h, 1); ST }
#define OFFER_MH(G, a, p, ST) \
  OFFER_MV(G, a, p, 0, ST) OFFER_MV(G, a, p, vol.T[p], ST) \
  OFFER_MV(G, a, p, mv[A].T[p], ST) OFFER_MV(G, a, p, mv[B].T[p], ST)
#define OFFER_MA(G, a, ST) OFFER_MH(G, a, 0, ST) OFFER_MH(G, a, 1, ST)
#define OFFER(G, ST) \
  :: d_step { G; cd = SETUP_A; ST } \
  :: d_step { G; cd = SETUP_M; ST } \
  :: d_step { G && nsub[A] > 0; cd = 3; ST } \
  :: d_step { G && nsub[A] > 1; cd = 4; ST } \
  :: d_step { G && nsub[B] > 0; cd = 5; ST } \
  :: d_step { G && nsub[B] > 1; cd = 6; ST } \
  OFFER_MA(G, 1, ST) OFFER_MA(G, 2, ST) OFFER_MA(G, 3, ST)

/* H issues its block for (ci, ct). */
inline attest() {
  if
  :: att[2 * ci] == 0 -> att[2 * ci] = ct
  :: att[2 * ci] == ct || att[2 * ci + 1] == ct -> skip
  :: att[2 * ci] != 0 && att[2 * ci] != ct && att[2 * ci + 1] == 0 ->
     att[2 * ci + 1] = ct; hm_double = true
  :: else -> assert(false)  /* a third T: more crashes than MAXCRASH allows */
  fi
}

/* H on COMMIT(i, D) for i = its next index (docs/protocol.md §7.4); below it H answers what
 * it stored (or CONFLICT), above it GAP, neither of which changes anything. */
inline commit() {
  decode();
  ci = vol.held;
#ifdef MIRROR_NO_VALIDATE
  cok = true;
#else
  validate(vol);
#endif
  if
  :: cok ->
     if
     :: ci == 0 -> cp = 0
     :: else -> cp = vol.T[ci - 1]
     fi;
     intern_chain();
     vol.D[ci] = cd; vol.T[ci] = ct; vol.aseq[cau] = cas; vol.held++;
     pend = true;
#ifdef EARLY_ANSWER
     attest();                      /* answers before the batch is synced */
#endif
  :: else -> skip                   /* REJECT: nothing written */
  fi;
  reset_scratch()
}

active proctype mirror_h() {
end_h:
  do
  OFFER((!pend && vol.held < N), commit())
  :: d_step {
       /* Sync and answer are one step: a crash between them would only lose an answer
        * that the router's resent COMMIT(i, D) gets again, unchanged, from what was synced. */
       pend;
       copy_view(dur, vol);         /* the one synced batch */
       pend = false;
#ifndef EARLY_ANSWER
       ci = dur.held - 1;
       ct = dur.T[ci];
       attest();                    /* then the answer */
       reset_scratch()
#endif
     }
  :: d_step {
       pend && crashes < MAXCRASH;
       copy_view(vol, dur);         /* crash: restart from what was synced */
       pend = false;
       crashes++
     }
  od
}

/* Acceptance at honest member u of the entry offered for its next index
 * (docs/protocol.md §8 steps 0-3). */
inline receive(u) {
  decode();
  ci = mv[u].held;
  if
  :: ci == 0 -> cp = 0
  :: else -> cp = mv[u].T[ci - 1]
  fi;
  /* Step 2: the block of every mirror of MS verifies for (i, T_i). Z's always does. */
#if defined(ROUTER_ONLY)
  intern_chain();
  cok = true;                       /* the router's word */
#elif defined(ONE_MIRROR)
  intern_chain();
  cok = (att[2 * ci] == ct || att[2 * ci + 1] == ct) || true;  /* H's block, or Z's */
#elif defined(BLOCKS_BIND_D)
  /* Not a rejected rule but a limit of the model: blocks that bound (i, D_i) only. */
  cok = ((att[2 * ci] != 0 && td[att[2 * ci]] == cd) || (att[2 * ci + 1] != 0 && td[att[2 * ci + 1]] == cd));
  if
  :: cok -> intern_chain()
  :: else -> skip
  fi;
#else
  lookup_chain();
  cok = (ct != 0 && (att[2 * ci] == ct || att[2 * ci + 1] == ct));
#endif
  if
  :: !cok -> skip                   /* PROVIDER alarm; u stays at i */
  :: else ->
     /* The entry is fixed. Causality: its parent is below i and its parent hash is the
      * T that u holds there. */
     if
     :: ck == MSG && !(cpa < ci && cph == mv[u].T[cpa]) -> acausal[u] = true
     :: else -> skip
     fi;
     /* Step 3. */
     validate(mv[u]);
     if
     :: !cok -> forked[u] = true; halted[u] = true            /* FORK alarm, halt */
#ifndef NO_CREATOR_RULE
     :: cok && u == A && ci == 0 && cd != SETUP_A ->
        tomb = true; halted[u] = true       /* someone else's SETUP under A's id */
#endif
     :: else ->
        mv[u].D[ci] = cd; mv[u].T[ci] = ct; mv[u].aseq[cau] = cas; mv[u].held++
     fi
  fi;
  reset_scratch()
}

/* An honest member writes its message (once it has joined), or a rebuilt version of it
 * while it is not ordered (after a STALE or an ASEQ_GAP, true or not): the same aseq, its
 * current parent, new blocks. */
#define can_write(u) (!halted[u] && mv[u].held > 0 && (nsub[u] == 0 || (nsub[u] < MAXVER && mv[u].aseq[u] < hmsg_aseq[u * MAXVER])))

inline write_message(u) {
  cx = u * MAXVER + nsub[u];
  if
  :: nsub[u] == 0 -> hmsg_aseq[cx] = mv[u].aseq[u] + 1
  :: else -> hmsg_aseq[cx] = hmsg_aseq[u * MAXVER]
  fi;
  hmsg_parent[cx] = mv[u].held - 1;
  hmsg_phash[cx] = mv[u].T[mv[u].held - 1];
  nsub[u]++;
  cx = 0
}

proctype member(byte u) {
end_m:
  do
  OFFER((!halted[u] && mv[u].held < N), receive(u))
  :: d_step { can_write(u); write_message(u) }
  od
}

init {
  atomic {
    assert(MENC(N, N - 2, MAXT - 1, 1) < 256);  /* every D fits in a byte */
    run member(A);
    run member(B)
  }
}

#define agree(i) (mv[A].held <= i || mv[B].held <= i || mv[A].D[i] == mv[B].D[i])
#define both_m(i) (mv[A].held > i && mv[B].held > i && mv[A].D[i] == mv[B].D[i] && mv[A].D[i] >= MBASE)

/* 1. No two honest members accept different entries at one index. */
ltl agreement { [] (agree(0) && agree(1) && agree(2)) }
/* 2. Every entry fixed by every mirror's block passes validate against the member's
 *    accepted prefix (so step 3's FORK halt never fires). */
ltl validity { [] !(forked[A] || forked[B]) }
/* 3. The honest mirror never issues two different (D, T) for one index. */
ltl mirror_unique { [] !hm_double }
/* 4. A fixed entry's parent is below its index and its parent hash is the member's T_parent. */
ltl causality { [] !(acausal[A] || acausal[B]) }
/* 5. The creator accepts at index 0 only its own SETUP. */
ltl creator_setup { [] (mv[A].held == 0 || mv[A].D[0] == SETUP_A) }

/* Witnesses: each must be violated (the situation is reachable), so that the properties
 * above do not hold vacuously. */
ltl reach_full { [] !(mv[A].held == N && mv[B].held == N) }
ltl reach_m_message { [] !(both_m(1) || both_m(2)) }
ltl reach_tombstone { [] !(tomb && mv[B].held > 0) }
ltl reach_crash_full { [] !(crashes > 0 && mv[A].held == N && mv[B].held == N) }

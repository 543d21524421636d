// SPDX-License-Identifier: Apache-2.0
// MLS (RFC 9420) application messages, sender side, with ts-mls: a group of the sender and N
// other members is built first (N key packages, one commit adding them all; not timed), then
// each timed message is createApplicationMessage (the PrivateMessage: a secret-tree key for
// the sender's next generation, AEAD, sender-data encryption and an Ed25519 signature over the
// content) plus encodeMlsMessage (its wire form). The delivery service fans that one
// ciphertext out to the N members.
//
//   node mls.mjs [--sizes 10,100,1000] [--min-seconds 1] [--min-messages 20]
//
// Prints one JSON line per size on stdout, like signal.mjs.
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  processPrivateMessage,
  zeroOutUint8Array,
} from "ts-mls";
import { readFileSync } from "node:fs";
import { emit, log, measure, parseArgs, plaintext, round, MESSAGE_BYTES } from "./common.mjs";

const SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
const pkgVersion = JSON.parse(
  readFileSync(new URL("./node_modules/ts-mls/package.json", import.meta.url)),
).version;

const enc = new TextEncoder();
const credential = (name) => ({ credentialType: "basic", identity: enc.encode(name) });

async function benchSize(n, opts, msg, impl) {
  const setupStart = performance.now();
  const creator = await generateKeyPackage(credential("sender"), defaultCapabilities(), defaultLifetime, [], impl);
  let state = await createGroup(enc.encode(`bench-group-${n}`), creator.publicPackage, creator.privatePackage, [], impl);
  const members = [];
  for (let i = 0; i < n; i++) {
    members.push(
      await generateKeyPackage(credential(`member-${i}`), defaultCapabilities(), defaultLifetime, [], impl),
    );
  }
  const keyPackagesSeconds = (performance.now() - setupStart) / 1e3;
  const commit = await createCommit(
    { state, cipherSuite: impl },
    { extraProposals: members.map((m) => ({ proposalType: "add", add: { keyPackage: m.publicPackage } })) },
  );
  state = commit.newState;
  commit.consumed.forEach(zeroOutUint8Array);
  const setupSeconds = (performance.now() - setupStart) / 1e3;
  log(`mls: ${n} members added in ${setupSeconds.toFixed(1)} s (key packages ${keyPackagesSeconds.toFixed(1)} s)`);

  // Sanity check (not timed): member 0 joins from the Welcome and reads one message.
  const m0 = members[0];
  let m0State = await joinGroup(commit.welcome, m0.publicPackage, m0.privatePackage, emptyPskIndex, impl, state.ratchetTree);
  {
    const r = await createApplicationMessage(state, msg, impl);
    state = r.newState;
    const wire = encodeMlsMessage({ privateMessage: r.privateMessage, wireformat: "mls_private_message", version: "mls10" });
    const decoded = decodeMlsMessage(wire, 0)[0];
    const got = await processPrivateMessage(m0State, decoded.privateMessage, emptyPskIndex, impl);
    if (got.kind !== "applicationMessage" || Buffer.compare(Buffer.from(got.message), Buffer.from(msg)) !== 0)
      throw new Error("round trip failed");
    m0State = null;
  }

  const send = async () => {
    const r = await createApplicationMessage(state, msg, impl);
    state = r.newState;
    r.consumed.forEach(zeroOutUint8Array);
    const wire = encodeMlsMessage({ privateMessage: r.privateMessage, wireformat: "mls_private_message", version: "mls10" });
    return wire.length;
  };
  const m = await measure(send, opts);
  emit({
    system: "mls",
    recipients: n,
    ms_per_message: round(m.cpu_ms, 4),
    wall_ms_per_message: round(m.wall_ms, 4),
    bytes_per_recipient: round(m.bytes_mean / n, 1),
    total_bytes: Math.round(m.bytes_mean),
    messages: m.messages,
    setup_seconds: round(setupSeconds, 2),
    notes:
      `ts-mls ${pkgVersion}, ${SUITE}, group of ${n + 1}; createApplicationMessage + encodeMlsMessage; ` +
      `bytes = one PrivateMessage (${Math.round(m.bytes_mean)} B, default padding) / N; ` +
      `group built in ${setupSeconds.toFixed(1)} s (not timed); ${MESSAGE_BYTES} B plaintext`,
  });
}

const opts = parseArgs(process.argv.slice(2));
const impl = await getCiphersuiteImpl(getCiphersuiteFromName(SUITE));
const msg = plaintext();
for (const n of opts.sizes) {
  log(`mls: ${n} recipients`);
  await benchSize(n, opts, msg, impl);
}

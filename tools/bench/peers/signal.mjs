// SPDX-License-Identifier: Apache-2.0
// Signal's group send, sender side, with @signalapp/libsignal-client: one SenderKey
// encryption of the message (groupEncrypt), wrapped in an UnidentifiedSenderMessageContent
// with the sender's certificate, then one Sealed Sender v2 multi-recipient encryption to all N
// recipients (sealedSenderMultiRecipientEncrypt). Sessions with the N recipients are set up
// beforehand from pre-key bundles (processPreKeyBundle) and are not timed.
//
//   node signal.mjs [--sizes 10,100,1000] [--min-seconds 1] [--min-messages 20]
//
// Prints one JSON line per size on stdout: {system, recipients, ms_per_message,
// bytes_per_recipient, notes, ...}.
import {
  Aci,
  CiphertextMessageType,
  ContentHint,
  IdentityKeyPair,
  IdentityKeyStore,
  IdentityChange,
  KEMKeyPair,
  PreKeyBundle,
  PrivateKey,
  ProtocolAddress,
  SenderCertificate,
  SenderKeyDistributionMessage,
  SenderKeyStore,
  ServerCertificate,
  SessionStore,
  UnidentifiedSenderMessageContent,
  groupDecrypt,
  groupEncrypt,
  processPreKeyBundle,
  processSenderKeyDistributionMessage,
  sealedSenderDecryptToUsmc,
  sealedSenderMultiRecipientEncrypt,
} from "@signalapp/libsignal-client";
import SealedSenderMultiRecipientMessage from "@signalapp/libsignal-client/dist/SealedSenderMultiRecipientMessage.js";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { emit, log, measure, parseArgs, plaintext, round, MESSAGE_BYTES } from "./common.mjs";

const pkgVersion = JSON.parse(
  readFileSync(new URL("./node_modules/@signalapp/libsignal-client/package.json", import.meta.url)),
).version;

// In-memory stores: the library's abstract store classes, backed by Maps.
class MemIdentityStore extends IdentityKeyStore {
  constructor(pair, registrationId) {
    super();
    this.pair = pair;
    this.registrationId = registrationId;
    this.known = new Map();
  }
  async getIdentityKey() {
    return this.pair.privateKey;
  }
  async getLocalRegistrationId() {
    return this.registrationId;
  }
  async saveIdentity(name, key) {
    const k = name.toString();
    const old = this.known.get(k);
    this.known.set(k, key);
    return old && !old.equals(key) ? IdentityChange.ReplacedExisting : IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity() {
    return true;
  }
  async getIdentity(name) {
    return this.known.get(name.toString()) ?? null;
  }
}

class MemSessionStore extends SessionStore {
  constructor() {
    super();
    this.sessions = new Map();
  }
  async saveSession(name, record) {
    this.sessions.set(name.toString(), record);
  }
  async getSession(name) {
    return this.sessions.get(name.toString()) ?? null;
  }
  async getExistingSessions(addresses) {
    return addresses.map((a) => {
      const s = this.sessions.get(a.toString());
      if (!s) throw new Error(`no session for ${a.toString()}`);
      return s;
    });
  }
}

class MemSenderKeyStore extends SenderKeyStore {
  constructor() {
    super();
    this.keys = new Map();
  }
  async saveSenderKey(sender, distributionId, record) {
    this.keys.set(`${sender.toString()}/${distributionId}`, record);
  }
  async getSenderKey(sender, distributionId) {
    return this.keys.get(`${sender.toString()}/${distributionId}`) ?? null;
  }
}

// A recipient: identity, registration id and the pre-key bundle it would publish.
function makeRecipient(i) {
  const identity = IdentityKeyPair.generate();
  const registrationId = 1 + i;
  const aci = Aci.fromUuid(randomUUID());
  const address = ProtocolAddress.new(aci, 1);
  const signedPreKey = PrivateKey.generate();
  const signedPub = signedPreKey.getPublicKey();
  const kyber = KEMKeyPair.generate();
  const bundle = PreKeyBundle.new(
    registrationId,
    1,
    1,
    PrivateKey.generate().getPublicKey(),
    1,
    signedPub,
    identity.privateKey.sign(signedPub.serialize()),
    identity.publicKey,
    1,
    kyber.getPublicKey(),
    identity.privateKey.sign(kyber.getPublicKey().serialize()),
  );
  return { identity, registrationId, aci, address, bundle };
}

async function benchSize(n, opts, msg) {
  const setupStart = performance.now();
  // The server's trust root and certificate, and the sender's certificate.
  const trustRoot = PrivateKey.generate();
  const serverKey = PrivateKey.generate();
  const serverCert = ServerCertificate.new(1, serverKey.getPublicKey(), trustRoot);

  const senderIdentity = IdentityKeyPair.generate();
  const senderAci = Aci.fromUuid(randomUUID());
  const sender = ProtocolAddress.new(senderAci, 1);
  const senderCert = SenderCertificate.new(
    senderAci,
    null,
    1,
    senderIdentity.publicKey,
    Date.now() + 86_400_000,
    serverCert,
    serverKey,
  );
  const identityStore = new MemIdentityStore(senderIdentity, 4242);
  const sessionStore = new MemSessionStore();
  const senderKeyStore = new MemSenderKeyStore();

  const recipients = [];
  for (let i = 0; i < n; i++) {
    const r = makeRecipient(i);
    await processPreKeyBundle(r.bundle, r.address, sender, sessionStore, identityStore);
    recipients.push(r);
  }
  const addresses = recipients.map((r) => r.address);
  const distributionId = randomUUID();
  const groupId = new Uint8Array(32).fill(7);
  // Creates the sender's SenderKey chain; in Signal this message goes to every member once,
  // over the pairwise sessions (not timed here).
  const skdm = await SenderKeyDistributionMessage.create(sender, distributionId, senderKeyStore);
  const setupSeconds = (performance.now() - setupStart) / 1e3;

  const send = async () => {
    const ct = await groupEncrypt(sender, distributionId, senderKeyStore, msg);
    const usmc = UnidentifiedSenderMessageContent.new(ct, senderCert, ContentHint.Resendable, groupId);
    const out = await sealedSenderMultiRecipientEncrypt({
      content: usmc,
      recipients: addresses,
      identityStore,
      sessionStore,
    });
    lastOut = out;
    return out.length;
  };
  let lastOut = null;

  // Sanity check (not timed): recipient 0 opens what was sent to it and gets the plaintext back.
  await send();
  const parsed = new SealedSenderMultiRecipientMessage(lastOut);
  const byId = parsed.recipientsByServiceIdString();
  if (Object.keys(byId).length !== n) throw new Error("multi-recipient message lists the wrong recipients");
  const r0 = recipients[0];
  const single = parsed.messageForRecipient(byId[r0.aci.getServiceIdString()]);
  const r0Identity = new MemIdentityStore(r0.identity, r0.registrationId);
  const usmc0 = await sealedSenderDecryptToUsmc(single, r0Identity);
  if (usmc0.msgType() !== CiphertextMessageType.SenderKey) throw new Error("expected a SenderKey message");
  const r0Keys = new MemSenderKeyStore();
  await processSenderKeyDistributionMessage(sender, skdm, r0Keys);
  const back = await groupDecrypt(sender, r0Keys, usmc0.contents());
  if (Buffer.compare(Buffer.from(back), Buffer.from(msg)) !== 0) throw new Error("round trip failed");

  const m = await measure(send, opts);
  // The SenderKey ciphertext alone, to split the output into shared and per-recipient parts.
  const groupCtBytes = (await groupEncrypt(sender, distributionId, senderKeyStore, msg)).serialize().length;
  emit({
    system: "signal",
    recipients: n,
    ms_per_message: round(m.cpu_ms, 4),
    wall_ms_per_message: round(m.wall_ms, 4),
    bytes_per_recipient: round(m.bytes_mean / n, 1),
    total_bytes: Math.round(m.bytes_mean),
    messages: m.messages,
    setup_seconds: round(setupSeconds, 2),
    notes:
      `libsignal-client ${pkgVersion}; groupEncrypt (SenderKey, ${groupCtBytes} B) + USMC + ` +
      `sealedSenderMultiRecipientEncrypt to ${n}; bytes = whole SSv2 multi-recipient upload / N; ` +
      `${MESSAGE_BYTES} B plaintext`,
  });
}

const opts = parseArgs(process.argv.slice(2));
const msg = plaintext();
for (const n of opts.sizes) {
  log(`signal: ${n} recipients`);
  await benchSize(n, opts, msg);
}

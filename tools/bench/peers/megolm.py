#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Megolm (Matrix's group ratchet), sender side, with Debian's python3-olm (libolm).

Per message: OutboundGroupSession.encrypt (AES-256-CBC + HMAC-SHA-256 truncated to 8 bytes
under the ratchet's current key, Ed25519 signature over the message, ratchet advance). One
ciphertext goes to the room; the server fans it out to the N recipients.

Separately, the one-time cost of sharing the Megolm session key with N recipients over Olm:
N Olm Session.encrypt of an m.room_key-shaped payload, over Olm sessions created beforehand
from the recipients' identity and one-time keys (creating them is not timed).

  /usr/bin/python3 megolm.py [--sizes 10,100,1000] [--min-seconds 1] [--min-messages 20]

Prints one JSON line per size on stdout: {system, recipients, ms_per_message,
bytes_per_recipient, notes, ...}.
"""
import argparse
import base64
import json
import statistics
import sys
import time

import olm

MESSAGE_BYTES = 200  # cowpi's protocol benchmark sends 200 bytes (tools/bench/protocol_bench.cpp)


def raw_len(b64: str) -> int:
    """libolm returns unpadded base64; the binary message is what we compare."""
    return len(base64.b64decode(b64 + "=" * (-len(b64) % 4)))


def measure(send, min_seconds: float, min_messages: int, unit: int = 1):
    """Runs send() (one message per call, returns its output size) in batches of about 5 ms
    until min_seconds of wall time, min_messages calls and 10 batches are done. Returns the
    median over batches of process CPU time and of wall time per call (ms), and the mean
    output size."""
    warm_end = time.perf_counter() + 0.2
    warm = 0
    while warm < 3 or time.perf_counter() < warm_end:
        send()
        warm += 1
    t0 = time.perf_counter()
    send()
    one = max(time.perf_counter() - t0, 1e-6)
    k = max(1, min(100000, int(0.005 / one + 0.999)))
    cpu_per, wall_per = [], []
    calls = 0
    size = 0
    wall_total = 0.0
    while wall_total < min_seconds or calls < min_messages or len(cpu_per) < 10:
        c0 = time.process_time_ns()
        w0 = time.perf_counter_ns()
        for _ in range(k):
            size += send()
        w1 = time.perf_counter_ns()
        c1 = time.process_time_ns()
        cpu_per.append((c1 - c0) / k / 1e6)
        wall_per.append((w1 - w0) / k / 1e6)
        wall_total += (w1 - w0) / 1e9
        calls += k
    return {
        "cpu_ms": statistics.median(cpu_per),
        "wall_ms": statistics.median(wall_per),
        "calls": calls,
        "bytes_mean": size / calls,
    }


def bench_size(n: int, args) -> dict:
    plaintext = "x" * MESSAGE_BYTES
    sender = olm.Account()
    group = olm.OutboundGroupSession()

    # Sanity check (not timed): a recipient holding the session key decrypts a message.
    inbound = olm.InboundGroupSession(group.session_key)
    got, _index = inbound.decrypt(group.encrypt(plaintext))
    if got != plaintext:
        raise SystemExit("megolm round trip failed")

    def send() -> int:
        return raw_len(group.encrypt(plaintext))

    m = measure(send, args.min_seconds, args.min_messages)
    b64_len = len(group.encrypt(plaintext))

    # One-time key share over Olm: sessions to the N recipients from their published keys.
    t_setup = time.perf_counter()
    sessions = []
    for _ in range(n):
        r = olm.Account()
        r.generate_one_time_keys(1)
        otk = next(iter(r.one_time_keys["curve25519"].values()))
        sessions.append(olm.OutboundSession(sender, r.identity_keys["curve25519"], otk))
    setup_s = time.perf_counter() - t_setup
    room_key = json.dumps({
        "type": "m.room_key",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": "!benchmarkroom:example.org",
            "session_id": group.id,
            "session_key": group.session_key,
        },
        "sender": "@sender:example.org",
        "sender_device": "SENDERDEVICE",
        "keys": {"ed25519": sender.identity_keys["ed25519"]},
        "recipient": "@recipient:example.org",
        "recipient_keys": {"ed25519": sender.identity_keys["ed25519"]},
    })

    def share() -> int:
        total = 0
        for s in sessions:
            total += raw_len(s.encrypt(room_key).ciphertext)
        return total

    sh = measure(share, args.min_seconds, max(3, args.min_messages // 4))
    return {
        "system": "megolm",
        "recipients": n,
        "ms_per_message": round(m["cpu_ms"], 4),
        "wall_ms_per_message": round(m["wall_ms"], 4),
        "bytes_per_recipient": round(m["bytes_mean"] / n, 1),
        "total_bytes": round(m["bytes_mean"]),
        "messages": m["calls"],
        "key_share_ms": round(sh["cpu_ms"], 3),
        "key_share_bytes_per_recipient": round(sh["bytes_mean"] / n, 1),
        "setup_seconds": round(setup_s, 2),
        "notes": (
            f"python-olm {olm_version()}; OutboundGroupSession.encrypt; bytes = one "
            f"Megolm message ({round(m['bytes_mean'])} B binary, {b64_len} B as libolm's base64) / N; "
            f"one-time key share = {n} Olm encrypts of a {len(room_key)} B m.room_key payload "
            f"(pre-key messages); {MESSAGE_BYTES} B plaintext"
        ),
    }


def olm_version() -> str:
    try:
        from importlib.metadata import version
        return version("python-olm")
    except Exception:  # the version only decorates the notes
        return "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,100,1000", help="comma-separated recipient counts")
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--min-messages", type=int, default=20)
    args = p.parse_args()
    for n in [int(s) for s in args.sizes.split(",")]:
        print(f"megolm: {n} recipients", file=sys.stderr)
        print(json.dumps(bench_size(n, args)), flush=True)


if __name__ == "__main__":
    main()

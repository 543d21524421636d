#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers of tools/bench/peers/run (standard library only).

  report.py cowpi GBENCH_JSON SIZES   Google Benchmark JSON of cowpi-bench's author_message
                                      -> one JSON line per size, like the peers print
  report.py table RESULTS_JSONL       JSON lines of every system -> the comparison table
"""
import json
import sys


def cowpi(path: str, sizes: str) -> None:
    with open(path) as f:
        doc = json.load(f)
    wanted = [int(s) for s in sizes.split(",")]
    by = {}
    for b in doc.get("benchmarks", []):
        name = b.get("run_name") or b["name"]
        if not name.startswith("author_message/"):
            continue
        # author_message/n:N/mode:M (M: 1 public-key, 2 chain with silent recipients, 3 chain
        # once every member has replied).
        args = dict(part.split(":", 1) for part in name.split("/")[1:])
        members, mode = int(args["n"]), int(args.get("mode", "1"))
        e = by.setdefault((members, mode), {"cpu": [], "real": [], "upload": None, "iterations": 0})
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                e["cpu_median"] = b["cpu_time"]
                e["real_median"] = b["real_time"]
            continue
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        e["scale"] = scale
        e["cpu"].append(b["cpu_time"] * scale)
        e["real"].append(b["real_time"] * scale)
        e["iterations"] += int(b.get("iterations", 0))
        if "upload_bytes" in b:
            e["upload"] = b["upload_bytes"]
    for n, mode in [(n, m) for n in wanted for m in (1, 3)]:
        system = "cowpi-pk" if mode == 1 else "cowpi-chain"
        e = by.get((n, mode))
        if not e or not e["cpu"]:
            print(f"cowpi: no author_message/n:{n}/mode:{mode} in {path}", file=sys.stderr)
            continue
        cpu = sorted(e["cpu"])
        real = sorted(e["real"])
        med = lambda xs: xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
        recipients = n - 1
        line = {
            "system": system,
            "recipients": n,
            "ms_per_message": round(med(cpu), 4),
            "wall_ms_per_message": round(med(real), 4),
            "bytes_per_recipient": None,
            "total_bytes": e["upload"],
            "messages": e["iterations"],
            "notes": (
                f"cowpi-bench author_message/n:{n}/mode:{mode}: a conversation of {n} members = {recipients} "
                f"recipients + 2 mirrors; thread CPU time, median of {len(cpu)} repetitions"
            ),
        }
        if e["upload"] is not None:
            line["bytes_per_recipient"] = round(e["upload"] / recipients, 1)
            line["notes"] += (
                f"; bytes = upload_bytes counter ({int(e['upload'])} B: the whole SUBMIT frame: body, "
                f"one pairwise block per recipient, one block per mirror) / {recipients} recipients (derived: the benchmark has "
                f"no per-recipient counter)"
            )
        else:
            line["notes"] += "; no upload_bytes counter: time only"
        print(json.dumps(line))


def fmt_ms(x) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_b(x) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def table(path: str) -> None:
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    if not rows:
        print("no results")
        return
    order = ["cowpi-pk", "cowpi-chain", "signal", "mls", "megolm"]
    label = {
        "cowpi-pk": "cowpi public-key mode (author MESSAGE)",
        "cowpi-chain": "cowpi chain mode (author MESSAGE)",
        "signal": "Signal (SenderKey + SSv2 multi-recipient)",
        "mls": "MLS (ts-mls application message)",
        "megolm": "Megolm (OutboundGroupSession.encrypt)",
    }
    systems = [s for s in order if any(r["system"] == s for r in rows)]
    systems += sorted({r["system"] for r in rows} - set(systems))
    sizes = sorted({r["recipients"] for r in rows})
    get = {(r["system"], r["recipients"]): r for r in rows}

    def block(title, key, fmt):
        head = [title] + [f"N={n}" for n in sizes]
        body = []
        for s in systems:
            body.append([label.get(s, s)] + [fmt(get[(s, n)].get(key)) if (s, n) in get else "skipped" for n in sizes])
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        line = lambda r: "  ".join(r[0].ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        print(line(head))
        print("  ".join("-" * w for w in widths))
        for r in body:
            print(line(r))
        print()

    block("sender CPU ms per message (median)", "ms_per_message", fmt_ms)
    block("sender wall ms per message (median)", "wall_ms_per_message", fmt_ms)
    block("bytes per recipient", "bytes_per_recipient", fmt_b)
    block("sender upload bytes per message", "total_bytes", fmt_b)
    share = [r for r in rows if r.get("key_share_ms") is not None]
    if share:
        print("Megolm one-time key share over Olm (N Olm encrypts of the session key, once per session):")
        for r in share:
            print(f"  N={r['recipients']}: {fmt_ms(r['key_share_ms'])} ms CPU, "
                  f"{fmt_b(r['key_share_bytes_per_recipient'])} bytes per recipient")
        print()
    if any(r["system"].startswith("cowpi") for r in rows):
        print("cowpi's N is the conversation's member count (N-1 recipients + 2 mirrors); its bytes per")
        print("recipient are its upload_bytes counter / (N-1).")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "cowpi":
        cowpi(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plots cowpi's per-message cost against the conversation size in both block modes.

Runs cowpi-bench's author_message, mirror_message and recipient_message benchmarks (or reads
their Google Benchmark JSON from --json), prints one table, and writes a PNG with three panels:
the author's and a mirror's CPU time per MESSAGE and the upload bytes per recipient, each
against the member count n, for public-key mode (mode:1), chain mode with silent recipients
(mode:2) and chain mode once every member has replied (mode:3).

  tools/bench/plot_modes.py --bench build/tools/cowpi-bench --out docs/cost-vs-n.png
  tools/bench/plot_modes.py --json results.json --out /tmp/cost.png

Needs python3-matplotlib (Debian) for the PNG; without --out it only prints the table.
"""
import argparse
import json
import subprocess
import sys

MODES = {1: "public-key", 2: "chain, silent recipients", 3: "chain, every member replied"}
KINDS = ("author_message", "mirror_message", "recipient_message")


def run_bench(bench: str, min_time: str) -> dict:
    cmd = [
        bench,
        "--benchmark_filter=^(" + "|".join(KINDS) + ")/",
        "--benchmark_format=json",
        f"--benchmark_min_time={min_time}",
    ]
    print("# " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def collect(doc: dict) -> dict:
    """{(kind, mode): {n: {"ms": cpu ms, "per_recipient": bytes or None}}}"""
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    got: dict = {}
    for b in doc.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        name = b.get("run_name") or b["name"]
        kind, _, rest = name.partition("/")
        if kind not in KINDS:
            continue
        args = dict(p.split(":", 1) for p in rest.split("/") if ":" in p)
        n, mode = int(args["n"]), int(args["mode"])
        got.setdefault((kind, mode), {})[n] = {
            "ms": b["cpu_time"] * scale[b.get("time_unit", "ns")],
            "per_recipient": b.get("upload_per_recipient"),
        }
    return got


def print_table(got: dict) -> None:
    sizes = sorted({n for v in got.values() for n in v})
    head = ["measure", "mode"] + [f"n={n}" for n in sizes]
    rows = []
    for kind in KINDS:
        for mode in MODES:
            if (kind, mode) in got:
                v = got[(kind, mode)]
                rows.append([kind + " ms", MODES[mode]] + [f"{v[n]['ms']:.3f}" if n in v else "-" for n in sizes])
    for mode in MODES:
        v = got.get(("author_message", mode), {})
        if v:
            rows.append(["upload B/recipient", MODES[mode]]
                        + [f"{v[n]['per_recipient']:.0f}" if n in v and v[n]["per_recipient"] else "-" for n in sizes])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths]] + rows:
        print("  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)))


def plot(got: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    styles = {1: ("tab:red", "o-"), 2: ("tab:blue", "s--"), 3: ("tab:green", "^-")}
    panels = [
        ("author_message", "ms", "author: CPU ms per MESSAGE"),
        ("mirror_message", "ms", "one mirror: CPU ms per MESSAGE"),
        ("author_message", "per_recipient", "upload bytes per recipient"),
    ]
    for ax, (kind, key, title) in zip(axes, panels):
        for mode, label in MODES.items():
            v = got.get((kind, mode), {})
            xs = [n for n in sorted(v) if v[n].get(key)]
            if not xs:
                continue
            color, style = styles[mode]
            ax.plot(xs, [v[n][key] for n in xs], style, color=color, label=label)
        ax.set_xscale("log")
        if key == "ms":
            ax.set_yscale("log")
            ax.set_ylabel("ms (log)")
        else:
            ax.set_ylabel("bytes")
            ax.set_ylim(bottom=0)
        ax.set_xlabel("members n (log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("cowpi: cost of one MESSAGE against conversation size, both block modes")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--bench", help="the built cowpi-bench to run")
    src.add_argument("--json", help="Google Benchmark JSON output of cowpi-bench to read instead")
    ap.add_argument("--min-time", default="0.5", help="--benchmark_min_time per case (default 0.5)")
    ap.add_argument("--save-json", help="also write the benchmark JSON here (with --bench)")
    ap.add_argument("--out", help="the PNG to write")
    a = ap.parse_args()
    if a.bench:
        doc = run_bench(a.bench, a.min_time)
        if a.save_json:
            with open(a.save_json, "w") as f:
                json.dump(doc, f, indent=1)
    else:
        with open(a.json) as f:
            doc = json.load(f)
    got = collect(doc)
    if not got:
        sys.exit("no author/mirror/recipient_message results with n: and mode: arguments")
    print_table(got)
    if a.out:
        plot(got, a.out)


if __name__ == "__main__":
    main()

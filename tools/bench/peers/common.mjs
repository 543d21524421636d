// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the Node peer benchmarks (signal.mjs, mls.mjs): argument parsing, the
// measurement loop and the one-JSON-line-per-case output the runner collects.

// The plaintext every system encrypts: cowpi's protocol benchmark sends 200 bytes
// (tools/bench/protocol_bench.cpp, kText), so the peers send the same size.
export const MESSAGE_BYTES = 200;

export function plaintext() {
  return new Uint8Array(MESSAGE_BYTES).fill(0x78); // 'x', as cowpi's benchmark
}

// --sizes 10,100,1000 (default) and --min-seconds S; anything else is an error.
export function parseArgs(argv) {
  const opts = { sizes: [10, 100, 1000], minSeconds: 1.0, minMessages: 20 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--sizes") {
      opts.sizes = val().split(",").map((s) => {
        const n = Number.parseInt(s, 10);
        if (!Number.isInteger(n) || n < 1) throw new Error(`bad size: ${s}`);
        return n;
      });
    } else if (a === "--min-seconds") {
      opts.minSeconds = Number.parseFloat(val());
    } else if (a === "--min-messages") {
      opts.minMessages = Number.parseInt(val(), 10);
    } else {
      throw new Error(`unknown argument: ${a}`);
    }
  }
  return opts;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const cpuNow = () => {
  const u = process.cpuUsage(); // microseconds, user + system, all threads of the process
  return (u.user + u.system) / 1e3;
};
const wallNow = () => Number(process.hrtime.bigint()) / 1e6;

// Runs `send` (async, one message per call, returns the bytes it produced) in batches of k
// messages, k chosen so that a batch takes about 5 ms, until at least minSeconds of wall time
// and minMessages messages (and 10 batches) are done. Returns the median over batches of the
// process CPU time per message and of the wall time per message, in ms, and the mean output
// size.
export async function measure(send, { minSeconds = 1.0, minMessages = 20 } = {}) {
  // Warm-up: JIT, lazy initialisation of the first chain keys.
  const warmEnd = wallNow() + 200;
  let warm = 0;
  while (warm < 3 || wallNow() < warmEnd) {
    await send();
    warm++;
  }
  const t0 = wallNow();
  await send();
  const one = Math.max(wallNow() - t0, 1e-3);
  const k = Math.max(1, Math.min(10000, Math.ceil(5 / one)));

  const cpuPer = [];
  const wallPer = [];
  let messages = 0;
  let bytes = 0;
  let wallTotal = 0;
  while (wallTotal < minSeconds * 1e3 || messages < minMessages || cpuPer.length < 10) {
    const c0 = cpuNow();
    const w0 = wallNow();
    for (let i = 0; i < k; i++) bytes += await send();
    const w1 = wallNow();
    const c1 = cpuNow();
    cpuPer.push((c1 - c0) / k);
    wallPer.push((w1 - w0) / k);
    wallTotal += w1 - w0;
    messages += k;
  }
  return {
    cpu_ms: median(cpuPer),
    wall_ms: median(wallPer),
    messages,
    batches: cpuPer.length,
    batch_size: k,
    bytes_mean: bytes / messages,
  };
}

export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

export function log(msg) {
  process.stderr.write(msg + "\n");
}

export function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// Prints Conclave and a peer side by side, from the JSON lines that `conclave bench --json` and
// the peer's bench (bench/graphile-worker/bench.mjs --json) write: one row per process count and
// figure, with the ratio Conclave / peer and whether the issue's target is met (throughput at
// least the peer's; create→start latency lower). A figure found in several files (several rounds)
// is shown as the median of the rounds, with their range.
//
//   node bench/compare.mjs --peer graphile-worker --conclave C1.json [C2.json ...] --peer-files P1.json [P2.json ...]
//
// Plain Node.js (18 or later), no dependencies. Used by scripts/bench-peers.

import { readFileSync } from "node:fs";

/** The figures compared, in order: workload, figure, label, and which way is better. */
const FIGURES = [
  { workload: "throughput", figure: "runs created and finished", label: "throughput (runs/s)", higherIsBetter: true },
  { workload: "latency (idle)", figure: "create→start p50", label: "create→start p50, idle (ms)", higherIsBetter: false },
  { workload: "latency (idle)", figure: "create→start p99", label: "create→start p99, idle (ms)", higherIsBetter: false },
  { workload: "latency (paced)", figure: "create→start p50", label: "create→start p50, paced load (ms)", higherIsBetter: false },
  { workload: "latency (paced)", figure: "create→start p99", label: "create→start p99, paced load (ms)", higherIsBetter: false },
  // Informational: each side's own clients create as fast as they can, so this is the time a
  // backlog takes to drain when creation outruns execution, not dispatch at the same load.
  { workload: "latency (load)", figure: "create→start p50", label: "create→start p50, saturated (ms)", higherIsBetter: false, informational: true },
  { workload: "latency (load)", figure: "create→start p99", label: "create→start p99, saturated (ms)", higherIsBetter: false, informational: true },
];

function parseCommandLine(argv) {
  const parsed = { peer: "peer", conclave: [], peerFiles: [] };
  let list = null;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index];
    if (argument === "--peer") {
      parsed.peer = argv[++index];
      list = null;
    } else if (argument === "--conclave") {
      list = parsed.conclave;
    } else if (argument === "--peer-files") {
      list = parsed.peerFiles;
    } else if (list !== null) {
      list.push(argument);
    } else {
      throw new Error(`unexpected argument ${JSON.stringify(argument)}`);
    }
  }
  if (parsed.conclave.length === 0 || parsed.peerFiles.length === 0) {
    throw new Error("usage: node compare.mjs --peer NAME --conclave FILE... --peer-files FILE...");
  }
  return parsed;
}

/** Values by `processes|workload|figure`, one per round (file). */
function load(files) {
  const values = new Map();
  for (const file of files) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      if (line.trim() === "") {
        continue;
      }
      const row = JSON.parse(line);
      const key = `${row.processes}|${row.workload}|${row.figure}`;
      values.set(key, [...(values.get(key) ?? []), row.value]);
    }
  }
  return values;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** A number as `conclave bench` prints it, with thousands separators. */
function number(value) {
  const magnitude = Math.abs(value);
  if (magnitude >= 100) {
    return Math.round(value).toLocaleString("en-US");
  }
  return magnitude >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function cell(values) {
  if (values === undefined || values.length === 0) {
    return "–";
  }
  const shown = number(median(values));
  return values.length === 1 ? shown : `${shown} (${number(Math.min(...values))} – ${number(Math.max(...values))})`;
}

function main() {
  const { peer, conclave, peerFiles } = parseCommandLine(process.argv.slice(2));
  const ours = load(conclave);
  const theirs = load(peerFiles);
  const counts = [...new Set([...ours.keys()].map((key) => Number(key.split("|")[0])))].sort((a, b) => a - b);
  const rounds = Math.max(...[...ours.values(), ...theirs.values()].map((values) => values.length));
  const header = ["processes", "figure", "Conclave", peer, `Conclave / ${peer}`, "target", "result"];
  const lines = [header, header.map((_, column) => (column >= 2 && column <= 4 ? "---:" : "---"))];
  for (const count of counts) {
    for (const { workload, figure, label, higherIsBetter, informational } of FIGURES) {
      const key = `${count}|${workload}|${figure}`;
      const a = ours.get(key);
      const b = theirs.get(key);
      let ratio = "–";
      let result = "–";
      if (a && b) {
        const ourMedian = median(a);
        const theirMedian = median(b);
        ratio = theirMedian > 0 ? `${(ourMedian / theirMedian).toFixed(2)}×` : "–";
        const met = higherIsBetter ? ourMedian >= theirMedian : ourMedian < theirMedian;
        result = informational ? "(informational)" : met ? "met" : "NOT MET";
      }
      const target = informational ? "–" : higherIsBetter ? `≥ ${peer}` : `< ${peer}`;
      lines.push([String(count), label, cell(a), cell(b), ratio, target, result]);
    }
  }
  const note = rounds > 1 ? `Each value is the median of ${rounds} rounds; the range is in parentheses.\n\n` : "";
  process.stdout.write(`${note}${lines.map((cells) => `| ${cells.join(" | ")} |`).join("\n")}\n`);
}

try {
  main();
} catch (error) {
  console.error(`compare.mjs: ${error.message}`);
  process.exit(2);
}

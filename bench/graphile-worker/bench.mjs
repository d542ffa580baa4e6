// The peer side of `scripts/bench-peers`: graphile-worker running the no-op workload that
// `conclave bench --store postgres --processes ...` runs, on the same Postgres server, with the
// same counts, and reporting the same figures in the same shape.
//
// For each process count it creates a fresh database (dropped afterwards), installs
// graphile-worker's schema, and starts that many worker processes (worker.mjs) with `--workers`
// concurrent jobs each. Then, as `conclave bench` does:
//
//   * latency (idle): `--idle-runs` jobs added one at a time with `addJob`, each waited for
//     (until its row is gone, i.e. completed) before the next is added;
//   * throughput: `--runs` jobs added by `--clients` concurrent `addJob` loops (one job per call,
//     not a bulk insert); jobs/s from the first `addJob` until no job is left in the table, then
//     the create→start latency of those jobs under that load.
//
// Create→start latency is the moment the task handler starts (the worker process's clock, in µs)
// minus the job's `created_at` (stamped by Postgres, in µs), on the same machine clock. A "run"
// in the figures' names is a job. Run it with the Node.js that package.json installs (22.x,
// which graphile-worker 0.18 requires):
//
//   node_modules/.bin/node bench.mjs --database-url postgres://postgres@127.0.0.1:54340/postgres \
//     --processes 1,2,4 [--only throughput|latency] [--json FILE]
//
// `--help` lists every option.

import { execFileSync, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

import { Logger, makeWorkerUtils } from "graphile-worker";
import pg from "pg";

const USAGE = `usage: node bench.mjs [options]

  --database-url URL     Postgres admin URL; a fresh database is created there for each process
                         count and dropped afterwards [default: $CONCLAVE_BENCH_DATABASE_URL]
  --processes LIST       worker process counts, comma-separated [default: 1]
  --runs N               jobs added by the throughput workload [default: 20000]
  --clients N            concurrent addJob loops of the throughput workload [default: 32]
  --idle-runs N          jobs added one at a time by the idle-latency workload [default: 500]
  --paced-rate N         jobs per second the paced workload adds, on a fixed schedule, below
                         what either side can execute, so both face the same offered load
                         [default: 500]
  --paced-runs N         jobs the paced workload adds [default: 5000]
  --workers N            concurrentJobs of each worker process [default: 64]
  --pool-size N          maxPoolSize of each worker process [default: max(10, workers + 2)]
  --poll-interval MS     pollInterval: the poll for jobs scheduled in the future and retries;
                         new jobs arrive by LISTEN/NOTIFY [default: 1000]
  --batched              also use graphile-worker's batching options from its performance page:
                         localQueue {size: 500}, completeJobBatchDelay 0, failJobBatchDelay 0
  --only WORKLOAD        throughput (includes the latency under load), latency or paced
  --json FILE            also write every figure to FILE, one JSON object per line
`;

/** How often the throughput workload checks whether every job has finished. */
const FINISH_POLL_MS = 5;
/** How long a worker process may take to start listening for jobs. */
const READY_LIMIT_MS = 60_000;
/** How long a worker process may take to exit after it is asked to stop. */
const EXIT_LIMIT_MS = 20_000;
/** The share of the machine other processes may take before a workload is flagged. */
const DISTURBED = 0.1;
/** graphile-worker's batching options, from its documentation's performance page. */
const BATCHED_PRESET = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };

/** Cleanups to run if the bench is interrupted: kill the workers, drop the database. */
const cleanups = new Set();

/** Only warnings and errors of graphile-worker's own logging. */
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") {
    console.error(`[graphile-worker] ${level}: ${message}`);
  }
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Options.

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      "database-url": { type: "string" },
      processes: { type: "string", default: "1" },
      runs: { type: "string", default: "20000" },
      clients: { type: "string", default: "32" },
      "idle-runs": { type: "string", default: "500" },
      "paced-rate": { type: "string", default: "500" },
      "paced-runs": { type: "string", default: "5000" },
      workers: { type: "string", default: "64" },
      "pool-size": { type: "string" },
      "poll-interval": { type: "string", default: "1000" },
      batched: { type: "boolean", default: false },
      only: { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const count = (name, text, max = Number.MAX_SAFE_INTEGER) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new UsageError(`--${name} must be a whole number from 1 to ${max}, not ${JSON.stringify(text)}`);
    }
    return value;
  };
  const databaseUrl = (values["database-url"] ?? process.env.CONCLAVE_BENCH_DATABASE_URL ?? "").trim();
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new UsageError("pass a postgres:// admin URL with --database-url or CONCLAVE_BENCH_DATABASE_URL");
  }
  if (values.only !== undefined && !["throughput", "latency", "paced"].includes(values.only)) {
    throw new UsageError(`--only must be throughput, latency or paced, not ${JSON.stringify(values.only)}`);
  }
  const workers = count("workers", values.workers);
  return {
    databaseUrl,
    processes: values.processes.split(",").map((text) => count("processes", text.trim(), 16)),
    runs: count("runs", values.runs),
    clients: count("clients", values.clients),
    idleRuns: count("idle-runs", values["idle-runs"]),
    pacedRate: count("paced-rate", values["paced-rate"]),
    pacedRuns: count("paced-runs", values["paced-runs"]),
    workers,
    poolSize: values["pool-size"] === undefined ? Math.max(10, workers + 2) : count("pool-size", values["pool-size"]),
    pollInterval: count("poll-interval", values["poll-interval"]),
    preset: values.batched ? BATCHED_PRESET : {},
    batched: values.batched,
    only: values.only,
    json: values.json,
  };
}

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------
// The bench.

async function main() {
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`bench.mjs: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => interrupted(signal));
  }
  const report = new Report();
  let failure = null;
  for (const processes of options.processes) {
    try {
      await benchOnFreshDatabase(processes, options, report);
    } catch (error) {
      failure = error;
      break;
    }
  }
  report.print();
  if (options.json) {
    report.writeJson(options.json);
  }
  if (failure) {
    throw failure;
  }
}

/** Stops everything the bench started, then exits. */
async function interrupted(signal) {
  console.error(`bench.mjs: ${signal}: stopping the workers and dropping the bench database`);
  for (const cleanup of [...cleanups].reverse()) {
    await cleanup().catch((error) => console.error(`bench.mjs: cleanup failed: ${error.message}`));
  }
  process.exit(130);
}

async function benchOnFreshDatabase(processes, options, report) {
  const name = `graphile_bench_${randomBytes(8).toString("hex")}`;
  const settings = await postgresAdmin(options.databaseUrl, `CREATE DATABASE ${name}`);
  report.note(`postgres server settings: ${settings}`);
  const drop = () => postgresAdmin(options.databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  cleanups.add(drop);
  try {
    await benchProcesses(processes, databaseUrl(options.databaseUrl, name), options, report);
  } finally {
    cleanups.delete(drop);
    await drop();
  }
}

/** Installs the schema, starts the worker processes, runs the workloads, stops the workers. */
async function benchProcesses(processes, url, options, report) {
  const setup = `graphile-worker${options.batched ? " (batched)" : ""}, ${processes} ${processes === 1 ? "process" : "processes"}`;
  // One connection per concurrent addJob loop; the bench owns the pool, so that it is closed
  // before the database is dropped.
  const pool = new pg.Pool({ connectionString: url, max: options.clients });
  // Errors of idle and of checked-out connections, which would otherwise crash the process (the
  // next query on a failed connection reports its error anyway).
  pool.on("error", (error) => console.error(`bench.mjs: an idle connection failed: ${error.message}`));
  pool.on("connect", (client) => client.on("error", (error) => console.error(`bench.mjs: a connection failed: ${error.message}`)));
  const utils = await makeWorkerUtils({ pgPool: pool, logger });
  try {
    await utils.migrate();
    const workers = await Workers.start(processes, url, options);
    progress(setup, `worker processes listening, ${options.workers} concurrent jobs and ${options.poolSize} connections each`);
    try {
      const wants = (workload) => options.only === undefined || options.only === workload;
      const measure = async () => {
        if (wants("latency")) {
          await idleLatency(setup, processes, utils, workers, options.idleRuns, report);
        }
        if (wants("paced")) {
          await paced(setup, processes, utils, workers, options, report);
        }
        if (wants("throughput")) {
          await throughput(setup, processes, utils, workers, options, report);
        }
      };
      await Promise.race([measure(), workers.failure]);
    } finally {
      await workers.stop();
    }
  } finally {
    await utils.release();
    await pool.end();
  }
}

function progress(setup, message) {
  console.error(`[peer ${setup}] ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Workload: create→start latency when idle.

async function idleLatency(setup, processes, utils, workers, runs, report) {
  progress(setup, `latency: ${runs} jobs, one at a time`);
  await workers.setReporting(true);
  const latencies = [];
  // Client-side time of each step: addJob, until the handler ran, until the job was completed.
  const steps = [0, 0, 0];
  const cpu = CpuSample.take(workers.pids);
  for (let index = 0; index < runs; index++) {
    const began = performance.now();
    const job = await utils.addJob("noop", {});
    const added = performance.now();
    latencies.push(await workers.ran(String(job.id)));
    const ran = performance.now();
    await waitUntilCompleted(utils, job.id);
    steps[0] += added - began;
    steps[1] += ran - added;
    steps[2] += performance.now() - ran;
  }
  await workers.setReporting(false);
  await workers.collect();
  const summary = new Summary(latencies);
  const workload = "latency (idle)";
  report.add(workload, setup, processes, "create→start p50", summary.p50Ms(), "ms");
  report.add(workload, setup, processes, "create→start p99", summary.p99Ms(), "ms");
  report.add(workload, setup, processes, "create→start max", summary.maxMs(), "ms");
  const mean = (step) => (step / runs).toFixed(2);
  report.note(
    `${workload} [${setup}]: mean client-side time per job: addJob ${mean(steps[0])} ms, until the handler ran ` +
      `${mean(steps[1])} ms, until the job was completed ${mean(steps[2])} ms`,
  );
  report.note(`${workload} [${setup}]: CPU ${cpu.untilNow()}`);
}

/** Waits until the job's row is gone: graphile-worker deletes a job when it completes. */
async function waitUntilCompleted(utils, id) {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const { rows } = await utils.withPgClient((client) =>
      client.query("select exists(select 1 from graphile_worker._private_jobs where id = $1) as queued", [id]),
    );
    if (!rows[0].queued) {
      return;
    }
    if (performance.now() > deadline) {
      throw new Error(`job ${id} did not complete within 30 s`);
    }
    await sleep(1);
  }
}

// ---------------------------------------------------------------------------------------------
// Workload: throughput, and create→start latency under that load.

async function throughput(setup, processes, utils, workers, options, report) {
  progress(setup, `throughput: ${options.runs} no-op jobs, ${options.clients} concurrent addJob loops`);
  const cpu = CpuSample.take(workers.pids);
  const started = performance.now();
  let next = 0;
  const client = async () => {
    while (next++ < options.runs) {
      await utils.addJob("noop", {});
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  const createdIn = (performance.now() - started) / 1000;
  await waitUntilDrained(utils, options.runs);
  const elapsed = (performance.now() - started) / 1000;
  const split = cpu.untilNow();

  const latencies = await workers.collect();
  if (latencies.length !== options.runs) {
    loudWarning(`${setup}: the workers ran ${latencies.length} jobs, expected ${options.runs}`);
  }
  let workload = "throughput";
  report.add(workload, setup, processes, "runs created and finished", options.runs / elapsed, "runs/s");
  report.add(workload, setup, processes, "runs created (create phase)", options.runs / createdIn, "runs/s");
  report.note(`${workload} [${setup}]: ${options.runs} jobs in ${elapsed.toFixed(2)} s (addJob calls done after ${createdIn.toFixed(2)} s)`);
  report.note(`${workload} [${setup}]: CPU ${split}`);

  const summary = new Summary(latencies);
  workload = "latency (load)";
  report.add(workload, setup, processes, "create→start p50", summary.p50Ms(), "ms");
  report.add(workload, setup, processes, "create→start p99", summary.p99Ms(), "ms");
  report.add(workload, setup, processes, "create→start max", summary.maxMs(), "ms");
}

// ---------------------------------------------------------------------------------------------
// Workload: create→start latency at a fixed offered rate, the same on both sides.

async function paced(setup, processes, utils, workers, options, report) {
  const { pacedRate: rate, pacedRuns: runs } = options;
  progress(setup, `paced: ${runs} no-op jobs at ${rate} jobs/s`);
  const started = performance.now();
  const pending = [];
  for (let index = 0; index < runs; index++) {
    const due = started + (index * 1000) / rate;
    const ahead = due - performance.now();
    if (ahead > 0) {
      await sleep(ahead);
    }
    pending.push(utils.addJob("noop", {}));
  }
  await Promise.all(pending);
  const offeredFor = (performance.now() - started) / 1000;
  await waitUntilDrained(utils, runs);
  const latencies = await workers.collect();
  if (latencies.length !== runs) {
    loudWarning(`${setup}: the workers ran ${latencies.length} jobs, expected ${runs}`);
  }
  const summary = new Summary(latencies);
  const workload = "latency (paced)";
  report.add(workload, setup, processes, "offered rate", runs / offeredFor, "runs/s");
  report.add(workload, setup, processes, "create→start p50", summary.p50Ms(), "ms");
  report.add(workload, setup, processes, "create→start p99", summary.p99Ms(), "ms");
  report.add(workload, setup, processes, "create→start max", summary.maxMs(), "ms");
}

/** Polls (cheaply: does any row exist?) until no job is left; the limit is the Conclave bench's. */
async function waitUntilDrained(utils, runs) {
  const limitMs = 120_000 + 10 * runs;
  const deadline = performance.now() + limitMs;
  for (;;) {
    const { rows } = await utils.withPgClient((client) =>
      client.query("select exists(select 1 from graphile_worker._private_jobs) as queued"),
    );
    if (!rows[0].queued) {
      return;
    }
    if (performance.now() > deadline) {
      throw new Error(`the jobs did not finish within ${limitMs / 1000} s`);
    }
    await sleep(FINISH_POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// The worker processes.

/** The worker processes (worker.mjs), and their IPC. */
class Workers {
  constructor() {
    this.children = [];
    this.stopping = false;
    this.seq = 0;
    /** Pending requests by sequence number: the replies expected and received so far. */
    this.requests = new Map();
    /** Latencies reported by `ran` messages not waited for yet, and the waiters, by job id. */
    this.reported = new Map();
    this.waiters = new Map();
    /** Rejects when a worker process exits before it is stopped. */
    this.failure = new Promise((_, reject) => {
      this.fail = reject;
    });
    this.failure.catch(() => {});
    this.kill = async () => {
      for (const child of this.children) {
        child.kill("SIGKILL");
      }
    };
  }

  /** Forks `count` worker processes and waits until every one listens for new jobs. */
  static async start(count, url, options) {
    const workers = new Workers();
    cleanups.add(workers.kill);
    const config = {
      databaseUrl: url,
      workers: options.workers,
      poolSize: options.poolSize,
      pollInterval: options.pollInterval,
      preset: options.preset,
      report: false,
    };
    const ready = [];
    for (let index = 0; index < count; index++) {
      const child = fork(new URL("./worker.mjs", import.meta.url), [], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        // graphile-worker logs every completed job at info level unless told not to.
        env: { ...process.env, NO_LOG_SUCCESS: "1" },
      });
      const name = `graphile-worker process ${index + 1} of ${count} (pid ${child.pid})`;
      ready.push(
        new Promise((resolve, reject) => {
          child.once("exit", (code, signal) => reject(new Error(`${name} exited (${signal ?? `code ${code}`}) before it was ready`)));
          child.on("message", (message) => (message.type === "ready" ? resolve() : workers.onMessage(message)));
        }),
      );
      child.on("exit", (code, signal) => {
        if (!workers.stopping) {
          workers.fail(new Error(`${name} exited (${signal ?? `code ${code}`}) during the measurement`));
        }
      });
      child.send({ type: "start", config });
      workers.children.push(child);
    }
    let timer;
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the worker processes were not ready within ${READY_LIMIT_MS / 1000} s`)), READY_LIMIT_MS);
    });
    try {
      await Promise.race([Promise.all(ready), limit]);
    } catch (error) {
      workers.stopping = true;
      await workers.kill();
      cleanups.delete(workers.kill);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return workers;
  }

  get pids() {
    return this.children.map((child) => child.pid);
  }

  onMessage(message) {
    if (message.type === "ran") {
      const waiter = this.waiters.get(message.id);
      if (waiter) {
        this.waiters.delete(message.id);
        waiter(message.latency);
      } else {
        this.reported.set(message.id, message.latency);
      }
    } else if (message.type === "ack" || message.type === "collected") {
      const request = this.requests.get(message.seq);
      request?.replies.push(message);
      if (request && request.replies.length === this.children.length) {
        this.requests.delete(message.seq);
        request.resolve(request.replies);
      }
    }
  }

  /** Sends a request to every worker and resolves with all their replies. */
  request(type, fields = {}) {
    const seq = ++this.seq;
    const replies = new Promise((resolve) => this.requests.set(seq, { replies: [], resolve }));
    for (const child of this.children) {
      child.send({ type, seq, ...fields });
    }
    return replies;
  }

  /** Makes the workers report every job they run (to wait for each in the idle workload). */
  async setReporting(report) {
    await this.request("mode", { report });
  }

  /** The latencies (µs) of the jobs run since the last collection, from every worker. */
  async collect() {
    const replies = await this.request("collect");
    return replies.flatMap((reply) => reply.latencies);
  }

  /** Resolves with the latency of the job once a worker has run it. */
  ran(id) {
    if (this.reported.has(id)) {
      const latency = this.reported.get(id);
      this.reported.delete(id);
      return Promise.resolve(latency);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`no worker ran job ${id} within 30 s`));
      }, 30_000);
      this.waiters.set(id, (latency) => {
        clearTimeout(timer);
        resolve(latency);
      });
    });
  }

  /** Asks every worker to shut down gracefully; kills those that have not exited in time. */
  async stop() {
    this.stopping = true;
    const exits = this.children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            loudWarning(`graphile-worker pid ${child.pid} had not exited ${EXIT_LIMIT_MS / 1000} s after stop; killing it`);
            child.kill("SIGKILL");
          }, EXIT_LIMIT_MS);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          child.send({ type: "stop" });
        }),
    );
    await Promise.all(exits);
    cleanups.delete(this.kill);
  }
}

// ---------------------------------------------------------------------------------------------
// Postgres helpers.

/** Runs one statement on the admin database; returns the server's durability settings. */
async function postgresAdmin(admin, statement) {
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(statement);
    const settings = [];
    for (const setting of ["fsync", "synchronous_commit", "full_page_writes"]) {
      const { rows } = await client.query(`SHOW ${setting}`);
      settings.push(`${setting}=${rows[0][setting]}`);
    }
    return settings.join(", ");
  } finally {
    await client.end();
  }
}

/** The admin URL with its database replaced by `name` (query parameters kept). */
function databaseUrl(admin, name) {
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

// ---------------------------------------------------------------------------------------------
// Percentiles and the report.

/** Percentiles of latencies in µs, nearest rank, as `conclave bench` computes them. */
class Summary {
  constructor(values) {
    this.sorted = Float64Array.from(values).sort();
  }

  percentile(pct) {
    const length = this.sorted.length;
    if (length === 0) {
      return 0;
    }
    const rank = Math.ceil((pct / 100) * length);
    return this.sorted[Math.min(Math.max(rank, 1), length) - 1];
  }

  p50Ms() {
    return this.percentile(50) / 1000;
  }

  p99Ms() {
    return this.percentile(99) / 1000;
  }

  maxMs() {
    return this.sorted.length === 0 ? 0 : this.sorted[this.sorted.length - 1] / 1000;
  }
}

/** A number as `conclave bench` prints it. */
function number(value) {
  const magnitude = Math.abs(value);
  if (magnitude >= 100 || Number.isInteger(value)) {
    return value.toFixed(0);
  }
  return magnitude >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function loudWarning(message) {
  console.error(`\n!!!!!!!! WARNING: ${message} !!!!!!!!\n`);
}

/** The figures and notes, printed at the end in the same table as `conclave bench`'s. */
class Report {
  constructor() {
    this.rows = [];
    this.notes = [];
  }

  add(workload, setup, processes, figure, value, unit) {
    progress(setup, `${workload}: ${figure} = ${number(value)} ${unit}`);
    this.rows.push({ workload, setup, processes, figure, value, unit });
  }

  note(note) {
    this.notes.push(note);
  }

  print() {
    if (this.rows.length === 0) {
      return;
    }
    const header = ["workload", "store", "figure", "value", "unit", "target", "result"];
    const lines = this.rows.map((row) => [row.workload, row.setup, row.figure, number(row.value), row.unit, "-", "-"]);
    const widths = header.map((cell, column) => Math.max(cell.length, ...lines.map((line) => line[column].length)));
    const format = (cells) =>
      `| ${cells.map((cell, column) => (column === 3 ? cell.padStart(widths[column]) : cell.padEnd(widths[column]))).join(" | ")} |`;
    const out = ["", format(header), `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`, ...lines.map(format)];
    if (this.notes.length > 0) {
      out.push("", ...this.notes.map((note) => `- ${note}`));
    }
    process.stdout.write(`${out.join("\n")}\n`);
  }

  /** One JSON object per figure and line, in the shape of `conclave bench --json`. */
  writeJson(path) {
    const lines = this.rows.map((row) =>
      JSON.stringify({
        workload: row.workload,
        store: "postgres",
        processes: row.processes,
        peer: "graphile-worker",
        figure: row.figure,
        value: row.value,
        unit: row.unit,
      }),
    );
    writeFileSync(path, `${lines.join("\n")}\n`);
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc (Linux), as `conclave bench` reports it.

const CLOCK_TICK = 1 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim() || 100);

/** User + system ticks of a process (all its threads) from its `stat` file; 0 if it is gone. */
function processTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the name: state is field 3, utime field 14, stime field 15.
    return { name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return { name: "", ticks: 0 };
  }
}

/** Ticks of every process named `postgres`. */
function postgresTicks() {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(processTicks)
    .filter((process) => process.name === "postgres")
    .reduce((sum, process) => sum + process.ticks, 0);
}

/** Busy ticks of all CPUs (everything but idle and I/O wait). */
function machineBusyTicks() {
  const line = readFileSync("/proc/stat", "utf8").split("\n").find((text) => text.startsWith("cpu "));
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  return values.reduce((sum, value) => sum + value, 0) - values[3] - values[4];
}

/** CPU ticks of this process, the worker processes, Postgres and the machine, at one moment. */
class CpuSample {
  static take(pids) {
    const sample = new CpuSample();
    sample.at = performance.now();
    sample.pids = pids;
    sample.self = processTicks(process.pid).ticks;
    sample.workers = pids.reduce((sum, pid) => sum + processTicks(pid).ticks, 0);
    sample.postgres = postgresTicks();
    sample.machine = machineBusyTicks();
    return sample;
  }

  /** Where the CPU time went since this sample, as one line. */
  untilNow() {
    const now = CpuSample.take(this.pids);
    const wall = (now.at - this.at) / 1000;
    const cores = availableParallelism();
    const self = (now.self - this.self) * CLOCK_TICK;
    const workers = (now.workers - this.workers) * CLOCK_TICK;
    const postgres = (now.postgres - this.postgres) * CLOCK_TICK;
    const elsewhere = Math.max(0, (now.machine - this.machine) * CLOCK_TICK - self - workers - postgres);
    let line =
      `${wall.toFixed(2)} s wall x ${cores} cores: bench process (the addJob clients) ${self.toFixed(2)} s; ` +
      `${this.pids.length} worker ${this.pids.length === 1 ? "process" : "processes"} ${workers.toFixed(2)} s; ` +
      `postgres processes ${postgres.toFixed(2)} s; ` +
      `other processes ${elsewhere.toFixed(2)} s`;
    if (wall > 0 && elsewhere / (wall * cores) > DISTURBED) {
      line += ` -- DISTURBED: other processes took ${((elsewhere / (wall * cores)) * 100).toFixed(0)}% of the machine`;
    }
    return line;
  }
}

main().catch((error) => {
  console.error(`bench.mjs: ${error?.stack ?? error}`);
  process.exit(1);
});

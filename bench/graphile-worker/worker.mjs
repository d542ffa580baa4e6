// One graphile-worker process of the peer bench (started by bench.mjs with `fork`, never by hand).
//
// It runs a worker pool for the `noop` task and measures, for every job, the create→start
// latency: the moment the task handler starts (this machine's clock, in µs) minus the job's
// `created_at` (stamped by Postgres, on the same machine, in µs). It talks to bench.mjs over the
// IPC channel:
//
//   bench.mjs → worker                        worker → bench.mjs
//   {type: "start", config}                   {type: "ready"} once it listens for new jobs
//   {type: "mode", report, seq}               {type: "ack", seq}; `report` makes it send
//                                             {type: "ran", id, latency} for each job it runs
//   {type: "collect", seq}                    {type: "collected", seq, latencies}, then forgets them
//   {type: "stop"}                            exits 0 after a graceful shutdown
//
// It exits if bench.mjs goes away.

import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { Logger, run } from "graphile-worker";
import pg from "pg";

const TIMESTAMPTZ_OID = 1184;
const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID);

/** Now, in µs since the epoch (sub-millisecond, unlike `Date.now()`). */
function nowMicros() {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/**
 * Parses a `timestamptz` as pg does (a `Date`, which holds milliseconds) and keeps the
 * microseconds Postgres sent in `epochMicros`, so that sub-millisecond latencies can be measured.
 */
function parseTimestamptzWithMicros(text) {
  const date = parseTimestamptz(text);
  if (date instanceof Date) {
    const fraction = /\.(\d{1,6})/.exec(text)?.[1] ?? "";
    date.epochMicros = Math.floor(date.getTime() / 1000) * 1e6 + Number(fraction.padEnd(6, "0"));
  }
  return date;
}

/** Only warnings and errors: graphile-worker's per-job info lines would cost CPU. */
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") {
    console.error(`[graphile-worker ${process.pid}] ${level}: ${message}`);
  }
});

/** Latencies (µs) of the jobs run since the last `collect`, and whether to report each job. */
let latencies = [];
let report = false;

/** The no-op task: records its create→start latency and returns. */
async function noop(_payload, helpers) {
  const started = nowMicros();
  const created = helpers.job.created_at?.epochMicros;
  const latency = created === undefined ? Number.NaN : Math.max(0, Math.round(started - created));
  latencies.push(latency);
  if (report) {
    process.send({ type: "ran", id: String(helpers.job.id), latency });
  }
}

/** The pool and runner, once started. */
let pool = null;
let runner = null;

async function start(config) {
  pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: config.poolSize,
    types: {
      getTypeParser: (oid, format) =>
        oid === TIMESTAMPTZ_OID && format !== "binary" ? parseTimestamptzWithMicros : pg.types.getTypeParser(oid, format),
    },
  });
  // Errors of idle and of checked-out connections, which would otherwise crash the process (the
  // next query on a failed connection reports its error anyway).
  pool.on("error", (error) => console.error(`[graphile-worker ${process.pid}] an idle connection failed: ${error.message}`));
  pool.on("connect", (client) =>
    client.on("error", (error) => console.error(`[graphile-worker ${process.pid}] a connection failed: ${error.message}`)),
  );
  const events = new EventEmitter();
  const listening = new Promise((resolve) => events.once("pool:listen:success", resolve));
  report = config.report;
  runner = await run({
    pgPool: pool,
    concurrency: config.workers,
    pollInterval: config.pollInterval,
    noHandleSignals: true,
    taskList: { noop },
    parsedCronItems: [],
    logger,
    events,
    preset: { worker: config.preset },
  });
  await listening;
  process.send({ type: "ready" });
}

async function stop() {
  await runner?.stop();
  await pool?.end();
  process.exit(0);
}

function fail(error) {
  console.error(`[graphile-worker ${process.pid}] ${error?.stack ?? error}`);
  process.exit(1);
}

process.on("disconnect", () => process.exit(1));
process.on("message", (message) => {
  switch (message.type) {
    case "start":
      start(message.config).catch(fail);
      break;
    case "mode":
      report = message.report;
      process.send({ type: "ack", seq: message.seq });
      break;
    case "collect":
      process.send({ type: "collected", seq: message.seq, latencies });
      latencies = [];
      break;
    case "stop":
      stop().catch(fail);
      break;
    default:
      fail(new Error(`unknown message type ${message.type}`));
  }
});

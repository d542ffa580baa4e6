// A real browser: headless Chromium loads a page from one origin (a static server here) that
// imports the browser entry (@conclave/client/web, through an import map onto the compiled
// package and node_modules) and calls the Conclave server on another origin over grpc-web: so
// the CORS preflight, the exposed grpc-status headers, a unary call, a server stream and an
// error's reason are all checked the way a page meets them. The page posts its findings back.
//
// Chromium: $CONCLAVE_BROWSER, or `chromium` on PATH (Debian's package). Without one the test
// is skipped, except under CI, where it fails.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { RunState, connect, type ConclaveClient } from "../src/index.js";
import { startServer, type Server } from "./support.js";

/** clients/typescript (this file runs from build/test). */
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function findChromium(): string | undefined {
  if (process.env.CONCLAVE_BROWSER) return process.env.CONCLAVE_BROWSER;
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  return undefined;
}

/** The import map that lets the page import the package and its dependencies by name. */
function importMap(): Record<string, string> {
  const imports: Record<string, string> = { "@conclave/client/web": "/pkg/web.js" };
  const packages: Record<string, string[]> = {
    "@bufbuild/protobuf": ["", "/codegenv2", "/wire", "/wkt", "/reflect"],
    "@connectrpc/connect": ["", "/protocol", "/protocol-connect", "/protocol-grpc-web"],
    "@connectrpc/connect-web": [""],
  };
  for (const [name, subpaths] of Object.entries(packages)) {
    for (const subpath of subpaths) {
      imports[`${name}${subpath}`] = `/node_modules/${name}/dist/esm${subpath}/index.js`;
    }
  }
  return imports;
}

/** What the page runs, against the server at `SERVER`. */
const PAGE_SCRIPT = `
import { connect, followEvents, ConclaveError, RunState } from "@conclave/client/web";
const results = { ok: false };
try {
  const client = connect({ address: SERVER, token: "browser-t0k" });
  const run = await client.runs.createRun({ kind: "steps", input: { steps: 4, step_ms: 30 }, labels: { from: "browser" } });
  results.runId = run.id;
  const sequences = [];
  let last;
  for await (const event of followEvents(client, run.id)) {
    sequences.push(Number(event.sequence));
    last = event;
  }
  results.sequences = sequences;
  results.lastState = last && last.event.case === "stateChanged" ? last.event.value.to : null;
  results.succeeded = RunState.SUCCEEDED;
  try {
    await client.runs.getRun({ id: "00000000-0000-7000-8000-000000000000" });
    results.error = null;
  } catch (error) {
    results.error = { conclave: error instanceof ConclaveError, code: error.codeName, reason: error.reason, id: error.metadata && error.metadata.id };
  }
  try {
    await client.runs.createRun({ kind: "echo", input: { repeat: "twice" } });
  } catch (error) {
    results.invalid = { reason: error.reason, fields: error.fields };
  }
  results.origin = location.origin;
  results.ok = true;
} catch (error) {
  results.failure = String((error && error.stack) || error);
}
await fetch("/result", { method: "POST", body: JSON.stringify(results) });
`;

const TYPES: Record<string, string> = { ".js": "text/javascript", ".map": "application/json", ".html": "text/html" };

interface PageResults {
  ok: boolean;
  failure?: string;
  runId?: string;
  sequences?: number[];
  lastState?: number;
  succeeded?: number;
  error?: { conclave: boolean; code: string; reason: string; id: string } | null;
  invalid?: { reason: string; fields: string[] };
  origin?: string;
}

/** Serves the page, the compiled package and node_modules; resolves with what the page posts. */
async function pageServer(serverAddress: string): Promise<{ origin: string; results: Promise<PageResults>; close: () => Promise<void> }> {
  let deliver: (results: PageResults) => void = () => {};
  const results = new Promise<PageResults>((resolvePromise) => (deliver = resolvePromise));
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>conclave browser test</title>
<script type="importmap">${JSON.stringify({ imports: importMap() })}</script></head>
<body><script type="module">const SERVER = ${JSON.stringify(`http://${serverAddress}`)};\n${PAGE_SCRIPT}</script></body></html>`;
  const roots: Record<string, string> = {
    "/pkg/": join(packageRoot, "build", "src"),
    "/node_modules/": join(packageRoot, "node_modules"),
  };
  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://page");
    if (request.method === "POST" && url.pathname === "/result") {
      let body = "";
      for await (const chunk of request) body += chunk;
      response.end("ok");
      deliver(JSON.parse(body) as PageResults);
      return;
    }
    if (url.pathname === "/") {
      response.setHeader("content-type", "text/html");
      response.end(html);
      return;
    }
    for (const [prefix, root] of Object.entries(roots)) {
      if (url.pathname.startsWith(prefix)) {
        const file = normalize(join(root, url.pathname.slice(prefix.length)));
        if (file.startsWith(root)) {
          try {
            const content = await readFile(file);
            response.setHeader("content-type", TYPES[extname(file)] ?? "application/octet-stream");
            response.end(content);
            return;
          } catch {
            // 404 below
          }
        }
      }
    }
    response.statusCode = 404;
    response.end();
  });
  await new Promise<void>((resolvePromise) => server.listen(0, "127.0.0.1", resolvePromise));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, results, close: () => new Promise((resolvePromise) => server.close(() => resolvePromise())) };
}

const chromium = findChromium();
let server: Server;
let native: ConclaveClient;

describe("a page in headless Chromium", { skip: chromium || process.env.CI ? false : "no Chromium (set CONCLAVE_BROWSER or install Debian's chromium)" }, () => {
  before(async () => {
    server = await startServer();
    native = connect({ address: server.address });
  });

  after(async () => {
    native?.close();
    await server?.stop();
  });

  it("calls the server on another origin over grpc-web", { timeout: 120_000 }, async () => {
    assert.ok(chromium, "Chromium is needed under CI: install Debian's chromium, or set CONCLAVE_BROWSER");
    const page = await pageServer(server.address);
    const profile = await mkdtemp(join(tmpdir(), "conclave-chromium-"));
    let output = "";
    const browser = spawn(
      chromium,
      [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        `--user-data-dir=${profile}`,
        `${page.origin}/`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    browser.stdout?.on("data", (data: Buffer) => (output += data.toString()));
    browser.stderr?.on("data", (data: Buffer) => (output += data.toString()));
    const exited = new Promise<void>((resolvePromise) => browser.once("exit", () => resolvePromise()));
    let timer: NodeJS.Timeout | undefined;
    try {
      const results = await Promise.race([
        page.results,
        exited.then(() => Promise.reject(new Error(`Chromium exited before the page reported:\n${output}`))),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no report from the page in 90 s; Chromium said:\n${output}`)), 90_000);
        }),
      ]);
      assert.ok(results.ok, `the page failed: ${results.failure}`);
      assert.notEqual(results.origin, `http://${server.address}`, "the page's origin is not the server's");
      const sequences = results.sequences ?? [];
      assert.ok(sequences.length >= 6, `events: ${sequences}`);
      assert.deepEqual(sequences, sequences.map((_, index) => index + 1), "every event once, in order");
      assert.equal(results.lastState, results.succeeded);
      assert.deepEqual(results.error, { conclave: true, code: "NOT_FOUND", reason: "RUN_NOT_FOUND", id: "00000000-0000-7000-8000-000000000000" });
      assert.deepEqual(results.invalid, { reason: "INVALID_ARGUMENT", fields: ["input.repeat"] });

      const run = await native.runs.getRun({ id: results.runId! });
      assert.equal(run.state, RunState.SUCCEEDED);
      assert.equal(run.labels.from, "browser");
      assert.equal(BigInt(sequences.at(-1)!), run.lastEventSequence);
    } finally {
      clearTimeout(timer);
      browser.kill("SIGKILL");
      await exited;
      await page.close();
      await rm(profile, { recursive: true, force: true });
    }
  });
});

// grpc-web against the same real server and port as native gRPC: from Node through
// connect-node's grpc-web transport (HTTP/1.1), and through the browser entry
// (@conclave/client/web: connect-web over fetch), unary calls, server streams (resumed after a
// forced disconnect), an artifact upload and download, errors with their reason, and the CORS
// answers a browser page on another origin relies on.

import assert from "node:assert/strict";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  Code,
  ConclaveError,
  LogStream,
  RunState,
  connect,
  downloadFile,
  followEvents,
  followLogs,
  paginate,
  uploadFile,
  type ConclaveClient,
} from "../src/index.js";
import * as web from "../src/web.js";
import { Proxy, startServer, type Server } from "./support.js";

let server: Server;
let native: ConclaveClient;
let scratch: string;

before(async () => {
  server = await startServer();
  native = connect({ address: server.address });
  scratch = await mkdtemp(join(tmpdir(), "conclave-ts-web-"));
});

after(async () => {
  native?.close();
  await server?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("grpc-web from Node (HTTP/1.1)", () => {
  it("makes unary calls and reads errors with their reason", async () => {
    const client = connect({ address: server.address, transport: "grpc-web", token: "t0k" });
    try {
      assert.equal(client.protocol, "grpc-web");
      const run = await client.runs.createRun({ kind: "noop", labels: { via: "grpc-web" } });
      const same = await native.runs.getRun({ id: run.id });
      assert.equal(same.kind, "noop");
      assert.equal(same.labels.via, "grpc-web");

      const missing = randomUUID();
      await assert.rejects(client.runs.getRun({ id: missing }), (error: unknown) => {
        assert.ok(error instanceof ConclaveError);
        assert.equal(error.code, Code.NotFound);
        assert.equal(error.reason, "RUN_NOT_FOUND");
        assert.equal(error.metadata.id, missing);
        return true;
      });
      await assert.rejects(client.runs.createRun({ kind: "echo", input: { repeat: "twice" } }), (error: unknown) => {
        assert.ok(error instanceof ConclaveError);
        assert.equal(error.reason, "INVALID_ARGUMENT");
        assert.deepEqual(error.fields, ["input.repeat"]);
        return true;
      });

      const pages = [];
      for await (const item of paginate(client.runs.listRuns, { labels: { via: "grpc-web" }, pageSize: 1 }, "runs")) {
        pages.push(item.id);
      }
      assert.deepEqual(pages, [run.id]);
    } finally {
      client.close();
    }
  });

  it("streams a run's events and logs, resuming after a forced disconnect", async () => {
    const proxy = await Proxy.start(server.address);
    const client = connect({ address: proxy.address, transport: "grpc-web" });
    try {
      const lines = Array.from({ length: 20 }, (_, index) => `web ${index + 1}`);
      const run = await client.runs.createRun({ kind: "echo", input: { lines, interval_ms: 40 } });
      let reconnects = 0;
      const received = [];
      for await (const line of followLogs(client, run.id, { retry: { initialDelayMs: 50 }, onReconnect: () => (reconnects += 1) })) {
        received.push(line);
        if (received.length === 6 && reconnects === 0) {
          proxy.dropAll();
        }
      }
      assert.ok(reconnects >= 1, "reconnected after the drop");
      assert.deepEqual(received.filter((line) => line.stream === LogStream.STDOUT).map((line) => line.text), lines);
      assert.deepEqual(received.map((line) => line.sequence), received.map((_, index) => BigInt(index + 1)));

      const events = [];
      for await (const event of followEvents(client, run.id)) {
        events.push(event.sequence);
      }
      const finished = await native.runs.getRun({ id: run.id });
      assert.equal(finished.state, RunState.SUCCEEDED);
      assert.deepEqual(events, events.map((_, index) => BigInt(index + 1)));
      assert.equal(events.at(-1), finished.lastEventSequence);
    } finally {
      client.close();
      await proxy.close();
    }
  });

  it("uploads and downloads an artifact (from Node, grpc-web over HTTP/1.1 streams request bodies too)", async () => {
    const client = connect({ address: server.address, transport: "grpc-web" });
    try {
      const run = await native.runs.createRun({ kind: "noop" });
      const content = randomBytes(3 * 1024 * 1024);
      const source = join(scratch, "web-source.bin");
      await writeFile(source, content);
      const artifact = await uploadFile(client, run.id, "web/data.bin", source, { chunkSize: 512 * 1024 });
      assert.equal(artifact.sha256, createHash("sha256").update(content).digest("hex"));

      const target = join(scratch, "web-downloaded.bin");
      const got = await downloadFile(client, { runId: run.id, name: "web/data.bin" }, target);
      assert.equal(got.id, artifact.id);
      assert.equal((await native.artifacts.getArtifact({ artifact: { id: artifact.id } })).size, BigInt(content.length));
      assert.ok((await readFile(target)).equals(content));
    } finally {
      client.close();
    }
  });
});

describe("the browser entry (connect-web over fetch)", () => {
  it("makes unary calls and follows a stream over grpc-web", async () => {
    assert.throws(() => web.connect({ address: server.address, transport: "grpc" as never }), /grpc-web/);
    const client = web.connect({ address: server.address, token: "t0k" });
    assert.equal(client.protocol, "grpc-web");
    const run = await client.runs.createRun({ kind: "steps", input: { steps: 5, step_ms: 20 } });
    const events = [];
    for await (const event of web.followEvents(client, run.id)) {
      events.push(event);
    }
    const last = events.at(-1)!.event;
    assert.equal(last.case === "stateChanged" ? last.value.to : undefined, web.RunState.SUCCEEDED);
    assert.deepEqual(events.map((event) => event.sequence), events.map((_, index) => BigInt(index + 1)));

    await assert.rejects(client.runs.getRun({ id: randomUUID() }), (error: unknown) => {
      assert.ok(error instanceof web.ConclaveError);
      assert.equal(error.reason, "RUN_NOT_FOUND");
      return true;
    });
  });

  it("gets the CORS answers a page on another origin needs", async () => {
    const origin = "http://app.example.test:5173";
    const preflight = await fetch(`http://${server.address}/conclave.v1.RunService/GetRun`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,grpc-timeout,x-grpc-web,x-user-agent",
      },
    });
    assert.ok(preflight.ok, `preflight answered ${preflight.status}`);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    const allowed = (preflight.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(",").map((item) => item.trim());
    for (const name of ["authorization", "content-type", "grpc-timeout", "x-grpc-web", "x-user-agent"]) {
      assert.ok(allowed.includes(name), `${name} allowed: ${allowed}`);
    }

    // A real call from that origin: the status headers are exposed to the page.
    const seen: Headers[] = [];
    const client = web.connect({
      address: server.address,
      fetch: async (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set("origin", origin);
        const response = await fetch(input, { ...init, headers });
        seen.push(response.headers);
        return response;
      },
    });
    await assert.rejects(client.runs.getRun({ id: randomUUID() }), (error: unknown) => error instanceof web.ConclaveError && error.reason === "RUN_NOT_FOUND");
    assert.equal(seen[0]!.get("access-control-allow-origin"), "*");
    const exposed = (seen[0]!.get("access-control-expose-headers") ?? "").toLowerCase();
    for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) {
      assert.ok(exposed.includes(name), `${name} exposed: ${exposed}`);
    }
  });
});

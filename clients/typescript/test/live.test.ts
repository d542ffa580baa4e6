// Live tests over native gRPC (HTTP/2) against a real `conclave serve` ($CONCLAVE_BIN): a run
// followed to its end through a forced disconnect, logs tailed the same way, an artifact uploaded
// and downloaded (with a disconnect and with a partial file left behind), a list read across
// pages, and bad requests surfacing their reason.

import assert from "node:assert/strict";
import { randomBytes, createHash, randomUUID } from "node:crypto";
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
  listAll,
  paginate,
  uploadFile,
  type ConclaveClient,
  type Interceptor,
  type ListRunsRequest,
  type ReconnectInfo,
  type Run,
  type RunEvent,
} from "../src/index.js";
import { Proxy, eventually, startServer, type Server } from "./support.js";

let server: Server;
let client: ConclaveClient;
let scratch: string;

before(async () => {
  // Heartbeats every 0.5 s, so a waiting run's stream sends some while a test watches.
  server = await startServer(["--stream-heartbeat-seconds", "0.5"]);
  client = connect({ address: server.address });
  scratch = await mkdtemp(join(tmpdir(), "conclave-ts-files-"));
});

after(async () => {
  client?.close();
  await server?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function waitFinished(id: string): Promise<Run> {
  return eventually(`run ${id} to finish`, async () => {
    const run = await client.runs.getRun({ id });
    return [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED].includes(run.state) ? run : undefined;
  });
}

function assertContiguous(sequences: bigint[], what: string): void {
  const expected = sequences.map((_, index) => BigInt(index + 1));
  assert.deepEqual(sequences, expected, `${what}: every sequence from 1, once, in order`);
}

describe("native gRPC", () => {
  it("follows a run to its end through a forced disconnect, losing and repeating nothing", async () => {
    const proxy = await Proxy.start(server.address);
    const viaProxy = connect({ address: proxy.address });
    try {
      const run = await viaProxy.runs.createRun({ kind: "steps", input: { steps: 20, lines: 1, step_ms: 60 } });
      const reconnects: ReconnectInfo[] = [];
      const events: RunEvent[] = [];
      let dropped = false;
      for await (const event of followEvents(viaProxy, run.id, { retry: { initialDelayMs: 50 }, onReconnect: (info) => reconnects.push(info) })) {
        events.push(event);
        if (!dropped && events.length === 5) {
          dropped = true;
          assert.ok(proxy.dropAll() > 0, "the proxy had connections to drop");
        }
      }
      assert.ok(reconnects.length >= 1, "the helper reconnected after the drop");
      assert.equal(reconnects[0]!.afterSequence, 5n, "and resumed after the last event it had");
      assert.ok(proxy.connections >= 2, "over a new connection");
      const finished = await client.runs.getRun({ id: run.id });
      assert.equal(finished.state, RunState.SUCCEEDED);
      assertContiguous(events.map((event) => event.sequence), "events");
      assert.equal(events.at(-1)!.sequence, finished.lastEventSequence, "up to the run's last event");
      const last = events.at(-1)!.event;
      assert.equal(last.case, "stateChanged");
      assert.equal(last.case === "stateChanged" ? last.value.to : undefined, RunState.SUCCEEDED);
      assert.equal(events.filter((event) => event.event.case === "stepCompleted").length, 20);
    } finally {
      viaProxy.close();
      await proxy.close();
    }
  });

  it("tails logs live through a forced disconnect, every line once", async () => {
    const proxy = await Proxy.start(server.address);
    const viaProxy = connect({ address: proxy.address });
    try {
      const lines = Array.from({ length: 30 }, (_, index) => `line ${index + 1}`);
      const run = await viaProxy.runs.createRun({ kind: "echo", input: { lines, interval_ms: 30 } });
      let reconnects = 0;
      const received = [];
      for await (const line of followLogs(viaProxy, run.id, { retry: { initialDelayMs: 50 }, onReconnect: () => (reconnects += 1) })) {
        received.push(line);
        if (received.filter((item) => item.stream === LogStream.STDOUT).length === 10 && reconnects === 0 && proxy.connections === 1) {
          proxy.dropAll();
        }
      }
      assert.ok(reconnects >= 1, "the helper reconnected");
      assert.deepEqual(
        received.filter((line) => line.stream === LogStream.STDOUT).map((line) => line.text),
        lines,
      );
      assertContiguous(received.map((line) => line.sequence), "log lines");
      const finished = await waitFinished(run.id);
      assert.equal(finished.state, RunState.SUCCEEDED);
      assert.equal(received.at(-1)!.sequence, finished.lastLogSequence);

      // Without follow, the lines stored so far, after a sequence.
      const tail = [];
      for await (const line of followLogs(client, run.id, { follow: false, afterSequence: finished.lastLogSequence - 3n })) {
        tail.push(line.sequence);
      }
      assert.deepEqual(tail, [finished.lastLogSequence - 2n, finished.lastLogSequence - 1n, finished.lastLogSequence]);
    } finally {
      viaProxy.close();
      await proxy.close();
    }
  });

  it("uploads a file and downloads it back, resuming after a disconnect and from a partial file", async () => {
    const run = await client.runs.createRun({ kind: "noop" });
    const content = randomBytes(5 * 1024 * 1024 + 123);
    const sha256 = createHash("sha256").update(content).digest("hex");
    const source = join(scratch, "source.bin");
    await writeFile(source, content);

    const progress: number[] = [];
    const artifact = await uploadFile(client, run.id, "out/data.bin", source, {
      mediaType: "application/octet-stream",
      labels: { test: "upload" },
      chunkSize: 256 * 1024,
      onProgress: ({ bytes }) => progress.push(bytes),
    });
    assert.equal(artifact.size, BigInt(content.length));
    assert.equal(artifact.sha256, sha256);
    assert.equal(artifact.name, "out/data.bin");
    assert.equal(artifact.version, 1);
    assert.equal(progress.at(-1), content.length);
    assert.ok(progress.length >= 20, "sent in chunks");

    // A download through a proxy that drops the connection after the first megabyte.
    const proxy = await Proxy.start(server.address);
    const viaProxy = connect({ address: proxy.address });
    try {
      const target = join(scratch, "downloaded.bin");
      const resumedAt: number[] = [];
      let dropped = false;
      const got = await downloadFile(viaProxy, { runId: run.id, name: "out/data.bin" }, target, {
        retry: { initialDelayMs: 50 },
        onProgress: ({ bytes }) => {
          if (!dropped && bytes >= 1024 * 1024) {
            dropped = true;
            proxy.dropAll();
          }
        },
        onResume: ({ offset }) => resumedAt.push(offset),
      });
      assert.equal(got.id, artifact.id);
      assert.ok(resumedAt.length >= 1 && resumedAt[0]! >= 1024 * 1024, `resumed from the bytes written: ${resumedAt}`);
      assert.ok((await readFile(target)).equals(content), "the downloaded file is the uploaded one");
    } finally {
      viaProxy.close();
      await proxy.close();
    }

    // A partial file left by an earlier download is continued, not started over.
    const second = join(scratch, "second.bin");
    await writeFile(`${second}.${sha256.slice(0, 16)}.part`, content.subarray(0, 1_000_000));
    const starts: number[] = [];
    await downloadFile(client, artifact.id, second, { onProgress: ({ bytes }) => starts.push(bytes) });
    assert.equal(starts[0], 1_000_000, "the download started at the partial file's end");
    assert.ok((await readFile(second)).equals(content));

    // A partial file with wrong bytes is detected by the checksum, and the download starts over.
    const third = join(scratch, "third.bin");
    await writeFile(`${third}.${sha256.slice(0, 16)}.part`, randomBytes(500_000));
    await downloadFile(client, artifact.id, third);
    assert.ok((await readFile(third)).equals(content));

    // resume: false ignores a partial file.
    const fourth = join(scratch, "fourth.bin");
    await writeFile(`${fourth}.${sha256.slice(0, 16)}.part`, randomBytes(100));
    const fourthStarts: number[] = [];
    await downloadFile(client, artifact.id, fourth, { resume: false, onProgress: ({ bytes }) => fourthStarts.push(bytes) });
    assert.equal(fourthStarts[0], 0);
    assert.ok((await readFile(fourth)).equals(content));

    const listed = await listAll(client.artifacts.listArtifacts, { runId: run.id }, "artifacts");
    assert.deepEqual(listed.map((item) => item.name), ["out/data.bin"]);
  });

  it("lists across pages with paginate", async () => {
    const batch = `b${randomUUID().slice(0, 8)}`;
    const created = new Set<string>();
    for (let index = 0; index < 7; index++) {
      const run = await client.runs.createRun({ kind: "noop", labels: { batch } });
      created.add(run.id);
    }
    const tokens: string[] = [];
    const listRuns = (request: ListRunsRequest, options?: Parameters<typeof client.runs.listRuns>[1]) => {
      tokens.push(request.pageToken);
      return client.runs.listRuns(request, options);
    };
    const seen: string[] = [];
    for await (const run of paginate(client.runs.listRuns, { labels: { batch }, pageSize: 3 }, "runs")) {
      seen.push(run.id);
    }
    assert.equal(seen.length, 7);
    assert.deepEqual(new Set(seen), created);
    const sorted = [...seen].sort().reverse();
    assert.deepEqual(seen, sorted, "newest first");

    const all = await listAll(listRuns as typeof client.runs.listRuns, { labels: { batch }, pageSize: 3 }, "runs");
    assert.equal(all.length, 7);
    assert.equal(tokens.length, 3, "three pages of at most three");
    assert.equal(tokens[0], "");
    assert.ok(tokens.slice(1).every((token) => token !== ""));
  });

  it("surfaces a bad request's code, reason and field violations", async () => {
    await assert.rejects(client.runs.createRun({ kind: "echo", input: { repeat: "twice" } }), (error: unknown) => {
      assert.ok(error instanceof ConclaveError, `a ConclaveError: ${error}`);
      assert.equal(error.code, Code.InvalidArgument);
      assert.equal(error.codeName, "INVALID_ARGUMENT");
      assert.equal(error.reason, "INVALID_ARGUMENT");
      assert.equal(error.domain, "conclave.dev");
      assert.deepEqual(error.fields, ["input.repeat"]);
      assert.ok(error.fieldViolations[0]!.description.length > 0);
      assert.match(error.message, /INVALID_ARGUMENT/);
      return true;
    });
    await assert.rejects(client.runs.createRun({}), (error: unknown) => {
      assert.ok(error instanceof ConclaveError);
      assert.deepEqual(error.fields, ["kind"]);
      return true;
    });

    const missing = randomUUID();
    await assert.rejects(client.runs.getRun({ id: missing }), (error: unknown) => {
      assert.ok(error instanceof ConclaveError);
      assert.equal(error.code, Code.NotFound);
      assert.equal(error.reason, "RUN_NOT_FOUND");
      assert.equal(error.metadata.id, missing);
      return true;
    });

    // Helpers raise the same errors, and do not retry them.
    let reconnects = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of followEvents(client, missing, { onReconnect: () => (reconnects += 1) })) {
          // nothing
        }
      })(),
      (error: unknown) => error instanceof ConclaveError && error.reason === "RUN_NOT_FOUND",
    );
    assert.equal(reconnects, 0);

    // A stream's error too: after_sequence past the run's last event.
    const run = await client.runs.createRun({ kind: "noop" });
    const done = await waitFinished(run.id);
    await assert.rejects(
      (async () => {
        for await (const _ of client.runs.watchRun({ id: run.id, afterSequence: done.lastEventSequence + 100n })) {
          // nothing
        }
      })(),
      (error: unknown) => error instanceof ConclaveError && error.code === Code.InvalidArgument && error.fields.includes("after_sequence"),
    );
  });

  it("sends the bearer token on every call", async () => {
    const seen: (string | null)[] = [];
    const capture: Interceptor = (next) => async (request) => {
      seen.push(request.header.get("authorization"));
      return next(request);
    };
    let calls = 0;
    const withToken = connect({
      address: server.address,
      token: () => `t0k-${++calls}`,
      interceptors: [capture],
    });
    try {
      const run = await withToken.runs.createRun({ kind: "noop" });
      await withToken.runs.getRun({ id: run.id });
      for await (const _ of followEvents(withToken, run.id)) {
        // to the end
      }
      assert.deepEqual(seen, ["Bearer t0k-1", "Bearer t0k-2", "Bearer t0k-3"]);
    } finally {
      withToken.close();
    }
  });

  it("passes over heartbeats while a run waits for a decision, then ends with the run", async () => {
    const run = await client.runs.createRun({ kind: "approval", input: { prompt: "ship it?" } });
    const followed = (async () => {
      const events: RunEvent[] = [];
      for await (const event of followEvents(client, run.id)) events.push(event);
      return events;
    })();
    // The raw stream, beside it, shows the heartbeats the helper drops.
    let heartbeats = 0;
    const raw = (async () => {
      for await (const message of client.runs.watchRun({ id: run.id })) {
        if (message.heartbeat) heartbeats += 1;
      }
    })();
    const waiting = await eventually("the run to wait", async () => {
      const now = await client.runs.getRun({ id: run.id });
      return now.state === RunState.WAITING ? now : undefined;
    });
    assert.equal(waiting.waiting?.prompt, "ship it?");
    await eventually("two heartbeats", async () => (heartbeats >= 2 ? true : undefined));
    await client.runs.submitDecision({ id: run.id, decision: { outcome: { case: "approve", value: true }, note: "yes" } });
    const [events] = await Promise.all([followed, raw]);
    assertContiguous(events.map((event) => event.sequence), "events");
    assert.ok(events.some((event) => event.event.case === "decisionRecorded"));
    const finished = await client.runs.getRun({ id: run.id });
    assert.equal(finished.state, RunState.SUCCEEDED);
    assert.equal(events.at(-1)!.sequence, finished.lastEventSequence);
  });

  it("stops following when its signal aborts, without reconnecting", async () => {
    const run = await client.runs.createRun({ kind: "sleep", input: { seconds: 30 } });
    const controller = new AbortController();
    let reconnects = 0;
    let received = 0;
    try {
      await assert.rejects(
        (async () => {
          for await (const _ of followEvents(client, run.id, { signal: controller.signal, onReconnect: () => (reconnects += 1) })) {
            received += 1;
            if (received === 2) controller.abort();
          }
        })(),
        (error: unknown) => error instanceof ConclaveError && error.code === Code.Canceled,
      );
      assert.equal(reconnects, 0);
    } finally {
      await client.runs.cancelRun({ id: run.id, reason: "test over" });
    }
  });

  it("gives up after the retry budget when the server is gone", async () => {
    const proxy = await Proxy.start(server.address);
    const viaProxy = connect({ address: proxy.address });
    const run = await viaProxy.runs.createRun({ kind: "sleep", input: { seconds: 30 } });
    await proxy.close();
    let reconnects = 0;
    try {
      await assert.rejects(
        (async () => {
          for await (const _ of followEvents(viaProxy, run.id, { retry: { maxAttempts: 3, initialDelayMs: 10 }, onReconnect: () => (reconnects += 1) })) {
            // the proxy is closed: nothing comes
          }
        })(),
        (error: unknown) => error instanceof ConclaveError && error.code === Code.Unavailable,
      );
      assert.equal(reconnects, 2, "three attempts, two reconnections");
    } finally {
      viaProxy.close();
      await client.runs.cancelRun({ id: run.id, reason: "test over" });
    }
  });
});

// Test harness: a real `conclave serve` ($CONCLAVE_BIN) on a free loopback port with a temporary
// data directory, ready once grpc.health.v1 answers SERVING; and a TCP proxy in front of it that
// can drop every connection, to force a disconnect in the middle of a stream.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HealthCheckResponse_ServingStatus, connect } from "../src/index.js";

export interface Server {
  /** `127.0.0.1:<port>` */
  address: string;
  dataDir: string;
  log(): string;
  stop(): Promise<void>;
}

/** A free loopback port (another process may still take it first: startServer retries). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const port = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function healthy(address: string): Promise<boolean> {
  const client = connect({ address });
  try {
    const answer = await client.health.check({ service: "" }, { timeoutMs: 1000 });
    return answer.status === HealthCheckResponse_ServingStatus.SERVING;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** Starts `$CONCLAVE_BIN serve` on a free port; extra arguments are passed to `serve`. */
export async function startServer(extraArgs: string[] = []): Promise<Server> {
  const bin = process.env.CONCLAVE_BIN;
  if (!bin) {
    throw new Error("set CONCLAVE_BIN to the path of a built `conclave` binary");
  }
  const dataDir = await mkdtemp(join(tmpdir(), "conclave-ts-"));
  let lastLog = "";
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    let output = "";
    const child: ChildProcess = spawn(bin, ["serve", "--listen", address, "--data-dir", join(dataDir, "data"), ...extraArgs], {
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (data: Buffer) => (output += data.toString()));
    child.stderr?.on("data", (data: Buffer) => (output += data.toString()));
    let exited = false;
    child.once("exit", () => (exited = true));
    const deadline = Date.now() + 30_000;
    while (!exited && Date.now() < deadline) {
      if (await healthy(address)) {
        const stop = async () => {
          if (!exited) {
            const gone = new Promise((resolve) => child.once("exit", resolve));
            child.kill("SIGKILL");
            await gone;
          }
          await rm(dataDir, { recursive: true, force: true });
        };
        return { address, dataDir, log: () => output, stop };
      }
      await delay(100);
    }
    if (!exited) child.kill("SIGKILL");
    lastLog = output;
  }
  await rm(dataDir, { recursive: true, force: true });
  throw new Error(`conclave serve did not become healthy:\n${lastLog}`);
}

/** A TCP proxy on a free loopback port that forwards to `target` and can drop every connection. */
export class Proxy {
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly server: net.Server,
    readonly address: string,
  ) {}

  /** Connections accepted so far. */
  connections = 0;

  static async start(target: string): Promise<Proxy> {
    const [host, port] = splitAddress(target);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const proxy = new Proxy(server, address);
    server.on("connection", (client) => {
      proxy.connections += 1;
      const upstream = net.connect(port, host);
      proxy.track(client);
      proxy.track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      const closeBoth = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", closeBoth);
      upstream.on("error", closeBoth);
      client.on("close", closeBoth);
      upstream.on("close", closeBoth);
    });
    return proxy;
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
  }

  /** Drops every open connection at once, as a network failure would (a TCP reset). */
  dropAll(): number {
    const count = this.sockets.size;
    for (const socket of this.sockets) {
      socket.resetAndDestroy();
    }
    return count;
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function splitAddress(address: string): [string, number] {
  const index = address.lastIndexOf(":");
  return [address.slice(0, index), Number(address.slice(index + 1))];
}

/** Polls `check` until it returns a value, or fails after `ms`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

// The Node entry of @conclave/client: native gRPC over HTTP/2 (the default) or grpc-web over
// HTTP/1.1, both through @connectrpc/connect-node, plus artifact uploads and downloads from and
// to files. Browsers get web.ts instead (see package.json "exports").

import * as http from "node:http";
import * as https from "node:https";
import type * as tls from "node:tls";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { baseUrl, bearerToken, clientsFor, type ConclaveClient, type TokenSource } from "./clients.js";

export * from "./common.js";
export { downloadFile, uploadFile, type DownloadFileOptions, type UploadFileOptions, type ArtifactRefInit, type Progress } from "./files.js";

/** TLS settings for Node: trust anchors and a client certificate, as Node's tls module takes them. */
export type TlsOptions = Pick<tls.ConnectionOptions, "ca" | "cert" | "key" | "servername" | "rejectUnauthorized">;

export interface ConnectOptions {
  /** The server: `127.0.0.1:50051`, or a URL (`https://conclave.example.com:443`). */
  address: string;
  /** Use TLS (https): `true` trusts the system's roots; an object adds a CA or a client certificate. */
  tls?: boolean | TlsOptions;
  /** Sent as `authorization: Bearer <token>` on every call (a function is called per call). */
  token?: TokenSource;
  /**
   * `grpc` (default): native gRPC over HTTP/2. `grpc-web`: grpc-web over HTTP/1.1, as a browser
   * speaks it (for a proxy that passes only HTTP/1.1; from Node it streams request bodies too).
   * A Transport of your own is used as it is (with neither the token nor `interceptors`).
   */
  transport?: "grpc" | "grpc-web" | Transport;
  /** More interceptors, run after the token's. */
  interceptors?: Interceptor[];
}

/**
 * Clients for every service of the server at `address`: `runs`, `workers`, `admin`, `models`,
 * `artifacts`, `debates`, `missions`, `tasks`, `skills`, `recipes`, `cards` and `health`. Their
 * methods throw ConclaveError. Call `close()` when done to drop the connection.
 */
export function connect(options: ConnectOptions): ConclaveClient {
  const useTls = options.tls !== undefined && options.tls !== false;
  const url = baseUrl(options.address, useTls);
  const tlsOptions: TlsOptions = typeof options.tls === "object" ? options.tls : {};
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined) interceptors.push(bearerToken(options.token));
  interceptors.push(...(options.interceptors ?? []));

  if (typeof options.transport === "object") {
    return { ...clientsFor(options.transport), transport: options.transport, protocol: "custom", close() {} };
  }
  if (options.transport === "grpc-web") {
    const secure = url.startsWith("https:");
    const agent = secure ? new https.Agent({ keepAlive: true, ...tlsOptions }) : new http.Agent({ keepAlive: true });
    const transport = createGrpcWebTransport({
      baseUrl: url,
      httpVersion: "1.1",
      useBinaryFormat: true,
      interceptors,
      nodeOptions: { agent },
    });
    return { ...clientsFor(transport), transport, protocol: "grpc-web", close: () => agent.destroy() };
  }
  if (options.transport !== undefined && options.transport !== "grpc") {
    throw new Error(`unknown transport ${JSON.stringify(options.transport)}: use "grpc" or "grpc-web"`);
  }
  const sessionManager = new Http2SessionManager(url, { pingIntervalMs: 30_000, pingTimeoutMs: 15_000 }, tlsOptions);
  const transport = createGrpcTransport({
    baseUrl: url,
    interceptors,
    sessionManager,
    // Artifact chunks and large lists: the server's own message limit is 16 MiB by default.
    readMaxBytes: 64 << 20,
  });
  return { ...clientsFor(transport), transport, protocol: "grpc", close: () => sessionManager.abort() };
}

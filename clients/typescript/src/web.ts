// The browser entry (`@conclave/client/web`, and what bundlers pick for `@conclave/client`):
// grpc-web through fetch, which the server accepts beside native gRPC, with CORS.

import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { baseUrl, bearerToken, clientsFor, type ConclaveClient, type TokenSource } from "./clients.js";

export * from "./common.js";

export interface WebConnectOptions {
  /** The server: `https://conclave.example.com`, or `host:port` (http, or https with `tls`). */
  address: string;
  /** Use https when `address` has no scheme. */
  tls?: boolean;
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: TokenSource;
  /** Browsers speak grpc-web only; `grpc` is refused here (use the Node entry). A Transport of your own is used as it is. */
  transport?: "grpc-web" | Transport;
  /** More interceptors, run after the token's. */
  interceptors?: Interceptor[];
  /** A fetch of your own (default: globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
}

/** Clients for every service of the server at `address`, over grpc-web. */
export function connect(options: WebConnectOptions): ConclaveClient {
  const requested = options.transport as unknown;
  if (requested === "grpc") {
    throw new Error("browsers cannot speak native gRPC: use transport \"grpc-web\" (or import @conclave/client in Node)");
  }
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined) interceptors.push(bearerToken(options.token));
  interceptors.push(...(options.interceptors ?? []));
  let transport: Transport;
  let protocol: ConclaveClient["protocol"];
  if (typeof options.transport === "object") {
    transport = options.transport;
    protocol = "custom";
  } else {
    transport = createGrpcWebTransport({
      baseUrl: baseUrl(options.address, options.tls),
      useBinaryFormat: true,
      interceptors,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    protocol = "grpc-web";
  }
  return { ...clientsFor(transport), transport, protocol, close() {} };
}

// Typed clients for every Conclave service over one transport, and the interceptor that sends a
// bearer token. Shared by the Node entry (index.ts) and the browser entry (web.ts).

import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { AdminService } from "./gen/conclave/v1/admin_pb.js";
import { ArtifactService } from "./gen/conclave/v1/artifacts_pb.js";
import { DebateService } from "./gen/conclave/v1/debates_pb.js";
import { MissionService } from "./gen/conclave/v1/missions_pb.js";
import { ModelService } from "./gen/conclave/v1/models_pb.js";
import { RunService } from "./gen/conclave/v1/runs_pb.js";
import { CardService, RecipeService, SkillService } from "./gen/conclave/v1/stages_pb.js";
import { TaskService } from "./gen/conclave/v1/tasks_pb.js";
import { WorkerService } from "./gen/conclave/v1/workers_pb.js";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import { ConclaveError } from "./errors.js";

/** Every service the server serves, by the name its client has on a ConclaveClient. */
export const SERVICES = {
  runs: RunService,
  workers: WorkerService,
  admin: AdminService,
  models: ModelService,
  artifacts: ArtifactService,
  debates: DebateService,
  missions: MissionService,
  tasks: TaskService,
  skills: SkillService,
  recipes: RecipeService,
  cards: CardService,
  health: Health,
} as const;

type Services = typeof SERVICES;

/** The typed clients of every service. Their methods throw ConclaveError. */
export type ConclaveClients = { readonly [K in keyof Services]: Client<Services[K]> };

/** What `connect()` returns: a client per service over one transport. */
export interface ConclaveClient extends ConclaveClients {
  /** The transport the clients share, for `createClient()` of your own. */
  readonly transport: Transport;
  /** `grpc` (native gRPC over HTTP/2) or `grpc-web`. */
  readonly protocol: "grpc" | "grpc-web" | "custom";
  /** Closes the connections this client opened (Node); further calls fail. */
  close(): void;
}

/** Something that gives a bearer token: the token itself, or a function (called per request). */
export type TokenSource = string | (() => string | Promise<string>);

/** An interceptor that sends `authorization: Bearer <token>` on every request. */
export function bearerToken(token: TokenSource): Interceptor {
  return (next) => async (request) => {
    const value = typeof token === "function" ? await token() : token;
    if (value) {
      request.header.set("authorization", `Bearer ${value}`);
    }
    return next(request);
  };
}

/** Wraps a client so that every method throws ConclaveError (streams too, while iterating). */
export function withConclaveErrors<S extends DescService>(service: S, client: Client<S>): Client<S> {
  const wrapped: Record<string, unknown> = {};
  const methods = client as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of service.methods) {
    const call = methods[method.localName];
    if (call === undefined) {
      continue;
    }
    switch (method.methodKind) {
      case "unary":
      case "client_streaming":
        wrapped[method.localName] = async (...args: unknown[]) => {
          try {
            return await call(...args);
          } catch (error) {
            throw ConclaveError.from(error);
          }
        };
        break;
      case "server_streaming":
      case "bidi_streaming":
        wrapped[method.localName] = (...args: unknown[]) => rethrowing(call(...args) as AsyncIterable<unknown>);
        break;
    }
  }
  return wrapped as Client<S>;
}

async function* rethrowing<T>(stream: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  try {
    yield* stream;
  } catch (error) {
    throw ConclaveError.from(error);
  }
}

/** A client for every service over `transport`. */
export function clientsFor(transport: Transport): ConclaveClients {
  const clients: Record<string, unknown> = {};
  for (const [name, service] of Object.entries(SERVICES)) {
    clients[name] = withConclaveErrors(service as DescService, createClient(service as DescService, transport));
  }
  return clients as ConclaveClients;
}

/** The base URL of a server: an address such as `127.0.0.1:50051`, or a URL (`https://host`). */
export function baseUrl(address: string, tls: boolean | undefined): string {
  const trimmed = address.trim().replace(/\/+$/, "");
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    if (tls === true && trimmed.startsWith("http://")) {
      return `https://${trimmed.slice("http://".length)}`;
    }
    return trimmed;
  }
  return `${tls ? "https" : "http"}://${trimmed}`;
}

// Errors as Conclave reports them: a gRPC code plus a google.rpc.ErrorInfo detail (domain
// `conclave.dev`, a stable `reason`, metadata) and, for invalid requests, google.rpc.BadRequest
// field violations. Every helper of this package, and every method of the clients `connect()`
// returns, throws a ConclaveError.

import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export { Code };

/** The domain of the ErrorInfo details Conclave's server sends. */
export const CONCLAVE_ERROR_DOMAIN = "conclave.dev";

/** The domain of the ErrorInfo-like reasons this client raises by itself (a checksum mismatch, ...). */
export const CLIENT_ERROR_DOMAIN = "client.conclave.dev";

/** One bad field of an invalid request, from a google.rpc.BadRequest detail. */
export interface FieldViolation {
  /** The field's path, e.g. `kind`, `input.repeat`, `labels[Not A Key]`. */
  field: string;
  /** What is wrong with it and how to fix it. */
  description: string;
  /** A machine-readable reason for this field, when the server gives one. */
  reason: string;
}

/** The gRPC name of a code (`NOT_FOUND`, `INVALID_ARGUMENT`, `CANCELLED`, ...). */
export function codeName(code: Code): string {
  if (code === Code.Canceled) {
    return "CANCELLED";
  }
  const name = Code[code];
  if (name === undefined) {
    return `CODE_${code}`;
  }
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export interface ConclaveErrorInit {
  code: Code;
  message: string;
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
  fieldViolations?: FieldViolation[];
  responseMetadata?: Headers;
  cause?: unknown;
}

/**
 * A failed call: the gRPC `code`, the ErrorInfo `reason` (branch on these two, not on the
 * message), the ErrorInfo `metadata`, and the BadRequest `fieldViolations`.
 */
export class ConclaveError extends Error {
  override readonly name = "ConclaveError";
  /** The gRPC status code. */
  readonly code: Code;
  /** The ErrorInfo reason (`RUN_NOT_FOUND`, `INVALID_ARGUMENT`, `SHUTTING_DOWN`, ...); empty when the error carried none (a transport failure). */
  readonly reason: string;
  /** The ErrorInfo domain: `conclave.dev` for the server's errors. */
  readonly domain: string;
  /** The ErrorInfo metadata, e.g. `{resource: "run", id: "..."}`. */
  readonly metadata: Record<string, string>;
  /** The BadRequest field violations of an INVALID_ARGUMENT. */
  readonly fieldViolations: FieldViolation[];
  /** The status message as the server sent it. */
  readonly rawMessage: string;
  /** The response headers and trailers that came with the error. */
  readonly responseMetadata: Headers;

  constructor(init: ConclaveErrorInit) {
    const label = init.reason ? `${codeName(init.code)} (${init.reason})` : codeName(init.code);
    super(init.message ? `${label}: ${init.message}` : label, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.reason = init.reason ?? "";
    this.domain = init.domain ?? "";
    this.metadata = init.metadata ?? {};
    this.fieldViolations = init.fieldViolations ?? [];
    this.rawMessage = init.message;
    this.responseMetadata = init.responseMetadata ?? new Headers();
  }

  /** The gRPC name of the code, e.g. `NOT_FOUND`. */
  get codeName(): string {
    return codeName(this.code);
  }

  /** The fields named by the BadRequest violations. */
  get fields(): string[] {
    return this.fieldViolations.map((violation) => violation.field);
  }

  /** Turns anything thrown by a call (a ConnectError, an AbortError, ...) into a ConclaveError. */
  static from(reason: unknown): ConclaveError {
    if (reason instanceof ConclaveError) {
      return reason;
    }
    const error = ConnectError.from(reason);
    let info: { reason: string; domain: string; metadata: Record<string, string> } | undefined;
    const violations: FieldViolation[] = [];
    try {
      info = error.findDetails(ErrorInfoSchema)[0];
      for (const bad of error.findDetails(BadRequestSchema)) {
        for (const violation of bad.fieldViolations) {
          violations.push({ field: violation.field, description: violation.description, reason: violation.reason });
        }
      }
    } catch {
      // Details that do not decode are left out; the code and message still say what happened.
    }
    return new ConclaveError({
      code: error.code,
      message: error.rawMessage,
      reason: info?.reason ?? "",
      domain: info?.domain ?? "",
      metadata: { ...(info?.metadata ?? {}) },
      fieldViolations: violations,
      responseMetadata: error.metadata,
      cause: reason,
    });
  }
}

/** Whether `error` is a ConclaveError (with this `reason`, when given). */
export function isConclaveError(error: unknown, reason?: string): error is ConclaveError {
  return error instanceof ConclaveError && (reason === undefined || error.reason === reason);
}

/**
 * Whether a failed stream or download is worth resuming: the connection broke (UNAVAILABLE, a
 * reset stream, a dropped socket) or the server is shutting down, as opposed to an answer about
 * the request itself. Errors the server sent with an ErrorInfo are final, except UNAVAILABLE.
 */
export function isDisconnect(error: ConclaveError, signal?: AbortSignal): boolean {
  if (signal?.aborted) {
    return false;
  }
  if (error.code === Code.Unavailable) {
    return true;
  }
  if (error.reason !== "") {
    return false;
  }
  return (
    error.code === Code.Internal ||
    error.code === Code.Unknown ||
    error.code === Code.Aborted ||
    error.code === Code.Canceled
  );
}

// Artifacts from and to files (Node): uploads stream a file in chunks and send its SHA-256 at
// the end; downloads stream into a partial file, resume a broken transfer from the bytes already
// written (`offset`), and check the SHA-256 before the file takes its final name.

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, type CallOptions } from "@connectrpc/connect";
import type { ConclaveClients } from "./clients.js";
import { CLIENT_ERROR_DOMAIN, ConclaveError, isDisconnect } from "./errors.js";
import { sleep, type RetryOptions } from "./follow.js";
import {
  ArtifactKind,
  type Artifact,
  type ArtifactProducerSchema,
  type ArtifactRefSchema,
  type UploadArtifactRequestSchema,
} from "./gen/conclave/v1/artifacts_pb.js";

/** Names one artifact version: by `id`, or by `runId` and `name` (the latest, or `version`). */
export type ArtifactRefInit = MessageInitShape<typeof ArtifactRefSchema>;

/** Bytes moved so far, of `total`. */
export interface Progress {
  bytes: number;
  total: number;
}

export interface UploadFileOptions {
  /** The content's media type (default `application/octet-stream`). */
  mediaType?: string;
  kind?: ArtifactKind;
  labels?: Record<string, string>;
  producer?: MessageInitShape<typeof ArtifactProducerSchema>;
  /** Write only if the name has no version yet (ABORTED otherwise). */
  ifAbsent?: boolean;
  /** Write only while this etag names the latest version (ABORTED / ETAG_MISMATCH otherwise). */
  expectedEtag?: string;
  /** Bytes per message (default 1 MiB; the server's message limit is 16 MiB by default). */
  chunkSize?: number;
  signal?: AbortSignal;
  headers?: HeadersInit;
  onProgress?: (progress: Progress) => void;
}

/**
 * Uploads the file at `path` as a new version of the artifact `name` of run `runId`, streaming it
 * in chunks; the server checks the size and the SHA-256 sent after the content, and stores nothing
 * if the stream breaks. Works over both of Node's transports (grpc-web from Node streams the
 * request body over HTTP/1.1; browsers cannot, which is why this helper is Node-only).
 * Not retried by itself: a retry after an unknown outcome could add a second version (pass
 * `ifAbsent` or `expectedEtag` to make a retry safe). Throws ConclaveError.
 */
export async function uploadFile(
  clients: Pick<ConclaveClients, "artifacts">,
  runId: string,
  name: string,
  path: string,
  options: UploadFileOptions = {},
): Promise<Artifact> {
  const chunkSize = options.chunkSize ?? 1 << 20;
  if (!Number.isInteger(chunkSize) || chunkSize <= 0) {
    throw new ConclaveError({ code: Code.InvalidArgument, message: `chunkSize must be a positive integer, not ${chunkSize}`, reason: "INVALID_ARGUMENT", domain: CLIENT_ERROR_DOMAIN });
  }
  const total = await fileSize(path);
  async function* requests(): AsyncGenerator<MessageInitShape<typeof UploadArtifactRequestSchema>, void, undefined> {
    yield {
      part: {
        case: "header",
        value: {
          runId,
          name,
          kind: options.kind ?? ArtifactKind.UNSPECIFIED,
          mediaType: options.mediaType ?? "",
          labels: options.labels ?? {},
          ...(options.producer ? { producer: options.producer } : {}),
          expectedEtag: options.expectedEtag ?? "",
          ifAbsent: options.ifAbsent ?? false,
          size: BigInt(total),
        },
      },
    };
    const hash = createHash("sha256");
    let bytes = 0;
    for await (const chunk of createReadStream(path, { highWaterMark: chunkSize })) {
      const data = chunk as Buffer;
      hash.update(data);
      bytes += data.length;
      yield { part: { case: "chunk", value: data } };
      options.onProgress?.({ bytes, total });
    }
    yield { part: { case: "finish", value: { sha256: hash.digest("hex") } } };
  }
  try {
    return await clients.artifacts.uploadArtifact(requests(), callOptions(options));
  } catch (error) {
    throw ConclaveError.from(error);
  }
}

export interface DownloadFileOptions {
  /** Continue a partial file left by an earlier, broken download of the same content (default true). */
  resume?: boolean;
  /** Reconnections after a disconnect mid-download, each resuming from the bytes written. */
  retry?: RetryOptions;
  signal?: AbortSignal;
  headers?: HeadersInit;
  onProgress?: (progress: Progress) => void;
  /** Called before each reconnection, with the offset the download resumes from. */
  onResume?: (info: { offset: number; attempt: number; error: ConclaveError }) => void;
}

/**
 * Downloads an artifact version into the file at `path`: its content streams into
 * `<path>.<sha256 prefix>.part`, a disconnect resumes from the bytes already written (as does a
 * later call after a crash, with `resume`), and the file is renamed to `path` only once its
 * SHA-256 matches the artifact's. Returns the artifact. Throws ConclaveError (DATA_LOSS with
 * reason CHECKSUM_MISMATCH if the content does not match).
 */
export async function downloadFile(
  clients: Pick<ConclaveClients, "artifacts">,
  artifact: string | ArtifactRefInit,
  path: string,
  options: DownloadFileOptions = {},
): Promise<Artifact> {
  const ref: ArtifactRefInit = typeof artifact === "string" ? { id: artifact } : artifact;
  let info: Artifact;
  try {
    info = await clients.artifacts.getArtifact({ artifact: ref }, callOptions(options));
  } catch (error) {
    throw ConclaveError.from(error);
  }
  const total = Number(info.size);
  const part = `${path}.${info.sha256.slice(0, 16)}.part`;
  const resume = options.resume ?? true;

  // A partial file that was resumed may hold bad bytes: then the download starts over, once.
  for (let pass = 1; ; pass++) {
    const existing = resume && pass === 1 ? await fileSize(part).catch(() => -1) : -1;
    const start = existing >= 0 && existing <= total ? existing : 0;
    const hash = createHash("sha256");
    if (start > 0) {
      await hashFile(part, hash);
    }
    await transfer(clients, info, part, start, total, hash, options);
    const digest = hash.digest("hex");
    if (digest === info.sha256) {
      await rename(part, path);
      return info;
    }
    await rm(part, { force: true });
    if (start === 0 || pass > 1) {
      throw new ConclaveError({
        code: Code.DataLoss,
        message: `the downloaded content of artifact ${info.id} hashes to ${digest}, not ${info.sha256}`,
        reason: "CHECKSUM_MISMATCH",
        domain: CLIENT_ERROR_DOMAIN,
        metadata: { artifact_id: info.id, expected: info.sha256, actual: digest },
      });
    }
  }
}

/** Streams bytes `start..total` of the artifact into `part`, reconnecting after disconnects. */
async function transfer(
  clients: Pick<ConclaveClients, "artifacts">,
  info: Artifact,
  part: string,
  start: number,
  total: number,
  hash: Hash,
  options: DownloadFileOptions,
): Promise<void> {
  const maxAttempts = options.retry?.maxAttempts ?? 8;
  const initialDelayMs = options.retry?.initialDelayMs ?? 100;
  const maxDelayMs = options.retry?.maxDelayMs ?? 5000;
  const file = await open(part, start > 0 ? "a" : "w");
  let offset = start;
  let failures = 0;
  try {
    options.onProgress?.({ bytes: offset, total });
    while (offset < total) {
      try {
        const stream = clients.artifacts.downloadArtifact({ artifact: { id: info.id }, offset: BigInt(offset) }, callOptions(options));
        for await (const message of stream) {
          if (message.part.case === "artifact") {
            if (message.part.value.sha256 !== info.sha256) {
              throw new ConclaveError({
                code: Code.Aborted,
                message: `artifact ${info.id} changed during the download`,
                reason: "ARTIFACT_CHANGED",
                domain: CLIENT_ERROR_DOMAIN,
              });
            }
          } else if (message.part.case === "chunk") {
            const chunk = message.part.value;
            await file.write(chunk);
            hash.update(chunk);
            offset += chunk.length;
            failures = 0;
            options.onProgress?.({ bytes: offset, total });
          }
        }
        if (offset < total) {
          throw new ConclaveError({ code: Code.Unavailable, message: `the download stream ended at byte ${offset} of ${total}` });
        }
      } catch (thrown) {
        const error = ConclaveError.from(thrown);
        failures += 1;
        if (!isDisconnect(error, options.signal) || failures >= maxAttempts) {
          throw error;
        }
        options.onResume?.({ offset, attempt: failures, error });
        await sleep(Math.min(maxDelayMs, initialDelayMs * 2 ** (failures - 1)), options.signal);
      }
    }
    await file.sync();
  } finally {
    await file.close();
  }
}

function callOptions(options: { signal?: AbortSignal; headers?: HeadersInit }): CallOptions {
  const call: CallOptions = {};
  if (options.signal) call.signal = options.signal;
  if (options.headers) call.headers = options.headers;
  return call;
}

async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
  }
}

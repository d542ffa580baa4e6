// Following a run's events or logs to the end, resuming after a disconnect from the last
// sequence received: no item is lost or repeated (README "How streams work").

import type { CallOptions } from "@connectrpc/connect";
import type { ConclaveClients } from "./clients.js";
import { ConclaveError, isDisconnect } from "./errors.js";
import type { LogLine, RunEvent } from "./gen/conclave/v1/runs_pb.js";

/** How a helper retries after a disconnect. */
export interface RetryOptions {
  /** Attempts in a row that may fail without receiving anything before the error is thrown (default 8). */
  maxAttempts?: number;
  /** The first wait before reconnecting, doubled after each failure in a row (default 100 ms). */
  initialDelayMs?: number;
  /** The longest wait between attempts (default 5000 ms). */
  maxDelayMs?: number;
}

/** What a helper reports when it reconnects after a disconnect. */
export interface ReconnectInfo {
  /** The failures in a row so far, from 1. */
  attempt: number;
  /** The sequence the stream resumes after. */
  afterSequence: bigint;
  /** Why the previous stream ended. */
  error: ConclaveError;
  /** How long the helper waits before reconnecting. */
  delayMs: number;
}

export interface FollowOptions {
  /** Start after this sequence (0, the default, starts from the first item). */
  afterSequence?: bigint | number;
  /** Stops following when aborted (the iterator then ends by throwing CANCELLED). */
  signal?: AbortSignal;
  /** Headers sent on every (re)connection, besides those of the client's interceptors. */
  headers?: HeadersInit;
  retry?: RetryOptions;
  /** Called before each reconnection. */
  onReconnect?: (info: ReconnectInfo) => void;
}

export interface FollowLogsOptions extends FollowOptions {
  /** Keep streaming new lines until the run finishes (default true); false ends after the lines stored so far. */
  follow?: boolean;
}

/** A `WatchRun` / `TailLogs` message: items, or a heartbeat, or a lagged notice. */
interface Batch<Item> {
  items: readonly Item[];
}

/**
 * Re-opens `open(after)` after each disconnect, from the last sequence yielded, until a stream
 * ends with OK. Heartbeats and lagged notices carry no items and are passed over; an item at or
 * before the last sequence (never sent by the server) is dropped.
 */
async function* resuming<Item extends { sequence: bigint }>(
  open: (afterSequence: bigint, options: CallOptions) => AsyncIterable<Batch<Item>>,
  options: FollowOptions,
): AsyncGenerator<Item, void, undefined> {
  const maxAttempts = options.retry?.maxAttempts ?? 8;
  const initialDelayMs = options.retry?.initialDelayMs ?? 100;
  const maxDelayMs = options.retry?.maxDelayMs ?? 5000;
  let last = BigInt(options.afterSequence ?? 0);
  let failures = 0;
  for (;;) {
    const callOptions: CallOptions = {};
    if (options.signal) callOptions.signal = options.signal;
    if (options.headers) callOptions.headers = options.headers;
    try {
      for await (const batch of open(last, callOptions)) {
        for (const item of batch.items) {
          if (item.sequence <= last) {
            continue;
          }
          last = item.sequence;
          failures = 0;
          yield item;
        }
      }
      return;
    } catch (thrown) {
      const error = ConclaveError.from(thrown);
      failures += 1;
      if (!isDisconnect(error, options.signal) || failures >= maxAttempts) {
        throw error;
      }
      const delayMs = Math.min(maxDelayMs, initialDelayMs * 2 ** (failures - 1));
      options.onReconnect?.({ attempt: failures, afterSequence: last, error, delayMs });
      await sleep(delayMs, options.signal);
    }
  }
}

/**
 * Yields a run's events in order (from `afterSequence`), live until the run is finished and its
 * last event is sent; reconnects after a disconnect and resumes from the last event yielded, so
 * no event is lost or repeated. Heartbeats are dropped. Throws ConclaveError.
 */
export function followEvents(clients: Pick<ConclaveClients, "runs">, runId: string, options: FollowOptions = {}): AsyncGenerator<RunEvent, void, undefined> {
  return resuming<RunEvent>(
    (afterSequence, callOptions) => mapStream(clients.runs.watchRun({ id: runId, afterSequence }, callOptions), (message) => message.events),
    options,
  );
}

/**
 * Yields a run's log lines in order (from `afterSequence`); with `follow` (the default) live
 * until the run finishes. Reconnects after a disconnect and resumes from the last line yielded.
 * Heartbeats are dropped. Throws ConclaveError.
 */
export function followLogs(clients: Pick<ConclaveClients, "runs">, runId: string, options: FollowLogsOptions = {}): AsyncGenerator<LogLine, void, undefined> {
  const follow = options.follow ?? true;
  return resuming<LogLine>(
    (afterSequence, callOptions) => mapStream(clients.runs.tailLogs({ id: runId, afterSequence, follow }, callOptions), (message) => message.lines),
    options,
  );
}

async function* mapStream<Message, Item>(stream: AsyncIterable<Message>, items: (message: Message) => readonly Item[]): AsyncGenerator<Batch<Item>, void, undefined> {
  for await (const message of stream) {
    yield { items: items(message) };
  }
}

/** Waits `ms`, or throws CANCELLED as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(ConclaveError.from(signal.reason));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(ConclaveError.from(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

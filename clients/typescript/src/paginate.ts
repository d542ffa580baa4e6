// Iterating a paginated list: every item across pages, following `next_page_token`.

import type { CallOptions } from "@connectrpc/connect";
import { ConclaveError } from "./errors.js";

/** The items of a response's list field. */
type Items<Res, Field extends keyof Res> = Res[Field] extends ReadonlyArray<infer Item> ? Item : never;

/** The names of a response's list fields. */
type ListFields<Res> = { [K in keyof Res]: Res[K] extends ReadonlyArray<unknown> ? K : never }[keyof Res];

/**
 * Yields every item of a paginated list, page after page, until `next_page_token` is empty:
 *
 * ```ts
 * for await (const run of paginate(client.runs.listRuns, { state: RunState.SUCCEEDED, pageSize: 100 }, "runs")) { ... }
 * ```
 *
 * `request` holds the filters (and `pageSize`); a `pageToken` in it starts from that page.
 * Throws ConclaveError.
 */
export async function* paginate<Req extends object, Res extends { nextPageToken: string }, Field extends ListFields<Res>>(
  method: (request: Req, options?: CallOptions) => Promise<Res>,
  request: Req,
  field: Field,
  options?: CallOptions,
): AsyncGenerator<Items<Res, Field>, void, undefined> {
  let pageToken = (request as { pageToken?: string }).pageToken ?? "";
  for (;;) {
    let page: Res;
    try {
      page = await method({ ...request, pageToken } as Req, options);
    } catch (error) {
      throw ConclaveError.from(error);
    }
    const items = page[field] as unknown as ReadonlyArray<Items<Res, Field>>;
    yield* items;
    if (!page.nextPageToken) {
      return;
    }
    pageToken = page.nextPageToken;
  }
}

/** Collects every item of a paginated list into an array (see `paginate`). */
export async function listAll<Req extends object, Res extends { nextPageToken: string }, Field extends ListFields<Res>>(
  method: (request: Req, options?: CallOptions) => Promise<Res>,
  request: Req,
  field: Field,
  options?: CallOptions,
): Promise<Items<Res, Field>[]> {
  const items: Items<Res, Field>[] = [];
  for await (const item of paginate(method, request, field, options)) {
    items.push(item);
  }
  return items;
}

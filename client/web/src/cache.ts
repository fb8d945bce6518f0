// How a mutation keeps the cached queries right. The rule: write the change
// where the cache holds it when the response (or the request) says what
// changed; refetch only the open queries the change shows in when it does
// not; mark everything else stale, so a screen opened later reads it again
// instead of showing what it cached a few seconds before. Invalidating
// every query refetched every open one: the feed with all its loaded pages,
// the badge, the profile, at each post, comment or follow.
import { createConnectQueryKey } from "@connectrpc/connect-query";
import type { DescMessage, DescMethodUnary, DescService, MessageInitShape } from "@bufbuild/protobuf";
import type { Group, Post } from "@flock-social/client";
import type { InfiniteData, QueryClient } from "@tanstack/react-query";

/** The open queries of a service, or of a method with part of its input. */
export function refetch<I extends DescMessage, O extends DescMessage>(
  qc: QueryClient,
  schema: DescService | DescMethodUnary<I, O>,
  input?: MessageInitShape<I>,
): Promise<void> {
  const queryKey =
    schema.kind === "service"
      ? createConnectQueryKey({ schema, cardinality: undefined })
      : createConnectQueryKey({ schema, input, cardinality: undefined });
  return qc.invalidateQueries({ queryKey });
}

/** Marks every query stale without refetching any: each is read again when next shown. */
export function staleAll(qc: QueryClient): Promise<void> {
  return qc.invalidateQueries({ refetchType: "none" });
}

/**
 * withMessage returns cached query data with the message of type typeName
 * and id `id` replaced by change(message) wherever it appears (feed pages,
 * a post, search results, a profile's posts; a group in any list), and the
 * same object where nothing changed.
 */
function withMessage<T>(data: unknown, typeName: string, id: string, change: (m: T) => T): unknown {
  if (data === null || typeof data !== "object" || ArrayBuffer.isView(data)) return data;
  if (Array.isArray(data)) {
    const out = data.map((x) => withMessage(x, typeName, id, change));
    return out.some((x, i) => x !== data[i]) ? out : data;
  }
  const o = data as Record<string, unknown>;
  if (o.$typeName === typeName && o.id === id) return change(o as unknown as T);
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    out[k] = withMessage(v, typeName, id, change);
    changed ||= out[k] !== v;
  }
  return changed ? out : data;
}

export function withPost(data: unknown, id: string, change: (p: Post) => Post): unknown {
  return withMessage(data, "flock.v1.Post", id, change);
}

/**
 * Writes change(message) into every cached query that holds the message,
 * and into those only: setting a query's data, even to the same object,
 * would mark it fresh again (and undo a staleAll before it).
 */
function updateMessage<T>(qc: QueryClient, typeName: string, id: string, change: (m: T) => T): void {
  qc.setQueriesData({ queryKey: ["connect-query"] }, (data: unknown) => {
    const out = withMessage(data, typeName, id, change);
    return out === data ? undefined : out;
  });
}

/** Writes change(post) into every cached query that holds the post. */
export function updatePost(qc: QueryClient, id: string, change: (p: Post) => Post): void {
  updateMessage(qc, "flock.v1.Post", id, change);
}

/** Writes change(group) into every cached query that holds the group (searches, lists, its page). */
export function updateGroup(qc: QueryClient, id: string, change: (g: Group) => Group): void {
  updateMessage(qc, "flock.v1.Group", id, change);
}

/** Takes a deleted post out of every cached list that holds it. */
export function removePost(qc: QueryClient, id: string): void {
  qc.setQueriesData({ queryKey: ["connect-query"] }, (data: unknown) => withoutPost(data, id));
  // The post's own page (GetPost) is dropped, not kept without its post:
  // going Back to it then reads it again and shows that it is gone,
  // instead of the deleted post with live buttons.
  qc.removeQueries({
    queryKey: ["connect-query"],
    predicate: (q) => {
      const post = (q.state.data as { post?: { $typeName?: string; id?: string } } | undefined)?.post;
      return post?.$typeName === "flock.v1.Post" && post.id === id;
    },
  });
}

function withoutPost(data: unknown, id: string): unknown {
  if (data === null || typeof data !== "object" || ArrayBuffer.isView(data)) return data;
  if (Array.isArray(data)) {
    const kept = data.filter((x) => !(x?.$typeName === "flock.v1.Post" && x.id === id));
    const out = kept.map((x) => withoutPost(x, id));
    return out.length !== data.length || out.some((x, i) => x !== data[i]) ? out : data;
  }
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    out[k] = withoutPost(v, id);
    changed ||= out[k] !== v;
  }
  return changed ? out : data;
}

/**
 * Puts post first in the first page of a paged list of posts (the feed, a
 * group's posts) whose cached input matches input, unless it is there.
 */
export function prependPost<I extends DescMessage, O extends DescMessage>(
  qc: QueryClient,
  schema: DescMethodUnary<I, O>,
  input: MessageInitShape<I>,
  post: Post,
): void {
  const queryKey = createConnectQueryKey({ schema, input, cardinality: "infinite" });
  qc.setQueriesData({ queryKey }, (data: unknown) => {
    const d = data as InfiniteData<{ posts: Post[] }> | undefined;
    const first = d?.pages[0];
    if (!d || !first || first.posts.some((p) => p.id === post.id)) return data;
    return { ...d, pages: [{ ...first, posts: [post, ...first.posts] }, ...d.pages.slice(1)] };
  });
}

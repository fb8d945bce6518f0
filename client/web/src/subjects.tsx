// Names of the things an id refers to (a user, a group), read with the
// Get RPC of each: TanStack Query keeps one query per id, so a list that
// names the same group or user many times sends one request for it, and
// the name stays cached for a few minutes (names rarely change).
import { useQuery } from "@connectrpc/connect-query";
import { getGroup } from "@gen/flock/v1/group-GroupService_connectquery.js";
import { getUser } from "@gen/flock/v1/user-UserService_connectquery.js";

import { Link } from "./router.js";

const named = { staleTime: 5 * 60_000 };

/** @username of a user id, linked to the profile ("someone" while unknown). */
export function UserName({ id }: { id: string }) {
  const q = useQuery(getUser, { userId: id }, named);
  const u = q.data?.user;
  return <Link href={`/u/${id}`}>{u ? `@${u.username}` : q.isError ? "an account no longer here" : "someone"}</Link>;
}

/**
 * The name of a group id, linked to the group. One GetGroup per group
 * (with one member: only the group is wanted), whatever the number of
 * posts or entries that name it.
 */
export function GroupName({ id }: { id: string }) {
  const q = useQuery(getGroup, { groupId: id, pageSize: 1 }, named);
  const g = q.data?.group;
  return <Link href={`/g/${id}`}>{g ? g.name : q.isError ? "a group no longer here" : "a group"}</Link>;
}

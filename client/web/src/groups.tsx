// Groups: mine, create, a group's page (join, leave, invite, requests, members, posts).
import { useInfiniteQuery, useMutation, useQuery } from "@connectrpc/connect-query";
import {
  addGroupMember,
  createGroup,
  getGroup,
  joinGroup,
  leaveGroup,
  listGroupMembers,
  listGroupPosts,
  listGroups,
  removeGroupMember,
} from "@gen/flock/v1/group-GroupService_connectquery.js";
import { searchUsers } from "@gen/flock/v1/user-UserService_connectquery.js";
import { GroupMembershipState, GroupPrivacy, GroupRole } from "@flock-social/client";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import { refetch, staleAll } from "./cache.js";
import { Compose, More, PostCard } from "./feed.js";
import { Link, navigate } from "./router.js";
import { Empty, ErrorText, Loading, UserLink, counted, enumName, useFormErrors } from "./ui.js";

export function Groups() {
  const qc = useQueryClient();
  const q = useQuery(listGroups, { pageSize: 50 });
  // A new group: the lists of groups are read again when next shown.
  const create = useMutation(createGroup, {
    onSuccess: (r) => {
      void staleAll(qc);
      if (r.group) navigate(`/g/${r.group.id}`);
    },
  });
  const [privacy, setPrivacy] = useState(GroupPrivacy.PUBLIC);
  const fe = useFormErrors(create.error, ["name", "description", "privacy"]);
  return (
    <section aria-labelledby="groups-h">
      <h1 id="groups-h">Groups</h1>
      <ErrorText error={q.error} />
      {q.data?.groups.length === 0 && <Empty>You are in no group yet. Create one below.</Empty>}
      <ul className="plain">
        {q.data?.groups.map((g) => (
          <li key={g.id}>
            <Link href={`/g/${g.id}`}>{g.name}</Link>{" "}
            <span className="muted small">
              {enumName(GroupPrivacy, g.privacy)} · {counted(g.membersCount, "member")} · you: {enumName(GroupRole, g.myRole)}
            </span>
          </li>
        ))}
      </ul>
      <form
        className="card"
        aria-label="Create a group"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          create.mutate({ name: String(f.get("name")), description: String(f.get("description")), privacy });
        }}
      >
        <h2>Create a group</h2>
        <label>
          Name <input name="name" required maxLength={100} {...fe.input("name")} />
        </label>
        {fe.message("name")}
        <label>
          Description <input name="description" maxLength={1000} {...fe.input("description")} />
        </label>
        {fe.message("description")}
        <label>
          Privacy{" "}
          <select value={privacy} onChange={(e) => setPrivacy(Number(e.target.value))} {...fe.input("privacy")}>
            {[GroupPrivacy.PUBLIC, GroupPrivacy.PRIVATE].map((p) => (
              <option key={p} value={p}>
                {enumName(GroupPrivacy, p)}
              </option>
            ))}
          </select>
        </label>
        {fe.message("privacy")}
        <ErrorText error={fe.rest} />
        <button disabled={create.isPending}>Create group</button>
      </form>
    </section>
  );
}

export function GroupPage({ id }: { id: string }) {
  const qc = useQueryClient();
  // Joining or leaving changes this group (membership, count, its posts);
  // the feed and the lists of groups are read again when next shown.
  const done = {
    onSuccess: () => {
      void staleAll(qc);
      void refetch(qc, getGroup, { groupId: id });
      void refetch(qc, listGroupPosts, { groupId: id });
    },
  };
  const g = useQuery(getGroup, { groupId: id, pageSize: 50 });
  const join = useMutation(joinGroup, done);
  const leave = useMutation(leaveGroup, done);
  const group = g.data?.group;
  const active = group?.myMembershipState === GroupMembershipState.ACTIVE;
  const admin = active && (group?.myRole === GroupRole.OWNER || group?.myRole === GroupRole.ADMIN);
  const posts = useInfiniteQuery(
    listGroupPosts,
    { groupId: id, pageSize: 20, pageToken: "" },
    // Only members read a group's posts: others are told so, not shown
    // the server's refusal as an error.
    { pageParamKey: "pageToken", getNextPageParam: (l) => l.nextPageToken || undefined, enabled: Boolean(group) && active },
  );
  if (g.error) return <ErrorText error={g.error} />;
  if (!group) return <Loading />;
  const list = posts.data?.pages.flatMap((p) => p.posts) ?? [];
  return (
    <section aria-labelledby="group-h">
      <div className="card">
        <h1 id="group-h">{group.name}</h1>
        <p className="muted">
          {enumName(GroupPrivacy, group.privacy)} group · {counted(group.membersCount, "member")}
          {group.myMembershipState !== GroupMembershipState.UNSPECIFIED && ` · you: ${enumName(GroupMembershipState, group.myMembershipState)}`}
        </p>
        {group.description && <p>{group.description}</p>}
        {!active && group.myMembershipState !== GroupMembershipState.REQUESTED && (
          <button onClick={() => join.mutate({ groupId: id })}>{group.privacy === GroupPrivacy.PRIVATE && group.myMembershipState !== GroupMembershipState.INVITED ? "Ask to join" : "Join"}</button>
        )}
        {active && group.myRole !== GroupRole.OWNER && <button onClick={() => leave.mutate({ groupId: id })}>Leave</button>}
        <ErrorText error={join.error ?? leave.error} />
      </div>
      {admin && <Admin id={id} />}
      {active && <Compose groupId={id} />}
      <h2>Posts</h2>
      {!active && <Empty>Only members see this group's posts; join the group to read them.</Empty>}
      <ErrorText error={posts.error} />
      {posts.isSuccess && list.length === 0 && <Empty>No posts in this group yet.</Empty>}
      {list.map((p) => (
        <PostCard key={p.id} post={p} inGroup={id} />
      ))}
      {posts.hasNextPage && <More onVisible={() => void posts.fetchNextPage()} busy={posts.isFetchingNextPage} />}
      <h2>Members</h2>
      {g.data?.members.length === 0 && <Empty>Members are listed to members only.</Empty>}
      <ul className="plain">
        {g.data?.members.map((m) => (
          <li key={m.user?.id}>
            {m.user && <UserLink id={m.user.id} username={m.user.username} />} <span className="muted small">{enumName(GroupRole, m.role)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

/**
 * For owners and admins: the requests to join (approve, decline), the
 * pending invitations (cancel) and inviting someone. Both lists are
 * ListGroupMembers with a state, which the server answers to them only.
 */
function Admin({ id }: { id: string }) {
  const qc = useQueryClient();
  // An added or removed membership changes the group's requests,
  // invitations and members.
  const done = {
    onSuccess: () => {
      void refetch(qc, listGroupMembers, { groupId: id });
      void refetch(qc, getGroup, { groupId: id });
    },
  };
  const requests = useQuery(listGroupMembers, { groupId: id, state: GroupMembershipState.REQUESTED, pageSize: 50 });
  const invited = useQuery(listGroupMembers, { groupId: id, state: GroupMembershipState.INVITED, pageSize: 50 });
  const add = useMutation(addGroupMember, done);
  const remove = useMutation(removeGroupMember, done);
  const [who, setWho] = useState("");
  const found = useQuery(searchUsers, { query: who, pageSize: 5 }, { enabled: who.length >= 2 });
  return (
    <div className="card">
      <h2 id="requests-h">Requests to join</h2>
      {requests.data?.members.length === 0 && <Empty>No pending requests.</Empty>}
      <ul className="plain" aria-labelledby="requests-h">
        {requests.data?.members.map((m) => (
          <li key={m.user?.id}>
            {m.user && <UserLink id={m.user.id} username={m.user.username} />}{" "}
            <button onClick={() => m.user && add.mutate({ groupId: id, userId: m.user.id, role: GroupRole.MEMBER })}>Approve</button>{" "}
            <button className="link" onClick={() => m.user && remove.mutate({ groupId: id, userId: m.user.id })}>
              Decline
            </button>
          </li>
        ))}
      </ul>
      <h2 id="invitations-h">Invitations</h2>
      {invited.data?.members.length === 0 && <Empty>No pending invitations.</Empty>}
      <ul className="plain" aria-labelledby="invitations-h">
        {invited.data?.members.map((m) => (
          <li key={m.user?.id}>
            {m.user && <UserLink id={m.user.id} username={m.user.username} />} <span className="muted small">invited, not joined yet</span>{" "}
            <button className="link" onClick={() => m.user && remove.mutate({ groupId: id, userId: m.user.id })}>
              Cancel invitation
            </button>
          </li>
        ))}
      </ul>
      <ErrorText error={requests.error ?? invited.error ?? remove.error} />
      <h2>Invite</h2>
      <label>
        Find a user <input value={who} onChange={(e) => setWho(e.target.value)} />
      </label>
      <ul className="plain">
        {found.data?.users.map((u) => (
          <li key={u.id}>
            @{u.username} <button onClick={() => add.mutate({ groupId: id, userId: u.id, role: GroupRole.MEMBER })}>Invite</button>
          </li>
        ))}
      </ul>
      {add.isSuccess && <p role="status">Done.</p>}
      <ErrorText error={add.error} />
    </div>
  );
}

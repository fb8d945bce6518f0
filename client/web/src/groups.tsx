// Groups: mine, find (search, popular, join), create, a group's page (join, leave, invite, requests, members, posts).
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
  searchGroups,
} from "@gen/flock/v1/group-GroupService_connectquery.js";
import { searchUsers } from "@gen/flock/v1/user-UserService_connectquery.js";
import { GroupMembershipState, GroupPrivacy, GroupRole, type Group } from "@flock-social/client";
import { useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";

import { refetch, staleAll, updateGroup } from "./cache.js";
import { Compose, More, PostCard } from "./feed.js";
import { Link, navigate, useLocation } from "./router.js";
import { Empty, ErrorText, Loading, UserLink, aria, counted, enumName, useFormErrors, useLimit } from "./ui.js";

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
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const fe = useFormErrors(create.error, ["name", "description", "privacy"]);
  // CreateGroupRequest: name 1-100, description at most 2000 characters
  // (proto/flock/v1/group.proto; internal/group), counted and refused past
  // them, not cut.
  const nameLimit = useLimit(name, 100, "a group's name");
  const descriptionLimit = useLimit(description, 2000, "a description");
  const nameRef = useRef<HTMLInputElement>(null);
  const descriptionRef = useRef<HTMLTextAreaElement>(null);
  return (
    <section aria-labelledby="groups-h">
      <h1 id="groups-h">Groups</h1>
      <h2 id="mine-h">Your groups</h2>
      <ErrorText error={q.error} />
      {q.data?.groups.length === 0 && <Empty>You are in no group yet. Find one or create one below.</Empty>}
      <ul className="plain" aria-labelledby="mine-h">
        {q.data?.groups.map((g) => (
          <li key={g.id}>
            <Link href={`/g/${g.id}`}>{g.name}</Link>{" "}
            <span className="muted small">
              {enumName(GroupPrivacy, g.privacy)} · {counted(g.membersCount, "member")} · you: {enumName(GroupRole, g.myRole)}
            </span>
          </li>
        ))}
      </ul>
      <FindGroups />
      <form
        className="card"
        aria-label="Create a group"
        onSubmit={(e) => {
          e.preventDefault();
          if (nameLimit.over) return nameRef.current?.focus();
          if (descriptionLimit.over) return descriptionRef.current?.focus();
          create.mutate({ name, description, privacy });
        }}
      >
        <h2>Create a group</h2>
        <label>
          Name <input ref={nameRef} name="name" value={name} onChange={(e) => setName(e.target.value)} required {...aria(fe.input("name"), nameLimit.input)} />
        </label>
        {nameLimit.counter}
        {fe.message("name")}
        <label>
          Description{" "}
          <textarea
            ref={descriptionRef}
            name="description"
            value={description}
            onChange={(e) => setDescription(e.target.value)}
            rows={3}
            {...aria(fe.input("description"), descriptionLimit.input)}
          />
        </label>
        {descriptionLimit.counter}
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

/**
 * Finding a group: SearchGroups by name (?q= in the URL, so that Back and
 * Forward return to a search), or without a query every group, largest
 * first ("Popular groups"). Each result says where the reader stands with
 * it and offers to join it.
 */
function FindGroups() {
  const q = useLocation().searchParams.get("q") ?? "";
  const found = useInfiniteQuery(
    searchGroups,
    { query: q, pageSize: 20, pageToken: "" },
    { pageParamKey: "pageToken", getNextPageParam: (l) => l.nextPageToken || undefined },
  );
  const list = found.data?.pages.flatMap((p) => p.groups) ?? [];
  return (
    <section className="card" aria-labelledby="find-h">
      <h2 id="find-h">Find groups</h2>
      {/* Keyed by the URL's query: Back and Forward show the search they return to. */}
      <GroupSearch key={q} initial={q} />
      <h3 id="found-h">{q ? `Groups matching “${q}”` : "Popular groups"}</h3>
      <ErrorText error={found.error} />
      {found.isPending && <Loading />}
      {found.isSuccess && list.length === 0 && <Empty>{q ? `No group matches “${q}”.` : "There are no groups yet: create the first one below."}</Empty>}
      <ul className="plain" aria-labelledby="found-h">
        {list.map((g) => (
          <FoundGroup key={g.id} group={g} />
        ))}
      </ul>
      {found.hasNextPage && <More onVisible={() => !found.isFetchingNextPage && void found.fetchNextPage()} busy={found.isFetchingNextPage} />}
    </section>
  );
}

function GroupSearch({ initial }: { initial: string }) {
  const [text, setText] = useState(initial);
  // SearchGroupsRequest.query: max_len 100 (proto/flock/v1/group.proto).
  const limit = useLimit(text, 100, "a search");
  const ref = useRef<HTMLInputElement>(null);
  return (
    <form
      className="row"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        if (limit.over) {
          ref.current?.focus();
          return;
        }
        const v = text.trim();
        navigate(v ? `/groups?q=${encodeURIComponent(v)}` : "/groups");
      }}
    >
      <label className="grow">
        Search groups
        <input ref={ref} type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="Part of a group's name" {...limit.input} />
      </label>
      <button>Search</button>
      {limit.counter}
    </form>
  );
}

/**
 * Where the reader stands with a group, in words: their role once a member
 * ("member", "admin", "owner"), else "invited", "requested to join", or ""
 * for none.
 */
function standing(g: Group): string {
  switch (g.myMembershipState) {
    case GroupMembershipState.ACTIVE:
      return enumName(GroupRole, g.myRole === GroupRole.UNSPECIFIED ? GroupRole.MEMBER : g.myRole);
    case GroupMembershipState.INVITED:
      return "invited";
    case GroupMembershipState.REQUESTED:
      return "requested to join";
    default:
      return "";
  }
}

/** The first words of a description, cut at a code point (not inside an emoji). */
function excerpt(text: string, max = 160): string {
  const chars = Array.from(text.trim());
  return chars.length <= max ? chars.join("") : `${chars.slice(0, max).join("").trimEnd()}…`;
}

/**
 * A group found: its name (linked), privacy, size, where the reader stands,
 * and Join ("Ask to join" for a private group without an invitation). The
 * answer of JoinGroup (the membership) is written into the group wherever
 * the cache holds it, so the item changes without a read; the reader's
 * groups are read again now when the reader joined (they are on the same
 * page), the rest (the group's page, the feed) when next shown.
 */
function FoundGroup({ group: g }: { group: Group }) {
  const qc = useQueryClient();
  const join = useMutation(joinGroup, {
    onSuccess: (r) => {
      const m = r.membership;
      if (m)
        updateGroup(qc, g.id, (x) => ({
          ...x,
          myMembershipState: m.state,
          myRole: m.role,
          membersCount: x.membersCount + (m.state === GroupMembershipState.ACTIVE && x.myMembershipState !== GroupMembershipState.ACTIVE ? 1 : 0),
        }));
      void staleAll(qc);
      // "Your groups", open above the results, gains the group.
      if (m?.state === GroupMembershipState.ACTIVE) void refetch(qc, listGroups);
    },
  });
  const state = g.myMembershipState;
  const canJoin = state !== GroupMembershipState.ACTIVE && state !== GroupMembershipState.REQUESTED;
  const ask = g.privacy === GroupPrivacy.PRIVATE && state !== GroupMembershipState.INVITED;
  return (
    <li className="group-found">
      <Link href={`/g/${g.id}`}>{g.name}</Link>{" "}
      <span className="muted small">
        {enumName(GroupPrivacy, g.privacy)} · {counted(g.membersCount, "member")}
        {standing(g) && ` · you: ${standing(g)}`}
      </span>
      {g.description && <p className="small excerpt">{excerpt(g.description)}</p>}
      {canJoin && (
        <button disabled={join.isPending} onClick={() => join.mutate({ groupId: g.id })}>
          {ask ? "Ask to join" : "Join"}
        </button>
      )}
      <ErrorText error={join.error} />
    </li>
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
          {standing(group) && ` · you: ${standing(group)}`}
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
  const found = useQuery(searchUsers, { query: who.trim(), pageSize: 5 }, { enabled: who.trim().length >= 2 });
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
        Find a user <input value={who} maxLength={100} onChange={(e) => setWho(e.target.value)} />
      </label>
      <ErrorText error={found.error} />
      {found.data?.users.length === 0 && <Empty>Nobody matches “{who.trim()}”.</Empty>}
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

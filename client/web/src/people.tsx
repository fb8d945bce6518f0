// Profiles, follow lists, search, notifications, activity log, moderation.
import { useInfiniteQuery, useMutation, useQuery } from "@connectrpc/connect-query";
import {
  block,
  follow,
  getMe,
  getUser,
  listFollowers,
  listFollowing,
  listUserPosts,
  searchUsers,
  unblock,
  unfollow,
} from "@gen/flock/v1/user-UserService_connectquery.js";
import { searchPosts } from "@gen/flock/v1/post-PostService_connectquery.js";
import { listNotifications, markNotificationsRead } from "@gen/flock/v1/notification-NotificationService_connectquery.js";
import { NotificationService } from "@gen/flock/v1/notification_pb.js";
import { ModerationService } from "@gen/flock/v1/moderation_pb.js";
import { listActivity } from "@gen/flock/v1/activity-ActivityService_connectquery.js";
import { listReports, resolveReport } from "@gen/flock/v1/moderation-ModerationService_connectquery.js";
import { ActivityType, NotificationType, ReportAction, ReportReason, ReportStatus, UserRole, type Notification } from "@flock-social/client";
import type { Activity as ActivityEntry } from "@gen/flock/v1/activity_pb.js";
import { useQueryClient } from "@tanstack/react-query";
import { type ReactNode, useState } from "react";

import { refetch, staleAll } from "./cache.js";
import { More, PostCard } from "./feed.js";
import { Link, navigate, useLocation } from "./router.js";
import { GroupName, UserName } from "./subjects.js";
import { Avatar, Empty, ErrorText, Loading, UserLink, counted, enumName, unreadLabel, when } from "./ui.js";

export function Profile({ id }: { id: string }) {
  const qc = useQueryClient();
  const u = useQuery(getUser, { userId: id });
  const me = useQuery(getMe, {});
  const posts = useInfiniteQuery(
    listUserPosts,
    { userId: id, pageSize: 20, pageToken: "" },
    { pageParamKey: "pageToken", getNextPageParam: (l) => l.nextPageToken || undefined },
  );
  // A follow or a block changes this profile (relationship, counts) and
  // which of its posts the reader sees; the feed and the rest are read
  // again when next shown.
  const done = {
    onSuccess: () => {
      void staleAll(qc);
      void refetch(qc, getUser, { userId: id });
      void refetch(qc, listUserPosts, { userId: id });
    },
  };
  const fo = useMutation(follow, done);
  const unfo = useMutation(unfollow, done);
  const bl = useMutation(block, done);
  const unbl = useMutation(unblock, done);
  const [tab, setTab] = useState<"posts" | "followers" | "following">("posts");
  if (u.error) return <ErrorText error={u.error} />;
  const user = u.data?.user;
  if (!user) return <Loading />;
  const self = me.data?.user?.id === user.id;
  const list = posts.data?.pages.flatMap((p) => p.posts) ?? [];
  return (
    <section aria-labelledby="profile-h">
      <div className="card profile">
        <Avatar url={user.avatarUrl} name={user.username} size={80} />
        <div>
          <h1 id="profile-h">{user.fullName || user.username}</h1>
          <p className="muted">
            @{user.username}
            {user.followsMe && " · follows you"}
            {user.role !== undefined && user.role !== UserRole.MEMBER && ` · ${enumName(UserRole, user.role)}`}
          </p>
          {user.bio && <p>{user.bio}</p>}
          <p className="muted small">
            {counted(user.postsCount, "post")} · {counted(user.followersCount, "follower")} · {user.followingCount} following
          </p>
          {self ? (
            <Link href="/settings">Edit profile</Link>
          ) : (
            <div className="row">
              {user.followedByMe ? (
                <button onClick={() => unfo.mutate({ userId: user.id })}>Unfollow</button>
              ) : (
                <button onClick={() => fo.mutate({ userId: user.id })} disabled={user.blockedByMe}>
                  Follow
                </button>
              )}
              {user.blockedByMe ? (
                <button className="link" onClick={() => unbl.mutate({ userId: user.id })}>Unblock</button>
              ) : (
                <button className="link danger" onClick={() => confirm(`Block @${user.username}?`) && bl.mutate({ userId: user.id })}>
                  Block
                </button>
              )}
            </div>
          )}
          <ErrorText error={fo.error ?? unfo.error ?? bl.error ?? unbl.error} />
        </div>
      </div>
      <div role="tablist" className="row tabs">
        {(["posts", "followers", "following"] as const).map((t) => (
          <button key={t} role="tab" aria-selected={tab === t} onClick={() => setTab(t)}>
            {t}
          </button>
        ))}
      </div>
      {tab === "posts" && (
        <>
          <ErrorText error={posts.error} />
          {posts.isSuccess && list.length === 0 && <Empty>No posts yet.</Empty>}
          {list.map((p) => (
            <PostCard key={p.id} post={p} />
          ))}
          {posts.hasNextPage && <More onVisible={() => void posts.fetchNextPage()} busy={posts.isFetchingNextPage} />}
        </>
      )}
      {tab !== "posts" && <FollowList id={id} which={tab} />}
    </section>
  );
}

function FollowList({ id, which }: { id: string; which: "followers" | "following" }) {
  const followers = useQuery(listFollowers, { userId: id, pageSize: 50 }, { enabled: which === "followers" });
  const following = useQuery(listFollowing, { userId: id, pageSize: 50 }, { enabled: which === "following" });
  const q = which === "followers" ? followers : following;
  if (q.error) return <ErrorText error={q.error} />;
  if (!q.data) return <Loading />;
  if (q.data.users.length === 0) return <Empty>{which === "followers" ? "No followers yet." : "Not following anyone yet."}</Empty>;
  return (
    <ul className="plain">
      {q.data.users.map((u) => (
        <li key={u.id}>
          <UserLink id={u.id} username={u.username} /> {u.fullName}
        </li>
      ))}
    </ul>
  );
}

export function Search() {
  const url = useLocation();
  const tag = url.searchParams.get("tag") ?? "";
  const q = url.searchParams.get("q") ?? "";
  const users = useQuery(searchUsers, { query: q, pageSize: 20 }, { enabled: q !== "" });
  const posts = useQuery(searchPosts, { hashtag: tag, pageSize: 20 }, { enabled: tag !== "" });
  return (
    <section aria-labelledby="search-h">
      <h1 id="search-h">Search</h1>
      <form
        className="row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          const v = String(new FormData(e.currentTarget).get("q")).trim();
          navigate(v.startsWith("#") ? `/search?tag=${encodeURIComponent(v.slice(1))}` : `/search?q=${encodeURIComponent(v)}`);
        }}
      >
        <label className="grow">
          People or #hashtag
          {/* Keyed by the URL's search: Back and Forward show the search they return to. */}
          <input key={tag ? `#${tag}` : q} name="q" type="search" defaultValue={tag ? `#${tag}` : q} required />
        </label>
        <button>Search</button>
      </form>
      {q && (
        <>
          <h2>People</h2>
          <ErrorText error={users.error} />
          {users.data?.users.length === 0 && <Empty>Nobody matches “{q}”.</Empty>}
          <ul className="plain">
            {users.data?.users.map((u) => (
              <li key={u.id}>
                <UserLink id={u.id} username={u.username} /> {u.fullName}
              </li>
            ))}
          </ul>
        </>
      )}
      {tag && (
        <>
          <h2>#{tag}</h2>
          <ErrorText error={posts.error} />
          {posts.data?.posts.length === 0 && <Empty>No posts with #{tag}.</Empty>}
          {posts.data?.posts.map((p) => (
            <PostCard key={p.id} post={p} />
          ))}
        </>
      )}
      {!q && !tag && <Empty>Search people by name, or posts by #hashtag.</Empty>}
    </section>
  );
}

function describe(n: Notification): string {
  switch (n.type) {
    case NotificationType.FOLLOW:
      return "followed you";
    case NotificationType.LIKE:
      return "liked your post";
    case NotificationType.COMMENT:
      return "commented on your post";
    case NotificationType.GROUP_INVITE:
      return "invited you to a group";
    case NotificationType.GROUP_JOIN_REQUEST:
      return "asked to join your group";
    case NotificationType.GROUP_JOINED:
      return "joined your group";
    default:
      return enumName(NotificationType, n.type);
  }
}

export function Notifications() {
  const qc = useQueryClient();
  const q = useInfiniteQuery(
    listNotifications,
    { pageSize: 30, pageToken: "" },
    { pageParamKey: "pageToken", getNextPageParam: (l) => l.nextPageToken || undefined },
  );
  const mark = useMutation(markNotificationsRead, { onSuccess: () => refetch(qc, NotificationService) });
  const list = q.data?.pages.flatMap((p) => p.notifications) ?? [];
  const unread = q.data?.pages[0]?.unreadCount ?? 0;
  return (
    <section aria-labelledby="notif-h">
      <h1 id="notif-h">Notifications</h1>
      {unread > 0 && <button onClick={() => mark.mutate({ all: true })}>Mark all {unreadLabel(unread)} as read</button>}
      <ErrorText error={q.error ?? mark.error} />
      {q.isPending && <Loading />}
      {q.isSuccess && list.length === 0 && <Empty>No notifications yet.</Empty>}
      <ul className="plain" aria-live="polite">
        {list.map((n) => (
          <li key={n.id} className={n.read ? "notification" : "notification unread"}>
            {n.actor ? <UserLink id={n.actor.id} username={n.actor.username} /> : "Someone"} {describe(n)}
            {n.postId && (
              <>
                {" "}
                · <Link href={`/p/${n.postId}`}>see post</Link>
              </>
            )}
            {n.groupId && (
              <>
                {" "}
                · <Link href={`/g/${n.groupId}`}>see group</Link>
              </>
            )}
            <span className="muted small"> {when(n.createdAt)}</span>
          </li>
        ))}
      </ul>
      {q.hasNextPage && <More onVisible={() => void q.fetchNextPage()} busy={q.isFetchingNextPage} />}
    </section>
  );
}

/**
 * An activity entry as a sentence naming its subject: the user (by
 * @username) and the group (by name) are read by id, once each however
 * many entries name them; a post is a link, not an excerpt, because
 * reading it (GetPost) would count a view of it for its author
 * (docs/analytics.md), and a look at one's own log is not one.
 */
function describeActivity(a: ActivityEntry): ReactNode {
  const post = (words: string) => (a.postId ? <Link href={`/p/${a.postId}`}>{words}</Link> : words);
  const user = a.targetUserId ? <UserName id={a.targetUserId} /> : "someone";
  const group = a.groupId ? <GroupName id={a.groupId} /> : "a group";
  const inGroup = a.groupId ? <> in {group}</> : null;
  switch (a.type) {
    case ActivityType.POST_CREATED:
      return <>You wrote {post("a post")}{inGroup}</>;
    case ActivityType.POST_UPDATED:
      return <>You edited {post("your post")}</>;
    case ActivityType.POST_DELETED:
      return <>You deleted a post{inGroup}</>;
    case ActivityType.COMMENT_CREATED:
      return <>You commented on {post("a post")}</>;
    case ActivityType.COMMENT_DELETED:
      return <>You deleted a comment on {post("a post")}</>;
    case ActivityType.POST_LIKED:
      return <>You liked {post("a post")}</>;
    case ActivityType.POST_UNLIKED:
      return <>You took back your like of {post("a post")}</>;
    case ActivityType.POST_REPORTED:
      return <>You reported {post("a post")}</>;
    case ActivityType.USER_FOLLOWED:
      return <>You followed {user}</>;
    case ActivityType.USER_UNFOLLOWED:
      return <>You unfollowed {user}</>;
    case ActivityType.USER_BLOCKED:
      return <>You blocked {user}</>;
    case ActivityType.USER_UNBLOCKED:
      return <>You unblocked {user}</>;
    case ActivityType.PROFILE_UPDATED:
      return <>You updated <Link href="/settings">your profile</Link></>;
    case ActivityType.GROUP_CREATED:
      return <>You created the group {group}</>;
    case ActivityType.GROUP_UPDATED:
      return <>You changed the group {group}</>;
    case ActivityType.GROUP_DELETED:
      return <>You deleted a group</>;
    case ActivityType.GROUP_JOINED:
      return <>You joined the group {group}</>;
    case ActivityType.GROUP_LEFT:
      return <>You left the group {group}</>;
    default:
      return enumName(ActivityType, a.type);
  }
}

export function Activity() {
  const q = useInfiniteQuery(
    listActivity,
    { pageSize: 50, pageToken: "" },
    { pageParamKey: "pageToken", getNextPageParam: (l) => l.nextPageToken || undefined },
  );
  const list = q.data?.pages.flatMap((p) => p.activities) ?? [];
  return (
    <section aria-labelledby="act-h">
      <h1 id="act-h">Your activity</h1>
      <ErrorText error={q.error} />
      {q.isSuccess && list.length === 0 && <Empty>Nothing yet: what you do (posts, likes, follows…) shows up here.</Empty>}
      <ul className="plain">
        {list.map((a) => (
          <li key={a.id}>
            {describeActivity(a)}
            <span className="muted small"> {when(a.createdAt)}</span>
          </li>
        ))}
      </ul>
      {q.hasNextPage && <More onVisible={() => void q.fetchNextPage()} busy={q.isFetchingNextPage} />}
    </section>
  );
}

export function Moderation() {
  const qc = useQueryClient();
  const q = useQuery(listReports, { status: ReportStatus.OPEN, pageSize: 50 });
  // A resolution may remove a post or suspend its author: the queue is
  // read again now, the rest when next shown.
  const resolve = useMutation(resolveReport, {
    onSuccess: () => {
      void staleAll(qc);
      void refetch(qc, ModerationService);
    },
  });
  return (
    <section aria-labelledby="mod-h">
      <h1 id="mod-h">Moderation queue</h1>
      <ErrorText error={q.error ?? resolve.error} />
      {q.data?.reports.length === 0 && <Empty>No open reports.</Empty>}
      {q.data?.reports.map((r) => (
        <div key={r.id} className="card">
          <p>
            {enumName(ReportReason, r.reason)} reported by {r.reporter && <UserLink id={r.reporter.id} username={r.reporter.username} />}{" "}
            <span className="muted small">{when(r.createdAt)}</span>
          </p>
          {r.details && <blockquote>{r.details}</blockquote>}
          {r.post && <PostCard post={r.post} />}
          <div className="row">
            {[ReportAction.DISMISS, ReportAction.REMOVE_POST, ReportAction.SUSPEND_AUTHOR].map((a) => (
              <button key={a} onClick={() => resolve.mutate({ reportId: r.id, action: a })}>
                {enumName(ReportAction, a)}
              </button>
            ))}
          </div>
        </div>
      ))}
    </section>
  );
}

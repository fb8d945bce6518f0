// Home feed (infinite scroll, "N new posts"), compose, post cards, post page.
import { useInfiniteQuery, useMutation, useQuery } from "@connectrpc/connect-query";
import {
  createComment,
  createPost,
  deletePost,
  getPost,
  getPostAnalytics,
  likePost,
  listComments,
  listFeed,
  reportPost,
  unlikePost,
} from "@gen/flock/v1/post-PostService_connectquery.js";
import { listGroupPosts } from "@gen/flock/v1/group-GroupService_connectquery.js";
import { getMe, suggestUsers } from "@gen/flock/v1/user-UserService_connectquery.js";
import { type Post, ReportReason, type Video, VideoStatus, Visibility, timestampDate } from "@flock-social/client";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useEffect, useMemo, useRef, useState } from "react";

import { prependPost, refetch, removePost, staleAll, updatePost } from "./cache.js";
import { Link, navigate } from "./router.js";
import { client } from "./session.js";
import { GroupName } from "./subjects.js";
import { Avatar, Content, Empty, ErrorText, Loading, UserLink, aria, counted, enumName, useFormErrors, useLimit, when } from "./ui.js";
import { uploadWithProgress } from "./upload.js";

/**
 * A post. A group's post names its group, linked (one GetGroup per group
 * however many of its posts a list holds), except on that group's own
 * page (inGroup), where it goes without saying.
 */
export function PostCard({ post, inGroup }: { post: Post; inGroup?: string }) {
  const qc = useQueryClient();
  // A like changes one post: it is updated where the cache holds it, and
  // nothing is refetched (cache.ts). It shows at once, before the answer,
  // and is undone if the server refuses it.
  const liked = (value: boolean) => () =>
    updatePost(qc, post.id, (p) => (p.likedByMe === value ? p : { ...p, likedByMe: value, likesCount: p.likesCount + (value ? 1 : -1) }));
  const like = useMutation(likePost, { onMutate: liked(true), onError: liked(false) });
  const unlike = useMutation(unlikePost, { onMutate: liked(false), onError: liked(true) });
  const a = post.author;
  return (
    <article className="post" aria-label={`Post by ${a?.username ?? "someone"}`}>
      <header>
        <Avatar url={a?.avatarUrl} name={a?.username ?? "?"} />
        <div>
          <strong>{a?.fullName || a?.username}</strong> {a && <UserLink id={a.id} username={a.username} />}
          <div className="muted small">
            <Link href={`/p/${post.id}`}>{when(post.createdAt)}</Link> ·{" "}
            {post.groupId && post.groupId !== inGroup ? (
              <>
                in <GroupName id={post.groupId} />
              </>
            ) : (
              enumName(Visibility, post.visibility)
            )}
          </div>
        </div>
      </header>
      <Content text={post.content} />
      {post.video && <VideoView video={post.video} />}
      <footer>
        <button
          className="link"
          aria-pressed={post.likedByMe}
          // One at a time: an unlike sent while the like is in flight could
          // reach the server first and leave the opposite of what is shown.
          disabled={like.isPending || unlike.isPending}
          onClick={() => (post.likedByMe ? unlike : like).mutate({ postId: post.id })}
        >
          {post.likedByMe ? "♥ Liked" : "♡ Like"} ({post.likesCount})
        </button>
        <Link href={`/p/${post.id}`}>{counted(post.commentsCount, "comment")}</Link>
      </footer>
      <ErrorText error={like.error ?? unlike.error} />
    </article>
  );
}

export function VideoView({ video }: { video: Video }) {
  if (video.status !== VideoStatus.READY)
    return <p className="muted">Video {enumName(VideoStatus, video.status)}{video.failureReason ? `: ${video.failureReason}` : ""}</p>;
  return (
    <video className="video" controls preload="metadata" poster={video.posterUrl || undefined} src={video.playbackUrl} width={video.width} height={video.height}>
      Your browser cannot play this video.
    </video>
  );
}

function Compose({ groupId }: { groupId?: string }) {
  const qc = useQueryClient();
  const [text, setText] = useState("");
  const [visibility, setVisibility] = useState(Visibility.PUBLIC);
  const [video, setVideo] = useState<Video | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [uploadError, setUploadError] = useState<unknown>(null);
  const create = useMutation(createPost, {
    onSuccess: (res) => {
      setText("");
      setVideo(null);
      setProgress(null);
      // The new post goes first in the list it was written from (the
      // feed, or the group's posts); the lists it may also be in (a
      // profile, a hashtag, the feed for a group's post) are read again
      // when next shown.
      void staleAll(qc);
      if (!res.post) return;
      if (groupId) prependPost(qc, listGroupPosts, { groupId }, res.post);
      else prependPost(qc, listFeed, {}, res.post);
    },
  });
  const fe = useFormErrors(create.error, ["content", "visibility", "video_id"]);
  // CreatePostRequest.content: max_len 5000 (proto/flock/v1/post.proto).
  const limit = useLimit(text, 5000, "a post");
  const textRef = useRef<HTMLTextAreaElement>(null);
  const tags = useMemo(() => [...new Set(text.match(/#[\p{L}\p{N}_]+/gu) ?? [])], [text]);
  const pick = async (file: File | undefined) => {
    if (!file) return;
    setUploadError(null);
    setVideo(null);
    setProgress(0);
    try {
      const v = await uploadWithProgress(file, setProgress);
      setVideo(v);
      setVideo(await client.waitVideo(v.id, { intervalMs: 500 }));
    } catch (err) {
      setUploadError(err);
      setProgress(null);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (limit.over) {
      textRef.current?.focus();
      return;
    }
    create.mutate({ content: text, visibility, groupId: groupId ?? "", videoId: video?.id ?? "" });
  };
  return (
    <form className="card compose" onSubmit={submit} aria-label="New post">
      <label htmlFor="compose-text">What's happening?</label>
      <textarea id="compose-text" ref={textRef} value={text} onChange={(e) => setText(e.target.value)} rows={3} required {...aria(fe.input("content"), limit.input)} />
      {limit.counter}
      {fe.message("content")}
      {tags.length > 0 && <p className="muted small">Hashtags: {tags.join(" ")}</p>}
      <div className="row">
        {!groupId && (
          <label>
            Visibility{" "}
            <select value={visibility} onChange={(e) => setVisibility(Number(e.target.value))} {...fe.input("visibility")}>
              {[Visibility.PUBLIC, Visibility.FOLLOWERS].map((v) => (
                <option key={v} value={v}>
                  {enumName(Visibility, v)}
                </option>
              ))}
            </select>
          </label>
        )}
        <label className="file">
          Video <input type="file" accept="video/*" onChange={(e) => void pick(e.target.files?.[0])} {...fe.input("video_id")} />
        </label>
        <button disabled={create.isPending || progress !== null && !video}>Post</button>
      </div>
      {progress !== null && (
        <p>
          <label>
            Upload <progress max={1} value={progress} aria-label="Video upload progress" /> {Math.round(progress * 100)}%
          </label>{" "}
          {video && <span role="status">video {enumName(VideoStatus, video.status)}</span>}
        </p>
      )}
      {fe.message("visibility")}
      {fe.message("video_id")}
      <ErrorText error={uploadError ?? fe.rest} />
    </form>
  );
}

export { Compose };

/** A sentinel that calls onVisible when scrolled into view (infinite scroll). */
export function More({ onVisible, busy }: { onVisible: () => void; busy: boolean }) {
  const ref = useRef<HTMLButtonElement>(null);
  const cb = useRef(onVisible);
  cb.current = onVisible;
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const io = new IntersectionObserver((es) => es.some((e) => e.isIntersecting) && cb.current());
    io.observe(el);
    return () => io.disconnect();
  }, []);
  return (
    <button ref={ref} className="more" onClick={onVisible} disabled={busy}>
      {busy ? "Loading…" : "Load more"}
    </button>
  );
}

export function Home() {
  const feed = useInfiniteQuery(
    listFeed,
    { pageSize: 20, pageToken: "" },
    { pageParamKey: "pageToken", getNextPageParam: (l) => l.nextPageToken || undefined },
  );
  const posts = feed.data?.pages.flatMap((p) => p.posts) ?? [];
  // New posts: the first page again every 10 s, counted against what is shown.
  const head = useQuery(listFeed, { pageSize: 20 }, { refetchInterval: 10_000, enabled: feed.isSuccess });
  const shown = new Set(posts.map((p) => p.id));
  const newest = posts[0]?.createdAt ? timestampDate(posts[0].createdAt).getTime() : 0;
  const fresh = (head.data?.posts ?? []).filter((p) => !shown.has(p.id) && p.createdAt && timestampDate(p.createdAt).getTime() >= newest).length;
  useEffect(() => {
    // For the end-to-end test's cold-load figure (client/web/e2e/run.mjs).
    if (feed.isSuccess && !document.body.dataset.feedReady) {
      document.body.dataset.feedReady = "1";
      performance.mark("flock-feed-rendered");
    }
  }, [feed.isSuccess]);
  return (
    <div className="columns">
      <section aria-labelledby="home-h">
        <h1 id="home-h">Home</h1>
        <Compose />
        {fresh > 0 && (
          <button className="fresh" aria-live="polite" onClick={() => { void feed.refetch(); scrollTo(0, 0); }}>
            {fresh} new post{fresh === 1 ? "" : "s"}
          </button>
        )}
        <ErrorText error={feed.error} />
        {feed.isPending ? (
          <Loading />
        ) : posts.length === 0 ? (
          <Empty>Your feed is empty. Follow people (see suggestions) or write the first post.</Empty>
        ) : (
          <div className="feed" data-testid="feed">
            {posts.map((p) => (
              <PostCard key={p.id} post={p} />
            ))}
          </div>
        )}
        {feed.hasNextPage && <More onVisible={() => !feed.isFetchingNextPage && void feed.fetchNextPage()} busy={feed.isFetchingNextPage} />}
      </section>
      <Suggestions />
    </div>
  );
}

function Suggestions() {
  const s = useQuery(suggestUsers, { pageSize: 5 });
  return (
    <aside className="card side" aria-labelledby="sugg-h">
      <h2 id="sugg-h">Who to follow</h2>
      <ErrorText error={s.error} />
      {s.data && s.data.suggestions.length === 0 && <Empty>No suggestions yet.</Empty>}
      <ul className="plain">
        {s.data?.suggestions.map((x) => (
          <li key={x.user?.id}>
            {x.user && <UserLink id={x.user.id} username={x.user.username} />}
            <div className="muted small">{x.reason}</div>
          </li>
        ))}
      </ul>
    </aside>
  );
}

export function PostPage({ id }: { id: string }) {
  const qc = useQueryClient();
  const p = useQuery(getPost, { postId: id });
  const me = useQuery(getMe, {});
  const comments = useInfiniteQuery(
    listComments,
    { postId: id, pageSize: 50, pageToken: "" },
    { pageParamKey: "pageToken", getNextPageParam: (l) => l.nextPageToken || undefined },
  );
  // A comment: the post's count goes up where the cache holds the post,
  // and its comments are read again (the new one in its place).
  const add = useMutation(createComment, {
    onSuccess: () => {
      void staleAll(qc);
      updatePost(qc, id, (p) => ({ ...p, commentsCount: p.commentsCount + 1 }));
      void refetch(qc, listComments, { postId: id });
    },
  });
  // A deleted post leaves every cached list at once, so the feed that
  // opens next does not show it while it is read again.
  const del = useMutation(deletePost, {
    onSuccess: () => {
      void staleAll(qc);
      removePost(qc, id);
      navigate("/");
    },
  });
  const [text, setText] = useState("");
  const fe = useFormErrors(add.error, ["content"]);
  // CreateCommentRequest.content: max_len 2000 (proto/flock/v1/post.proto).
  const limit = useLimit(text, 2000, "a comment");
  const commentRef = useRef<HTMLInputElement>(null);
  if (p.error) return <ErrorText error={p.error} />;
  if (!p.data?.post) return <Loading />;
  const post = p.data.post;
  const mine = me.data?.user?.id === post.author?.id;
  const list = comments.data?.pages.flatMap((x) => x.comments) ?? [];
  return (
    <section aria-label="Post">
      <PostCard post={post} />
      {mine && (
        <>
          <Analytics id={id} />
          <button className="danger" onClick={() => confirm("Delete this post?") && del.mutate({ postId: id })}>
            Delete post
          </button>
          <ErrorText error={del.error} />
        </>
      )}
      {!mine && <Report id={id} />}
      <h2>Comments</h2>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (limit.over) {
            commentRef.current?.focus();
            return;
          }
          add.mutate({ postId: id, content: text }, { onSuccess: () => setText("") });
        }}
      >
        <label className="grow">
          Comment
          <input ref={commentRef} value={text} onChange={(e) => setText(e.target.value)} required {...aria(fe.input("content"), limit.input)} />
        </label>
        <button disabled={add.isPending}>Reply</button>
        {limit.counter}
        {fe.message("content")}
      </form>
      <ErrorText error={fe.rest ?? comments.error} />
      {comments.isSuccess && list.length === 0 && <Empty>No comments yet.</Empty>}
      <ul className="plain">
        {list.map((c) => (
          <li key={c.id} className="comment">
            {c.author && <UserLink id={c.author.id} username={c.author.username} />} <span className="muted small">{when(c.createdAt)}</span>
            <Content text={c.content} />
          </li>
        ))}
      </ul>
      {comments.hasNextPage && <More onVisible={() => void comments.fetchNextPage()} busy={comments.isFetchingNextPage} />}
    </section>
  );
}

function Analytics({ id }: { id: string }) {
  const a = useQuery(getPostAnalytics, { postId: id });
  if (a.error) return <ErrorText error={a.error} />;
  if (!a.data) return null;
  const days = a.data.daily;
  const max = Math.max(1, ...days.map((d) => d.views));
  return (
    <figure className="card">
      <figcaption>
        Analytics: {counted(a.data.views, "view")}, {counted(a.data.uniqueViewers, "viewer")}, {counted(a.data.likes, "like")}, {counted(a.data.comments, "comment")}
      </figcaption>
      {days.length === 0 ? (
        <Empty>No daily figures yet.</Empty>
      ) : (
        <svg viewBox={`0 0 ${Math.max(days.length, 30) * 12} 60`} preserveAspectRatio="xMinYMax meet" className="chart" role="img" aria-label="Views per day">
          {days.map((d, i) => {
            const h = (d.views / max) * 56;
            return (
              <rect key={i} x={i * 12 + 1} y={58 - h} width={10} height={h}>
                <title>{`${d.date ? timestampDate(d.date).toLocaleDateString() : ""}: ${counted(d.views, "view")}`}</title>
              </rect>
            );
          })}
        </svg>
      )}
    </figure>
  );
}

function Report({ id }: { id: string }) {
  const r = useMutation(reportPost);
  const [reason, setReason] = useState(ReportReason.SPAM);
  const [details, setDetails] = useState("");
  const fe = useFormErrors(r.error, ["reason", "details"]);
  // ReportPostRequest.details: max_len 1000 (proto/flock/v1/post.proto).
  const limit = useLimit(details, 1000, "a report's details");
  const detailsRef = useRef<HTMLInputElement>(null);
  if (r.isSuccess) return <p role="status">Thank you: the report was sent to the moderators.</p>;
  return (
    <details>
      <summary>Report this post</summary>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (limit.over) {
            detailsRef.current?.focus();
            return;
          }
          r.mutate({ postId: id, reason, details });
        }}
      >
        <label>
          Reason{" "}
          <select value={reason} onChange={(e) => setReason(Number(e.target.value))} {...fe.input("reason")}>
            {Object.values(ReportReason)
              .filter((v): v is number => typeof v === "number" && v !== 0)
              .map((v) => (
                <option key={v} value={v}>
                  {enumName(ReportReason, v)}
                </option>
              ))}
          </select>
        </label>
        <label className="grow">
          Details <input ref={detailsRef} name="details" value={details} onChange={(e) => setDetails(e.target.value)} {...aria(fe.input("details"), limit.input)} />
        </label>
        <button disabled={r.isPending}>Report</button>
        {limit.counter}
        {fe.message("reason")}
        {fe.message("details")}
      </form>
      <ErrorText error={fe.rest} />
    </details>
  );
}

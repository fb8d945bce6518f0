// Compiled (never run) by test/package.test.mjs, as an app would compile
// against the package: the types must resolve through its exports map.
import {
  Code,
  enumName,
  GroupPrivacy,
  ReportAction,
  ReportReason,
  Visibility,
  ConnectError,
  createFlockClient,
  FlockError,
  type FlockClient,
  type Notification,
  NotificationType,
  type Tokens,
  timestampDate,
  type User,
  type Video,
  VideoStatus,
  VideoStatusSchema,
} from "@flock-social/client";

export async function example(input: Blob): Promise<void> {
  const client: FlockClient = createFlockClient({
    baseUrl: "https://flock.example",
    onTokens: (tokens: Tokens | null) => void tokens?.refreshToken,
  });
  await client.login("alice", "correct horse");
  const me: User | undefined = (await client.users.getMe({})).user;
  const when: Date | undefined = me?.createdAt ? timestampDate(me.createdAt) : undefined;
  void when;
  await client.posts.createPost({ content: "hello #flock" });
  const controller = new AbortController();
  const last: string = await client.subscribeNotifications({
    signal: controller.signal,
    onEvent: (n: Notification) => {
      if (n.type === NotificationType.FOLLOW) void n.actor?.username;
    },
  });
  void last;
  try {
    const video: Video = await client.waitVideo((await client.uploadVideo(input)).id);
    if (video.status === VideoStatus.READY) void video.playbackUrl;
    const statusName: string = enumName(VideoStatusSchema, video.status);
    const shortName: string | undefined = VideoStatus[video.status];
    void statusName, shortName;
  } catch (err) {
    if (err instanceof FlockError && err.connectCode === Code.ResourceExhausted) return;
    if (err instanceof ConnectError && err.code === Code.NotFound) return;
    throw err;
  }
}

// The service examples of docs/sdk-ts.md, as written there.
export async function services(flock: FlockClient, file: Blob): Promise<void> {
  const { user: bob } = await flock.users.getUser({ userId: "01KA…" });
  await flock.users.follow({ userId: bob!.id });
  const { users, nextPageToken } = await flock.users.searchUsers({ query: "bo", pageSize: 20 });
  void users, nextPageToken;
  await flock.users.updateMe({ bio: "Down the rabbit hole", interests: ["golang"] });
  await flock.users.updateMe({ bio: "", updateMask: { paths: ["bio"] } });
  await flock.users.updateMe({ avatar: new Uint8Array(await file.arrayBuffer()) });

  const { post } = await flock.posts.createPost({ content: "Hi #flock", visibility: Visibility.FOLLOWERS });
  await flock.posts.likePost({ postId: post!.id });
  await flock.posts.createComment({ postId: post!.id, content: "first!" });
  const feed = await flock.posts.listFeed({ pageSize: 20 });
  await flock.posts.listFeed({ pageSize: 20, pageToken: feed.nextPageToken });
  await flock.posts.reportPost({ postId: "01KB…", reason: ReportReason.SPAM });

  const { group } = await flock.groups.createGroup({ name: "Gophers", privacy: GroupPrivacy.PRIVATE });
  await flock.posts.createPost({ content: "Members only", groupId: group!.id });

  const { notifications, unreadCount } = await flock.notifications.listNotifications({ unreadOnly: true });
  void notifications, unreadCount;
  await flock.notifications.markNotificationsRead({ all: true });
  const { activities } = await flock.activity.listActivity({});
  void activities;

  const { reports } = await flock.moderation.listReports({});
  await flock.moderation.resolveReport({ reportId: reports[0]!.id, action: ReportAction.DISMISS });

  const when: Date = timestampDate(post!.createdAt!);
  const size: bigint = (await flock.waitVideo("01KC…")).sizeBytes;
  void when, size;

  try {
    await flock.users.follow({ userId: "01KA…" });
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.ResourceExhausted) void e.metadata.get("Retry-After");
    void e.rawMessage, e.details;
  }
  for await (const n of flock.notifications.subscribe({ sinceId: "" }, { signal: AbortSignal.timeout(1000) })) {
    void n.id;
  }
}

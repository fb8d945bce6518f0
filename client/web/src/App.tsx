// The shell: navigation with the live unread badge, and the routes.
import { useQuery } from "@connectrpc/connect-query";
import { getMe } from "@gen/flock/v1/user-UserService_connectquery.js";
import { listNotifications } from "@gen/flock/v1/notification-NotificationService_connectquery.js";
import { NotificationService } from "@gen/flock/v1/notification_pb.js";
import { UserRole } from "@flock-social/client";
import { useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useRef, useState } from "react";

import { refetch } from "./cache.js";
import { Home, PostPage } from "./feed.js";
import { Link, match, navigate, useLocation } from "./router.js";
import { client, onSession, signedIn } from "./session.js";
import { isNetworkError, Loading, unreadLabel, useTitle } from "./ui.js";

// The screens off the home feed's path load on first use (their own hashed
// chunks), so that a cold load of the feed parses only what it shows.
const auth = () => import("./auth.js");
const people = () => import("./people.js");
const groups = () => import("./groups.js");
const LogIn = lazy(() => auth().then((m) => ({ default: m.LogIn })));
const SignUp = lazy(() => auth().then((m) => ({ default: m.SignUp })));
const Verify = lazy(() => auth().then((m) => ({ default: m.Verify })));
const Profile = lazy(() => people().then((m) => ({ default: m.Profile })));
const Search = lazy(() => people().then((m) => ({ default: m.Search })));
const Notifications = lazy(() => people().then((m) => ({ default: m.Notifications })));
const Activity = lazy(() => people().then((m) => ({ default: m.Activity })));
const Moderation = lazy(() => people().then((m) => ({ default: m.Moderation })));
const Groups = lazy(() => groups().then((m) => ({ default: m.Groups })));
const GroupPage = lazy(() => groups().then((m) => ({ default: m.GroupPage })));
const Settings = lazy(() => import("./settings.js").then((m) => ({ default: m.Settings })));

const publicRoutes = ["/login", "/signup", "/verify"];

export function App() {
  const url = useLocation();
  const [inside, setInside] = useState(signedIn);
  const qc = useQueryClient();
  useEffect(
    () =>
      onSession((now) => {
        setInside(now);
        if (!now) qc.clear();
      }),
    [qc],
  );
  // A read that failed because the server could not be reached (down, or
  // restarting) is tried again every 10 s until it answers: nothing else
  // would retry it, since the browser saw no change of network, and the
  // page stayed on "can't reach" after the server was back.
  useEffect(() => {
    const timer = setInterval(() => {
      void qc.refetchQueries({ type: "active", predicate: (q) => q.state.status === "error" && isNetworkError(q.state.error) });
    }, 10_000);
    return () => clearInterval(timer);
  }, [qc]);
  const path = url.pathname;
  const open = publicRoutes.includes(path);
  useEffect(() => {
    if (!inside && !open) navigate("/login", true);
    if (inside && (path === "/login" || path === "/signup")) navigate("/", true);
  }, [inside, open, path]);
  if (!inside)
    return (
      <main id="main" className="outside">
        <p className="brand">Flock</p>
        <Suspense fallback={<Loading />}>{path === "/signup" ? <SignUp /> : path === "/verify" ? <Verify /> : <LogIn />}</Suspense>
      </main>
    );
  return <Inside path={path} />;
}

function Inside({ path }: { path: string }) {
  const me = useQuery(getMe, {});
  const unread = useUnread();
  useTitle(unread > 0 ? `(${unreadLabel(unread)}) Flock` : "Flock");
  let screen;
  let m;
  if (path === "/") screen = <Home />;
  else if ((m = match("/p/:id", path))) screen = <PostPage id={m.id} />;
  else if ((m = match("/u/:id", path))) screen = <Profile id={m.id} />;
  else if ((m = match("/g/:id", path))) screen = <GroupPage id={m.id} />;
  else if (path === "/groups") screen = <Groups />;
  else if (path === "/notifications") screen = <Notifications />;
  else if (path === "/search") screen = <Search />;
  else if (path === "/activity") screen = <Activity />;
  else if (path === "/settings") screen = <Settings />;
  else if (path === "/moderation") screen = <Moderation />;
  else if (path === "/verify") screen = <Verify />;
  else screen = <p>There is no page here. <Link href="/">Home</Link></p>;
  const user = me.data?.user;
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <nav aria-label="Main">
        <Link href="/" className="brand">
          Flock
        </Link>
        <Link href="/" aria-current={path === "/" ? "page" : undefined}>Home</Link>
        <Link href="/search">Search</Link>
        <Link href="/notifications" aria-current={path === "/notifications" ? "page" : undefined}>
          Notifications
          {unread > 0 && (
            <span className="badge" data-testid="unread" aria-label={`${unreadLabel(unread)} unread`}>
              {unreadLabel(unread)}
            </span>
          )}
        </Link>
        <Link href="/groups">Groups</Link>
        <Link href="/activity">Activity</Link>
        {user?.role === UserRole.STAFF && <Link href="/moderation">Moderation</Link>}
        {user && <Link href={`/u/${user.id}`}>@{user.username}</Link>}
        <Link href="/settings">Settings</Link>
      </nav>
      <main id="main">
        <Suspense fallback={<Loading />}>{screen}</Suspense>
      </main>
    </>
  );
}

/**
 * The unread count: ListNotifications' unreadCount (at most 1000), refetched
 * with the notifications list whenever the NotificationService Subscribe
 * stream (kept open by the SDK across disconnects and token refreshes)
 * delivers a notification.
 */
function useUnread(): number {
  const qc = useQueryClient();
  const q = useQuery(listNotifications, { pageSize: 1, unreadOnly: true });
  const last = useRef<string | undefined>(undefined);
  useEffect(() => {
    const ac = new AbortController();
    void client
      .subscribeNotifications({
        signal: ac.signal,
        ...(last.current ? { sinceId: last.current } : {}),
        onEvent(n) {
          last.current = n.id;
          // What a notification changes: the badge and the notifications
          // list. Invalidating every query refetched the open feed, all of
          // its loaded pages, at each notification.
          void refetch(qc, NotificationService);
        },
      })
      .catch(() => {
        /* the session ended: the app goes back to the login screen */
      });
    return () => ac.abort();
  }, [qc]);
  return q.data?.unreadCount ?? 0;
}

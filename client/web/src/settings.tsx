// Account screens: profile (name, bio, avatar), password, email, sessions, export, delete, log out.
import { createConnectQueryKey, useMutation, useQuery } from "@connectrpc/connect-query";
import {
  changeEmail,
  changePassword,
  deleteAccount,
  getMe,
  listSessions,
  revokeSession,
  updateMe,
} from "@gen/flock/v1/user-UserService_connectquery.js";
import type { GetMeResponse } from "@gen/flock/v1/user_pb.js";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useRef, useState } from "react";

import { refetch, staleAll } from "./cache.js";
import { navigate } from "./router.js";
import { client } from "./session.js";
import { Avatar, Empty, ErrorText, aria, errorText, useFormErrors, useLimit, when } from "./ui.js";

function form(e: FormEvent<HTMLFormElement>): FormData {
  e.preventDefault();
  return new FormData(e.currentTarget);
}

export function Settings() {
  const qc = useQueryClient();
  const me = useQuery(getMe, {});
  const pw = useMutation(changePassword);
  const em = useMutation(changeEmail, { onSuccess: () => refetch(qc, getMe) });
  const sessions = useQuery(listSessions, { pageSize: 50 });
  const revoke = useMutation(revokeSession, { onSuccess: () => refetch(qc, listSessions) });
  const del = useMutation(deleteAccount, {
    onSuccess: () => {
      client.setTokens(null);
      localStorage.removeItem("flock.tokens");
      location.assign("/login");
    },
  });
  const [exportError, setExportError] = useState<string | null>(null);
  const u = me.data?.user;
  const pwErrors = useFormErrors(pw.error, ["current_password", "new_password"]);
  const emErrors = useFormErrors(em.error, ["new_email", "current_password"]);
  const delErrors = useFormErrors(del.error, ["current_password"]);

  // The SDK's downloadExport: GET /api/users/export/ with the token (refreshed on 401).
  const download = async () => {
    setExportError(null);
    try {
      const res = await client.downloadExport();
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = `flock-${u?.username ?? "export"}.zip`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setExportError(errorText(err));
    }
  };
  const [othersEnded, setOthersEnded] = useState<number | null>(null);
  const signOutOthers = async () => {
    try {
      setOthersEnded(await client.signOutOtherSessions());
      void refetch(qc, listSessions);
    } catch (err) {
      setExportError(errorText(err));
    }
  };

  return (
    <section aria-labelledby="settings-h">
      <h1 id="settings-h">Settings</h1>
      <ErrorText error={me.error} />
      {u && <ProfileForm key={u.id} fullName={u.fullName} bio={u.bio} avatarUrl={u.avatarUrl} username={u.username} />}
      <form className="card" onSubmit={(e) => { const f = form(e); pw.mutate({ currentPassword: String(f.get("current")), newPassword: String(f.get("new")) }); }} aria-label="Change password">
        <h2>Change password</h2>
        <label>
          Current password <input name="current" type="password" autoComplete="current-password" required {...pwErrors.input("current_password")} />
        </label>
        {pwErrors.message("current_password")}
        <label>
          New password <input name="new" type="password" autoComplete="new-password" required minLength={8} {...pwErrors.input("new_password")} />
        </label>
        {pwErrors.message("new_password")}
        <ErrorText error={pwErrors.rest} />
        {pw.isSuccess && <p role="status">Password changed; your other sessions were signed out.</p>}
        <button disabled={pw.isPending}>Change password</button>
      </form>
      <form className="card" onSubmit={(e) => { const f = form(e); em.mutate({ newEmail: String(f.get("email")), currentPassword: String(f.get("current")) }); }} aria-label="Change email">
        <h2>Change email</h2>
        <p className="muted small">Now: {u?.email}</p>
        <label>
          New email <input name="email" type="email" required {...emErrors.input("new_email")} />
        </label>
        {emErrors.message("new_email")}
        <label>
          Current password <input name="current" type="password" autoComplete="current-password" required {...emErrors.input("current_password")} />
        </label>
        {emErrors.message("current_password")}
        <ErrorText error={emErrors.rest} />
        {em.isSuccess && <p role="status">Check the new address for a confirmation link.</p>}
        <button disabled={em.isPending}>Change email</button>
      </form>
      <div className="card">
        <h2>Sessions</h2>
        <ErrorText error={sessions.error ?? revoke.error} />
        {sessions.data?.sessions.length === 0 && <Empty>No sessions.</Empty>}
        <ul className="plain">
          {sessions.data?.sessions.map((s) => (
            <li key={s.id}>
              {s.userAgent || "unknown client"} · {s.ip} · last used {when(s.lastUsedAt)} {s.current && <strong>(this one)</strong>}{" "}
              {!s.current && <button onClick={() => revoke.mutate({ sessionId: s.id })}>Sign out</button>}
            </li>
          ))}
        </ul>
        <button onClick={() => void signOutOthers()}>Sign out all other sessions</button>
        {othersEnded !== null && <p role="status">Signed out {othersEnded} other session{othersEnded === 1 ? "" : "s"}.</p>}
      </div>
      <div className="card">
        <h2>Your data</h2>
        <button onClick={() => void download()}>Download my data (zip)</button>
        {exportError && <p className="error" role="alert">{exportError}</p>}
      </div>
      <div className="card">
        <h2>Log out</h2>
        <button onClick={() => void client.logout().finally(() => navigate("/login", true))}>Log out</button>
      </div>
      <form className="card danger-zone" onSubmit={(e) => { const f = form(e); if (confirm("Delete your account for good?")) del.mutate({ currentPassword: String(f.get("current")) }); }} aria-label="Delete account">
        <h2>Delete account</h2>
        <label>
          Current password <input name="current" type="password" autoComplete="current-password" required {...delErrors.input("current_password")} />
        </label>
        {delErrors.message("current_password")}
        <ErrorText error={delErrors.rest} />
        <button className="danger" disabled={del.isPending}>Delete my account</button>
      </form>
    </section>
  );
}

/**
 * The profile: name and bio counted against the server's limits
 * (UpdateMeRequest: full_name 100, bio 500 characters) and refused past
 * them, not cut as maxLength did with pasted text.
 */
function ProfileForm({ fullName: name0, bio: bio0, avatarUrl, username }: { fullName: string; bio: string; avatarUrl: string; username: string }) {
  const qc = useQueryClient();
  // The saved profile is the answer: it replaces GetMe's; the places that
  // show the reader's name or picture (profile, posts) are read again when
  // next shown.
  const upd = useMutation(updateMe, {
    onSuccess: (res) => {
      void staleAll(qc);
      if (res.user) qc.setQueriesData<GetMeResponse>({ queryKey: createConnectQueryKey({ schema: getMe, cardinality: "finite" }) }, (old) => old && { ...old, user: res.user });
    },
  });
  const fe = useFormErrors(upd.error, ["full_name", "bio", "avatar"]);
  const [fullName, setFullName] = useState(name0);
  const [bio, setBio] = useState(bio0);
  const nameLimit = useLimit(fullName, 100, "a name", "save");
  const bioLimit = useLimit(bio, 500, "a bio", "save");
  const nameRef = useRef<HTMLInputElement>(null);
  const bioRef = useRef<HTMLTextAreaElement>(null);
  const save = async (e: FormEvent<HTMLFormElement>) => {
    const f = form(e);
    if (nameLimit.over) return nameRef.current?.focus();
    if (bioLimit.over) return bioRef.current?.focus();
    const file = f.get("avatar");
    const paths = ["full_name", "bio"];
    const avatar = file instanceof File && file.size > 0 ? new Uint8Array(await file.arrayBuffer()) : undefined;
    if (avatar) paths.push("avatar");
    upd.mutate({ fullName, bio, ...(avatar ? { avatar } : {}), updateMask: { paths } });
  };
  return (
    <form className="card" onSubmit={(e) => void save(e)} aria-label="Profile">
      <h2>Profile</h2>
      <Avatar url={avatarUrl} name={username} size={64} />
      <label>
        Full name <input ref={nameRef} name="fullName" value={fullName} onChange={(e) => setFullName(e.target.value)} {...aria(fe.input("full_name"), nameLimit.input)} />
      </label>
      {nameLimit.counter}
      {fe.message("full_name")}
      <label>
        Bio <textarea ref={bioRef} name="bio" value={bio} onChange={(e) => setBio(e.target.value)} rows={3} {...aria(fe.input("bio"), bioLimit.input)} />
      </label>
      {bioLimit.counter}
      {fe.message("bio")}
      <label>
        Avatar (JPEG or PNG) <input name="avatar" type="file" accept="image/jpeg,image/png" {...fe.input("avatar")} />
      </label>
      {fe.message("avatar")}
      <ErrorText error={fe.rest} />
      {upd.isSuccess && <p role="status">Saved.</p>}
      <button disabled={upd.isPending}>Save profile</button>
    </form>
  );
}

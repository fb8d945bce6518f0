// Sign up, the email link, log in.
import { useMutation } from "@connectrpc/connect-query";
import {
  register,
  requestPasswordReset,
  resendVerification,
  verifyEmail,
} from "@gen/flock/v1/user-UserService_connectquery.js";
import { Code, ConnectError } from "@flock-social/client";
import { type FormEvent, useRef, useState } from "react";

import { Link, navigate, useLocation } from "./router.js";
import { client, forgetWhyEnded, whyEnded } from "./session.js";
import { ErrorText, aria, useFormErrors, useLimit } from "./ui.js";

export function SignUp() {
  const reg = useMutation(register);
  const fe = useFormErrors(reg.error, ["username", "email", "password", "full_name"]);
  const [email, setEmail] = useState("");
  const [username, setUsername] = useState("");
  const [fullName, setFullName] = useState("");
  // RegisterRequest: username 3-30, full_name at most 100 characters
  // (proto/flock/v1/user.proto), counted and refused past them, not cut.
  const usernameLimit = useLimit(username, 30, "a username");
  const nameLimit = useLimit(fullName, 100, "a full name");
  const usernameRef = useRef<HTMLInputElement>(null);
  const nameRef = useRef<HTMLInputElement>(null);
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (usernameLimit.over) return usernameRef.current?.focus();
    if (nameLimit.over) return nameRef.current?.focus();
    const f = new FormData(e.currentTarget);
    setEmail(String(f.get("email")));
    reg.mutate({
      username,
      email: String(f.get("email")),
      password: String(f.get("password")),
      fullName,
    });
  };
  if (reg.isSuccess)
    return (
      <section className="card narrow">
        <h1>Check your email</h1>
        <p role="status">
          We sent a link to <strong>{email}</strong>. Open it to verify your address, then <Link href="/login">log in</Link>.
        </p>
      </section>
    );
  return (
    <form className="card narrow" onSubmit={submit} aria-labelledby="signup-h">
      <h1 id="signup-h">Create your Flock account</h1>
      <label>
        Username
        <input
          ref={usernameRef}
          name="username"
          autoComplete="username"
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          required
          minLength={3}
          {...aria(fe.input("username"), usernameLimit.input)}
        />
      </label>
      {usernameLimit.counter}
      {fe.message("username")}
      <label>
        Full name
        <input ref={nameRef} name="fullName" autoComplete="name" value={fullName} onChange={(e) => setFullName(e.target.value)} {...aria(fe.input("full_name"), nameLimit.input)} />
      </label>
      {nameLimit.counter}
      {fe.message("full_name")}
      <label>
        Email
        <input name="email" type="email" autoComplete="email" required {...fe.input("email")} />
      </label>
      {fe.message("email")}
      <label>
        Password
        <input name="password" type="password" autoComplete="new-password" required minLength={8} {...fe.input("password")} />
      </label>
      {fe.message("password")}
      <ErrorText error={fe.rest} />
      <button disabled={reg.isPending}>Sign up</button>
      <p>
        Have an account? <Link href="/login">Log in</Link>
      </p>
    </form>
  );
}

/** /verify?token=…: the app's landing for the emailed link (the server's /verify-email page works too). */
export function Verify() {
  const token = useLocation().searchParams.get("token") ?? "";
  const v = useMutation(verifyEmail);
  const resend = useMutation(resendVerification);
  return (
    <section className="card narrow">
      <h1>Verify your email</h1>
      {v.isSuccess ? (
        <p role="status">
          Thank you, {v.data.user?.username}: your email is verified. <Link href="/login">Log in</Link>
        </p>
      ) : (
        <>
          <button disabled={!token || v.isPending} onClick={() => v.mutate({ token })}>
            Verify my email
          </button>
          <ErrorText error={v.error} />
          <form
            onSubmit={(e) => {
              e.preventDefault();
              resend.mutate({ email: String(new FormData(e.currentTarget).get("email")) });
            }}
          >
            <label>
              Link expired? Your email
              <input name="email" type="email" required />
            </label>
            <button disabled={resend.isPending}>Send a new link</button>
            {resend.isSuccess && <p role="status">If that address has an unverified account, a new link is on its way.</p>}
            <ErrorText error={resend.error} />
          </form>
        </>
      )}
    </section>
  );
}

/**
 * The server's reason for ending the session, as a sentence for the login
 * page: "This session was signed out when the account's password was
 * changed; log in again with the new password." The API's method names
 * that some reasons mention for API clients ("(RevokeSession)") are left out.
 */
function endedText(reason: string): string {
  const text = reason.replace(/\s*\([A-Z][A-Za-z]+\)/g, "").trim();
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

export function LogIn() {
  // Read once: a reason shown stays until this page is left.
  const [ended] = useState(whyEnded);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      await client.login(String(f.get("who")), String(f.get("password")));
      forgetWhyEnded();
      navigate("/", true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card narrow" onSubmit={submit} aria-labelledby="login-h">
      <h1 id="login-h">Log in to Flock</h1>
      {ended && (
        <p className="notice" role="status">
          <strong>You were signed out.</strong> {endedText(ended)}
        </p>
      )}
      <label>
        Username or email
        <input name="who" autoComplete="username" required />
      </label>
      <label>
        Password
        <input name="password" type="password" autoComplete="current-password" required />
      </label>
      <ErrorText error={error} />
      {error instanceof ConnectError && error.code === Code.FailedPrecondition && (
        // Not verified yet: the server names the API's ResendVerification;
        // the app's own form for it is on /verify.
        <p>
          <Link href="/verify">Send me a new verification link</Link>
        </p>
      )}
      <button disabled={busy}>Log in</button>
      <p>
        New here? <Link href="/signup">Create an account</Link>
      </p>
      <ForgotPassword />
    </form>
  );
}

/**
 * Asks for a password-reset email (RequestPasswordReset): its link opens
 * the server's /reset-password page. The answer is the same whether or not
 * the address has an account, so the form says only that much.
 */
function ForgotPassword() {
  const reset = useMutation(requestPasswordReset);
  const [open, setOpen] = useState(false);
  const [email, setEmail] = useState("");
  if (!open) {
    return (
      <p>
        <button type="button" className="link" onClick={() => setOpen(true)}>
          Forgot your password?
        </button>
      </p>
    );
  }
  // Not a nested form (the login form holds this): the button sends it.
  return (
    <div role="group" aria-labelledby="forgot-h">
      <h2 id="forgot-h">Reset your password</h2>
      <label>
        Your email
        <input
          type="email"
          autoComplete="email"
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          onKeyDown={(e) => {
            // Enter sends this request, not the login form around it.
            if (e.key !== "Enter") return;
            e.preventDefault();
            if (email.includes("@")) reset.mutate({ email });
          }}
        />
      </label>
      <button type="button" disabled={reset.isPending || !email.includes("@")} onClick={() => reset.mutate({ email })}>
        Email me a link
      </button>
      {reset.isSuccess && (
        <p role="status">If that address has an account, a link to set a new password is on its way. It works once, for 1 hour.</p>
      )}
      <ErrorText error={reset.error} />
    </div>
  );
}

package server

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/ratelimit"
)

// The small pages that links in Flock's emails open: they work without the
// web app and without JavaScript. Each is a form that POSTs, so that mail
// scanners fetching links do not use up single-use tokens.

// pageStyle is the one stylesheet of these pages, allowed by its hash.
const pageStyle = `body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}` +
	`button{font-size:1rem;padding:.5rem 1rem}label{display:block;margin:1rem 0 .25rem}input{font-size:1rem;width:100%;box-sizing:border-box;padding:.4rem}`

// pageCSP allows nothing but the inline stylesheet above and posting forms
// to this origin; the pages cannot be framed.
var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
}

var resetPage = template.Must(template.New("reset").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Choose a new password · Flock</title>
<style>` + pageStyle + `</style>
</head><body>
<h1>Choose a new password</h1>
{{if .Done}}<p role="status">{{.Message}}</p><p><a href="/login">Log in</a></p>
{{else if .Token}}{{if .Message}}<p role="alert">{{.Message}}</p>{{end}}
<form method="post" action="/reset-password"><input type="hidden" name="token" value="{{.Token}}">
<label for="password">New password (8-128 characters)</label>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="128" required>
<label for="confirm">The same again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" minlength="8" maxlength="128" required>
<p>Setting it signs out every session of your account.</p>
<button type="submit">Set my new password</button></form>
{{else}}<p>This link has no token. Open the link from your password-reset email again, or ask for a new one: <a href="/login">Forgot your password?</a> on the login page.</p>{{end}}
</body></html>`))

// resetPasswordPage is where the link in a password-reset email leads: GET
// shows a form for the new password, POST sets it (ResetPassword), limited
// per client address like the RPC.
func (a *App) resetPasswordPage(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	data := struct {
		Token, Message string
		Done           bool
	}{Token: r.URL.Query().Get("token")}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		data.Token = r.PostFormValue("token")
		password := r.PostFormValue("password")
		switch {
		case password != r.PostFormValue("confirm"):
			w.WriteHeader(http.StatusBadRequest)
			data.Message = "The two passwords differ; type the same one twice."
		case a.limitHTTP(w, r, "password_reset_confirm", "") != nil:
			w.WriteHeader(http.StatusTooManyRequests)
			data.Message = "Too many attempts from your address; wait a minute and try again."
		default:
			if err := a.accounts.ResetPassword(r.Context(), data.Token, password); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				data.Message = flock.ErrorMessage(err)
				if fe := (*flock.Error)(nil); errors.As(err, &fe) && fe.Field == "token" {
					data.Done = true // the form cannot help; the message says what to do
				}
			} else {
				data.Done = true
				data.Message = "Your password is set and every session is signed out. Log in with the new password."
			}
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	_ = resetPage.Execute(w, data)
}

// limitHTTP counts a plain-HTTP request against a rate-limited action of
// account ("" for none) and of the client's address, sets the RateLimit-*
// headers, and returns the refusal (resource_exhausted, with Retry-After)
// when the action is over its limit. A limiter that fails lets the request
// through, as for the RPCs (rateLimitInterceptor).
func (a *App) limitHTTP(w http.ResponseWriter, r *http.Request, action, account string) error {
	if a.limiter == nil {
		return nil
	}
	res, err := ratelimit.Check(r.Context(), a.limiter, action, account, r.RemoteAddr)
	if err != nil {
		a.log.WarnContext(r.Context(), "rate limiter unavailable; letting the request through", "action", action, "err", err)
		return nil
	}
	for k, v := range res.Headers() {
		w.Header()[k] = v
	}
	if !res.Allowed {
		return res.Err()
	}
	return nil
}

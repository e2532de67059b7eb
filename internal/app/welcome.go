package app

import (
	"context"
	"html/template"
	"net/http"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/saml"
)

// WelcomePath is the default saml.after_login_url: where a login without a return path lands.
const WelcomePath = "/saml/welcome"

var welcomePage = template.Must(template.New("welcome").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flexbridge: {{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
code{background:#f3f4f6;padding:.1rem .3rem;border-radius:.2rem}</style></head>
<body><h1>{{.Title}}</h1>
{{if .UserName}}<p>You are signed in as <strong id="user">{{.UserName}}</strong> through <strong>{{.IdP}}</strong>.</p>
<p>Your Flex worker: <strong id="worker-status">{{.Worker}}</strong></p>
<p>You can close this page and open Flex.</p>
{{else}}<p>No single sign-on session. Sign in again at <a href="{{.LoginPath}}">{{.LoginPath}}</a>.</p>{{end}}
</body></html>
`))

type welcomeData struct {
	Title, UserName, IdP, Worker, LoginPath string
}

// welcomeStore is what the welcome page reads.
type welcomeStore interface {
	ListUsers(ctx context.Context, q directory.UserQuery) ([]directory.User, int, error)
	GetSyncState(ctx context.Context, userID string) (directory.SyncState, error)
}

// welcome serves the page a login lands on by default: who is signed in (from the SP's
// session cookie) and whether their worker is in place. Without a session it says so (401).
func welcome(sp *saml.SP, store welcomeStore, log *zap.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		d := welcomeData{Title: "Signed in", LoginPath: saml.LoginPath}
		s, ok := sp.Session(r)
		if !ok {
			d.Title = "Not signed in"
			w.WriteHeader(http.StatusUnauthorized)
			_ = welcomePage.Execute(w, d)
			return
		}
		d.UserName, d.IdP, d.Worker = s.UserName, s.IdP, workerStatus(r.Context(), store, s.UserName, log)
		_ = welcomePage.Execute(w, d)
	}
}

func workerStatus(ctx context.Context, store welcomeStore, userName string, log *zap.Logger) string {
	users, _, err := store.ListUsers(ctx, directory.UserQuery{UserName: &userName, Limit: 1})
	if err != nil || len(users) == 0 {
		if err != nil {
			log.Warn("welcome page: read user", zap.Error(err))
		}
		return "unknown"
	}
	st, err := store.GetSyncState(ctx, users[0].ID)
	switch {
	case err != nil:
		return "unknown"
	case st.LastError != "":
		return "not updated yet (the sync will retry)"
	case st.Pending():
		return "being updated"
	case st.WorkerSID == "":
		return "none"
	default:
		return "ready"
	}
}

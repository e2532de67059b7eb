package browser_test

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/testutil/browser"
)

// fakeIdP imitates SimpleSAMLphp's pages closely enough to test LoginSSP without PHP:
// /login shows a form with #username/#password/#submit_button that posts back to the same
// URL; a wrong password shows the form again with an error; the right one answers with a
// page that POSTs a SAMLResponse to /acs by script, after delayMS (longer than the quiet
// period, so LoginSSP must not settle on it); /acs redirects to /home. Posts to /login are
// answered after delayMS too, so LoginSSP must not settle on the page it submitted from.
func fakeIdP(t *testing.T, delayMS int) *httptest.Server {
	t.Helper()
	form := func(w http.ResponseWriter, msg string) {
		fmt.Fprintf(w, `<!doctype html><html><body><p>%s</p><form method="post" action="?">
<input id="username" name="username"><input id="password" name="password" type="password">
<button id="submit_button" type="submit">Login</button></form></body></html>`, html.EscapeString(msg))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login", http.StatusFound)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			form(w, "Enter your username and password")
			return
		}
		time.Sleep(time.Duration(delayMS) * time.Millisecond) // a slow IdP: the old page stays
		if r.FormValue("username") != "alice" || r.FormValue("password") != "alicepass" {
			form(w, "Incorrect username or password")
			return
		}
		fmt.Fprintf(w, `<!doctype html><html><body onload="setTimeout(function(){document.forms[0].submit()}, %d)">
<form method="post" action="/acs"><input type="hidden" name="SAMLResponse" value="PHNhbWw+">
<noscript><button type="submit">Submit</button></noscript></form><p>Posting...</p></body></html>`, delayMS)
	})
	mux.HandleFunc("/acs", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.FormValue("SAMLResponse") == "" {
			http.Error(w, "bad ACS request", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "/home", http.StatusSeeOther)
	})
	mux.HandleFunc("/home", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><body><h1>Welcome alice</h1></body></html>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestLoginSSP(t *testing.T) {
	srv := fakeIdP(t, 700)
	b := browser.New(t)

	u, text := b.LoginSSP(t, srv.URL+"/start", "alice", "wrong")
	if u != srv.URL+"/login?" || !strings.Contains(text, "Incorrect username or password") {
		t.Errorf("wrong password: %s\n%s", u, text)
	}
	u, text = b.LoginSSP(t, "", "alice", "alicepass") // on the current page
	if u != srv.URL+"/home" || !strings.Contains(text, "Welcome alice") {
		t.Errorf("login: %s\n%s", u, text)
	}
	if pu, pt := b.Page(t); pu != u || pt != text {
		t.Errorf("Page() = %s %q", pu, pt)
	}

	// No login form on the way: the page reached is returned as is.
	u, text = b.LoginSSP(t, srv.URL+"/home", "alice", "alicepass")
	if u != srv.URL+"/home" || !strings.Contains(text, "Welcome alice") {
		t.Errorf("no form: %s\n%s", u, text)
	}

	shot := filepath.Join(t.TempDir(), "home.png")
	if err := b.Screenshot(shot); err != nil {
		t.Fatal(err)
	}
	if png, err := os.ReadFile(shot); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("screenshot: %v, %d bytes", err, len(png))
	}
}

func TestOpenAndCookies(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "c", Value: "1", Path: "/"})
		http.Redirect(w, r, "/page", http.StatusFound)
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		_, err := r.Cookie("c")
		fmt.Fprintf(w, "<p>cookie sent: %v</p>", err == nil)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := browser.New(t)
	u, text := b.Open(t, srv.URL+"/set")
	if u != srv.URL+"/page" || text != "cookie sent: true" {
		t.Errorf("Open: %s %q", u, text)
	}
	cookies, err := b.Cookies(srv.URL)
	if err != nil || len(cookies) != 1 || cookies[0].Name != "c" {
		t.Errorf("Cookies: %v %v", cookies, err)
	}
	if err := b.ClearCookies(); err != nil {
		t.Fatal(err)
	}
	if _, text := b.Open(t, srv.URL+"/page"); text != "cookie sent: false" {
		t.Errorf("after ClearCookies: %q", text)
	}
}

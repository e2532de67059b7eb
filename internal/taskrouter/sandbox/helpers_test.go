package sandbox_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	trv1 "github.com/twilio/twilio-go/rest/taskrouter/v1"
)

const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testToken   = "s3cr3tToken"
	testWS      = "WSfedcba9876543210fedcba9876543210"
)

// rewriteTransport sends what twilio-go addresses to TaskRouter to target instead.
type rewriteTransport struct {
	target *url.URL
	base   http.RoundTripper
}

func (t rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Host, "taskrouter.") && strings.HasSuffix(r.URL.Host, ".twilio.com") {
		r = r.Clone(r.Context())
		r.URL.Scheme = t.target.Scheme
		r.URL.Host = t.target.Host
		r.Host = ""
	}
	return t.base.RoundTrip(r)
}

// newTwilio returns twilio-go's TaskRouter v1 service with its requests redirected to
// serverURL, authenticating as user/pass. base, if not nil, carries the requests.
func newTwilio(t *testing.T, serverURL, user, pass string, base http.RoundTripper) *trv1.ApiService {
	t.Helper()
	// twilio-go rewrites hosts from these; keep the test independent of the environment.
	t.Setenv("TWILIO_REGION", "")
	t.Setenv("TWILIO_EDGE", "")
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(user, pass),
		HTTPClient: &http.Client{
			Transport: rewriteTransport{target: u, base: base},
			Timeout:   30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	c.SetAccountSid(user)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}).TaskrouterV1
}

// restError returns the Twilio error twilio-go made of err.
func restError(t *testing.T, err error) *twclient.TwilioRestError {
	t.Helper()
	var re *twclient.TwilioRestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *TwilioRestError", err, err)
	}
	return re
}

func wantRestError(t *testing.T, err error, status, code int) *twclient.TwilioRestError {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want HTTP %d code %d", status, code)
	}
	re := restError(t, err)
	if re.Status != status || re.Code != code {
		t.Fatalf("got HTTP %d code %d (%q), want HTTP %d code %d", re.Status, re.Code, re.Message, status, code)
	}
	if want := "https://www.twilio.com/docs/errors/"; !strings.HasPrefix(re.MoreInfo, want) {
		t.Errorf("more_info = %q, want a link under %s", re.MoreInfo, want)
	}
	return re
}

func deref[T any](t *testing.T, field string, p *T) T {
	t.Helper()
	if p == nil {
		t.Fatalf("%s is missing", field)
	}
	return *p
}

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, cmd := range [][]string{{}, {"serve"}, {"check-config"}, {"token"}, {"token", "create"}, {"token", "list"},
		{"token", "revoke"}, {"sandbox"}, {"version"}} {
		code, out, _ := run(t, append(cmd, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") || len(strings.SplitN(out, "\n", 2)[0]) < 10 {
			t.Errorf("%v --help: exit %d\n%s", cmd, code, out)
		}
	}
}

func TestCheckConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server:\n  listen: nope\n  lisen: x\nstore:\n  driver: mysql\ntwilio:\n  account_sid: AC123\n"), 0o600)
	code, out, errOut := run(t, "check-config", "--config", bad)
	if code == 0 {
		t.Fatalf("exit 0 for a bad config: %s", out)
	}
	for _, path := range []string{"server.listen", "server.lisen", "store.driver", "twilio.account_sid", "twilio.auth_token", "twilio.workspace_sid"} {
		if !strings.Contains(errOut, path) {
			t.Errorf("problem list does not name %s:\n%s", path, errOut)
		}
	}

	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("mapping:\n  file: "+filepath.Join("..", "..", "configs", "mapping.yaml")+"\n"), 0o600)
	if code, out, errOut := run(t, "check-config", "--config", good); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Errorf("good config: exit %d\n%s%s", code, out, errOut)
	}

	badMapping := filepath.Join(dir, "mapping.yaml")
	os.WriteFile(badMapping, []byte("version: 2\nfriendly_name: \"{{ .Nope }}\"\n"), 0o600)
	withBadMapping := filepath.Join(dir, "withbadmapping.yaml")
	os.WriteFile(withBadMapping, []byte("mapping:\n  file: "+badMapping+"\n"), 0o600)
	code, _, errOut = run(t, "check-config", "--config", withBadMapping)
	if code == 0 || !strings.Contains(errOut, "version") || !strings.Contains(errOut, "friendly_name") || !strings.Contains(errOut, "roles") {
		t.Errorf("bad mapping: exit %d\n%s", code, errOut)
	}
}

func TestTokenLifecycle(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fb.yaml")
	os.WriteFile(cfg, []byte("store:\n  dsn: "+filepath.Join(dir, "fb.db")+"\n"), 0o600)

	code, out, errOut := run(t, "token", "create", "--config", cfg, "--name", "okta")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if !strings.HasPrefix(secret, "fbt_") {
		t.Fatalf("last line %q is not the token", secret)
	}
	if code, _, errOut := run(t, "token", "create", "--config", cfg, "--name", "okta"); code == 0 || !strings.Contains(errOut, "okta") {
		t.Errorf("duplicate name: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "token", "create", "--config", cfg); code == 0 || !strings.Contains(errOut, "--name") {
		t.Errorf("missing name: exit %d %s", code, errOut)
	}
	code, out, _ = run(t, "token", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "okta") || !strings.Contains(out, "active") || strings.Contains(out, secret) {
		t.Errorf("list: %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "token", "revoke", "--config", cfg, "--name", "okta"); code != 0 {
		t.Errorf("revoke: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "token", "revoke", "--config", cfg, "--name", "okta"); code == 0 || !strings.Contains(errOut, "no active token") {
		t.Errorf("second revoke: %d %s", code, errOut)
	}
	if _, out, _ := run(t, "token", "list", "--config", cfg); !strings.Contains(out, "revoked") {
		t.Errorf("list after revoke:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := run(t, "version"); code != 0 || !strings.HasPrefix(out, "flexbridge ") {
		t.Errorf("version: %d %q", code, out)
	}
}

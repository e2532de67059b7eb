package mapping

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with testdata/golden/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./mapping -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file %s\n got: %s\nwant: %s", t.Name(), path, got, want)
	}
}

// prettyJSON renders v indented, without HTML escaping, ending in a newline.
func prettyJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mustParse(t testing.TB, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// Identities shared by the tests of the example mapping files.
var (
	alice = Identity{
		ID:          "u-alice",
		UserName:    "alice@example.com",
		ExternalID:  "00u1alice",
		DisplayName: "Alice Liddell",
		Name:        Name{GivenName: "Alice", FamilyName: "Liddell"},
		Emails: []Email{
			{Value: "alice.home@example.net", Type: "home"},
			{Value: "alice@example.com", Type: "work", Primary: true},
		},
		PhoneNumbers: []Phone{{Value: "+15551230001", Type: "work"}},
		Title:        "Support Engineer",
		PhotoURL:     "https://img.example.com/alice.png",
		Active:       true,
		Enterprise: Enterprise{
			EmployeeNumber: "1001", CostCenter: "CC-7", Division: "EMEA", Department: "Support",
			Manager: Manager{ID: "u-queen", DisplayName: "Queen of Hearts"},
		},
	}
	bob = Identity{
		ID:       "u-bob",
		UserName: "bob@example.com",
		Name:     Name{GivenName: "Bob", FamilyName: "Builder"},
		Emails:   []Email{{Value: "bob@example.com"}},
		Active:   true,
		Groups:   []Group{{ID: "g1", DisplayName: "Flex Admins"}, {ID: "g3", DisplayName: "flex agents"}},
	}
	carol = Identity{
		ID:          "u-carol",
		UserName:    "carol@example.com",
		DisplayName: "Carol <QA> & Co",
		Active:      true,
		Enterprise:  Enterprise{Department: "Quality"},
		Groups:      []Group{{ID: "5d3c2b1a-6e7f-4a8b-9c0d-1e2f3a4b5c02", DisplayName: "Flex Supervisors"}},
		Extra:       map[string][]string{"location": {"Lisbon"}},
	}
	dave = Identity{
		ID:       "u-dave",
		UserName: "dave@example.com",
		Active:   true,
		Groups:   []Group{{ID: "0b6f4c47-8a27-4f3e-9d8e-2a7f1f5c1a01", DisplayName: "Entra Flex Admins"}},
		Extra:    map[string][]string{"flexRole": {"Team Lead"}, "roles": {"admin"}},
	}
	erin = Identity{ID: "u-erin", UserName: "erin@example.com", Active: false,
		Groups: []Group{{ID: "g1", DisplayName: "Flex Admins"}}}
)

// fileName turns a test case name into a portable file name.
func fileName(name string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, name), "_")
}

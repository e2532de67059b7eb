package directory

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, pg string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"x = '?' AND y = ?", "x = '?' AND y = $1"},
		{"IN (?, ?, ?)", "IN ($1, $2, $3)"},
	} {
		if got := postgresDialect.rebind(tc.in); got != tc.pg {
			t.Errorf("postgres rebind(%q) = %q, want %q", tc.in, got, tc.pg)
		}
		if got := sqliteDialect.rebind(tc.in); got != tc.in {
			t.Errorf("sqlite rebind(%q) = %q, want it unchanged", tc.in, got)
		}
	}
}

func TestLimitOffset(t *testing.T) {
	for _, tc := range []struct {
		limit, offset int
		sqlite, pg    string
	}{
		{0, 0, "", ""},
		{5, 0, " LIMIT 5", " LIMIT 5"},
		{5, 10, " LIMIT 5 OFFSET 10", " LIMIT 5 OFFSET 10"},
		{0, 10, " LIMIT -1 OFFSET 10", " OFFSET 10"},
	} {
		if got := sqliteDialect.limitOffset(tc.limit, tc.offset); got != tc.sqlite {
			t.Errorf("sqlite limitOffset(%d, %d) = %q, want %q", tc.limit, tc.offset, got, tc.sqlite)
		}
		if got := postgresDialect.limitOffset(tc.limit, tc.offset); got != tc.pg {
			t.Errorf("postgres limitOffset(%d, %d) = %q, want %q", tc.limit, tc.offset, got, tc.pg)
		}
	}
}

func TestDBTimeScan(t *testing.T) {
	want := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for _, src := range []any{want.UnixMicro(), want.In(time.FixedZone("X", 3600))} {
		var d dbTime
		if err := d.Scan(src); err != nil || !d.Valid || !d.T.Equal(want) || d.T.Location() != time.UTC {
			t.Errorf("Scan(%T) = %v %v %v", src, d.T, d.Valid, err)
		}
	}
	var d dbTime
	if err := d.Scan(nil); err != nil || d.Valid || d.ptr() != nil {
		t.Errorf("Scan(nil) = %+v, %v", d, err)
	}
	if err := d.Scan("2030-01-02"); err == nil {
		t.Error("Scan(string) succeeded")
	}
}

// Both dialects must have the same steps, numbered 1, 2, 3, ...
func TestMigrationsMatch(t *testing.T) {
	names := func(d *dialect) []string {
		ms, err := d.migrations()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i, m := range ms {
			if m.version != i+1 {
				t.Fatalf("%s: migration %s has version %d, want %d", d.name, m.name, m.version, i+1)
			}
			if strings.TrimSpace(m.sql) == "" {
				t.Fatalf("%s: migration %s is empty", d.name, m.name)
			}
			out = append(out, m.name)
		}
		return out
	}
	if s, p := names(sqliteDialect), names(postgresDialect); !slices.Equal(s, p) || len(s) == 0 {
		t.Fatalf("sqlite migrations %v, postgres migrations %v", s, p)
	}
}

func TestCleanText(t *testing.T) {
	if got := cleanText("a\x00b\xffc", 0); got != "ab\uFFFDc" {
		t.Errorf("cleanText = %q", got)
	}
	// Cutting never splits a rune.
	if got := cleanText("ééé", 3); got != "é" {
		t.Errorf("cleanText cut = %q", got)
	}
}

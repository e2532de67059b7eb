package mapping

import (
	"strings"
	"testing"
)

func TestTemplateFuncs(t *testing.T) {
	id := &Identity{
		UserName: "Alice.Liddell@Example.com",
		NickName: "  ",
		Title:    "Head of Support",
		Groups:   []Group{{DisplayName: "Flex Agents"}, {DisplayName: "Sales"}},
		Extra:    map[string][]string{"skills": {"sales", "billing"}},
	}
	tests := []struct {
		src, want string
	}{
		{`{{ .NickName | default .UserName }}`, "Alice.Liddell@Example.com"},
		{`{{ .Title | default "x" }}`, "Head of Support"},
		{`{{ .UserName | lower }}`, "alice.liddell@example.com"},
		{`{{ .UserName | upper }}`, "ALICE.LIDDELL@EXAMPLE.COM"},
		{`[{{ trim "  a b  " }}]`, "[a b]"},
		{`{{ .UserName | trimSuffix "@Example.com" }}`, "Alice.Liddell"},
		{`{{ .UserName | trimPrefix "Alice." }}`, "Liddell@Example.com"},
		{`{{ .UserName | replace "." "_" }}`, "Alice_Liddell@Example_com"},
		{`{{ if .Title | contains "Support" }}yes{{ end }}`, "yes"},
		{`{{ if .Title | hasPrefix "Head" }}yes{{ end }}`, "yes"},
		{`{{ if .Title | hasSuffix "Head" }}yes{{ else }}no{{ end }}`, "no"},
		{`{{ .GroupNames | join ", " }}`, "Flex Agents, Sales"},
		{`{{ split "@" .UserName | first }}`, "Alice.Liddell"},
		{`{{ split "@" .UserName | last }}`, "Example.com"},
		{`{{ first .GroupNames }}|{{ last (index .Extra "nope") }}`, "Flex Agents|"},
		{`{{ .Title | truncate 4 }}|{{ "héllo" | truncate 2 }}|{{ "ab" | truncate 5 }}`, "Head|hé|ab"},
		{`{{ range .Groups }}{{ .DisplayName | lower }};{{ end }}`, "flex agents;sales;"},
		{`{{ range index .Extra "skills" }}<{{ . }}>{{ end }}`, "<sales><billing>"},
		{`{{ range $g := .Groups }}{{ $g.DisplayName }}{{ break }}{{ end }}`, "Flex Agents"},
		{`{{ .ExtraValue "skills" }}`, "sales"},
		{"\n  padded  \n", "padded"},
		{`{{ printf "%s <%d> %5.1f|%-4s|%%|%x" .Title 42 3.14159 "ab" 255 }}`, "Head of Support <42>   3.1|ab  |%|ff"},
		{`{{ printf "%v" .GroupNames }}`, "[Flex Agents Sales]"},
		{`{{ printf "%q" "é" }}`, `"é"`},
		{`{{ printf "no verbs" }}`, "no verbs"},
		{`{{ range .Groups }}{{ range $.GroupNames }}.{{ end }}{{ end }}`, "...."},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tmpl, err := compileTemplate("t", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := render(tmpl, id)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateFuncErrors(t *testing.T) {
	for src, want := range map[string]string{
		`{{ .UserName | replace "" "x" }}`: "empty search string",
		`{{ .UserName | truncate -1 }}`:    "negative length",
	} {
		if _, err := compileTemplate("t", src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("compileTemplate(%q) error = %v, want %q", src, err, want)
		}
	}
	if got := FuncNames(); len(got) != len(funcs) || got[0] != "contains" {
		t.Errorf("FuncNames() = %q", got)
	}
}

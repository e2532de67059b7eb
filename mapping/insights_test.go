package mapping

import (
	"strings"
	"testing"
)

func TestInsightsPolicy(t *testing.T) {
	const base = "version: 1\nfriendly_name: \"{{ .UserName }}\"\nroles:\n  default: [agent]\n%s  rules:\n" +
		"    - when: { group: \"Insights QM\" }\n      grant: [wfo.quality_manager]\n" +
		"    - when: { group: \"Flex Supervisors\" }\n      grant: [supervisor]\n"
	agentQM := Identity{ID: "u1", UserName: "a@x", Active: true, Groups: []Group{{DisplayName: "Insights QM"}}}
	supQM := agentQM
	supQM.Groups = append(supQM.Groups, Group{DisplayName: "Flex Supervisors"})
	cases := []struct {
		policy    string
		id        Identity
		roles     string
		warnWords string
	}{
		{"", agentQM, "agent,wfo.quality_manager", "wfo.quality_manager need supervisor or admin"},
		{"  insights: warn\n", agentQM, "agent,wfo.quality_manager", "agent-only"},
		{"  insights: strip\n", agentQM, "agent", "(removed)"},
		{"  insights: strip\n", supQM, "supervisor,wfo.quality_manager", ""},
		{"", supQM, "supervisor,wfo.quality_manager", ""},
	}
	for _, c := range cases {
		cfg, err := Parse([]byte(strings.Replace(base, "%s", c.policy, 1)))
		if err != nil {
			t.Fatal(err)
		}
		spec, err := cfg.Evaluate(c.id)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(spec.Roles, ","); got != c.roles {
			t.Errorf("policy %q: roles %s, want %s", c.policy, got, c.roles)
		}
		if got := strings.Join(spec.Roles, ","); got != strings.Join(spec.Attributes[RolesKey].([]string), ",") {
			t.Errorf("roles attribute %v differs from Roles %s", spec.Attributes[RolesKey], got)
		}
		if c.warnWords == "" && len(spec.Warnings) != 0 || c.warnWords != "" && (len(spec.Warnings) != 1 || !strings.Contains(spec.Warnings[0], c.warnWords)) {
			t.Errorf("policy %q: warnings %v, want one containing %q", c.policy, spec.Warnings, c.warnWords)
		}
	}
	_, err := Parse([]byte(strings.Replace(base, "%s", "  insights: ignore\n", 1)))
	if err == nil || !strings.Contains(err.Error(), "roles.insights") {
		t.Errorf("bad policy accepted: %v", err)
	}
}

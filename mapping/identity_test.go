package mapping

import (
	"slices"
	"testing"
)

func TestPrimaryEmail(t *testing.T) {
	tests := []struct {
		name   string
		emails []Email
		want   string
	}{
		{"none", nil, ""},
		{"primary wins over work", []Email{{Value: "w@x", Type: "work"}, {Value: "p@x", Type: "home", Primary: true}}, "p@x"},
		{"work wins over first", []Email{{Value: "h@x", Type: "home"}, {Value: "w@x", Type: "Work"}}, "w@x"},
		{"first otherwise", []Email{{Value: "a@x", Type: "home"}, {Value: "b@x", Type: "other"}}, "a@x"},
		{"blank entries skipped", []Email{{Value: " ", Primary: true}, {Value: "", Type: "work"}, {Value: " b@x "}}, "b@x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Identity{Emails: tt.emails}).PrimaryEmail(); got != tt.want {
				t.Errorf("PrimaryEmail() = %q, want %q", got, tt.want)
			}
			phones := make([]Phone, len(tt.emails))
			for i, e := range tt.emails {
				phones[i] = Phone(e)
			}
			if got := (Identity{PhoneNumbers: phones}).PrimaryPhone(); got != tt.want {
				t.Errorf("PrimaryPhone() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIdentityHelpers(t *testing.T) {
	id := Identity{
		Groups: []Group{{ID: "1", DisplayName: "A"}, {ID: "2", DisplayName: "B"}},
		Extra:  map[string][]string{"loc": {"Lisbon", "Porto"}, "empty": {}},
	}
	if got := id.GroupNames(); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("GroupNames() = %q", got)
	}
	for name, want := range map[string]string{"loc": "Lisbon", "empty": "", "missing": ""} {
		if got := id.ExtraValue(name); got != want {
			t.Errorf("ExtraValue(%q) = %q, want %q", name, got, want)
		}
	}
}

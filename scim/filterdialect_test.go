package scim

import "testing"

func TestNormaliseFilter(t *testing.T) {
	for in, want := range map[string]string{
		`emails[type eq "work"].value eq "a@x.com"`:              `emails[type eq "work" and value eq "a@x.com"]`,
		`emails[type eq "work" or primary eq true].value eq "a"`: `emails[type eq "work" or primary eq true].value eq "a"`,
		`id eq "u1" and manager eq "m1"`:                         `(id eq "u1" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1")`,
		`userName eq "manager@x.com"`:                            `userName eq "manager@x.com"`,
		`not (manager pr)`:                                       `not (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr)`,
	} {
		if got := normaliseFilter(in); got != want {
			t.Errorf("normaliseFilter(%s)\n got %s\nwant %s", in, got, want)
		}
	}
}

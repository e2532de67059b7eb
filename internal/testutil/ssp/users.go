package ssp

// User is one of the test users of the IdP. The list mirrors test/idp/config/authsources.php:
// change both together.
type User struct {
	Username, Password string
	// The attributes the IdP releases (NameFormat basic, under these names: uid, email,
	// displayName, groups). The NameID is Email unless Options.NameIDFormat says otherwise.
	UID, Email, DisplayName string
	// Groups is the multi-valued "groups" attribute, in the order the IdP sends it. Empty
	// means the attribute is sent with no value at all (<saml:Attribute Name="groups"/>).
	Groups []string
}

// The test users.
var (
	// Alice is in two groups: "Flex Supervisors" and "Flex Agents".
	Alice = User{
		Username: "alice", Password: "alicepass",
		UID: "alice", Email: "alice@example.com", DisplayName: "Alice Example",
		Groups: []string{"Flex Supervisors", "Flex Agents"},
	}
	// Bob is in one group: "Flex Agents".
	Bob = User{
		Username: "bob", Password: "bobpass",
		UID: "bob", Email: "bob@example.com", DisplayName: "Bob Example",
		Groups: []string{"Flex Agents"},
	}
	// Carol is in no group.
	Carol = User{
		Username: "carol", Password: "carolpass",
		UID: "carol", Email: "carol@example.com", DisplayName: "Carol Example",
	}
)

// Users returns the test users: Alice, Bob and Carol.
func Users() []User { return []User{Alice, Bob, Carol} }

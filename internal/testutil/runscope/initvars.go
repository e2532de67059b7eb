package runscope

import (
	"math/rand/v2"
	"strings"
)

// Names of the Okta suites, as in their exports' "name".
const (
	SpecSuiteName = "Okta SCIM 2.0 SPEC Test"
	CRUDSuiteName = "Okta SCIM 2.0 CRUD Test"
)

// InitialVars returns the variables that the suite's initial script sets
// (test/conformance/okta/Initial_Script_Spec.txt for SpecSuiteName,
// Initial_Script_CRUD.txt for CRUDSuiteName), computed in Go with the same
// shapes as the JavaScript:
//
//	firstname = "Runscope" + 3 random digits             e.g. Runscope042
//	lastname  = 1 random A-Z + 8 random a-z + 3 digits   e.g. Qwxkzbatm377
//	email     = firstname + lastname + "@atko.com"
//
// drawn in that order (first name first) from rnd, which stands in for
// Math.random; nil means a randomly seeded source.
//
// SPEC suite: randomGivenName=firstname, randomFamilyName=lastname,
// randomEmail=randomUsername=email, randomUsernameCaps=upper-cased email,
// InvalidUserEmail="abcdefgh@atko.com",
// UserIdThatDoesNotExist="010101001010101011001010101011".
//
// CRUD suite: okta_user_firstname, okta_user_lastname, okta_user_fullname
// ("first last"), okta_user_firstname_update (firstname + "update"),
// okta_user_fullname_update, okta_user_email, okta_user_title="Engineer",
// okta_user_primaryphone="415.123.4567".
//
// For any other suite name it returns nil. Settings that the suites expect
// from their Runscope environment (SCIMBaseURL, auth; SCIMUrl, SCIMAuth,
// oktaOrgUrl, oktaAppId, oktaToken) are not included: the caller supplies
// them.
func InitialVars(suiteName string, rnd *rand.Rand) map[string]string {
	if suiteName != SpecSuiteName && suiteName != CRUDSuiteName {
		return nil
	}
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	const (
		lower  = "abcdefghijklmnopqrstuvwxyz"
		upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		digits = "0123456789"
	)
	pick := func(b *strings.Builder, alphabet string, n int) {
		for range n {
			b.WriteByte(alphabet[rnd.IntN(len(alphabet))])
		}
	}
	var fb, lb strings.Builder
	fb.WriteString("Runscope")
	pick(&fb, digits, 3)
	pick(&lb, upper, 1)
	pick(&lb, lower, 8)
	pick(&lb, digits, 3)
	first, last := fb.String(), lb.String()
	email := first + last + "@atko.com"

	if suiteName == SpecSuiteName {
		return map[string]string{
			"randomGivenName":        first,
			"randomFamilyName":       last,
			"randomEmail":            email,
			"randomUsername":         email,
			"InvalidUserEmail":       "abcdefgh@atko.com",
			"UserIdThatDoesNotExist": "010101001010101011001010101011",
			"randomUsernameCaps":     strings.ToUpper(email),
		}
	}
	update := first + "update"
	return map[string]string{
		"okta_user_firstname":        first,
		"okta_user_lastname":         last,
		"okta_user_fullname":         first + " " + last,
		"okta_user_firstname_update": update,
		"okta_user_fullname_update":  update + " " + last,
		"okta_user_email":            email,
		"okta_user_title":            "Engineer",
		"okta_user_primaryphone":     "415.123.4567",
	}
}

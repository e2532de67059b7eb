package runscope

import (
	"crypto/sha256"
	"encoding/hex"
)

// Runscope post-response scripts are JavaScript run with the response and the
// Chai assertion library in scope. This package embeds no JavaScript engine:
// each script found in the Okta suites is recognised by the SHA-256 of its
// exact text and re-implemented in Go. Any other non-blank script is rejected
// when the suite is loaded.

// scriptFunc evaluates a script against a response and returns its failures.
type scriptFunc func(resp *response) []string

var knownScripts = map[string]scriptFunc{
	// Okta-SCIM-20-SPEC-Test.json, "Optional Test: Verify Groups endpoint".
	"c9f901ae05222fcdd31c569eb0ed76abfb6592ce2ba8f34f05c06822e43581a5": groupsScript,
}

func lookupScript(src string) (scriptFunc, bool) {
	sum := sha256.Sum256([]byte(src))
	f, ok := knownScripts[hex.EncodeToString(sum[:])]
	return f, ok
}

// groupsScript mirrors the Groups step's script, which in JavaScript:
//
//  1. parses the body with JSON.parse (a SyntaxError fails the script);
//  2. reads data.totalResults and data.Resources (a TypeError, failing the
//     script, if the body is JSON null);
//  3. if totalResults === 0, calls assert("nogroups", "No Groups found in
//     the endpoint"), which passes because a non-empty string is truthy;
//  4. else if totalResults >= 1 and Resources is an array, calls
//     assert.ok(true, ...), which passes;
//  5. otherwise asserts nothing.
//
// Neither assertion can fail, so the script fails only in steps 1 and 2.
func groupsScript(resp *response) []string {
	doc, err := resp.json()
	if err != nil {
		return []string{"script: JSON.parse(response.body) throws: " + err.Error()}
	}
	if doc == nil {
		return []string{"script: TypeError: cannot read property 'totalResults' of null"}
	}
	return nil
}

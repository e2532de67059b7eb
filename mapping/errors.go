package mapping

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one thing wrong with a mapping file.
type Problem struct {
	// Path locates the offending key, e.g. "attributes.full_name" or
	// "roles.rules[2].grant[0]". It is empty for problems with the whole file.
	Path string
	// Line is the 1-based line in the YAML source, or 0 when unknown.
	Line int
	// Message says what is wrong, for a human.
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// ValidationError is returned by Parse and LoadFile. It lists every problem
// found in the mapping file, in document order.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	switch len(e.Problems) {
	case 0:
		return "mapping: invalid mapping"
	case 1:
		b.WriteString("mapping: 1 problem: ")
	default:
		fmt.Fprintf(&b, "mapping: %d problems: ", len(e.Problems))
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// EvalError is returned by Config.Evaluate when the mapping cannot be applied
// to one identity (a template fails, the friendly name is out of range, a
// contact_uri is malformed). Path names the offending key as in Problem.
type EvalError struct {
	UserID string
	Path   string
	Err    error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("mapping: user %q: %s: %v", e.UserID, e.Path, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

var (
	// ErrAttributesTooLarge is returned (wrapped, with the size) by Merge when
	// the merged attributes exceed MaxAttributesLength characters.
	ErrAttributesTooLarge = errors.New("worker attributes too large")
	// ErrInvalidFriendlyName is wrapped by the EvalError for a friendly name
	// that renders empty or longer than MaxFriendlyNameLength.
	ErrInvalidFriendlyName = errors.New("invalid friendly name")
	// ErrInvalidContactURI is wrapped by the EvalError for a contact_uri that
	// is not client:<name>, sip:<uri> or an E.164 number.
	ErrInvalidContactURI = errors.New("invalid contact_uri")
	// ErrNoUserID is wrapped by the EvalError for an identity without ID: the
	// ownership marker needs it.
	ErrNoUserID = errors.New("identity has no ID")
)

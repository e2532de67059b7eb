package saml

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// Namespaces.
const (
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsMetadata  = "urn:oasis:names:tc:SAML:2.0:metadata"
	nsDSig      = "http://www.w3.org/2000/09/xmldsig#"
	nsXMLEnc    = "http://www.w3.org/2001/04/xmlenc#"
)

// maxXMLDepth caps element nesting. A SAML response is about 8 deep (Response, Assertion,
// Signature, SignedInfo, Reference, Transforms, Transform, InclusiveNamespaces); etree v1.7.0's
// own cap is 1024 and parse cost grows with depth before any signature is checked.
const maxXMLDepth = 32

var (
	errNotUTF8  = errors.New("the document is not UTF-8")
	errDOCTYPE  = errors.New("the document has a DOCTYPE or another markup declaration")
	errTooDeep  = errors.New("the document nests elements too deeply")
	errNotXML   = errors.New("the document is not well-formed XML")
	errManyRoot = errors.New("the document has no single root element")
)

// checkRawXML runs before any parser sees data: the bytes must be UTF-8 (so that no declared
// encoding can hide markup from this scan, and etree's pass-through charset reader has nothing
// to misread) and contain no "<!" other than a comment or CDATA section. That refuses DOCTYPE,
// and so internal subsets, entity declarations (XXE, billion laughs) and external DTDs.
func checkRawXML(data []byte) error {
	if !utf8.Valid(data) {
		return errNotUTF8
	}
	rest := data
	for {
		i := bytes.Index(rest, []byte("<!"))
		if i < 0 {
			return nil
		}
		rest = rest[i+2:]
		if !bytes.HasPrefix(rest, []byte("--")) && !bytes.HasPrefix(rest, []byte("[CDATA[")) {
			return errDOCTYPE
		}
	}
}

// parseXML reads data (already through checkRawXML) with a low depth cap, keeping duplicate
// attributes so that they can be refused rather than silently merged.
func parseXML(data []byte) (*etree.Element, error) {
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{MaxDepth: maxXMLDepth, PreserveDuplicateAttrs: true}
	if err := doc.ReadFromBytes(data); err != nil {
		if errors.Is(err, etree.ErrMaxDepth) {
			return nil, errTooDeep
		}
		return nil, errNotXML
	}
	var root *etree.Element
	for _, t := range doc.Child {
		switch t := t.(type) {
		case *etree.Element:
			if root != nil {
				return nil, errManyRoot
			}
			root = t
		case *etree.Directive:
			return nil, errDOCTYPE
		case *etree.CharData:
			if strings.TrimSpace(t.Data) != "" {
				return nil, errNotXML
			}
		}
	}
	if root == nil {
		return nil, errManyRoot
	}
	return root, nil
}

func is(el *etree.Element, ns, local string) bool {
	return el != nil && el.Tag == local && el.NamespaceURI() == ns
}

// children returns el's child elements named {ns}local.
func children(el *etree.Element, ns, local string) []*etree.Element {
	var out []*etree.Element
	for _, c := range el.ChildElements() {
		if is(c, ns, local) {
			out = append(out, c)
		}
	}
	return out
}

// only returns el's single child {ns}local, or nil when there is none or more than one.
func only(el *etree.Element, ns, local string) *etree.Element {
	if el == nil {
		return nil
	}
	cs := children(el, ns, local)
	if len(cs) != 1 {
		return nil
	}
	return cs[0]
}

// textOf is el's character data with comments skipped, as exclusive canonicalization (what the
// signature covers) and encoding/xml (what crewjam hands back) both read it: a comment injected
// into a signed NameID (user@x.com<!---->.evil.com) yields the whole signed text, never a prefix.
func textOf(el *etree.Element) string {
	var b strings.Builder
	for _, t := range el.Child {
		if cd, ok := t.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// attr returns the value of the unqualified attribute key.
func attr(el *etree.Element, key string) (string, bool) {
	for _, a := range el.Attr {
		if a.Space == "" && a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

// checkTree walks the tree under root and refuses what signature wrapping and parser
// differentials feed on: duplicate attributes, duplicate IDs, nested SAML messages or
// assertions where they do not belong, and Signature elements anywhere but as the single
// direct child of an element sigParent allows.
func checkTree(root *etree.Element, sigParent func(*etree.Element) bool) *failure {
	ids := map[string]bool{}
	assertionsHere := is(root, nsProtocol, "Response")
	var walk func(el *etree.Element) *failure
	walk = func(el *etree.Element) *failure {
		seen := make(map[[2]string]bool, len(el.Attr))
		for _, a := range el.Attr {
			k := [2]string{a.Space, a.Key}
			if seen[k] {
				return malformed("duplicate_attribute", "element %s repeats attribute %s", el.Tag, a.Key)
			}
			seen[k] = true
			if a.Space == "" && (a.Key == "ID" || a.Key == "Id" || a.Key == "id") {
				if ids[a.Value] {
					return rejected("duplicate_id", "two elements carry the ID %q", truncate(a.Value, 80))
				}
				ids[a.Value] = true
			}
		}
		sigs := 0
		for _, c := range el.ChildElements() {
			switch {
			case is(c, nsDSig, "Signature"):
				sigs++
				if sigs > 1 || !sigParent(el) {
					return rejected("signature_misplaced", "a Signature inside %s", el.Tag)
				}
			case is(c, nsProtocol, "Response"):
				return rejected("assertion_misplaced", "a Response inside %s", el.Tag)
			case is(c, nsAssertion, "Assertion"), is(c, nsAssertion, "EncryptedAssertion"):
				if el != root || !assertionsHere {
					return rejected("assertion_misplaced", "a %s inside %s", c.Tag, el.Tag)
				}
			}
			if f := walk(c); f != nil {
				return f
			}
		}
		return nil
	}
	return walk(root)
}

// Signature algorithms accepted: RSA and ECDSA over SHA-256 or stronger. SHA-1 is refused.
var (
	allowedSignatureMethods = map[string]bool{
		dsig.RSASHA256SignatureMethod:   true,
		dsig.RSASHA384SignatureMethod:   true,
		dsig.RSASHA512SignatureMethod:   true,
		dsig.ECDSASHA256SignatureMethod: true,
		dsig.ECDSASHA384SignatureMethod: true,
		dsig.ECDSASHA512SignatureMethod: true,
	}
	allowedDigestMethods = map[string]bool{
		"http://www.w3.org/2001/04/xmlenc#sha256":       true,
		"http://www.w3.org/2001/04/xmldsig-more#sha384": true,
		"http://www.w3.org/2001/04/xmlenc#sha512":       true,
	}
	sha1Algorithms = map[string]bool{
		dsig.RSASHA1SignatureMethod:                   true,
		dsig.ECDSASHA1SignatureMethod:                 true,
		"http://www.w3.org/2000/09/xmldsig#sha1":      true,
		"http://www.w3.org/2000/09/xmldsig#dsa-sha1":  true,
		"http://www.w3.org/2000/09/xmldsig#hmac-sha1": true,
	}
	allowedTransforms = map[string]bool{
		string(dsig.EnvelopedSignatureAltorithmId):                  true,
		string(dsig.CanonicalXML10ExclusiveAlgorithmId):             true,
		string(dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId): true,
	}
	allowedCanonicalizations = map[string]bool{
		string(dsig.CanonicalXML10ExclusiveAlgorithmId):             true,
		string(dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId): true,
		string(dsig.CanonicalXML11AlgorithmId):                      true,
		string(dsig.CanonicalXML10RecAlgorithmId):                   true,
	}
)

// checkSignature vets the shape and algorithms of sig, the enveloped signature of parent: one
// SignedInfo, one SignatureValue, at most one KeyInfo and nothing else (no Object to hide a
// wrapped element in); exactly one Reference, to "#" + parent's ID; only the enveloped and
// exclusive canonicalization transforms; and SHA-256 or stronger for both digest and signature.
func checkSignature(sig, parent *etree.Element) *failure {
	var si *etree.Element
	for _, c := range sig.ChildElements() {
		switch {
		case is(c, nsDSig, "SignedInfo") && si == nil:
			si = c
		case is(c, nsDSig, "SignatureValue") && len(children(sig, nsDSig, "SignatureValue")) == 1:
		case is(c, nsDSig, "KeyInfo") && len(children(sig, nsDSig, "KeyInfo")) == 1:
		default:
			return rejected("signature_shape", "unexpected %s in a Signature", c.Tag)
		}
	}
	if si == nil || len(children(sig, nsDSig, "SignatureValue")) != 1 {
		return rejected("signature_shape", "a Signature without SignedInfo or SignatureValue")
	}
	algo := func(el *etree.Element) string {
		if el == nil {
			return ""
		}
		v, _ := attr(el, "Algorithm")
		return v
	}
	if c14n := algo(only(si, nsDSig, "CanonicalizationMethod")); !allowedCanonicalizations[c14n] {
		return rejected("signature_algorithm", "canonicalization %q", truncate(c14n, 100))
	}
	if f := checkAlgorithm(algo(only(si, nsDSig, "SignatureMethod")), allowedSignatureMethods, "signature method"); f != nil {
		return f
	}
	refs := children(si, nsDSig, "Reference")
	if len(refs) != 1 || len(si.ChildElements()) != 3 {
		return rejected("signature_shape", "SignedInfo must hold one CanonicalizationMethod, SignatureMethod and Reference")
	}
	id, _ := attr(parent, "ID")
	if uri, _ := attr(refs[0], "URI"); id == "" || uri != "#"+id {
		return rejected("signature_reference", "the signature's reference %q is not to its parent %s", truncate(uri, 100), parent.Tag)
	}
	if ts := only(refs[0], nsDSig, "Transforms"); ts != nil {
		list := ts.ChildElements()
		if len(list) > 2 {
			return rejected("signature_transform", "%d transforms", len(list))
		}
		for _, t := range list {
			if a := algo(t); !is(t, nsDSig, "Transform") || !allowedTransforms[a] {
				return rejected("signature_transform", "transform %q", truncate(a, 100))
			}
		}
	}
	return checkAlgorithm(algo(only(refs[0], nsDSig, "DigestMethod")), allowedDigestMethods, "digest method")
}

func checkAlgorithm(a string, allowed map[string]bool, what string) *failure {
	switch {
	case allowed[a]:
		return nil
	case sha1Algorithms[a]:
		return rejected("signature_sha1", "%s %s uses SHA-1", what, a)
	}
	return rejected("signature_algorithm", "%s %q is not accepted", what, truncate(a, 100))
}

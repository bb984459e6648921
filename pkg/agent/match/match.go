// Package match decides whether an HTTP request belongs to an intercept, from
// the header conditions a developer gave with the repeatable --http-match flag.
//
// Two forms are accepted:
//
//	NAME=VALUE   the header NAME has a field line whose value is exactly VALUE
//	NAME~=REGEX  the header NAME has a field line that REGEX matches in full
//
// Header names compare case-insensitively, as HTTP says they do; values
// compare byte for byte. A regular expression is anchored at both ends
// (REGEX behaves as \A(?:REGEX)\z): "alice" must not also catch "malice" or
// "alice-test" by accident, and a developer who wants a substring writes
// ".*alice.*" and says so. Go's RE2 syntax runs in time linear in the input,
// so a regex sent by a developer cannot stall the agent.
//
// When a header appears on several field lines, a term matches if any one of
// them matches; a field line is compared whole, it is not split at commas.
// A header that is absent never matches, not even NAME~=.*; NAME= matches a
// header that is present and empty.
//
// Every term must match (logical AND). A Matcher with no terms is global: the
// intercept takes every connection, whatever the protocol.
package match

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// MaxTerms bounds how many --http-match terms one intercept may carry.
	MaxTerms = 16
	// MaxRegexLen bounds the length of one regular expression, in bytes.
	MaxRegexLen = 1024
	// MaxValueLen bounds the length of one exact value, in bytes.
	MaxValueLen = 4096
	// MaxNameLen bounds the length of one header name, in bytes.
	MaxNameLen = 256
)

// Op says how a term compares a header value.
type Op uint8

const (
	// Exact compares the value byte for byte.
	Exact Op = iota + 1
	// Regex matches the value against an anchored regular expression.
	Regex
)

func (o Op) String() string {
	switch o {
	case Exact:
		return "="
	case Regex:
		return "~="
	}
	return "?"
}

// Term is one header condition.
type Term struct {
	// Name is the header name in lower case.
	Name string
	Op   Op
	// Value is the exact value, or the regular expression as written.
	Value string

	key string         // textproto canonical form of Name, the key net/http stores
	re  *regexp.Regexp // compiled, anchored; nil for Exact
}

// String returns the term in the form the CLI accepts.
func (t Term) String() string { return t.Name + t.Op.String() + t.Value }

// Matcher is a conjunction of header terms. The zero value is the global
// matcher. A Matcher is immutable and safe for concurrent use.
type Matcher struct {
	terms []Term // sorted by (Name, Op, Value), no duplicates
}

// Parse builds a Matcher from --http-match values. No values give the global
// matcher. Terms are put in a canonical order and duplicates dropped, so two
// spellings of the same condition are Equal.
func Parse(specs []string) (Matcher, error) {
	if len(specs) > MaxTerms {
		return Matcher{}, fmt.Errorf("%d --http-match values given; at most %d are allowed", len(specs), MaxTerms)
	}
	terms := make([]Term, 0, len(specs))
	for _, s := range specs {
		t, err := parseTerm(s)
		if err != nil {
			return Matcher{}, err
		}
		terms = append(terms, t)
	}
	slices.SortFunc(terms, compareTerms)
	terms = slices.CompactFunc(terms, func(a, b Term) bool { return compareTerms(a, b) == 0 })
	if len(terms) == 0 {
		terms = nil
	}
	return Matcher{terms: terms}, nil
}

// MustParse is Parse for tests and constants; it panics on error.
func MustParse(specs ...string) Matcher {
	m, err := Parse(specs)
	if err != nil {
		panic(err)
	}
	return m
}

func compareTerms(a, b Term) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if a.Op != b.Op {
		return int(a.Op) - int(b.Op)
	}
	return strings.Compare(a.Value, b.Value)
}

func parseTerm(spec string) (Term, error) {
	eq := strings.IndexByte(spec, '=')
	if eq < 0 {
		return Term{}, fmt.Errorf("--http-match %q: want NAME=VALUE (exact value) or NAME~=REGEX (regular expression matching the whole value)", spec)
	}
	name, value, op := spec[:eq], spec[eq+1:], Exact
	// '~' is a legal header-name character, so "a~=b" could in theory mean
	// the header "a~" equal to "b". Nobody names headers that way; the regex
	// reading wins.
	if strings.HasSuffix(name, "~") {
		name, op = name[:len(name)-1], Regex
	}
	if name == "" {
		return Term{}, fmt.Errorf("--http-match %q: the header name is empty; want NAME=VALUE or NAME~=REGEX", spec)
	}
	if len(name) > MaxNameLen {
		return Term{}, fmt.Errorf("--http-match %q: the header name is longer than %d bytes", truncate(spec), MaxNameLen)
	}
	if !validToken(name) {
		return Term{}, fmt.Errorf("--http-match %q: %q is not a valid HTTP header name; use letters, digits and !#$%%&'*+-.^_`|~ only, without spaces", truncate(spec), name)
	}
	// The wire form is JSON, which cannot carry invalid UTF-8 faithfully.
	if !utf8.ValidString(value) {
		return Term{}, fmt.Errorf("--http-match %q: the value is not valid UTF-8", truncate(spec))
	}
	t := Term{Name: strings.ToLower(name), Op: op, Value: value, key: textproto.CanonicalMIMEHeaderKey(name)}
	switch op {
	case Exact:
		if len(value) > MaxValueLen {
			return Term{}, fmt.Errorf("--http-match %q: the value is longer than %d bytes", truncate(spec), MaxValueLen)
		}
		if err := validValue(value); err != nil {
			return Term{}, fmt.Errorf("--http-match %q: %w", truncate(spec), err)
		}
	case Regex:
		if len(value) > MaxRegexLen {
			return Term{}, fmt.Errorf("--http-match %q: the regular expression is longer than %d bytes", truncate(spec), MaxRegexLen)
		}
		if i := strings.IndexFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			return Term{}, fmt.Errorf("--http-match %q: the regular expression holds control character %q; write it as an escape such as \\t", truncate(spec), value[i])
		}
		re, err := regexp.Compile(`\A(?:` + value + `)\z`)
		if err != nil {
			return Term{}, fmt.Errorf("--http-match %q: bad regular expression (Go RE2 syntax, matched against the whole value): %w", truncate(spec), err)
		}
		t.re = re
	}
	return t, nil
}

func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validValue rejects values no HTTP request can carry, so that a typo fails
// at the command line instead of silently never matching.
func validValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("the value holds control character %q, which no HTTP header can carry", c)
		}
	}
	if v != strings.TrimSpace(v) {
		return errors.New("the value starts or ends with white space, which HTTP strips from header values; remove it or use NAME~=REGEX")
	}
	return nil
}

// Global reports whether the matcher has no terms: the intercept takes every
// connection, HTTP or not.
func (m Matcher) Global() bool { return len(m.terms) == 0 }

// Terms returns a copy of the matcher's terms in canonical order.
func (m Matcher) Terms() []Term { return slices.Clone(m.terms) }

// Match reports whether every term matches h. A global matcher matches
// everything. Keys of h must be in canonical form, as net/http's parsers and
// Header.Set leave them; that is what makes names case-insensitive.
func (m Matcher) Match(h http.Header) bool {
	for i := range m.terms {
		if !m.terms[i].match(h) {
			return false
		}
	}
	return true
}

// MatchRequest is Match for a server request. It also sees the Host header,
// which net/http moves out of Header into r.Host.
func (m Matcher) MatchRequest(r *http.Request) bool {
	for i := range m.terms {
		t := &m.terms[i]
		if t.key == "Host" && r.Host != "" {
			if !t.matchValue(r.Host) {
				return false
			}
			continue
		}
		if !t.match(r.Header) {
			return false
		}
	}
	return true
}

func (t *Term) match(h http.Header) bool {
	for _, v := range h[t.key] {
		if t.matchValue(v) {
			return true
		}
	}
	return false
}

func (t *Term) matchValue(v string) bool {
	if t.re != nil {
		return t.re.MatchString(v)
	}
	return v == t.Value
}

// String returns the canonical form: the terms in canonical order, separated
// by spaces, each quoted with Go syntax when it holds a space, a quote or a
// non-printable character. The global matcher's String is "". It is meant
// for people; the wire form is MarshalText.
func (m Matcher) String() string {
	var b strings.Builder
	for i, t := range m.terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		s := t.String()
		if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r >= 0x7f }) {
			s = strconv.Quote(s)
		}
		b.WriteString(s)
	}
	return b.String()
}

// Equal reports whether m and o are the same condition up to term order,
// duplicates and header-name case. Two regexes are compared as written, so
// "a|b" and "b|a" are not Equal although they match the same values.
func (m Matcher) Equal(o Matcher) bool {
	return slices.EqualFunc(m.terms, o.terms, func(a, b Term) bool { return compareTerms(a, b) == 0 })
}

// MarshalText encodes the matcher for the wire as a JSON array of its terms
// in CLI form, e.g. ["x-dev=alice","x-team~=a|b"]; the global matcher is [].
// A JSON array keeps terms apart whatever their values hold.
func (m Matcher) MarshalText() ([]byte, error) {
	specs := make([]string, len(m.terms))
	for i, t := range m.terms {
		specs[i] = t.String()
	}
	return json.Marshal(specs)
}

// UnmarshalText decodes what MarshalText produced and validates it as Parse
// does, so a peer cannot smuggle in a term the CLI would refuse. Empty input
// is the global matcher.
func (m *Matcher) UnmarshalText(b []byte) error {
	var specs []string
	if len(b) > 0 {
		if err := json.Unmarshal(b, &specs); err != nil {
			return fmt.Errorf("decode header match: want a JSON array of NAME=VALUE or NAME~=REGEX strings: %w", err)
		}
	}
	p, err := Parse(specs)
	if err != nil {
		return fmt.Errorf("decode header match: %w", err)
	}
	*m = p
	return nil
}

// MarshalJSON encodes the matcher as the JSON array MarshalText produces,
// rather than as a string holding that array.
func (m Matcher) MarshalJSON() ([]byte, error) { return m.MarshalText() }

// UnmarshalJSON accepts the JSON array MarshalJSON produces, or null for the
// global matcher.
func (m *Matcher) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = Matcher{}
		return nil
	}
	return m.UnmarshalText(b)
}

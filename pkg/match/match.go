// Package match decides whether an HTTP request belongs to an intercept, from
// the conditions a developer gave with --http-match (headers), --http-path,
// --http-path-prefix, --http-path-regex and --http-method.
//
// A condition is a term. On the wire and in `kubectl tele list` every term is
// one string in one grammar:
//
//	NAME=VALUE       the header NAME has a field line whose value is exactly VALUE
//	NAME~=REGEX      the header NAME has a field line that REGEX matches in full
//	:path=PATH       the request's path is exactly PATH        (--http-path)
//	:path^=PREFIX    the request's path starts with PREFIX     (--http-path-prefix)
//	:path~=REGEX     REGEX matches the request's path in full  (--http-path-regex)
//	:method=METHOD   the request's method is exactly METHOD    (--http-method)
//
// The names :path and :method are HTTP/2's pseudo-headers, which is what the
// path and the method are in an HTTP/2 or gRPC request; a leading ':' cannot
// begin a header name, so a term is a header term or a pseudo-header term
// by its first byte and the two can never be confused. Other pseudo-headers
// are refused, and so is ^= on anything but :path (an agent of an earlier
// version refuses every ':' term with an error rather than misreading it; a
// header prefix operator it would take for a header name ending in '^').
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
// The path is the request target as the client sent it, up to and without
// the query string ('?' and what follows): for "GET /api/orders?id=1" it is
// "/api/orders", for an HTTP/2 request its :path without the query, for a
// gRPC call "/package.Service/Method", for "OPTIONS *" it is "*", and for an
// absolute-form target ("GET http://host/x HTTP/1.1", as sent to a proxy)
// the path part "/x". It is not percent-decoded and not cleaned: "/a%2Fb"
// is not "/a/b", "/api/../admin" does not start with "/admin", and
// "/caf%C3%A9" is written that way in a term (clients send it so; a term
// holding a byte that no request target may hold is refused). Comparing the
// bytes sent keeps one request from having two readings. The method is
// compared byte for byte, case-sensitively, as HTTP says: "post" is not POST.
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

// The pseudo-header names of the request's path and method.
const (
	Path   = ":path"
	Method = ":method"
)

const (
	// MaxTerms bounds how many terms (headers, path and method together)
	// one intercept may carry.
	MaxTerms = 16
	// MaxRegexLen bounds the length of one regular expression, in bytes.
	MaxRegexLen = 1024
	// MaxValueLen bounds the length of one exact value, in bytes.
	MaxValueLen = 4096
	// MaxNameLen bounds the length of one header name, and of one method,
	// in bytes.
	MaxNameLen = 256
)

// Op says how a term compares a header value.
type Op uint8

const (
	// Exact compares the value byte for byte.
	Exact Op = iota + 1
	// Regex matches the value against an anchored regular expression.
	Regex
	// Prefix matches a value that starts with the term's value (:path only).
	Prefix
)

func (o Op) String() string {
	switch o {
	case Exact:
		return "="
	case Regex:
		return "~="
	case Prefix:
		return "^="
	}
	return "?"
}

// Term is one condition on a header, the path or the method.
type Term struct {
	// Name is the header name in lower case, or Path or Method.
	Name string
	Op   Op
	// Value is the exact value, or the regular expression as written.
	Value string

	key string         // textproto canonical form of a header's Name, the key net/http stores; "" for Path and Method
	re  *regexp.Regexp // compiled, anchored; nil unless Regex
}

// String returns the term in the package's grammar.
func (t Term) String() string { return t.Name + t.Op.String() + t.Value }

// Describe says what the term selects, for people: "path starting with
// /api/", "method POST", "header x-dev=alice".
func (t Term) Describe() string {
	switch t.Name {
	case Path:
		switch t.Op {
		case Prefix:
			return "path starting with " + t.Value
		case Regex:
			return "path matching " + t.Value
		}
		return "path " + t.Value
	case Method:
		return "method " + t.Value
	}
	if t.Op == Regex {
		return "header " + t.Name + " matching " + t.Value
	}
	return "header " + t.String()
}

// Matcher is a conjunction of terms. The zero value is the global
// matcher. A Matcher is immutable and safe for concurrent use.
type Matcher struct {
	terms []Term // sorted by (Name, Op, Value), no duplicates
}

// Parse builds a Matcher from terms in the package's grammar, as the wire
// carries them. No terms give the global matcher. Terms are put in a
// canonical order (pseudo-header terms first, since ':' sorts before
// letters) and duplicates dropped, so two spellings of the same condition are
// Equal.
func Parse(specs []string) (Matcher, error) {
	if len(specs) > MaxTerms {
		return Matcher{}, fmt.Errorf("%d match terms given (--http-match, --http-path*, --http-method together); at most %d are allowed", len(specs), MaxTerms)
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
	if strings.HasPrefix(spec, ":") {
		return parsePseudo(spec)
	}
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
	// Likewise '^': "a^=b" is refused rather than read as the header "a^",
	// so that nobody mistakes it for a prefix match on a header.
	if strings.HasSuffix(name, "^") {
		return Term{}, fmt.Errorf("--http-match %q: ^= (prefix) applies to the path only (--http-path-prefix); for a header value that starts with something, use NAME~=PREFIX.*", truncate(spec))
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
		re, err := compileRegex(value)
		if err != nil {
			return Term{}, fmt.Errorf("--http-match %q: %w", truncate(spec), err)
		}
		t.re = re
	}
	return t, nil
}

// parsePseudo parses a :path or :method term.
func parsePseudo(spec string) (Term, error) {
	eq := strings.IndexByte(spec, '=')
	if eq < 0 {
		return Term{}, fmt.Errorf("match term %q: want :path=PATH, :path^=PREFIX, :path~=REGEX or :method=METHOD", truncate(spec))
	}
	name, value, op := spec[:eq], spec[eq+1:], Exact
	switch {
	case strings.HasSuffix(name, "~"):
		name, op = name[:len(name)-1], Regex
	case strings.HasSuffix(name, "^"):
		name, op = name[:len(name)-1], Prefix
	}
	t := Term{Name: name, Op: op, Value: value}
	switch {
	case name == Path:
		flag := map[Op]string{Exact: "--http-path", Prefix: "--http-path-prefix", Regex: "--http-path-regex"}[op]
		var err error
		if op == Regex {
			t.re, err = compileRegex(value)
		} else {
			err = validPath(value, op == Prefix)
		}
		if err != nil {
			return Term{}, fmt.Errorf("%s %q: %w", flag, truncate(value), err)
		}
	case name == Method && op == Exact:
		if len(value) > MaxNameLen {
			return Term{}, fmt.Errorf("--http-method %q: longer than %d bytes", truncate(value), MaxNameLen)
		}
		if !validToken(value) {
			return Term{}, fmt.Errorf("--http-method %q: not an HTTP method; a method is one word of letters, digits and !#$%%&'*+-.^_`|~, such as POST", truncate(value))
		}
	case name == Method:
		return Term{}, fmt.Errorf("match term %q: the method is compared exactly (:method=METHOD, --http-method)", truncate(spec))
	default:
		return Term{}, fmt.Errorf("match term %q: %q is not a pseudo-header this matcher knows: use :path or :method (a header name cannot start with ':'; for the authority, match the host header)", truncate(spec), name)
	}
	return t, nil
}

// compileRegex compiles a term's regular expression, anchored at both ends.
func compileRegex(value string) (*regexp.Regexp, error) {
	if len(value) > MaxRegexLen {
		return nil, fmt.Errorf("the regular expression is longer than %d bytes", MaxRegexLen)
	}
	if !utf8.ValidString(value) {
		return nil, errors.New("the regular expression is not valid UTF-8")
	}
	if i := strings.IndexFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return nil, fmt.Errorf("the regular expression holds control character %q; write it as an escape such as \\t", value[i])
	}
	re, err := regexp.Compile(`\A(?:` + value + `)\z`)
	if err != nil {
		return nil, fmt.Errorf("bad regular expression (Go RE2 syntax, matched against the whole value): %w", err)
	}
	return re, nil
}

// validPath accepts the paths a request can carry, as a client sends them
// (see the package doc), so that a term that could never match fails at the
// command line: an origin-form path, or "*" exactly.
func validPath(p string, prefix bool) error {
	switch {
	case p == "":
		return errors.New("the path is empty; a path starts with /")
	case p == "*" && !prefix:
		return nil // OPTIONS *
	case p[0] != '/':
		return errors.New("a path starts with / (the scheme and host are not part of it)")
	case len(p) > MaxValueLen:
		return fmt.Errorf("longer than %d bytes", MaxValueLen)
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '?':
			return errors.New("the query string is not compared: leave out the ? and what follows")
		case c == '#':
			return errors.New("a request's path never holds #: leave out the fragment")
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return errors.New("% must start an escape such as %2F")
			}
		case c <= ' ' || c >= 0x7f:
			return fmt.Errorf("byte %q cannot appear in a request's path; write it percent-encoded as clients send it (%%%02X)", c, c)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
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

// OnRequestLine reports whether m has a :path or :method term, which agents
// older than those terms cannot apply.
func (m Matcher) OnRequestLine() bool {
	return slices.ContainsFunc(m.terms, func(t Term) bool { return t.Name == Path || t.Name == Method })
}

// Terms returns a copy of the matcher's terms in canonical order.
func (m Matcher) Terms() []Term { return slices.Clone(m.terms) }

// Match reports whether every term matches h. A global matcher matches
// everything; a path or method term matches no bare header set (see
// MatchRequest). Keys of h must be in canonical form, as net/http's parsers
// and Header.Set leave them; that is what makes names case-insensitive.
func (m Matcher) Match(h http.Header) bool {
	for i := range m.terms {
		if t := &m.terms[i]; t.key == "" || !t.match(h) {
			return false
		}
	}
	return true
}

// MatchRequest reports whether every term matches a server request: its
// headers, its path and its method. It also sees the Host header, which
// net/http moves out of Header into r.Host.
func (m Matcher) MatchRequest(r *http.Request) bool {
	for i := range m.terms {
		t := &m.terms[i]
		var ok bool
		switch {
		case t.Name == Path:
			ok = t.matchValue(requestPath(r))
		case t.Name == Method:
			ok = t.matchValue(requestMethod(r))
		case t.key == "Host" && r.Host != "":
			ok = t.matchValue(r.Host)
		default:
			ok = t.match(r.Header)
		}
		if !ok {
			return false
		}
	}
	return true
}

// requestPath returns the path a :path term compares (see the package doc):
// the request target as sent, without its query string, not decoded. A
// request built by a client, with no RequestURI, gives the target it would
// send. An authority-form target (CONNECT host:port) has no path: "".
func requestPath(r *http.Request) string {
	target := r.RequestURI
	if target == "" && r.URL != nil {
		target = r.URL.RequestURI()
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if target == "*" || strings.HasPrefix(target, "/") {
		return target
	}
	// Absolute form, scheme://authority[/path]: an empty path is "/", as
	// RFC 9112 has a server read it.
	if _, rest, ok := strings.Cut(target, "://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:]
		}
		return "/"
	}
	return ""
}

func requestMethod(r *http.Request) string {
	if r.Method == "" {
		return http.MethodGet // as net/http's client sends it
	}
	return r.Method
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
	switch {
	case t.re != nil:
		return t.re.MatchString(v)
	case t.Op == Prefix:
		return strings.HasPrefix(v, t.Value)
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
			return fmt.Errorf("decode match: want a JSON array of match terms (NAME=VALUE, NAME~=REGEX, :path=..., ...): %w", err)
		}
	}
	p, err := Parse(specs)
	if err != nil {
		return fmt.Errorf("decode match: %w", err)
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

package match

import (
	"bufio"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		specs   []string
		want    string // String() when no error
		wantErr string // substring of the error
	}{
		{name: "none is global", specs: nil, want: ""},
		{name: "empty slice is global", specs: []string{}, want: ""},
		{name: "exact", specs: []string{"x-dev=alice"}, want: "x-dev=alice"},
		{name: "name lower-cased", specs: []string{"X-Dev=Alice"}, want: "x-dev=Alice"},
		{name: "regex", specs: []string{"x-dev~=al.*"}, want: "x-dev~=al.*"},
		{name: "value with equals", specs: []string{"x-q=a=b"}, want: "x-q=a=b"},
		{name: "regex with equals", specs: []string{"x-q~=a=b"}, want: "x-q~=a=b"},
		{name: "empty exact value", specs: []string{"x-dev="}, want: "x-dev="},
		{name: "sorted and deduplicated", specs: []string{"b=2", "a=1", "B=2"}, want: "a=1 b=2"},
		{name: "value with space quoted", specs: []string{"x-dev=alice smith"}, want: `"x-dev=alice smith"`},
		{name: "tab inside value allowed", specs: []string{"x-dev=a\tb"}, want: `"x-dev=a\tb"`},
		{name: "token punctuation in name", specs: []string{"x_dev.!#$%&'*+^`|=1"}, want: "x_dev.!#$%&'*+^`|=1"},
		{name: "max terms", specs: manyTerms(MaxTerms), want: strings.Join(sortedManyTerms(MaxTerms), " ")},

		{name: "no operator", specs: []string{"x-dev"}, wantErr: `--http-match "x-dev": want NAME=VALUE`},
		{name: "empty name", specs: []string{"=alice"}, wantErr: "header name is empty"},
		{name: "only tilde", specs: []string{"~=alice"}, wantErr: "header name is empty"},
		{name: "space in name", specs: []string{"x dev=alice"}, wantErr: "not a valid HTTP header name"},
		{name: "space around name", specs: []string{"x-dev =alice"}, wantErr: "not a valid HTTP header name"},
		{name: "colon inside name", specs: []string{"x:dev=x"}, wantErr: "not a valid HTTP header name"},
		{name: "other pseudo-header", specs: []string{":authority=x"}, wantErr: `":authority" is not a pseudo-header`},
		{name: "pseudo-header case matters", specs: []string{":PATH=/x"}, wantErr: "not a pseudo-header"},
		{name: "bare colon", specs: []string{":=x"}, wantErr: "not a pseudo-header"},
		{name: "pseudo without operator", specs: []string{":path"}, wantErr: "want :path=PATH"},
		{name: "header prefix refused", specs: []string{"x-dev^=al"}, wantErr: "applies to the path only"},
		{name: "method prefix refused", specs: []string{":method^=P"}, wantErr: "compared exactly"},
		{name: "method regex refused", specs: []string{":method~=GET|HEAD"}, wantErr: "compared exactly"},

		{name: "path exact", specs: []string{":path=/api/orders"}, want: ":path=/api/orders"},
		{name: "path prefix", specs: []string{":path^=/api/"}, want: ":path^=/api/"},
		{name: "path regex", specs: []string{":path~=/api/v[0-9]+/.*"}, want: ":path~=/api/v[0-9]+/.*"},
		{name: "path asterisk", specs: []string{":path=*"}, want: ":path=*"},
		{name: "path percent-encoded", specs: []string{":path=/caf%C3%A9"}, want: ":path=/caf%C3%A9"},
		{name: "grpc method path", specs: []string{":path=/grpc.health.v1.Health/Check"}, want: ":path=/grpc.health.v1.Health/Check"},
		{name: "method", specs: []string{":method=POST"}, want: ":method=POST"},
		{name: "method case kept", specs: []string{":method=post"}, want: ":method=post"},
		{name: "pseudo terms sort first", specs: []string{"x-dev=alice", ":path^=/api/", ":method=POST"}, want: ":method=POST :path^=/api/ x-dev=alice"},
		{name: "pseudo duplicates dropped", specs: []string{":path=/a", ":path=/a"}, want: ":path=/a"},
		{name: "path ops differ", specs: []string{":path=/a", ":path^=/a"}, want: ":path=/a :path^=/a"},

		{name: "path empty", specs: []string{":path="}, wantErr: "path is empty"},
		{name: "path prefix empty", specs: []string{":path^="}, wantErr: "path is empty"},
		{name: "path relative", specs: []string{":path=api/orders"}, wantErr: "starts with /"},
		{name: "path absolute URL", specs: []string{":path=http://x/a"}, wantErr: "starts with /"},
		{name: "path prefix asterisk", specs: []string{":path^=*"}, wantErr: "starts with /"},
		{name: "path with query", specs: []string{":path=/a?b=1"}, wantErr: "query string is not compared"},
		{name: "path with fragment", specs: []string{":path^=/a#b"}, wantErr: "never holds #"},
		{name: "path bad escape", specs: []string{":path=/a%2"}, wantErr: "escape such as %2F"},
		{name: "path bad escape hex", specs: []string{":path=/a%zz"}, wantErr: "escape such as %2F"},
		{name: "path space", specs: []string{":path=/a b"}, wantErr: "percent-encoded as clients send it (%20)"},
		{name: "path non-ascii", specs: []string{":path=/café"}, wantErr: "percent-encoded as clients send it (%C3)"},
		{name: "path too long", specs: []string{":path=/" + strings.Repeat("a", MaxValueLen)}, wantErr: "longer than 4096"},
		{name: "path bad regex", specs: []string{":path~=/a("}, wantErr: "--http-path-regex \"/a(\": bad regular expression"},
		{name: "path regex control char", specs: []string{":path~=/a\tb"}, wantErr: "control character"},
		{name: "path regex too long", specs: []string{":path~=" + strings.Repeat("a", MaxRegexLen+1)}, wantErr: "longer than 1024"},
		{name: "method empty", specs: []string{":method="}, wantErr: "--http-method \"\": not an HTTP method"},
		{name: "method with space", specs: []string{":method=GET /"}, wantErr: "not an HTTP method"},
		{name: "method too long", specs: []string{":method=" + strings.Repeat("A", MaxNameLen+1)}, wantErr: "longer than 256"},
		{name: "terms counted together", specs: append(manyTerms(MaxTerms), ":method=GET"), wantErr: "at most 16"},
		{name: "non-ascii name", specs: []string{"x-dév=a"}, wantErr: "not a valid HTTP header name"},
		{name: "leading space in value", specs: []string{"x-dev= alice"}, wantErr: "white space"},
		{name: "control char in value", specs: []string{"x-dev=a\nb"}, wantErr: "control character"},
		{name: "control char in regex", specs: []string{"x-dev~=a\nb"}, wantErr: "control character"},
		{name: "invalid utf-8", specs: []string{"x-dev=\xaf"}, wantErr: "not valid UTF-8"},
		{name: "bad regex", specs: []string{"x-dev~=a("}, wantErr: "bad regular expression"},
		{name: "regex too long", specs: []string{"x-dev~=" + strings.Repeat("a", MaxRegexLen+1)}, wantErr: "longer than 1024"},
		{name: "value too long", specs: []string{"x-dev=" + strings.Repeat("a", MaxValueLen+1)}, wantErr: "longer than 4096"},
		{name: "name too long", specs: []string{strings.Repeat("a", MaxNameLen+1) + "=1"}, wantErr: "header name is longer"},
		{name: "too many terms", specs: manyTerms(MaxTerms + 1), wantErr: "at most 16"},
		{name: "second term bad", specs: []string{"x-dev=alice", "oops"}, wantErr: `"oops"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.specs)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %q, want error containing %q", tt.specs, m, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %q, want it to contain %q", tt.specs, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.specs, err)
			}
			if got := m.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got, want := m.Global(), tt.want == ""; got != want {
				t.Errorf("Global() = %v, want %v", got, want)
			}
		})
	}
}

func manyTerms(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = "h" + string(rune('a'+i)) + "=v"
	}
	return s
}

func sortedManyTerms(n int) []string { return manyTerms(n) } // already in order

func TestMatch(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name  string
		specs []string
		h     http.Header
		want  bool
	}{
		{"global matches nothing set", nil, hdr(), true},
		{"global matches anything", nil, hdr("x-dev", "bob"), true},
		{"exact hit", []string{"x-dev=alice"}, hdr("X-Dev", "alice"), true},
		{"name case-insensitive", []string{"X-DEV=alice"}, hdr("x-dev", "alice"), true},
		{"value case-sensitive", []string{"x-dev=alice"}, hdr("x-dev", "Alice"), false},
		{"exact is not prefix", []string{"x-dev=alice"}, hdr("x-dev", "alice2"), false},
		{"absent", []string{"x-dev=alice"}, hdr("x-other", "alice"), false},
		{"any field line", []string{"x-dev=alice"}, hdr("x-dev", "bob", "x-dev", "alice"), true},
		{"field line not split at commas", []string{"x-dev=alice"}, hdr("x-dev", "bob, alice"), false},
		{"empty value present", []string{"x-dev="}, hdr("x-dev", ""), true},
		{"empty value absent", []string{"x-dev="}, hdr(), false},
		{"regex anchored start", []string{"x-dev~=alice"}, hdr("x-dev", "malice"), false},
		{"regex anchored end", []string{"x-dev~=alice"}, hdr("x-dev", "alice-test"), false},
		{"regex alternation anchored", []string{"x-dev~=alice|bob"}, hdr("x-dev", "bobby"), false},
		{"regex alternation hit", []string{"x-dev~=alice|bob"}, hdr("x-dev", "bob"), true},
		{"regex explicit substring", []string{"x-dev~=.*alice.*"}, hdr("x-dev", "malice-test"), true},
		{"regex multiline flag stays inside", []string{"x-dev~=(?m)a$"}, hdr("x-dev", "a\nb"), false},
		{"regex any absent", []string{"x-dev~=.*"}, hdr(), false},
		{"and both", []string{"x-dev=alice", "x-team~=a.*"}, hdr("x-dev", "alice", "x-team", "abc"), true},
		{"and one missing", []string{"x-dev=alice", "x-team~=a.*"}, hdr("x-dev", "alice"), false},
		{"and one wrong", []string{"x-dev=alice", "x-team~=a.*"}, hdr("x-dev", "alice", "x-team", "bcd"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := MustParse(tt.specs...)
			if got := m.Match(tt.h); got != tt.want {
				t.Errorf("%q.Match(%v) = %v, want %v", m, tt.h, got, tt.want)
			}
		})
	}
}

func TestMatchRequestHost(t *testing.T) {
	r, err := http.NewRequest(http.MethodGet, "http://alice.example/", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("X-Dev", "alice")
	tests := []struct {
		specs []string
		want  bool
	}{
		{[]string{"host=alice.example"}, true},
		{[]string{"Host~=alice\\..*", "x-dev=alice"}, true},
		{[]string{"host=bob.example"}, false},
	}
	for _, tt := range tests {
		if got := MustParse(tt.specs...).MatchRequest(r); got != tt.want {
			t.Errorf("MatchRequest with %q = %v, want %v", tt.specs, got, tt.want)
		}
	}
}

func TestMatchRequest(t *testing.T) {
	req := func(method, target string, kv ...string) *http.Request {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: svc\r\n\r\n")))
		if err != nil {
			t.Fatalf("read %s %s: %v", method, target, err)
		}
		for i := 0; i < len(kv); i += 2 {
			r.Header.Add(kv[i], kv[i+1])
		}
		return r
	}
	tests := []struct {
		name  string
		specs []string
		r     *http.Request
		want  bool
	}{
		{"path exact hit", []string{":path=/api/orders"}, req("GET", "/api/orders"), true},
		{"path exact ignores query", []string{":path=/api/orders"}, req("GET", "/api/orders?id=1&x=/"), true},
		{"path exact not prefix", []string{":path=/api/orders"}, req("GET", "/api/orders/1"), false},
		{"path exact trailing slash differs", []string{":path=/api/orders"}, req("GET", "/api/orders/"), false},
		{"path case-sensitive", []string{":path=/api/orders"}, req("GET", "/API/orders"), false},
		{"path not decoded", []string{":path=/api/orders"}, req("GET", "/api/%6Frders"), false},
		{"path encoded as sent", []string{":path=/api/%6Frders"}, req("GET", "/api/%6Frders"), true},
		{"encoded slash is not a slash", []string{":path^=/api/"}, req("GET", "/api%2Forders"), false},
		{"path not cleaned", []string{":path^=/admin"}, req("GET", "/api/../admin"), false},
		{"path empty query", []string{":path=/a"}, req("GET", "/a?"), true},
		{"prefix hit", []string{":path^=/api/"}, req("GET", "/api/orders"), true},
		{"prefix equal", []string{":path^=/api/"}, req("GET", "/api/"), true},
		{"prefix miss", []string{":path^=/api/"}, req("GET", "/api"), false},
		{"prefix is bytes, not segments", []string{":path^=/api"}, req("GET", "/apix"), true},
		{"prefix not in query", []string{":path^=/api/"}, req("GET", "/?next=/api/"), false},
		{"regex hit", []string{":path~=/api/v[0-9]+/orders"}, req("GET", "/api/v2/orders?x"), true},
		{"regex anchored", []string{":path~=/api/v[0-9]+"}, req("GET", "/api/v2/orders"), false},
		{"regex sees no query", []string{":path~=.*id=1.*"}, req("GET", "/a?id=1"), false},
		{"absolute form", []string{":path=/api/orders"}, req("GET", "http://svc:8080/api/orders?q"), true},
		{"absolute form empty path", []string{":path=/"}, req("GET", "http://svc"), true},
		{"asterisk", []string{":path=*", ":method=OPTIONS"}, req("OPTIONS", "*"), true},
		{"asterisk is no prefix", []string{":path^=/"}, req("OPTIONS", "*"), false},
		{"method hit", []string{":method=POST"}, req("POST", "/"), true},
		{"method miss", []string{":method=POST"}, req("GET", "/"), false},
		{"method case-sensitive", []string{":method=POST"}, req("post", "/"), false},
		{"method lower-case custom", []string{":method=post"}, req("post", "/"), true},
		{"method and path", []string{":method=POST", ":path^=/api/"}, req("POST", "/api/orders"), true},
		{"method and path, path wrong", []string{":method=POST", ":path^=/api/"}, req("POST", "/web/"), false},
		{"method and path, method wrong", []string{":method=POST", ":path^=/api/"}, req("PUT", "/api/orders"), false},
		{"all three", []string{":method=POST", ":path^=/api/", "x-dev=alice"}, req("POST", "/api/orders", "X-Dev", "alice"), true},
		{"all three, header missing", []string{":method=POST", ":path^=/api/", "x-dev=alice"}, req("POST", "/api/orders"), false},
		{"path term is not a header", []string{":path=/a"}, req("GET", "/b", ":path", "/a"), false},
		{"host term still works", []string{"host=svc", ":path=/a"}, req("GET", "/a"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := MustParse(tt.specs...)
			if got := m.MatchRequest(tt.r); got != tt.want {
				t.Errorf("%q.MatchRequest(%s %s) = %v, want %v", m, tt.r.Method, tt.r.RequestURI, got, tt.want)
			}
		})
	}
}

// TestMatchRequestClient covers requests built by a client (no RequestURI),
// as the router's tests and HTTP/2 code paths may hand over.
func TestMatchRequestClient(t *testing.T) {
	r, err := http.NewRequest("", "http://svc/api/caf%C3%A9?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		spec string
		want bool
	}{
		{":path=/api/caf%C3%A9", true},
		{":method=GET", true}, // an empty method is GET
		{":path^=/api/caf", true},
		{":path=/api/café", false}, // refused by Parse below
	} {
		m, err := Parse([]string{tt.spec})
		if err != nil {
			if tt.want {
				t.Errorf("Parse(%q): %v", tt.spec, err)
			}
			continue
		}
		if got := m.MatchRequest(r); got != tt.want {
			t.Errorf("%q.MatchRequest(client request) = %v, want %v", tt.spec, got, tt.want)
		}
	}
	if MustParse(":path=/api/caf%C3%A9").Match(r.Header) {
		t.Error("a path term matched a bare header set")
	}
}

func TestDescribe(t *testing.T) {
	m := MustParse("x-dev=alice", "x-team~=a|b", ":path^=/api/", ":path=/x", ":path~=/v[0-9]", ":method=POST")
	var got []string
	for _, term := range m.Terms() {
		got = append(got, term.Describe())
	}
	want := "method POST; path /x; path matching /v[0-9]; path starting with /api/; header x-dev=alice; header x-team matching a|b"
	if s := strings.Join(got, "; "); s != want {
		t.Errorf("Describe: %s\nwant      %s", s, want)
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b []string
		want bool
	}{
		{nil, nil, true},
		{nil, []string{}, true},
		{[]string{"x-dev=alice"}, []string{"X-DEV=alice"}, true},
		{[]string{"a=1", "b=2"}, []string{"b=2", "a=1", "a=1"}, true},
		{[]string{"x-dev=alice"}, []string{"x-dev=Alice"}, false},
		{[]string{"x-dev=alice"}, []string{"x-dev~=alice"}, false},
		{[]string{"x-dev=alice"}, nil, false},
		{[]string{"x-dev=alice"}, []string{"x-dev=alice", "x-team=a"}, false},
		{[]string{":path^=/api/", ":method=POST"}, []string{":method=POST", ":path^=/api/"}, true},
		{[]string{":path^=/api/"}, []string{":path=/api/"}, false},
		{[]string{":path=/a"}, []string{":path=/A"}, false},
		{[]string{":method=POST"}, []string{":method=post"}, false},
	}
	for _, tt := range tests {
		a, b := MustParse(tt.a...), MustParse(tt.b...)
		if got := a.Equal(b); got != tt.want {
			t.Errorf("%q.Equal(%q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := b.Equal(a); got != tt.want {
			t.Errorf("%q.Equal(%q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestTextRoundTrip(t *testing.T) {
	tests := []struct {
		specs []string
		wire  string
	}{
		{nil, `[]`},
		{[]string{"X-Dev=alice"}, `["x-dev=alice"]`},
		{[]string{"x-team~=a|b", "x-dev=alice smith, \"jr\""}, `["x-dev=alice smith, \"jr\"","x-team~=a|b"]`},
		{[]string{"x-dev=alice", ":path^=/api/", ":method=POST"}, `[":method=POST",":path^=/api/","x-dev=alice"]`},
	}
	for _, tt := range tests {
		m := MustParse(tt.specs...)
		b, err := m.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.wire {
			t.Errorf("MarshalText(%q) = %s, want %s", tt.specs, b, tt.wire)
		}
		var back Matcher
		if err := back.UnmarshalText(b); err != nil {
			t.Fatalf("UnmarshalText(%s): %v", b, err)
		}
		if !back.Equal(m) {
			t.Errorf("round trip of %q gave %q", m, back)
		}

		// Inside a JSON document the matcher is an array, not a string.
		type msg struct {
			Match Matcher `json:"match"`
		}
		doc, err := json.Marshal(msg{Match: m})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"match":` + tt.wire + `}`; string(doc) != want {
			t.Errorf("json.Marshal = %s, want %s", doc, want)
		}
		var got msg
		if err := json.Unmarshal(doc, &got); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", doc, err)
		}
		if !got.Match.Equal(m) {
			t.Errorf("JSON round trip of %q gave %q", m, got.Match)
		}
	}
}

func TestUnmarshalTextRejects(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{`x-dev=alice`, "want a JSON array"},
		{`{"a":1}`, "want a JSON array"},
		{`["x-dev"]`, "want NAME=VALUE"},
		{`["x-dev~=("]`, "bad regular expression"},
		{`[":path=api"]`, "starts with /"},
		{`[":scheme=http"]`, "not a pseudo-header"},
	}
	for _, tt := range tests {
		var m Matcher
		err := m.UnmarshalText([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("UnmarshalText(%s) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
		}
	}
	var m Matcher
	if err := m.UnmarshalText(nil); err != nil || !m.Global() {
		t.Errorf("UnmarshalText(empty) = %v, %q; want global", err, m)
	}
}

// FuzzParse feeds Parse with arbitrary specs (NUL-separated, as they may
// arrive from the wire) and checks the invariants the router relies on.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"x-dev=alice", "x-dev~=al.*", "a=1\x00b~=x|y", "", "=", "~=", "a~=(", "x=\t", "h~=(?i)A",
		":path=/api/orders", ":path^=/api/\x00:method=POST\x00x-dev=alice", ":path~=/v[0-9]+/.*", ":path=*", ":method=GET\x00:method=PUT",
		":path=/a%2Fb", ":path^=/%zz", ":authority=x", "x^=y", ":path^=", ":method~=G.*"} {
		f.Add(s, "alice")
	}
	f.Fuzz(func(t *testing.T, in, value string) {
		var specs []string
		if in != "" {
			specs = strings.Split(in, "\x00")
		}
		m, err := Parse(specs)
		if err != nil {
			if !m.Global() {
				t.Fatalf("Parse(%q) returned a non-zero matcher with error %v", specs, err)
			}
			return
		}
		b, err := m.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%q): %v", m, err)
		}
		var back Matcher
		if err := back.UnmarshalText(b); err != nil {
			t.Fatalf("UnmarshalText(%s) of a parsed matcher: %v", b, err)
		}
		if !back.Equal(m) || back.String() != m.String() {
			t.Fatalf("round trip %q -> %s -> %q", m, b, back)
		}
		// The same value everywhere: the round trip keeps the verdict.
		r := &http.Request{Method: value, RequestURI: value, Header: http.Header{}}
		for _, term := range m.Terms() {
			if term.Name[0] != ':' {
				r.Header.Add(term.Name, value)
			}
		}
		if m.MatchRequest(r) != back.MatchRequest(r) || m.Match(r.Header) != back.Match(r.Header) {
			t.Fatalf("round trip changed the verdict of %q on %q", m, value)
		}
		// A matcher of exact and prefix terms must match the request
		// carrying its own values, when one request can carry them all.
		r = &http.Request{Header: http.Header{}}
		own, pseudo := true, map[string]int{}
		for _, term := range m.Terms() {
			switch term.Name {
			case Path:
				r.RequestURI = term.Value
			case Method:
				r.Method = term.Value
			default:
				r.Header.Add(term.Name, term.Value)
			}
			if term.Name[0] == ':' {
				pseudo[term.Name]++
			}
			if term.Op == Regex || pseudo[term.Name] > 1 {
				own = false
			}
		}
		if own && !m.MatchRequest(r) {
			t.Fatalf("%q does not match its own values: %s %s %v", m, r.Method, r.RequestURI, r.Header)
		}
	})
}

// FuzzRequestPath reads arbitrary request lines as net/http's server does
// and checks what a :path term compares: no query string, and a term
// written as the path that was seen matches the request.
func FuzzRequestPath(f *testing.F) {
	for _, s := range []string{"GET /api/orders?id=1", "OPTIONS *", "GET http://svc:8080/a/b?c", "GET http://svc", "CONNECT svc:443",
		"POST /grpc.health.v1.Health/Check", "GET /a%2Fb/../c?", "GET /?/x", "GET //x", "PUT /caf%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(line + " HTTP/1.1\r\nHost: svc\r\n\r\n")))
		if err != nil {
			return
		}
		p := requestPath(r)
		if strings.ContainsRune(p, '?') {
			t.Fatalf("%q: path %q holds the query", line, p)
		}
		// An empty target (net/http accepts one for CONNECT) is read as a
		// client's request, whose URL says "/".
		if r.RequestURI != "" && !strings.HasPrefix(r.RequestURI, p) && !strings.Contains(r.RequestURI, "://") {
			t.Fatalf("%q: path %q is not the start of the target %q", line, p, r.RequestURI)
		}
		if validPath(p, false) != nil {
			return // a target Parse would refuse to name, such as a raw byte
		}
		specs := []string{Path + "=" + p}
		if re := regexp.QuoteMeta(p); len(re) <= MaxRegexLen {
			specs = append(specs, Path+"~="+re)
		}
		for _, spec := range specs {
			if m, err := Parse([]string{spec}); err != nil || !m.MatchRequest(r) {
				t.Fatalf("%q: %q does not match (%v)", line, spec, err)
			}
		}
		if p != "*" {
			if m := MustParse(Path + "^=" + p); !m.MatchRequest(r) {
				t.Fatalf("%q: %q does not match", line, m)
			}
		}
	})
}

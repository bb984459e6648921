package match

import (
	"encoding/json"
	"net/http"
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
		{name: "colon in name", specs: []string{":authority=x"}, wantErr: "not a valid HTTP header name"},
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
	for _, s := range []string{"x-dev=alice", "x-dev~=al.*", "a=1\x00b~=x|y", "", "=", "~=", "a~=(", "x=\t", "h~=(?i)A"} {
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
		h := http.Header{}
		for _, term := range m.Terms() {
			h.Add(term.Name, value)
		}
		if m.Match(h) != back.Match(h) {
			t.Fatalf("round trip changed the verdict of %q on %q", m, value)
		}
		// An exact matcher must match the header carrying its own values.
		h = http.Header{}
		exact := true
		for _, term := range m.Terms() {
			if term.Op != Exact {
				exact = false
			}
			h.Add(term.Name, term.Value)
		}
		if exact && !m.Match(h) {
			t.Fatalf("%q does not match its own values %v", m, h)
		}
	})
}

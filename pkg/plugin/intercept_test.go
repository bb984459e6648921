package plugin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestWarnIfNothingListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	var out bytes.Buffer
	warnIfNothingListens(context.Background(), &out, port, "intercepted requests get a 502 until your server does")
	if out.Len() != 0 {
		t.Errorf("with a listener: %q, want nothing", out.String())
	}
	l.Close()
	warnIfNothingListens(context.Background(), &out, port, "intercepted requests get a 502 until your server does")
	if !strings.Contains(out.String(), "nothing listens on localhost:") || !strings.Contains(out.String(), "502") {
		t.Errorf("without a listener: %q", out.String())
	}
}

func TestBypassNote(t *testing.T) {
	ic := func(mech teleproto.Mechanism, open, reset uint32) *teleproto.Intercept {
		return &teleproto.Intercept{Port: 8080, Mech: mech, BypassingConnections: open, ResetConnections: reset}
	}
	tests := []struct {
		name  string
		ic    *teleproto.Intercept
		reset bool
		want  []string // substrings, in order; none: an empty note
	}{
		{"nothing open", ic(teleproto.Mechanism_MECHANISM_NFTABLES, 0, 0), false, nil},
		{"nothing open, reset asked", ic(teleproto.Mechanism_MECHANISM_NFTABLES, 0, 0), true, nil},
		{"open, no reset asked", ic(teleproto.Mechanism_MECHANISM_NFTABLES, 3, 0), false, []string{"Warning: opened before the intercept, so not through the agent: 3 connections to port 8080.", "--reset-idle-connections resets the idle ones"}},
		{"one open", ic(teleproto.Mechanism_MECHANISM_NFTABLES, 1, 0), false, []string{": 1 connection to port 8080."}},
		{"all reset", ic(teleproto.Mechanism_MECHANISM_NFTABLES, 2, 2), true, []string{"  reset, idle since before the intercept: 2 connections; their clients reconnect through it"}},
		{"some busy", ic(teleproto.Mechanism_MECHANISM_NFTABLES, 3, 1), true, []string{"1 connection;", "\nWarning: busy, so not reset: 2 connections to port 8080"}},
		{"service mechanism", ic(teleproto.Mechanism_MECHANISM_SERVICE, 0, 0), true, []string{"Warning: --reset-idle-connections needs the nftables mechanism; with service,"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bypassNote(tt.ic, tt.reset)
			if len(tt.want) == 0 && got != "" {
				t.Errorf("got %q, want nothing", got)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("got %q, want it to contain %q (in order)", got, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestInterceptMatchTerms(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string // the terms sent, space-separated
		wantErr string
	}{
		{name: "none", args: nil, want: ""},
		{name: "header", args: []string{"--http-match", "x-dev=alice"}, want: "x-dev=alice"},
		{name: "path", args: []string{"--http-path", "/api/orders"}, want: ":path=/api/orders"},
		{name: "prefix", args: []string{"--http-path-prefix", "/api/"}, want: ":path^=/api/"},
		{name: "regex", args: []string{"--http-path-regex", "/api/v[0-9]+/.*"}, want: ":path~=/api/v[0-9]+/.*"},
		{name: "method", args: []string{"--http-method", "POST"}, want: ":method=POST"},
		{name: "all together", args: []string{"--http-method", "PUT", "--http-match", "x-dev=alice", "--http-path-prefix", "/api/", "--http-match", "x-team~=a|b"},
			want: "x-dev=alice x-team~=a|b :path^=/api/ :method=PUT"},
		{name: "custom lower-case method", args: []string{"--http-method", "purge"}, want: ":method=purge"},
		{name: "grpc method", args: []string{"--http-path", "/grpc.health.v1.Health/Check"}, want: ":path=/grpc.health.v1.Health/Check"},

		{name: "pseudo-header in http-match", args: []string{"--http-match", ":path=/x"}, wantErr: "a header name cannot start with ':'; for the path use --http-path"},
		{name: "header prefix", args: []string{"--http-match", "x-dev^=al"}, wantErr: "applies to the path only"},
		{name: "lower-case standard method", args: []string{"--http-method", "post"}, wantErr: "write --http-method POST"},
		{name: "method with space", args: []string{"--http-method", "GET /"}, wantErr: `--http-method "GET /": not an HTTP method`},
		{name: "relative path", args: []string{"--http-path", "api"}, wantErr: `--http-path "api": a path starts with /`},
		{name: "path with query", args: []string{"--http-path-prefix", "/a?x=1"}, wantErr: "--http-path-prefix \"/a?x=1\": the query string is not compared"},
		{name: "decoded path", args: []string{"--http-path", "/café"}, wantErr: "percent-encoded"},
		{name: "bad path regex", args: []string{"--http-path-regex", "("}, wantErr: "--http-path-regex \"(\": bad regular expression"},
		{name: "path given twice", args: []string{"--http-path", "/a", "--http-path", "/b"}, wantErr: "given twice (\"/a\", then \"/b\")"},
		{name: "method given twice", args: []string{"--http-method", "GET", "--http-method", "POST"}, wantErr: "given twice"},
		{name: "too many", args: append(strings.Fields(strings.Repeat("--http-match a=1 ", 16)), "--http-method", "GET"), wantErr: "at most 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &InterceptOptions{}
			f := pflag.NewFlagSet("intercept", pflag.ContinueOnError)
			f.SetOutput(io.Discard)
			o.addMatchFlags(f)
			err := f.Parse(tt.args)
			if err == nil {
				var terms []string
				if terms, err = o.matchTerms(); err == nil {
					if got := strings.Join(terms, " "); got != tt.want {
						t.Errorf("terms %q, want %q", got, tt.want)
					}
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDescribeMatch(t *testing.T) {
	tests := []struct {
		terms       []string
		said, shown string
	}{
		{nil, "all requests", "(all)"},
		{[]string{"x-dev=alice"}, "requests with header x-dev=alice", "x-dev=alice"},
		{[]string{"x-dev=alice", ":path^=/api/", ":method=POST"},
			"requests with method POST and path starting with /api/ and header x-dev=alice", ":method=POST,:path^=/api/,x-dev=alice"},
		{[]string{":path=/grpc.health.v1.Health/Check"}, "requests with path /grpc.health.v1.Health/Check", ":path=/grpc.health.v1.Health/Check"},
		{[]string{":path~=/v[0-9]+/.*"}, "requests with path matching /v[0-9]+/.*", ":path~=/v[0-9]+/.*"},
		// A newer manager's term this version cannot read: shown as sent.
		{[]string{":scheme=https", "x=1"}, "requests with :scheme=https and x=1", ":scheme=https,x=1"},
	}
	for _, tt := range tests {
		if got := describeMatch(tt.terms); got != tt.said {
			t.Errorf("describeMatch(%q) = %q, want %q", tt.terms, got, tt.said)
		}
		if got := matchColumn(tt.terms); got != tt.shown {
			t.Errorf("matchColumn(%q) = %q, want %q", tt.terms, got, tt.shown)
		}
	}
}

func TestInterceptValidateEnvSyntax(t *testing.T) {
	tests := []struct {
		envFile, syntax string
		want            target.EnvSyntax
		wantErr         string
	}{
		{"", "", target.EnvSyntaxDotenv, ""},
		{"", "dotenv", target.EnvSyntaxDotenv, ""},
		{"app.env", "docker", target.EnvSyntaxDocker, ""},
		{"app.sh", "sh", target.EnvSyntaxSh, ""},
		{"app.ps1", "powershell", target.EnvSyntaxPowerShell, ""},
		{"app.sh", "bash", "", `--env-syntax: unknown env syntax "bash": use dotenv, docker, sh or powershell`},
		{"", "sh", "", "--env-syntax sh is the syntax of --env-file: add --env-file FILE"},
	}
	for _, tt := range tests {
		o := &InterceptOptions{Port: "8080", EnvFile: tt.envFile, EnvSyntax: tt.syntax}
		err := o.Validate()
		switch {
		case tt.wantErr == "" && (err != nil || o.envSyntax != tt.want):
			t.Errorf("%q %q: syntax %q, error %v; want %q", tt.envFile, tt.syntax, o.envSyntax, err, tt.want)
		case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr || !errors.As(err, new(usageError))):
			t.Errorf("%q %q: error %v, want usage error %q", tt.envFile, tt.syntax, err, tt.wantErr)
		}
	}
	cmd := NewCmdIntercept(genericclioptions.NewConfigFlags(false), genericiooptions.NewTestIOStreamsDiscard())
	if f := cmd.Flags().Lookup("env-syntax"); f == nil || f.DefValue != "dotenv" {
		t.Errorf("--env-syntax flag: %+v", f)
	}
}

// TestMechanismWords: --mechanism takes the enum's words.
func TestMechanismWords(t *testing.T) {
	if got := strings.Join(mechanismWords(), " or "); got != `nftables or service` {
		t.Errorf("mechanismWords: %q", got)
	}
}

func TestInterceptValidateMechanism(t *testing.T) {
	for _, tt := range []struct {
		flag    string
		want    teleproto.Mechanism
		wantErr string
	}{
		{"", teleproto.Mechanism_MECHANISM_UNSPECIFIED, ""},
		{`nftables`, teleproto.Mechanism_MECHANISM_NFTABLES, ""},
		{`service`, teleproto.Mechanism_MECHANISM_SERVICE, ""},
		{"iptables", 0, `--mechanism "iptables": use nftables or service`},
		{"NFTABLES", 0, `--mechanism "NFTABLES": use nftables or service`},
		{"unspecified", 0, `--mechanism "unspecified": use nftables or service`},
	} {
		o := &InterceptOptions{Port: "8080", EnvSyntax: string(target.EnvSyntaxDotenv), Mechanism: tt.flag}
		err := o.Validate()
		switch {
		case tt.wantErr == "" && (err != nil || o.mech != tt.want):
			t.Errorf("--mechanism %q: %v, error %v; want %v", tt.flag, o.mech, err, tt.want)
		case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr || !errors.As(err, new(usageError))):
			t.Errorf("--mechanism %q: error %v, want usage error %q", tt.flag, err, tt.wantErr)
		}
	}
}

package plugin

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestSpeaksTLS(t *testing.T) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	tlsSrv, plain := httptest.NewTLSServer(h), httptest.NewServer(h)
	defer tlsSrv.Close()
	defer plain.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name, addr string
		want       tlsAnswer
	}{
		{"tls server", tlsSrv.Listener.Addr().String(), tlsYes},
		{"http server", plain.Listener.Addr().String(), tlsNo},
		{"silent", silent.Addr().String(), tlsUnknown},
		{"closed port", closedAddr, tlsUnknown},
	} {
		if got := speaksTLS(context.Background(), tc.addr, 300*time.Millisecond); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestValidateLocalTLS(t *testing.T) {
	o := &InterceptOptions{Port: "8443", LocalTLS: true, EnvSyntax: "dotenv"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--local-tls needs --tls-secret") {
		t.Errorf("--local-tls alone: %v", err)
	}
	o.TLSSecret = "s"
	if err := o.Validate(); err != nil {
		t.Errorf("--local-tls --tls-secret s: %v", err)
	}
}

func TestTLSNotes(t *testing.T) {
	for _, tc := range []struct {
		ic         *teleproto.Intercept
		note, list string
	}{
		{&teleproto.Intercept{}, "", ""},
		{&teleproto.Intercept{TlsSecret: "s"}, " in cleartext (the agents terminate the clients' TLS with Secret s)", " tls-secret=s"},
		{&teleproto.Intercept{TlsSecret: "s", LocalTls: true}, " over TLS (the agents terminate the clients' TLS with Secret s)", " tls-secret=s,local-tls"},
	} {
		if got := tlsNote(tc.ic); got != tc.note {
			t.Errorf("tlsNote(%v) = %q, want %q", tc.ic, got, tc.note)
		}
		if got := tlsColumn(tc.ic); got != tc.list {
			t.Errorf("tlsColumn(%v) = %q, want %q", tc.ic, got, tc.list)
		}
	}
}

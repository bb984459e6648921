package redact

import (
	"regexp"
	"strings"
	"testing"
)

const (
	jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmRlZmF1bHQ6ZWNobyJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU_-x"
	pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" when only gone matters
		gone []string
	}{
		{name: "JWT in a log line", in: "time=x level=INFO msg=\"proof\" sa=" + jwt + " ok",
			want: "time=x level=INFO msg=\"proof\" sa=[REDACTED] ok"},
		{name: "PEM private key", in: "key:\n" + pem + "\ncert follows", want: "key:\n[REDACTED]\ncert follows"},
		{name: "EC key in a JSON string", in: `{"msg":"loaded","pem":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n"}`,
			want: `{"msg":"loaded","pem":"[REDACTED]\n"}`},
		{name: "PEM key cut short", in: "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", want: "[REDACTED]"},
		{name: "certificate kept", in: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
			want: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"},
		{name: "Authorization header", in: "GET /api HTTP/1.1\r\nAuthorization: Bearer abc.def-ghi_jkl\r\nHost: x\r\n",
			want: "GET /api HTTP/1.1\r\nAuthorization: [REDACTED]\r\nHost: x\r\n"},
		{name: "Authorization in JSON", in: `{"headers":{"Authorization":"Basic dXNlcjpwYXNz","Accept":"*/*"}}`,
			want: `{"headers":{"Authorization":"[REDACTED]","Accept":"*/*"}}`},
		{name: "bearer in prose", in: "retrying with Bearer 0123456789abcdef after 401", want: "retrying with Bearer [REDACTED] after 401"},
		{name: "kubeconfig client key", in: "    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlF\n    token: sha256~abcdef\n",
			want: "    client-key-data: [REDACTED]\n    token: [REDACTED]\n"},
		{name: "JSON fields", in: `{"token":"abc123","agentToken":"ZXCV","password": "p w","clientSecret":"s","secretName":"web-tls","tokenID":"7f"}`,
			want: `{"token":"[REDACTED]","agentToken":"[REDACTED]","password": "[REDACTED]","clientSecret":"[REDACTED]","secretName":"web-tls","tokenID":"7f"}`},
		{name: "escaped JSON inside JSON", in: `{"msg":"config {\"token\":\"abc\",\"port\":8080}"}`,
			want: `{"msg":"config {\"token\":\"[REDACTED]\",\"port\":8080}"}`},
		{name: "slog text and env", in: "level=INFO msg=env TELE_AGENT_TOKEN=QWERTY234 db_password='x y' api_key=k1 TELE_AGENT_TOKEN_ID=42",
			want: "level=INFO msg=env TELE_AGENT_TOKEN=[REDACTED] db_password='[REDACTED]' api_key=[REDACTED] TELE_AGENT_TOKEN_ID=42"},
		{name: "object value left, its fields matched", in: `{"secret":{"name":"x","token":"t"}}`, want: `{"secret":{"name":"x","token":"[REDACTED]"}}`},
		{name: "nothing to redact", in: "intercept echo: 2 pods, port 8080, match x-dev=alice", want: "intercept echo: 2 pods, port 8080, match x-dev=alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := String(tt.in)
			if tt.want != "" && got != tt.want {
				t.Errorf("redacted\n %q\nto\n %q\nwant\n %q", tt.in, got, tt.want)
			}
			for _, secret := range []string{jwt, "PRIVATE KEY", "LS0tLS1CRUdJTi", "abc.def-ghi_jkl", "dXNlcjpwYXNz"} {
				if strings.Contains(got, secret) {
					t.Errorf("%q still holds %q", got, secret)
				}
			}
			if again := String(got); again != got {
				t.Errorf("not idempotent: %q became %q", got, again)
			}
		})
	}
}

var pemLine = regexp.MustCompile(`-----(?:BEGIN|END) [A-Z0-9 ]*PRIVATE KEY-----`)

func FuzzRedact(f *testing.F) {
	f.Add("Authorization: Bearer " + jwt)
	f.Add(pem)
	f.Add(`{"token":"x\"y"}`)
	f.Fuzz(func(t *testing.T, s string) {
		got := String(s)
		if pemLine.MatchString(got) {
			t.Errorf("%q keeps a private key's PEM line: %q", s, got)
		}
		if again := String(got); again != got {
			t.Errorf("not idempotent: %q became %q, then %q", s, got, again)
		}
	})
}

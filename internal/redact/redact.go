// Package redact removes credentials from text that leaves the machine:
// bearer tokens and JWTs, PEM private keys (and base64 PEM, as kubeconfig
// files carry keys), Authorization headers, and the values of fields named
// like a credential (token, password, secret, private key), in logs, JSON,
// YAML and environment lines alike. It errs on the side of removing: a
// bug report loses a Secret's name sooner than it shows a key.
package redact

import (
	"regexp"
)

// Marker replaces what is removed. It holds none of the words the rules
// look for, so redacting twice changes nothing.
const Marker = "[REDACTED]"

// rule is one pattern, and what its match becomes.
type rule struct {
	re   *regexp.Regexp
	with string
}

// field is the name of a field whose name ends like a credential's
// (token, agentToken, TELE_AGENT_TOKEN, password, client_secret,
// client-key-data, privateKey, apiKey), with its separator.
const field = `(?i)(\b[\w.-]*(?:token|password|passwd|secret|api[_-]?key|private[_-]?key|key[_-]?data)\\?["']?\s*[:=]\s*)`

var rules = []rule{
	// A PEM private key block, of any kind (RSA, EC, ENCRYPTED...), up to
	// its END line, or to the end of a text that cut it short.
	{regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`), Marker},
	// What is left of one: an END line whose block began before the text.
	{regexp.MustCompile(`-----END [A-Z0-9 ]*PRIVATE KEY-----`), Marker},
	// base64 of a PEM block ("-----BEGIN" encodes as LS0tLS1CRUdJTi):
	// kubeconfig's client-key-data, a Secret's data.
	{regexp.MustCompile(`LS0tLS1CRUdJTi[A-Za-z0-9+/=]*`), Marker},
	// A JWT (ServiceAccount and OIDC tokens): base64url header, payload
	// and signature; the header is JSON, so it starts with eyJ ({").
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*`), Marker},
	// An Authorization header's credentials, in any syntax (HTTP, JSON,
	// key=value), whatever their scheme.
	{regexp.MustCompile(`(?i)(\bauthorization\\?["']?\s*[:=]\s*\\?["']?)[^"'\\\r\n]+`), "${1}" + Marker},
	// A bearer or basic credential anywhere else.
	{regexp.MustCompile(`(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9\-._~+/]{8,}=*`), "${1}" + Marker},
	// A credential field's value, its quotes kept, so JSON stays JSON:
	// quoted inside a JSON string (\"...\"), quoted, or bare up to a
	// separator. A value that opens an object or a list is left: its
	// fields are matched each on its own.
	{regexp.MustCompile(field + `\\"(?:[^"\\]|\\[^"])*\\"`), `${1}\"` + Marker + `\"`},
	{regexp.MustCompile(field + `"(?:[^"\\]|\\.)*"`), `${1}"` + Marker + `"`},
	{regexp.MustCompile(field + `'[^'\n]*'`), `${1}'` + Marker + `'`},
	{regexp.MustCompile(field + `[^\s,;&"'{}\[\]\\]+`), "${1}" + Marker},
}

// Bytes returns b with every credential the rules find replaced by Marker.
func Bytes(b []byte) []byte {
	for _, r := range rules {
		b = r.re.ReplaceAll(b, []byte(r.with))
	}
	return b
}

// String is Bytes for a string.
func String(s string) string { return string(Bytes([]byte(s))) }

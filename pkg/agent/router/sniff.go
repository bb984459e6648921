package router

import (
	"bytes"
	"strings"
)

type proto uint8

const (
	protoUnknown proto = iota // need more bytes
	protoHTTP1
	protoH2 // HTTP/2 with prior knowledge (h2c)
	protoOther
	protoTLS // a TLS ClientHello (see sniffTLS)
)

func (p proto) String() string {
	switch p {
	case protoHTTP1:
		return "http/1.x"
	case protoH2:
		return "h2c"
	case protoOther:
		return "other"
	case protoTLS:
		return "tls"
	}
	return "unknown"
}

const (
	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// maxSniff bounds the bytes read before deciding. A request line longer
	// than this that started like HTTP is taken for HTTP.
	maxSniff     = 4096
	maxMethodLen = 32
)

// sniff classifies the first bytes of a connection: the HTTP/2 client
// preface, an HTTP/1.x request line ("TOKEN SP target SP HTTP/1.x CRLF"), or
// something else. It returns protoUnknown while b is too short to tell, and
// never for len(b) >= maxSniff.
func sniff(b []byte) proto {
	if len(b) == 0 {
		return protoUnknown
	}
	if b[0] == recordTypeHandshake {
		return sniffTLS(b)
	}
	if n := min(len(b), len(h2Preface)); string(b[:n]) == h2Preface[:n] {
		if n == len(h2Preface) {
			return protoH2
		}
		return protoUnknown
	}
	sp := -1
	for i, c := range b {
		if c == ' ' {
			sp = i
			break
		}
		if !isTokenChar(c) || i >= maxMethodLen {
			return protoOther
		}
	}
	switch {
	case sp == 0:
		return protoOther
	case sp < 0:
		return undecided(b)
	}
	rest := b[sp+1:]
	if len(rest) > 0 && !validTargetStart(rest[0]) {
		return protoOther
	}
	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 {
		// No control bytes in a request line, bar the CR before the LF.
		for i, c := range rest {
			if (c < 0x20 || c == 0x7f) && !(c == '\r' && i == len(rest)-1) {
				return protoOther
			}
		}
		return undecided(b)
	}
	line := bytes.TrimSuffix(rest[:nl], []byte("\r"))
	if bytes.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return protoOther // as the undecided prefix said (found by FuzzSniff)
	}
	if bytes.HasSuffix(line, []byte(" HTTP/1.1")) || bytes.HasSuffix(line, []byte(" HTTP/1.0")) {
		return protoHTTP1
	}
	return protoOther
}

// undecided is what sniff says about an incomplete but plausible prefix: a
// full buffer of it is taken for HTTP (a very long URL), less asks for more.
func undecided(b []byte) proto {
	if len(b) >= maxSniff {
		if bytes.IndexByte(b, ' ') > 0 {
			return protoHTTP1
		}
		return protoOther
	}
	return protoUnknown
}

// validTargetStart accepts the first byte of the four request-target forms:
// origin ("/x"), asterisk ("*"), absolute ("http://...") and authority
// ("host:443").
func validTargetStart(c byte) bool {
	return c == '/' || c == '*' || c == '[' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

//go:build linux

package resolver

import (
	"context"
	"testing"

	"github.com/godbus/dbus/v5"
)

// The D-Bus argument types must encode as resolved's method signatures
// (SetLinkDNS "ia(iay)", SetLinkDomains "ia(sb)"); a wrong struct would
// only fail at run time on a real system.
func TestDBusSignatures(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{[]dbusAddr{}, "a(iay)"},
		{[]dbusDomain{}, "a(sb)"},
		{int32(0), "i"},
	}
	for _, tt := range tests {
		if got := dbus.SignatureOf(tt.v).String(); got != tt.want {
			t.Errorf("signature of %T = %s, want %s", tt.v, got, tt.want)
		}
	}
}

func TestDetectWithoutResolved(t *testing.T) {
	if got := Detect(context.Background(), Options{Root: t.TempDir()}).Mode(); got != "resolv.conf" {
		t.Errorf("Detect on a root without systemd-resolved = %s, want resolv.conf", got)
	}
}

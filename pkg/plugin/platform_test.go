package plugin

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestCheckPlatform(t *testing.T) {
	for _, tt := range []struct {
		goos string
		want error
	}{
		{"linux", nil},
		{"darwin", nil},
		{"windows", errNativeWindows},
	} {
		if err := checkPlatform(tt.goos); !errors.Is(err, tt.want) {
			t.Errorf("checkPlatform(%q) = %v, want %v", tt.goos, err, tt.want)
		}
	}
	if got, want := errNativeWindows.Error(), "native Windows is not supported; run kubectl tele inside WSL2 (the Linux build)"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// Validate checks the platform first, and the Linux and darwin paths are
// unchanged by it.
func TestConnectValidatePlatform(t *testing.T) {
	o := &ConnectOptions{IdleTimeout: time.Minute}
	err := o.Validate()
	if runtime.GOOS == "windows" {
		if !errors.Is(err, errNativeWindows) {
			t.Fatalf("Validate() on windows = %v", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Validate() = %v", err)
	}
}

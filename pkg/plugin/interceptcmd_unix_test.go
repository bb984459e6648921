//go:build unix

package plugin

import (
	"os/exec"
	"testing"
)

// TestExecProcessStatus: a real command's exit status, and 128+N for one a
// signal ended, as a shell reports it.
func TestExecProcessStatus(t *testing.T) {
	for _, tt := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 143},
		{"kill -INT $$", 130},
	} {
		c := exec.Command("/bin/sh", "-c", tt.script)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		code, err := execProcess{c}.Wait()
		if err != nil || code != tt.want {
			t.Errorf("sh -c %q: %d, %v; want %d", tt.script, code, err, tt.want)
		}
	}
}

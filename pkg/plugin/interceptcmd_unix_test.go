//go:build unix

package plugin

import (
	"os"
	"os/exec"
	"syscall"
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

// TestCommandSignalled: a real command gets the signal kubectl tele got,
// handles it as it decides, and its status is the result.
func TestCommandSignalled(t *testing.T) {
	c := exec.Command("/bin/sh", "-c", `trap 'kill $!; exit 7' TERM; echo ready; sleep 30 & wait`)
	forward := commandGroup(c)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// The trap is set once the script prints.
	if _, err := out.Read(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	code, err := superviseCommand(execProcess{c}, sigs, forward)
	if err != nil || code != 7 {
		t.Errorf("status %d, %v; want 7, the trap's", code, err)
	}
}

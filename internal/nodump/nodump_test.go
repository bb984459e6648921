//go:build linux

package nodump

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestSet: a process made non-dumpable keeps its environment from another
// process of its uid without CAP_SYS_PTRACE, which could read it before.
// The child is this test binary, run again with a variable to hide.
func TestSet(t *testing.T) {
	if os.Getenv("NODUMP_CHILD") != "" {
		if os.Getenv("NODUMP_SET") != "" {
			if err := Set(); err != nil {
				os.Exit(3)
			}
		}
		os.Stdout.WriteString("ready\n")
		var b [1]byte
		os.Stdin.Read(b[:]) // until the parent closes it
		os.Exit(0)
	}
	for _, set := range []bool{false, true} {
		env := append(os.Environ(), "NODUMP_CHILD=1", "NODUMP_SECRET=s3cr3t-value")
		if set {
			env = append(env, "NODUMP_SET=1")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestSet$")
		if os.Geteuid() == 0 {
			// A reader needs all the child's capabilities too: neither has any.
			cmd = exec.Command(setpriv(t), "--inh-caps=-all", "--bounding-set=-all", "--", os.Args[0], "-test.run=^TestSet$")
		}
		cmd.Env = env
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
			t.Fatalf("child: %q %v", buf, err)
		}
		// Read as a process of the same uid: this one, as an ordinary user;
		// as root, cat run with no capabilities.
		data, err := readEnviron(t, cmd.Process.Pid)
		in.Close()
		cmd.Wait()
		got := strings.Contains(string(data), "s3cr3t-value")
		if set && (got || err == nil) {
			t.Errorf("non-dumpable: environ read (%v), want it refused", err)
		}
		if !set && !got {
			t.Errorf("dumpable: environ not read (%v): the test proves nothing", err)
		}
	}
}

func readEnviron(t *testing.T, pid int) ([]byte, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/environ"
	if os.Geteuid() != 0 {
		return os.ReadFile(path)
	}
	return exec.Command(setpriv(t), "--inh-caps=-all", "--bounding-set=-all", "--", "cat", path).Output()
}

func setpriv(t *testing.T) string {
	p, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("root, and no setpriv to drop capabilities with")
	}
	return p
}

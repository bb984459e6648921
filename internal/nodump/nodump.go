// Package nodump makes the traffic agent's process non-dumpable, so that
// the app it sits beside cannot read the agent's token from /proc.
//
// The agent gets its token in its environment (an ephemeral container can
// mount no volume of its own, and has no other credential to fetch it
// with), and the kernel keeps the environment the process started with in
// its memory: os.Unsetenv clears Go's copy, not /proc/PID/environ. In a pod
// with shareProcessNamespace: true the app's processes see the agent's, and
// an app running as root (as the NET_ADMIN agent must: the runtime grants
// capabilities to uid 0 only) passes the same-uid check. A non-dumpable
// process's /proc/PID/environ, mem, maps and fd links are refused to every
// other process that lacks CAP_SYS_PTRACE (on Linux 6.x also
// CAP_SYS_ADMIN or CAP_PERFMON, which imply it for reading): none of them
// is in a container's default set, so only an app its pod already trusts
// with ptrace or the node itself can read it. Checked on Linux 6.18: an
// uid-0 reader with the container runtime's default capabilities is
// refused. Running the agent as another uid would add nothing that this
// does not give, and the NET_ADMIN agent cannot.
//
// Go runs its runtime and the init functions of the packages this one does
// not depend on before it can act, a few milliseconds in which the
// process is still dumpable. The image closes that window: it holds the
// binary execute-only (mode 0111), and the kernel makes a process whose
// executable its caller cannot read non-dumpable from execve on (the
// agent's container has neither CAP_DAC_OVERRIDE nor CAP_DAC_READ_SEARCH).
// This package is for the images built otherwise, and says so if it fails.
package nodump

import "os"

// AgentCommand is the subcommand that runs the agent: init acts only for it.
const AgentCommand = "agent"

func init() {
	if len(os.Args) > 1 && os.Args[1] == AgentCommand {
		_ = Set() // the agent's command calls Set again, and fails if it does
	}
}

// Set makes the calling process non-dumpable.
func Set() error { return set() }

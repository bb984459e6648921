package teleproto

import "fmt"

// CurrentControlVersion is the version of the Daemon service (control.proto)
// this build speaks: plugin to daemon.
const CurrentControlVersion = ControlVersion_CONTROL_VERSION_1

// TrailerDaemon is gRPC trailer metadata the daemon sets on every answer
// of the Daemon service, success or error. gRPC reports a socket nobody
// answers on and a manager the daemon cannot reach (whose status the daemon
// passes through) with the same code, Unavailable: the trailer tells the
// plugin that the daemon itself answered. Its value is the daemon's
// ControlVersion, in decimal.
const TrailerDaemon = "x-tele-daemon"

// CurrentHelperVersion is the version of HelperRequest (helper.proto) this
// build speaks: daemon (through the plugin) to the privileged helper, which
// refuses any other (see device.CheckRequest).
const CurrentHelperVersion = HelperVersion_HELPER_VERSION_1

// phaseLabels are the names kubectl tele status shows, in text and in
// -o json, which scripts read: shorter than the enum's.
var phaseLabels = map[ConnectPhase]string{
	ConnectPhase_CONNECT_PHASE_STARTING:           "starting",
	ConnectPhase_CONNECT_PHASE_WAITING_FOR_DEVICE: "waiting-for-device",
	ConnectPhase_CONNECT_PHASE_CONNECTED:          "connected",
	ConnectPhase_CONNECT_PHASE_RECONNECTING:       "reconnecting",
	ConnectPhase_CONNECT_PHASE_ENDING:             "ending",
	ConnectPhase_CONNECT_PHASE_FAILED:             "failed",
	ConnectPhase_CONNECT_PHASE_DISCONNECTED:       "disconnected",
}

// Label is the phase as kubectl tele status shows it ("waiting-for-device");
// a phase this build has no name for (a newer daemon's) is its number.
func (p ConnectPhase) Label() string {
	if l, ok := phaseLabels[p]; ok {
		return l
	}
	return fmt.Sprintf("phase-%d", int32(p))
}

package managerclient

import (
	"fmt"
	"strings"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// JobState is what Ensure found of the manager's Job in the namespace.
type JobState int

const (
	// JobNone: there is no manager Job.
	JobNone JobState = iota + 1
	// JobRunning: the Job has not finished; its pod serves or is starting.
	JobRunning
	// JobFinished: the Job completed (its manager idled out) or failed; its
	// TTL has not removed it yet.
	JobFinished
	// JobDeleting: the Job has a deletion timestamp.
	JobDeleting
)

func (s JobState) String() string {
	switch s {
	case JobNone:
		return "none"
	case JobRunning:
		return "running"
	case JobFinished:
		return "finished"
	case JobDeleting:
		return "being deleted"
	}
	return fmt.Sprintf("JobState(%d)", int(s))
}

// Action is what Ensure does with the manager it found.
type Action int

const (
	// ActionStart: there is no manager; start ours.
	ActionStart Action = iota + 1
	// ActionUse: a manager of this very version runs; use it.
	ActionUse
	// ActionUseOtherVersion: a manager of another build that speaks our
	// protocol runs; use it, and tell the user so.
	ActionUseOtherVersion
	// ActionReplace: the Job there serves nobody (finished, being deleted, or
	// incompatible with no session): delete it, wait until it is gone and
	// start ours.
	ActionReplace
	// ActionRefuse: an incompatible manager that has, or may have, sessions:
	// leave it alone and say what to do.
	ActionRefuse
)

func (a Action) String() string {
	switch a {
	case ActionStart:
		return "start"
	case ActionUse:
		return "use"
	case ActionUseOtherVersion:
		return "use-other-version"
	case ActionReplace:
		return "replace"
	case ActionRefuse:
		return "refuse"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// SessionsUnknown is Found.Sessions when the manager could not be asked: it
// may be in use.
const SessionsUnknown = -1

// Self is the client's side of the decision: this build.
type Self struct {
	Version  string
	Protocol teleproto.ProtocolVersion
}

// Found is the manager Job Ensure found.
type Found struct {
	State JobState
	// Annotations are the Job's; teleproto.AnnotationVersion and
	// teleproto.AnnotationProtocol may be missing (a manager from before
	// they existed) or, for the protocol, unreadable.
	Annotations map[string]string
	// Sessions is how many sessions the manager holds, or SessionsUnknown.
	Sessions int
}

// Decision is what Decide chose, with what it read from the Job.
type Decision struct {
	Action Action
	// The manager's build version ("" when the Job does not say) and the
	// protocol it speaks (UNSPECIFIED when its annotation is unreadable).
	ManagerVersion  string
	ManagerProtocol teleproto.ProtocolVersion
	// Sessions is Found.Sessions.
	Sessions int
	// Why is a phrase for progress and logs.
	Why string
}

// Decide chooses what to do with the manager Job found in a namespace. It
// does no I/O. Only a running Job's annotations and sessions matter:
//
//	state          protocol      version    sessions      action
//	none           -             -          -             Start
//	finished       -             -          -             Replace
//	being deleted  -             -          -             Replace (nothing to delete: wait, start)
//	running        same          same       -             Use
//	running        same          other/none -             UseOtherVersion
//	running        other/bad     -          0             Replace
//	running        other/bad     -          >0 / unknown  Refuse
//
// A Job without the protocol annotation speaks no protocol this build
// knows (UNSPECIFIED).
func Decide(self Self, f Found) Decision {
	d := Decision{Sessions: f.Sessions}
	d.ManagerVersion, d.ManagerProtocol = jobVersions(f.Annotations)
	switch f.State {
	case JobNone:
		d.Action, d.Why = ActionStart, "no manager runs"
		return d
	case JobFinished:
		d.Action, d.Why = ActionReplace, "the manager Job has finished"
		return d
	case JobDeleting:
		d.Action, d.Why = ActionReplace, "the manager Job is being deleted"
		return d
	}
	switch {
	case d.ManagerProtocol == self.Protocol && d.ManagerVersion == self.Version:
		d.Action, d.Why = ActionUse, "the manager is of this version"
	case d.ManagerProtocol == self.Protocol:
		d.Action, d.Why = ActionUseOtherVersion, "the manager is of another version that speaks this protocol"
	case f.Sessions == 0:
		d.Action, d.Why = ActionReplace, "the manager speaks another protocol and has no session"
	default:
		d.Action, d.Why = ActionRefuse, "the manager speaks another protocol and may be in use"
	}
	return d
}

// jobVersions reads a manager Job's version and protocol annotations.
func jobVersions(annotations map[string]string) (string, teleproto.ProtocolVersion) {
	v := annotations[teleproto.AnnotationVersion]
	p, err := teleproto.ParseProtocol(annotations[teleproto.AnnotationProtocol])
	if err != nil {
		return v, teleproto.ProtocolVersion_PROTOCOL_VERSION_UNSPECIFIED
	}
	return v, p
}

// IncompatibleError says that the manager in a namespace speaks another
// protocol than this client, and what to do about it.
type IncompatibleError struct {
	Namespace       string
	ClientVersion   string
	ClientProtocol  teleproto.ProtocolVersion
	ManagerVersion  string
	ManagerProtocol teleproto.ProtocolVersion
	// Sessions is how many sessions the manager has, or SessionsUnknown.
	Sessions int
}

func (e *IncompatibleError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the traffic manager in namespace %s is %s, which kubectl-tele %s (protocol %d) cannot talk to",
		e.Namespace, describeManager(e.ManagerVersion, e.ManagerProtocol), orUnknown(e.ClientVersion), int32(e.ClientProtocol))
	switch {
	case e.Sessions == SessionsUnknown:
		b.WriteString("; it may be in use (its sessions could not be counted), so it was left running")
	case e.Sessions == 1:
		b.WriteString("; it has 1 session, so it was left running")
	case e.Sessions > 1:
		fmt.Fprintf(&b, "; it has %d sessions, so it was left running", e.Sessions)
	}
	use := "a kubectl-tele of the manager's version"
	if e.ManagerVersion != "" {
		use = "kubectl-tele " + e.ManagerVersion
	}
	fmt.Fprintf(&b, ": connect with %s, or, once its users have quit, run kubectl tele uninstall -n %s and connect again to start a manager of this version",
		use, e.Namespace)
	return b.String()
}

func describeManager(version string, p teleproto.ProtocolVersion) string {
	proto := "an unknown protocol"
	if p != teleproto.ProtocolVersion_PROTOCOL_VERSION_UNSPECIFIED {
		proto = fmt.Sprintf("protocol %d", int32(p))
	}
	return fmt.Sprintf("version %s (%s)", orUnknown(version), proto)
}

func orUnknown(v string) string {
	if v == "" {
		return "unknown"
	}
	return v
}

// incompatible is the error for a Refuse decision.
func (d Decision) incompatible(self Self, ns string) *IncompatibleError {
	return &IncompatibleError{
		Namespace: ns, ClientVersion: self.Version, ClientProtocol: self.Protocol,
		ManagerVersion: d.ManagerVersion, ManagerProtocol: d.ManagerProtocol, Sessions: d.Sessions,
	}
}

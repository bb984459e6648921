package managerclient

import (
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestDecide(t *testing.T) {
	self := Self{Version: "v0.5.0", Protocol: teleproto.ProtocolVersion(1)}
	ann := func(version, protocol string) map[string]string {
		return map[string]string{teleproto.AnnotationVersion: version, teleproto.AnnotationProtocol: protocol}
	}
	unannotated := map[string]string{teleproto.AnnotationVersion: "v0.4.0"} // no protocol annotation
	tests := []struct {
		name         string
		found        Found
		want         Action
		wantVersion  string
		wantProtocol teleproto.ProtocolVersion
	}{
		{name: "none", found: Found{State: JobNone, Sessions: SessionsUnknown}, want: ActionStart},

		{name: "finished, same", found: Found{State: JobFinished, Annotations: ann("v0.5.0", "1"), Sessions: SessionsUnknown},
			want: ActionReplace, wantVersion: "v0.5.0", wantProtocol: 1},
		{name: "finished, other protocol", found: Found{State: JobFinished, Annotations: ann("v9.0.0", "2"), Sessions: 4},
			want: ActionReplace, wantVersion: "v9.0.0", wantProtocol: 2},
		{name: "being deleted, same", found: Found{State: JobDeleting, Annotations: ann("v0.5.0", "1"), Sessions: 1},
			want: ActionReplace, wantVersion: "v0.5.0", wantProtocol: 1},
		{name: "being deleted, other protocol, in use", found: Found{State: JobDeleting, Annotations: ann("v9.0.0", "2"), Sessions: 3},
			want: ActionReplace, wantVersion: "v9.0.0", wantProtocol: 2},

		{name: "running, same version", found: Found{State: JobRunning, Annotations: ann("v0.5.0", "1"), Sessions: SessionsUnknown},
			want: ActionUse, wantVersion: "v0.5.0", wantProtocol: 1},
		{name: "running, same version, in use", found: Found{State: JobRunning, Annotations: ann("v0.5.0", "1"), Sessions: 2},
			want: ActionUse, wantVersion: "v0.5.0", wantProtocol: 1},
		{name: "running, other version, same protocol", found: Found{State: JobRunning, Annotations: ann("v0.6.0", "1"), Sessions: 2},
			want: ActionUseOtherVersion, wantVersion: "v0.6.0", wantProtocol: 1},
		{name: "running, no protocol annotation", found: Found{State: JobRunning, Annotations: unannotated, Sessions: 0},
			want: ActionReplace, wantVersion: "v0.4.0"},
		{name: "running, no annotations at all, sessions unknown", found: Found{State: JobRunning, Sessions: SessionsUnknown},
			want: ActionRefuse},
		{name: "running, same version string, other protocol", found: Found{State: JobRunning, Annotations: ann("v0.5.0", "2"), Sessions: 0},
			want: ActionReplace, wantVersion: "v0.5.0", wantProtocol: 2},

		{name: "running, newer protocol, no session", found: Found{State: JobRunning, Annotations: ann("v9.0.0", "2"), Sessions: 0},
			want: ActionReplace, wantVersion: "v9.0.0", wantProtocol: 2},
		{name: "running, newer protocol, one session", found: Found{State: JobRunning, Annotations: ann("v9.0.0", "2"), Sessions: 1},
			want: ActionRefuse, wantVersion: "v9.0.0", wantProtocol: 2},
		{name: "running, newer protocol, sessions unknown", found: Found{State: JobRunning, Annotations: ann("v9.0.0", "2"), Sessions: SessionsUnknown},
			want: ActionRefuse, wantVersion: "v9.0.0", wantProtocol: 2},
		{name: "running, unreadable protocol, no session", found: Found{State: JobRunning, Annotations: ann("v9.0.0", "two"), Sessions: 0},
			want: ActionReplace, wantVersion: "v9.0.0", wantProtocol: teleproto.ProtocolVersion_PROTOCOL_VERSION_UNSPECIFIED},
		{name: "running, unreadable protocol, sessions unknown", found: Found{State: JobRunning, Annotations: ann("", ""), Sessions: SessionsUnknown},
			want: ActionRefuse, wantProtocol: teleproto.ProtocolVersion_PROTOCOL_VERSION_UNSPECIFIED},
		{name: "running, protocol 0, in use", found: Found{State: JobRunning, Annotations: ann("v9.0.0", "0"), Sessions: 5},
			want: ActionRefuse, wantVersion: "v9.0.0", wantProtocol: teleproto.ProtocolVersion_PROTOCOL_VERSION_UNSPECIFIED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(self, tt.found)
			if d.Action != tt.want || d.ManagerVersion != tt.wantVersion || d.ManagerProtocol != tt.wantProtocol || d.Sessions != tt.found.Sessions {
				t.Errorf("Decide = %v (version %q, protocol %d, sessions %d; %s), want %v (version %q, protocol %d, sessions %d)",
					d.Action, d.ManagerVersion, d.ManagerProtocol, d.Sessions, d.Why, tt.want, tt.wantVersion, tt.wantProtocol, tt.found.Sessions)
			}
			if d.Why == "" {
				t.Error("Decide gave no reason")
			}
		})
	}
}

func TestIncompatibleErrorText(t *testing.T) {
	base := IncompatibleError{Namespace: "team", ClientVersion: "v0.5.0", ClientProtocol: 1, ManagerVersion: "v9.0.0", ManagerProtocol: 2}
	tests := []struct {
		name     string
		edit     func(*IncompatibleError)
		contains []string
	}{
		{name: "sessions", edit: func(e *IncompatibleError) { e.Sessions = 3 },
			contains: []string{"namespace team", "version v9.0.0 (protocol 2)", "kubectl-tele v0.5.0 (protocol 1)", "3 sessions", "connect with kubectl-tele v9.0.0", "kubectl tele uninstall -n team"}},
		{name: "one session", edit: func(e *IncompatibleError) { e.Sessions = 1 }, contains: []string{"has 1 session,"}},
		{name: "unknown sessions", edit: func(e *IncompatibleError) { e.Sessions = SessionsUnknown }, contains: []string{"may be in use"}},
		{name: "unknown manager", edit: func(e *IncompatibleError) { e.ManagerVersion, e.ManagerProtocol, e.Sessions = "", 0, 0 },
			contains: []string{"version unknown (an unknown protocol)", "a kubectl-tele of the manager's version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			tt.edit(&e)
			msg := e.Error()
			for _, c := range tt.contains {
				if !strings.Contains(msg, c) {
					t.Errorf("%q does not mention %q", msg, c)
				}
			}
		})
	}
}

func TestActionAndStateNames(t *testing.T) {
	for _, a := range []Action{ActionStart, ActionUse, ActionUseOtherVersion, ActionReplace, ActionRefuse} {
		if strings.HasPrefix(a.String(), "Action(") {
			t.Errorf("action %d has no name", int(a))
		}
	}
	for _, s := range []JobState{JobNone, JobRunning, JobFinished, JobDeleting} {
		if strings.HasPrefix(s.String(), "JobState(") {
			t.Errorf("state %d has no name", int(s))
		}
	}
}

package teleproto

import (
	"fmt"
	"strconv"
)

// CurrentProtocolVersion is the version of the Manager service
// (manager.proto) this build speaks: laptop to manager.
const CurrentProtocolVersion = ProtocolVersion_PROTOCOL_VERSION_2

// CurrentAgentProtocolVersion is the version of AgentService (agent.proto)
// this build speaks: agent to manager.
const CurrentAgentProtocolVersion = AgentProtocolVersion_AGENT_PROTOCOL_VERSION_2

// Annotations on the manager's Job and its pod template, so that a laptop can
// tell which manager runs without reaching it. They are part of the boundary
// between builds and never change meaning: a newer client reads an older
// manager's, and the other way round.
const (
	// AnnotationVersion is the manager's build version (version.Version).
	AnnotationVersion = "kubectl-tele.io/version"
	// AnnotationProtocol is the ProtocolVersion the manager speaks, as its
	// number in decimal ("2"), which a client that does not know the name
	// still parses. A Job without it speaks no protocol this build knows.
	AnnotationProtocol = "kubectl-tele.io/protocol"
)

// gRPC header metadata the manager sends on every unary response of the
// Manager service, success or error, so that a laptop of any version can
// learn what it talks to with one call that needs no session (Remain with an
// empty session ID answers NotFound, with these headers). Like the
// annotations, these keys never change meaning across protocol versions.
const (
	// HeaderProtocol is the manager's ProtocolVersion, in decimal.
	HeaderProtocol = "x-tele-protocol"
	// HeaderVersion is the manager's build version.
	HeaderVersion = "x-tele-version"
	// HeaderSessions is how many laptop sessions the manager holds, in decimal.
	HeaderSessions = "x-tele-sessions"
)

// FormatProtocol is a ProtocolVersion as AnnotationProtocol and
// HeaderProtocol carry it.
func FormatProtocol(v ProtocolVersion) string { return strconv.Itoa(int(v)) }

// ParseProtocol reads a ProtocolVersion from AnnotationProtocol or
// HeaderProtocol. A number this build has no name for is returned as it is:
// it is simply not CurrentProtocolVersion.
func ParseProtocol(s string) (ProtocolVersion, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n <= 0 {
		return ProtocolVersion_PROTOCOL_VERSION_UNSPECIFIED, fmt.Errorf("protocol version %q: not a positive decimal number", s)
	}
	return ProtocolVersion(n), nil
}

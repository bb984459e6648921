package teleproto

import "strings"

// The string fields that carried mechanisms and states before the enums
// (CreateInterceptRequest.mechanism, Intercept.mechanism and state,
// AgentRoute.mechanism) stay on the wire for peers that predate the enums.
// These functions are the only translation between the two, and derive the
// words from the enum values' names, so that a word stands nowhere but in
// the generated code.

const (
	mechanismPrefix = "MECHANISM_"
	statePrefix     = "INTERCEPT_STATE_"
)

// Legacy is m as the deprecated string fields carry it: nftables,
// service, and "" for UNSPECIFIED (the manager chooses). It is also the
// word kubectl tele prints and its --mechanism flag takes.
func (m Mechanism) Legacy() string {
	if m == Mechanism_MECHANISM_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), mechanismPrefix))
}

// MechanismFromLegacy reads a deprecated mechanism string. The empty string
// and words this build does not know are UNSPECIFIED; ok is false for the
// latter.
func MechanismFromLegacy(s string) (m Mechanism, ok bool) {
	if s == "" {
		return Mechanism_MECHANISM_UNSPECIFIED, true
	}
	v, found := Mechanism_value[mechanismPrefix+strings.ToUpper(s)]
	if !found || s != strings.ToLower(s) || Mechanism(v) == Mechanism_MECHANISM_UNSPECIFIED {
		return Mechanism_MECHANISM_UNSPECIFIED, false
	}
	return Mechanism(v), true
}

// Legacy is st as the deprecated Intercept.state carries it: ACTIVE,
// WAITING, and "" for UNSPECIFIED.
func (st InterceptState) Legacy() string {
	if st == InterceptState_INTERCEPT_STATE_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(st.String(), statePrefix)
}

// InterceptStateFromLegacy reads a deprecated state string; "" and words
// this build does not know are UNSPECIFIED.
func InterceptStateFromLegacy(s string) InterceptState {
	if v, ok := InterceptState_value[statePrefix+s]; ok && s != "" {
		return InterceptState(v)
	}
	return InterceptState_INTERCEPT_STATE_UNSPECIFIED
}

// MechanismOf is the mechanism a message of a peer of any age says: its
// enum, or, from a peer that predates the enum, its legacy string.
func MechanismOf(m interface {
	GetMech() Mechanism
	GetMechanism() string
}) Mechanism {
	if v := m.GetMech(); v != Mechanism_MECHANISM_UNSPECIFIED {
		return v
	}
	v, _ := MechanismFromLegacy(m.GetMechanism())
	return v
}

// StateOf is the state an Intercept says, from a manager of any age.
func StateOf(ic *Intercept) InterceptState {
	if v := ic.GetInterceptState(); v != InterceptState_INTERCEPT_STATE_UNSPECIFIED {
		return v
	}
	return InterceptStateFromLegacy(ic.GetState())
}

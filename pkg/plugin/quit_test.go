package plugin

import (
	"strings"
	"testing"
)

func TestQuitMessage(t *testing.T) {
	tests := []struct {
		name     string
		running  bool
		repaired []string
		want     string
	}{
		{name: "session ended", running: true,
			want: "Disconnected: the TUN device and DNS settings are removed."},
		{name: "nothing to do", want: "Not connected."},
		{name: "repaired a dead session",
			repaired: []string{"restored the DNS settings saved in /var/lib/kubectl-tele/netns-1", "removed the TUN device tele0"},
			want:     "No session was running; repaired what an earlier session that ended without quit left: restored the DNS settings saved in /var/lib/kubectl-tele/netns-1; removed the TUN device tele0."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quitMessage(tt.running, tt.repaired); got != tt.want {
				t.Errorf("quitMessage(%t, %q) =\n  %q\nwant\n  %q", tt.running, tt.repaired, got, tt.want)
			}
		})
	}
}

func TestDisconnectedMessage(t *testing.T) {
	if got := disconnectedMessage(nil); got != "Not connected." {
		t.Errorf("nothing repaired: %q", got)
	}
	got := disconnectedMessage([]string{"restored the DNS settings saved in /var/lib/kubectl-tele/netns-1", "removed the TUN device tele0"})
	for _, want := range []string{"Not connected.", "daemon died", "restored the DNS settings saved in /var/lib/kubectl-tele/netns-1; removed the TUN device tele0."} {
		if !strings.Contains(got, want) {
			t.Errorf("repaired: %q does not say %q", got, want)
		}
	}
}

package device

import (
	"strings"
	"testing"
)

func TestCheckPeerCred(t *testing.T) {
	tests := []struct {
		name    string
		cred    peerCred
		uid     int
		wantErr string
	}{
		{"root daemon side: helper is root", peerCred{PID: 42, UID: 0}, 0, ""},
		{"helper side: daemon is the user", peerCred{PID: 42, UID: 501}, 501, ""},
		{"darwin, no pid", peerCred{UID: 501}, 501, ""},
		{"another user", peerCred{PID: 42, UID: 502}, 501, "process 42 runs as uid 502, want uid 501"},
		{"another user, no pid", peerCred{UID: 0}, 501, "peer runs as uid 0, want uid 501"},
		{"unknown xucred version", peerCred{UID: 501, XucredVersion: 1}, 501, "version 1"},
		{"uid beyond int32", peerCred{UID: 1 << 31}, -1 << 31, "invalid uid"},
		{"nobody is not root", peerCred{UID: 4294967294}, 0, "runs as uid 4294967294"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPeerCred("/tmp/kubectl-tele-501/device.sock", tt.cred, tt.uid)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

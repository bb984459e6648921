package teleproto

import "testing"

func TestParseProtocol(t *testing.T) {
	tests := []struct {
		in      string
		want    ProtocolVersion
		wantErr bool
	}{
		{in: "2", want: ProtocolVersion_PROTOCOL_VERSION_2},
		{in: "1", want: ProtocolVersion(1)}, // older than this build: still read
		{in: "7", want: ProtocolVersion(7)}, // newer than this build: still read
		{in: "0", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "", wantErr: true},
		{in: "PROTOCOL_VERSION_2", wantErr: true},
		{in: "99999999999", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseProtocol(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseProtocol(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if s := FormatProtocol(CurrentProtocolVersion); s != "2" {
		t.Errorf("FormatProtocol(current) = %q", s)
	}
	if p, err := ParseProtocol(FormatProtocol(CurrentProtocolVersion)); err != nil || p != CurrentProtocolVersion {
		t.Errorf("round trip: %v, %v", p, err)
	}
}

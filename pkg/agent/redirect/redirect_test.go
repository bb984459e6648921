//go:build linux

package redirect

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestRuleExprs(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want []expr.Any
	}{
		{
			name: "8080 to 9090",
			rule: Rule{Port: 8080, ToPort: 9090},
			want: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x1f, 0x90}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0x00}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
				&expr.Immediate{Register: 1, Data: []byte{0x23, 0x82}},
				&expr.Redir{RegisterProtoMin: 1},
			},
		},
		{
			name: "ports at the ends of the range",
			rule: Rule{Port: 1, ToPort: 65535},
			want: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x00, 0x01}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0x00}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
				&expr.Immediate{Register: 1, Data: []byte{0xff, 0xff}},
				&expr.Redir{RegisterProtoMin: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ruleExprs(tt.rule)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ruleExprs(%+v):\n got %s\nwant %s", tt.rule, dump(got), dump(tt.want))
			}
			// Every expression must also marshal, as the kernel will see it.
			for _, e := range got {
				if _, err := expr.Marshal(unix.NFPROTO_INET, e); err != nil {
					t.Errorf("marshal %#v: %v", e, err)
				}
			}
		})
	}
}

func dump(es []expr.Any) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %T%+v", e, e)
	}
	return b.String()
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		rules   []Rule
		wantErr string
	}{
		{name: "none", rules: nil},
		{name: "one", rules: []Rule{{Port: 8080, ToPort: 9090}}},
		{name: "two ports to one listener", rules: []Rule{{Port: 80, ToPort: 9090}, {Port: 8080, ToPort: 9090}}},
		{name: "zero app port", rules: []Rule{{Port: 0, ToPort: 9090}}, wantErr: "non-zero"},
		{name: "zero agent port", rules: []Rule{{Port: 8080}}, wantErr: "non-zero"},
		{name: "to itself", rules: []Rule{{Port: 8080, ToPort: 8080}}, wantErr: "itself"},
		{name: "port twice", rules: []Rule{{Port: 8080, ToPort: 9090}, {Port: 8080, ToPort: 9091}}, wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(tt.rules)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("validate(%v) = %v, want nil", tt.rules, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("validate(%v) = %v, want error containing %q", tt.rules, err, tt.wantErr)
			}
		})
	}
}

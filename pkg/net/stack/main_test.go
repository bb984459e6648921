package stack

import (
	"testing"

	"go.uber.org/goleak"
)

// No test leaves a goroutine of the stack, gVisor or a flow behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

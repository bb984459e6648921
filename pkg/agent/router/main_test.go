package router

import (
	"testing"

	"go.uber.org/goleak"
)

// No test leaves a router's, a backend's or a client's goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

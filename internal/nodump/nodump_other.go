//go:build !linux

package nodump

import "errors"

// The agent runs on Linux only.
var errNotLinux = errors.New("non-dumpable processes are a Linux matter: the agent runs on Linux only")

func set() error { return errNotLinux }

package nodump

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func set() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make the process non-dumpable (prctl PR_SET_DUMPABLE): %w", err)
	}
	return nil
}

func dumpable() (bool, error) {
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return false, fmt.Errorf("prctl PR_GET_DUMPABLE: %w", err)
	}
	return d != 0, nil
}

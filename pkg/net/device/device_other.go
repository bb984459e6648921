//go:build !linux && !darwin

package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.zx2c4.com/wireguard/tun"
)

// Create is only implemented on Linux and darwin; connect refuses native
// Windows before getting here.
func Create(ctx context.Context, s Spec) (*os.File, error) {
	if err := ValidateSpec(s); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("create device %s on %s: %w", s.Name, runtime.GOOS, errors.ErrUnsupported)
}

// Open is only implemented on Linux and darwin.
func Open(f *os.File) (tun.Device, error) {
	f.Close()
	return nil, fmt.Errorf("open TUN file on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// Remove is only implemented on Linux and darwin.
func Remove(name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("remove device: %w", err)
	}
	return fmt.Errorf("remove device %s on %s: %w", name, runtime.GOOS, errors.ErrUnsupported)
}

// ListRoutes is only implemented on Linux and darwin.
func ListRoutes(ctx context.Context) ([]Route, error) {
	return nil, fmt.Errorf("list routes on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

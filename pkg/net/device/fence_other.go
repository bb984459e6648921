//go:build !linux

package device

import "net/netip"

// Fence does nothing here: see fence.go.
func Fence(Spec, netip.Addr) error { return nil }

// Fences returns none here.
func Fences() ([]netip.Addr, error) { return nil, nil }

// Unfence does nothing here.
func Unfence() error { return nil }

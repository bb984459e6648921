package device

import (
	"errors"
	"fmt"
	"net/netip"
)

// Route is a route in the host's routing table.
type Route struct {
	Prefix netip.Prefix
	// Device is the name of the outgoing interface.
	Device string
}

func (r Route) String() string { return r.Prefix.String() + " dev " + r.Device }

// ConflictError says that a cluster CIDR overlaps a route the host already has.
type ConflictError struct {
	// Route is the cluster CIDR we were asked to add.
	Route netip.Prefix
	// Existing is the host's route it overlaps.
	Existing Route
}

func (e *ConflictError) Error() string {
	// Two overlapping prefixes always nest; the overlap is the longer one.
	overlap := e.Route
	if e.Existing.Prefix.Bits() > overlap.Bits() {
		overlap = e.Existing.Prefix
	}
	return fmt.Sprintf("cluster subnet %s overlaps the local route %s on device %s: "+
		"rerun with --never-proxy %s to keep that range on %s, "+
		"or with --allow-conflicting-subnets to send it to the cluster anyway",
		e.Route, e.Existing.Prefix, e.Existing.Device, overlap, e.Existing.Device)
}

// CheckConflicts refuses cluster CIDRs that overlap a route in existing, the
// host's routes (see ListRoutes). Default routes and routes on ownDevice (the
// session's own device, e.g. when re-adding routes) are ignored. It returns
// nil or one *ConflictError per overlap, joined.
func CheckConflicts(routes []netip.Prefix, existing []Route, ownDevice string) error {
	var errs []error
	for _, r := range routes {
		for _, e := range existing {
			if !e.Prefix.IsValid() || e.Prefix.Bits() == 0 || e.Device == ownDevice {
				continue
			}
			if r.Overlaps(e.Prefix) {
				errs = append(errs, &ConflictError{Route: r, Existing: e})
			}
		}
	}
	return errors.Join(errs...)
}

package device

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// MaxRequestSize bounds the request the root helper will read.
const MaxRequestSize = 64 << 10

// maxSocketPathLen is the longest path that fits sun_path on every platform we
// build for (104 bytes on darwin including the NUL; Linux allows 108).
const maxSocketPathLen = 103

// Request is a teleproto.DeviceRequest that [CheckRequest] accepted: what
// the daemon asks the root helper to do. Addresses are strings so that the
// wire form is what a person would type and so that parsing (and its errors)
// happen in one place.
type Request struct {
	Name string
	MTU  int
	Addr string
	// Addr6 is Spec.Addr6, "" for none.
	Addr6  string
	Routes []string
	// SocketPath is the daemon's Unix socket the helper connects to in order
	// to hand over the device's descriptor.
	SocketPath string
	// AllowConflictingSubnets skips the check against the host's routes
	// (--allow-conflicting-subnets).
	AllowConflictingSubnets bool
}

// Spec converts the request's device fields. It checks syntax only; use
// [ValidateSpec] (as [ParseRequest] does) for the policy.
func (r Request) Spec() (Spec, error) {
	s := Spec{Name: r.Name, MTU: r.MTU}
	addr, err := netip.ParsePrefix(r.Addr)
	if err != nil {
		return Spec{}, fmt.Errorf("address %q: %w", r.Addr, err)
	}
	s.Addr = addr
	if r.Addr6 != "" {
		if s.Addr6, err = netip.ParsePrefix(r.Addr6); err != nil {
			return Spec{}, fmt.Errorf("IPv6 address %q: %w", r.Addr6, err)
		}
	}
	if len(r.Routes) > MaxRoutes {
		return Spec{}, fmt.Errorf("%d routes: at most %d are allowed", len(r.Routes), MaxRoutes)
	}
	for _, rs := range r.Routes {
		p, err := netip.ParsePrefix(rs)
		if err != nil {
			return Spec{}, fmt.Errorf("route %q: %w", rs, err)
		}
		s.Routes = append(s.Routes, p)
	}
	return s, nil
}

// ParseRequest decodes a teleproto.DeviceRequest in protojson and checks it
// (CheckRequest), rejecting oversize input and unknown fields.
func ParseRequest(data []byte) (Request, error) {
	if len(data) > MaxRequestSize {
		return Request{}, fmt.Errorf("helper request: %d bytes exceeds the limit of %d", len(data), MaxRequestSize)
	}
	var pb teleproto.DeviceRequest
	if err := protojson.Unmarshal(data, &pb); err != nil {
		return Request{}, fmt.Errorf("helper request: decode JSON: %w", err)
	}
	return CheckRequest(&pb)
}

// CheckRequest validates a request from the daemon. It rejects other
// versions, an invalid spec and a socket path that is not absolute and
// clean. Whether the socket path is in an allowed directory and owned by
// the invoking user is checked separately by [ValidateSocketPath], which
// needs that user's uid.
func CheckRequest(pb *teleproto.DeviceRequest) (Request, error) {
	if v := pb.GetVersion(); v != teleproto.CurrentHelperVersion {
		return Request{}, fmt.Errorf("helper request: the daemon speaks helper protocol %d, this helper %d; use the same kubectl-tele binary for the daemon and the helper",
			int32(v), int32(teleproto.CurrentHelperVersion))
	}
	r := Request{Name: pb.GetName(), MTU: int(pb.GetMtu()), Addr: pb.GetAddr(), Addr6: pb.GetAddr6(), Routes: pb.GetRoutes(),
		SocketPath: pb.GetSocketPath(), AllowConflictingSubnets: pb.GetAllowConflictingSubnets()}
	s, err := r.Spec()
	if err != nil {
		return Request{}, fmt.Errorf("helper request: %w", err)
	}
	if err := ValidateSpec(s); err != nil {
		return Request{}, fmt.Errorf("helper request: %w", err)
	}
	if err := checkSocketPathSyntax(r.SocketPath); err != nil {
		return Request{}, fmt.Errorf("helper request: %w", err)
	}
	return r, nil
}

// checkSocketPathSyntax is the part of socket path validation that needs
// neither the uid nor the file system.
func checkSocketPathSyntax(path string) error {
	switch {
	case path == "":
		return errors.New("socket path is empty")
	case strings.IndexByte(path, 0) >= 0:
		return fmt.Errorf("socket path %q contains a NUL byte", path)
	case len(path) > maxSocketPathLen:
		return fmt.Errorf("socket path %q: longer than %d bytes", path, maxSocketPathLen)
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("socket path %q: must be absolute", path)
	case filepath.ToSlash(filepath.Clean(path)) != path:
		return fmt.Errorf("socket path %q: not clean (want %q)", path, filepath.Clean(path))
	}
	return nil
}

// Package teleproto is the versioned protocols between kubectl-tele's
// programs: daemon to manager and agent to manager (tele.proto), plugin to
// daemon and daemon to the privileged helper (control.proto), as gRPC
// messages and services generated from them, and the ports and header keys
// they use (ports.go). Each end imports it; nothing else defines wire types.
package teleproto

//go:generate make -C ../.. proto

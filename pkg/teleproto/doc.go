// Package teleproto is the versioned protocols between kubectl-tele's
// programs, one .proto per boundary: plugin to daemon (control.proto),
// daemon to the privileged helper (helper.proto), daemon to manager
// (manager.proto) and agent to manager (agent.proto), as gRPC messages and
// services generated from them, and the ports and header keys they use
// (ports.go). Each end imports it; nothing else defines wire types.
package teleproto

//go:generate make -C ../.. proto

// Package teleproto is the versioned protocol between the laptop's daemon and
// the in-cluster traffic manager: gRPC messages and services generated from
// tele.proto. Both ends import it; nothing else defines wire types.
package teleproto

//go:generate make -C ../.. proto

// Package teleproto is the versioned protocol between the laptop's daemon and
// the in-cluster traffic manager: gRPC messages and services generated from
// tele.proto. Both ends import it; nothing else defines wire types.
package teleproto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative tele.proto

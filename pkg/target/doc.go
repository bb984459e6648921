// Package target resolves what a user names on the command line — a
// workload, its pods, its container and port, and that container's
// environment — as kubectl does.
//
// It holds no state and starts nothing: every function reads from the API
// server through the clients it is given and returns plain values, so the
// intercept command can decide, print and fail before it changes anything in
// the cluster.
package target

// Package redirect makes TCP connections arriving at the pod on an
// application's port land on the agent's listener instead, with nftables, and
// guarantees that the redirect disappears when the agent process does.
//
// # How the redirect works
//
// Open creates one table (family inet, so IPv4 and IPv6) holding one base
// chain of type nat hooked at PREROUTING with priority dstnat. Set fills the
// chain with one rule per intercepted port:
//
//	tcp dport P redirect to :A
//
// Only connections arriving from outside the pod are redirected. A connection
// made inside the pod (the agent dialing 127.0.0.1:P to reach the app, or the
// app talking to itself) gets its conntrack entry and its NAT binding on the
// OUTPUT path; when its packets re-enter through lo they do cross the
// PREROUTING hook, but the kernel consults nat chains only for the first
// packet of a connection that has no NAT binding yet, so our rule never sees
// them. That is what lets the agent forward to the app on the very port it
// intercepts.
//
// NAT is decided once per connection and remembered in conntrack. Changing or
// removing rules therefore never touches connections already open: they finish
// on the path they started on (to the agent or to the app), and only new
// connections follow the new rules. The intercept feature relies on this.
//
// # Fail-open
//
// The table carries the nftables OWNER flag (NFT_TABLE_F_OWNER, Linux >= 5.12):
// the kernel deletes an owned table, with its rules, when the netlink socket
// that created it is closed. The Redirector keeps that socket open for its
// whole life, so when the agent process dies for any reason (exit, kill -9,
// OOM kill) the kernel closes the socket and the redirect vanishes: requests
// reach the app again and no rule is left pointing at a dead port. Only the
// owning socket may change an owned table, so a second agent cannot stomp on a
// live one: Open fails while a table of ours exists.
//
// While the process lives, keeping the listener behind ToPort open is the
// caller's job: call Set without the rule (or Close) before closing it.
package redirect

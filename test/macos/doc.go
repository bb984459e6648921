// Package macos holds the macOS smoke test (smoke_test.go, build tags
// darwin and smoke): as root on a Mac, it creates a utun with its addresses
// and a route, writes the /etc/resolver files, checks them with macOS's own
// tools (route, scutil, dscacheutil) and removes everything. It is run by
// .github/workflows/macos.yml; nothing here runs on Linux.
package macos

// Package test holds the end-to-end suite: a real platform process, a real
// Podman API service (and a real dockerd), a real registry on 127.0.0.1,
// the images built FROM scratch and signed, and the installer run as a
// container exactly as the platform prints it, adapted only in the paths a
// test may use (its own config dir and engine socket instead of
// /etc/collector and /run/podman/podman.sock).
package test

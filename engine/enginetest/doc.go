// Package enginetest is the conformance suite every engine backend passes,
// and the harness that starts the real components it runs against: a
// private Podman API service, a private dockerd and a registry on
// 127.0.0.1, each with its own directories under one temporary folder, so
// nothing touches the host's engines or /etc.
//
// Under CI=true a missing component is an error; elsewhere the tests that
// need it skip, saying why.
package enginetest

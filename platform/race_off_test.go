//go:build !race

package platform_test

// raceEnabled: the race detector slows this process (the load generator).
const raceEnabled = false

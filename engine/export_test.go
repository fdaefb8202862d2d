package engine

import "time"

// SetRounds shortens FollowStored's rounds for a test and returns the undo.
func SetRounds(first, every time.Duration) func() {
	f, m := firstRound, minRound
	firstRound, minRound = first, every
	return func() { firstRound, minRound = f, m }
}

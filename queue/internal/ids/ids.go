package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// Job returns a new job ID: "job_" and 16 random bytes in hex.
func Job() string { return "job_" + random() }

// Lease returns a new lease ID: "lease_" and 16 random bytes in hex. It is the
// runner's proof that it holds the job, so it must not be guessable.
func Lease() string { return "lease_" + random() }

func random() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead).
	return hex.EncodeToString(b[:])
}

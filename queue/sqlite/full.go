package sqlite

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/collectorhq/collector/queue"
)

// Classify marks an error SQLite gave for a full disk (SQLITE_FULL, which
// its Unix VFS also reports for ENOSPC) as queue.ErrStorageFull, so that
// callers tell "free some space" from a fault. Other errors pass as they
// are. The store that shares the database classifies its writes with it.
func Classify(err error) error {
	var se *sqlite.Error
	if err == nil || errors.Is(err, queue.ErrStorageFull) || !errors.As(err, &se) {
		return err
	}
	if se.Code()&0xff == sqlite3.SQLITE_FULL {
		return fmt.Errorf("%w: %w", queue.ErrStorageFull, err)
	}
	return err
}

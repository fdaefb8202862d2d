package adminctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
)

// ErrAuditBroken: the audit chain does not verify.
var ErrAuditBroken = errors.New("audit log verification failed")

// ListAudit prints audit entries after seq after; limit 0 prints them all.
func ListAudit(ctx context.Context, c *api.AdminClient, after int64, limit int, out Output) error {
	var all []api.AuditEntry
	for {
		page := 1000
		if limit > 0 && limit-len(all) < page {
			page = limit - len(all)
		}
		l, err := c.Audit(ctx, after, page)
		if err != nil {
			return fmt.Errorf("list audit log: %w", err)
		}
		all = append(all, l.Entries...)
		if l.NextAfter == 0 || (limit > 0 && len(all) >= limit) {
			break
		}
		after = l.NextAfter
	}
	if out.JSON {
		return out.json(api.AuditList{Entries: all})
	}
	t := out.table("SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "DETAILS")
	for _, e := range all {
		t.row(fmt.Sprint(e.Seq), fmtTime(&e.Time), e.Actor, e.Action, e.Target, string(e.Details))
	}
	return t.flush()
}

// VerifyAudit asks the platform to verify the chain (hashes, MACs, the
// head the platform saved outside its database and, if expect is set, a
// head the administrator saved: "SEQ:HASH"); a broken chain is an error
// wrapping ErrAuditBroken that names the first bad entry.
func VerifyAudit(ctx context.Context, c *api.AdminClient, expect string, out Output) error {
	v, err := c.VerifyAuditAgainst(ctx, expect)
	if err != nil {
		return fmt.Errorf("verify audit log: %w", err)
	}
	if out.JSON {
		if err := out.json(v); err != nil {
			return err
		}
	} else if v.OK {
		out.printf("Audit log OK: %d entries, head %d:%s.\n", v.Entries, v.HeadSeq, v.Head)
		out.printf("Save the head; a later `platform audit verify --expect %d:%s` tells if newer entries were deleted.\n", v.HeadSeq, v.Head)
	}
	if !v.OK {
		return fmt.Errorf("%w at seq %d: %s (%d entries verified before it)", ErrAuditBroken, v.BadSeq, termsafe.String(v.Reason), v.Entries)
	}
	return nil
}

package adminctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/units"
)

// CreateCollector creates a collector and prints its enrollment token and
// install commands.
func CreateCollector(ctx context.Context, c *api.AdminClient, req api.CreateCollectorRequest, out Output) error {
	g, err := c.CreateCollector(ctx, req)
	if err != nil {
		return fmt.Errorf("create collector: %w", err)
	}
	return printGrant(out, g, "created")
}

// NewToken issues a new enrollment token for a collector (the old one dies).
func NewToken(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	g, err := c.NewEnrollmentToken(ctx, id)
	if err != nil {
		return fmt.Errorf("new enrollment token for %s: %w", id, err)
	}
	return printGrant(out, g, "has a new enrollment token; earlier tokens no longer work")
}

func printGrant(out Output, g *api.EnrollmentGrant, what string) error {
	if out.JSON {
		return out.json(g)
	}
	out.printf("Collector %s (%s) %s.\n\n", g.Collector.ID, g.Collector.Name, what)
	out.printf("Enrollment token (one use, expires %s; it is shown only now):\n\n  %s\n\n",
		fmtTime(&g.ExpiresAt), g.EnrollmentToken)
	out.printf("The token is not part of the commands below: paste it when the installer asks,\n")
	out.printf("or pipe it in on stdin (for example: ... install < token.txt).\n\n")
	out.printf("Install with Podman, on the collector host:\n\n  %s\n\n", g.InstallCommands.Podman)
	out.printf("Or with Docker:\n\n  %s\n\n", g.InstallCommands.Docker)
	if g.CAPin != "" {
		out.printf("The platform CA pin (COLLECTOR_CA_PIN) is %s.\n", g.CAPin)
	}
	return nil
}

// ListCollectors prints every collector.
func ListCollectors(ctx context.Context, c *api.AdminClient, out Output) error {
	cs, err := c.Collectors(ctx)
	if err != nil {
		return fmt.Errorf("list collectors: %w", err)
	}
	if out.JSON {
		return out.json(api.CollectorList{Collectors: cs})
	}
	t := out.table("ID", "NAME", "POOL", "STATUS", "LAST HEARTBEAT", "VERSION")
	for _, col := range cs {
		version := "-"
		if col.LastHeartbeat != nil {
			version = orDash(col.LastHeartbeat.Version)
		}
		t.row(col.ID, col.Name, orDash(col.Pool), col.Status, fmtTime(col.LastHeartbeatAt), version)
	}
	return t.flush()
}

// Upgrade asks collectors to run another image.
func Upgrade(ctx context.Context, c *api.AdminClient, req api.UpgradeRequest, out Output) error {
	res, err := c.Upgrade(ctx, req)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	if out.JSON {
		return out.json(res)
	}
	out.printf("%d collector(s) asked to run %s (version %s): %s\n", len(res.Collectors), res.Image, orDash(res.Version), strings.Join(res.Collectors, ", "))
	out.printf("Each daemon verifies, drains and replaces its containers; `platform collectors show ID` follows it.\n")
	return nil
}

// SetCollectorPool moves a collector into a pool ("" for none).
func SetCollectorPool(ctx context.Context, c *api.AdminClient, id, pool string, out Output) error {
	col, err := c.SetCollectorPool(ctx, id, pool)
	if err != nil {
		return fmt.Errorf("set the pool of collector %s: %w", id, err)
	}
	if out.JSON {
		return out.json(col)
	}
	out.printf("Collector %s is in pool %s.\n", col.ID, orDash(col.Pool))
	return nil
}

// ShowCollector prints one collector.
func ShowCollector(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	col, err := c.Collector(ctx, id)
	if err != nil {
		return fmt.Errorf("show collector %s: %w", id, err)
	}
	if out.JSON {
		return out.json(col)
	}
	t := out.table()
	t.field("ID", col.ID)
	t.field("Name", col.Name)
	t.field("Pool", orDash(col.Pool))
	t.field("Status", col.Status)
	if col.StatusReason != "" {
		t.field("Status reason", col.StatusReason)
	}
	t.field("Created", fmtTime(&col.CreatedAt))
	t.field("Enrolled", fmtTime(col.EnrolledAt))
	t.field("Identity key", orDash(col.IdentityKeyFingerprint))
	t.field("HPKE key", orDash(col.HPKEKeyFingerprint))
	t.field("Last heartbeat", fmtTime(col.LastHeartbeatAt))
	if col.DesiredImage != "" {
		t.field("Asked to run", col.DesiredImage+" (version "+orDash(col.DesiredVersion)+")")
	}
	if hb := col.LastHeartbeat; hb != nil {
		showHeartbeat(t, hb)
	}
	return t.flush()
}

func showHeartbeat(t *table, hb *api.Heartbeat) {
	t.field("Version", orDash(hb.Version))
	t.field("Engine", fmt.Sprintf("%s %s", orDash(hb.Engine.Kind), hb.Engine.Version))
	if hb.EngineError != "" {
		t.field("Engine error", hb.EngineError)
	}
	t.field("Capacity", fmt.Sprintf("%d CPUs, %d MiB free of %d MiB", hb.Capacity.CPUs,
		hb.Capacity.MemoryFreeBytes>>20, hb.Capacity.MemoryTotalBytes>>20))
	t.field("Running jobs", fmt.Sprint(hb.RunningJobs))
	t.field("Runner", orDash(hb.RunnerState))
	if hb.ClockOffsetMs != 0 {
		t.field("Host clock", units.ClockOffset(time.Duration(hb.ClockOffsetMs)*time.Millisecond)+" (it works in platform time)")
	}
	if hb.Image != "" {
		t.field("Image", hb.Image)
	}
	if u := hb.Upgrade; u != nil {
		s := u.State + " to " + u.Image
		if u.Reason != "" {
			s += ": " + u.Reason
		}
		t.field("Last upgrade", s)
	}
}

// DeleteCollector deletes a collector and revokes its credentials.
func DeleteCollector(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	if err := c.DeleteCollector(ctx, id); err != nil {
		return fmt.Errorf("delete collector %s: %w", id, err)
	}
	if out.JSON {
		return out.json(map[string]any{"deleted": id})
	}
	out.printf("Collector %s deleted; its credentials are revoked.\n", id)
	return nil
}

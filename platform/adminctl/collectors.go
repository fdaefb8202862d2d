package adminctl

import (
	"context"
	"fmt"

	"github.com/collectorhq/collector/api"
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
	w := out.W
	fmt.Fprintf(w, "Collector %s (%s) %s.\n\n", g.Collector.ID, g.Collector.Name, what)
	fmt.Fprintf(w, "Enrollment token (one use, expires %s; it is shown only now):\n\n  %s\n\n",
		fmtTime(&g.ExpiresAt), g.EnrollmentToken)
	fmt.Fprintf(w, "The token is not part of the commands below: paste it when the installer asks,\n")
	fmt.Fprintf(w, "or pipe it in on stdin (for example: ... install < token.txt).\n\n")
	fmt.Fprintf(w, "Install with Podman, on the collector host:\n\n  %s\n\n", g.InstallCommands.Podman)
	fmt.Fprintf(w, "Or with Docker:\n\n  %s\n\n", g.InstallCommands.Docker)
	if g.CAPin != "" {
		fmt.Fprintf(w, "The platform CA pin (COLLECTOR_CA_PIN) is %s.\n", g.CAPin)
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
	tw := out.table()
	fmt.Fprintln(tw, "ID\tNAME\tPOOL\tSTATUS\tLAST HEARTBEAT\tVERSION")
	for _, col := range cs {
		version := "-"
		if col.LastHeartbeat != nil {
			version = orDash(col.LastHeartbeat.Version)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", col.ID, col.Name, orDash(col.Pool), col.Status,
			fmtTime(col.LastHeartbeatAt), version)
	}
	return tw.Flush()
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
	tw := out.table()
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", col.ID)
	row("Name", col.Name)
	row("Pool", orDash(col.Pool))
	row("Status", col.Status)
	row("Created", fmtTime(&col.CreatedAt))
	row("Enrolled", fmtTime(col.EnrolledAt))
	row("Identity key", orDash(col.IdentityKeyFingerprint))
	row("HPKE key", orDash(col.HPKEKeyFingerprint))
	row("Last heartbeat", fmtTime(col.LastHeartbeatAt))
	if hb := col.LastHeartbeat; hb != nil {
		row("Version", orDash(hb.Version))
		row("Engine", fmt.Sprintf("%s %s", orDash(hb.Engine.Kind), hb.Engine.Version))
		row("Capacity", fmt.Sprintf("%d CPUs, %d MiB free of %d MiB", hb.Capacity.CPUs,
			hb.Capacity.MemoryFreeBytes>>20, hb.Capacity.MemoryTotalBytes>>20))
		row("Running jobs", fmt.Sprint(hb.RunningJobs))
		row("Runner", orDash(hb.RunnerState))
	}
	return tw.Flush()
}

// DeleteCollector deletes a collector and revokes its credentials.
func DeleteCollector(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	if err := c.DeleteCollector(ctx, id); err != nil {
		return fmt.Errorf("delete collector %s: %w", id, err)
	}
	if out.JSON {
		return out.json(map[string]any{"deleted": id})
	}
	_, err := fmt.Fprintf(out.W, "Collector %s deleted; its credentials are revoked.\n", id)
	return err
}

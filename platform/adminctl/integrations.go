package adminctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
)

// CreateIntegration creates an integration.
func CreateIntegration(ctx context.Context, c *api.AdminClient, req api.IntegrationRequest, out Output) error {
	in, err := c.CreateIntegration(ctx, req)
	if err != nil {
		return fmt.Errorf("create integration: %w", err)
	}
	return printIntegration(out, in)
}

// ListIntegrations prints every integration.
func ListIntegrations(ctx context.Context, c *api.AdminClient, out Output) error {
	ins, err := c.Integrations(ctx)
	if err != nil {
		return fmt.Errorf("list integrations: %w", err)
	}
	if out.JSON {
		return out.json(api.IntegrationList{Integrations: ins})
	}
	t := out.table("ID", "NAME", "IMAGE", "INTERVAL", "COLLECTOR", "POOL")
	for _, in := range ins {
		t.row(in.ID, in.Name, in.Image, (time.Duration(in.IntervalSec) * time.Second).String(), orDash(in.CollectorID), orDash(in.Pool))
	}
	return t.flush()
}

// ShowIntegration prints one integration; secret values are masked.
func ShowIntegration(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	in, err := c.Integration(ctx, id)
	if err != nil {
		return fmt.Errorf("show integration %s: %w", id, err)
	}
	return printIntegration(out, in)
}

// UpdateIntegration changes the fields upd carries.
func UpdateIntegration(ctx context.Context, c *api.AdminClient, id string, upd api.IntegrationUpdate, out Output) error {
	in, err := c.UpdateIntegration(ctx, id, upd)
	if err != nil {
		return fmt.Errorf("update integration %s: %w", id, err)
	}
	return printIntegration(out, in)
}

// AssignIntegration moves an integration to another collector or to a
// pool; its credentials move with it.
func AssignIntegration(ctx context.Context, c *api.AdminClient, id string, to api.AssignRequest, out Output) error {
	in, err := c.AssignIntegrationTo(ctx, id, to)
	if err != nil {
		return fmt.Errorf("assign integration %s: %w", id, err)
	}
	return printIntegration(out, in)
}

// DeleteIntegration deletes an integration and cancels its jobs; with
// purge, its entities, relationships, jobs and job logs go too (in the
// background).
func DeleteIntegration(ctx context.Context, c *api.AdminClient, id string, purge bool, out Output) error {
	del := c.DeleteIntegration
	if purge {
		del = c.PurgeIntegration
	}
	if err := del(ctx, id); err != nil {
		return fmt.Errorf("delete integration %s: %w", id, err)
	}
	if out.JSON {
		return out.json(map[string]any{"deleted": id, "purge": purge})
	}
	if purge {
		out.printf("Integration %s deleted; its data, jobs and job logs are being removed.\n", id)
	} else {
		out.printf("Integration %s deleted; its data and job history stay (delete with --purge to remove them).\n", id)
	}
	return nil
}

func printIntegration(out Output, in *api.Integration) error {
	if out.JSON {
		return out.json(in)
	}
	t := out.table()
	t.field("ID", in.ID)
	t.field("Name", in.Name)
	t.field("Image", in.Image)
	t.field("Interval", (time.Duration(in.IntervalSec) * time.Second).String())
	t.field("Collector", orDash(in.CollectorID))
	t.field("Pool", orDash(in.Pool))
	t.field("Network", orDash(in.Network))
	t.field("Secret fields", orDash(strings.Join(in.SecretFields, ", ")))
	t.field("Config", string(in.Config))
	t.field("Updated", fmtTime(&in.UpdatedAt))
	for _, w := range in.Warnings {
		t.field("WARNING", w)
	}
	return t.flush()
}

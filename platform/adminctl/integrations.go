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
	tw := out.table()
	fmt.Fprintln(tw, "ID\tNAME\tIMAGE\tINTERVAL\tCOLLECTOR")
	for _, in := range ins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.ID, in.Name, in.Image,
			time.Duration(in.IntervalSec)*time.Second, orDash(in.CollectorID))
	}
	return tw.Flush()
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

// AssignIntegration moves an integration to another collector; its
// credentials move with it.
func AssignIntegration(ctx context.Context, c *api.AdminClient, id, collectorID string, out Output) error {
	in, err := c.AssignIntegration(ctx, id, collectorID)
	if err != nil {
		return fmt.Errorf("assign integration %s: %w", id, err)
	}
	return printIntegration(out, in)
}

// DeleteIntegration deletes an integration.
func DeleteIntegration(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	if err := c.DeleteIntegration(ctx, id); err != nil {
		return fmt.Errorf("delete integration %s: %w", id, err)
	}
	if out.JSON {
		return out.json(map[string]any{"deleted": id})
	}
	_, err := fmt.Fprintf(out.W, "Integration %s deleted.\n", id)
	return err
}

func printIntegration(out Output, in *api.Integration) error {
	if out.JSON {
		return out.json(in)
	}
	tw := out.table()
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", in.ID)
	row("Name", in.Name)
	row("Image", in.Image)
	row("Interval", (time.Duration(in.IntervalSec) * time.Second).String())
	row("Collector", orDash(in.CollectorID))
	row("Network", orDash(in.Network))
	row("Secret fields", orDash(strings.Join(in.SecretFields, ", ")))
	row("Config", string(in.Config))
	row("Updated", fmtTime(&in.UpdatedAt))
	return tw.Flush()
}

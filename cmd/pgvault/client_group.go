package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// groupView holds the fields of a resource group shown in tables.
type groupView struct {
	Name       string            `json:"name"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

func (c *clientCmd) groupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "group",
		Aliases: []string{"rg"},
		Short:   "Manage resource groups",
	}
	cmd.AddCommand(c.groupCreateCmd(), c.groupShowCmd(), c.groupListCmd(), c.groupDeleteCmd())
	return cmd
}

func (c *clientCmd) groupCreateCmd() *cobra.Command {
	var location string
	var tags []string
	cmd := &cobra.Command{
		Use:   "create NAME --location LOCATION",
		Short: "Create or update a resource group",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			body := map[string]any{"location": location}
			if t != nil {
				body["tags"] = t
			}
			resp, err := cl.Put(ctx, client.ResourceGroupPath(c.subscription, args[0]), client.APIVersionResources, body)
			if err != nil {
				return err
			}
			if err := c.wait(ctx, cl, resp, "resource group "+args[0]); err != nil {
				return err
			}
			return printOne(c, resp.Body, groupColumns)
		}),
	}
	cmd.Flags().StringVarP(&location, "location", "l", "", "location of the group (required)")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	_ = cmd.MarkFlagRequired("location")
	return cmd
}

func (c *clientCmd) groupShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a resource group",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.ResourceGroupPath(c.subscription, args[0]), client.APIVersionResources)
			if err != nil {
				return err
			}
			return printOne(c, resp.Body, groupColumns)
		}),
	}
}

func (c *clientCmd) groupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the subscription's resource groups",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			items, err := cl.List(ctx, client.ResourceGroupsPath(c.subscription), client.APIVersionResources)
			if err != nil {
				return err
			}
			return printList(c, items, groupColumns)
		}),
	}
}

func (c *clientCmd) groupDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an empty resource group",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Delete(ctx, client.ResourceGroupPath(c.subscription, args[0]), client.APIVersionResources)
			if err != nil {
				return err
			}
			if err := c.wait(ctx, cl, resp, "resource group "+args[0]); err != nil {
				return err
			}
			c.deleted(resp, fmt.Sprintf("resource group '%s'", args[0]))
			return nil
		}),
	}
}

// groupColumns are the table columns of resource groups.
var groupColumns = columns[groupView]{
	headers: []string{"NAME", "LOCATION", "STATE", "TAGS"},
	row: func(g groupView) []string {
		return []string{g.Name, g.Location, g.Properties.ProvisioningState, formatTags(g.Tags)}
	},
}

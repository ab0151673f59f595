package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// datasourcePostgreSQL is the datasource type of PostgreSQL flexible servers.
const datasourcePostgreSQL = "Microsoft.DBforPostgreSQL/flexibleServers"

// retentionTag is a retention tag the policy flags can name: the tagging
// criterion that selects backups for it and its priority (lower wins).
type retentionTag struct {
	name      string
	criterion string // absolute criterion; "" for Default, which takes every backup
	priority  int
}

// retentionTags are the tags of PostgreSQL flexible server policies, in the
// order the rules are written.
var retentionTags = []retentionTag{
	{name: "Default", priority: 99},
	{name: "Weekly", criterion: "FirstOfWeek", priority: 20},
	{name: "Monthly", criterion: "FirstOfMonth", priority: 15},
	{name: "Yearly", criterion: "FirstOfYear", priority: 10},
}

// Wire shapes of the policy the flags build (Microsoft.DataProtection 2024-04-01).
type (
	policyProperties struct {
		ObjectType      string   `json:"objectType"`
		DatasourceTypes []string `json:"datasourceTypes"`
		PolicyRules     []any    `json:"policyRules"`
	}
	dataStoreInfo struct {
		DataStoreType string `json:"dataStoreType"`
		ObjectType    string `json:"objectType"`
	}
	backupRule struct {
		Name             string `json:"name"`
		ObjectType       string `json:"objectType"`
		BackupParameters struct {
			ObjectType string `json:"objectType"`
			BackupType string `json:"backupType"`
		} `json:"backupParameters"`
		DataStore dataStoreInfo `json:"dataStore"`
		Trigger   struct {
			ObjectType string `json:"objectType"`
			Schedule   struct {
				RepeatingTimeIntervals []string `json:"repeatingTimeIntervals"`
				TimeZone               string   `json:"timeZone,omitempty"`
			} `json:"schedule"`
			TaggingCriteria []taggingCriterion `json:"taggingCriteria"`
		} `json:"trigger"`
	}
	taggingCriterion struct {
		IsDefault       bool `json:"isDefault"`
		TaggingPriority int  `json:"taggingPriority"`
		TagInfo         struct {
			TagName string `json:"tagName"`
		} `json:"tagInfo"`
		Criteria []backupCriteria `json:"criteria,omitempty"`
	}
	backupCriteria struct {
		ObjectType       string   `json:"objectType"`
		AbsoluteCriteria []string `json:"absoluteCriteria"`
	}
	retentionRule struct {
		Name       string      `json:"name"`
		ObjectType string      `json:"objectType"`
		IsDefault  bool        `json:"isDefault"`
		Lifecycles []lifecycle `json:"lifecycles"`
	}
	lifecycle struct {
		DeleteAfter struct {
			ObjectType string `json:"objectType"`
			Duration   string `json:"duration"`
		} `json:"deleteAfter"`
		SourceDataStore dataStoreInfo `json:"sourceDataStore"`
	}
)

var vaultStore = dataStoreInfo{DataStoreType: "VaultStore", ObjectType: "DataStoreInfoBase"}

// buildPolicy builds the properties of a PostgreSQL flexible server policy
// from the command's flags. It checks only what it needs to build the
// policy; the server validates the rest (durations, schedules, and that a
// Default retention is given).
func buildPolicy(schedules []string, timeZone string, retentions []string) (*policyProperties, error) {
	durations := map[string]string{}
	for _, r := range retentions {
		name, d, ok := strings.Cut(r, "=")
		if !ok || d == "" {
			return nil, fmt.Errorf("invalid --retention %q: use TAG=DURATION, e.g. Default=P3M", r)
		}
		tag, found := findRetentionTag(name)
		if !found {
			return nil, fmt.Errorf("invalid --retention %q: the tag must be Default, Weekly, Monthly or Yearly", r)
		}
		if _, dup := durations[tag.name]; dup {
			return nil, fmt.Errorf("invalid --retention %q: %s is given twice", r, tag.name)
		}
		durations[tag.name] = d
	}

	var br backupRule
	br.Name = backupRuleName(schedules)
	br.ObjectType = "AzureBackupRule"
	br.BackupParameters.ObjectType, br.BackupParameters.BackupType = "AzureBackupParams", "Full"
	br.DataStore = vaultStore
	br.Trigger.ObjectType = "ScheduleBasedTriggerContext"
	br.Trigger.Schedule.RepeatingTimeIntervals = append([]string{}, schedules...)
	br.Trigger.Schedule.TimeZone = timeZone
	rules := []any{&br}
	for _, tag := range retentionTags {
		d, ok := durations[tag.name]
		// The Default tag applies to every backup: it is always there, so
		// that a missing Default retention rule is what the server reports.
		if !ok && tag.name != "Default" {
			continue
		}
		tc := taggingCriterion{IsDefault: tag.name == "Default", TaggingPriority: tag.priority}
		tc.TagInfo.TagName = tag.name
		if tag.criterion != "" {
			tc.Criteria = []backupCriteria{{ObjectType: "ScheduleBasedBackupCriteria", AbsoluteCriteria: []string{tag.criterion}}}
		}
		br.Trigger.TaggingCriteria = append(br.Trigger.TaggingCriteria, tc)
		if !ok {
			continue
		}
		lc := lifecycle{SourceDataStore: vaultStore}
		lc.DeleteAfter.ObjectType, lc.DeleteAfter.Duration = "AbsoluteDeleteOption", d
		rules = append(rules, &retentionRule{Name: tag.name, ObjectType: "AzureRetentionRule", IsDefault: tag.name == "Default", Lifecycles: []lifecycle{lc}})
	}
	return &policyProperties{ObjectType: "BackupPolicy", DatasourceTypes: []string{datasourcePostgreSQL}, PolicyRules: rules}, nil
}

func findRetentionTag(name string) (retentionTag, bool) {
	for _, t := range retentionTags {
		if strings.EqualFold(t.name, strings.TrimSpace(name)) {
			return t, true
		}
	}
	return retentionTag{}, false
}

// backupRuleName names the backup rule after the schedule's period, as the
// Azure portal does: BackupDaily for P1D, BackupWeekly for P1W.
func backupRuleName(schedules []string) string {
	if len(schedules) > 0 {
		switch period := schedules[0][strings.LastIndexByte(schedules[0], '/')+1:]; period {
		case "P1D":
			return "BackupDaily"
		case "P1W":
			return "BackupWeekly"
		}
	}
	return "BackupRule"
}

// policyBodyFromFile reads a policy file: either the properties object or a
// whole resource body with "properties". It returns the PUT body.
func policyBodyFromFile(name string, stdin io.Reader) (json.RawMessage, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("while reading the policy file: %w", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("it is null")
		}
		return nil, fmt.Errorf("while reading the policy file %s: it must hold a JSON object (the policy's properties or the whole policy): %w", name, err)
	}
	props, whole := obj["properties"]
	if !whole {
		props = bytes.TrimSpace(data)
	}
	body, err := json.Marshal(map[string]json.RawMessage{"properties": props})
	if err != nil {
		return nil, fmt.Errorf("while encoding the policy: %w", err)
	}
	return body, nil
}

// policyView holds the fields of a policy shown in tables.
type policyView struct {
	Name       string `json:"name"`
	Properties struct {
		PolicyRules []struct {
			Name       string `json:"name"`
			ObjectType string `json:"objectType"`
			Trigger    *struct {
				Schedule *struct {
					RepeatingTimeIntervals []string `json:"repeatingTimeIntervals"`
					TimeZone               string   `json:"timeZone"`
				} `json:"schedule"`
			} `json:"trigger"`
			Lifecycles []struct {
				DeleteAfter *struct {
					Duration string `json:"duration"`
				} `json:"deleteAfter"`
			} `json:"lifecycles"`
		} `json:"policyRules"`
	} `json:"properties"`
}

// policyColumns are the table columns of policies.
var policyColumns = columns[policyView]{
	headers: []string{"NAME", "SCHEDULE", "RETENTION"},
	row: func(p policyView) []string {
		var schedule, retention []string
		for _, r := range p.Properties.PolicyRules {
			if t := r.Trigger; t != nil && t.Schedule != nil {
				s := strings.Join(t.Schedule.RepeatingTimeIntervals, ",")
				if t.Schedule.TimeZone != "" {
					s += " (" + t.Schedule.TimeZone + ")"
				}
				schedule = append(schedule, s)
			}
			for _, lc := range r.Lifecycles {
				if lc.DeleteAfter != nil {
					retention = append(retention, r.Name+"="+lc.DeleteAfter.Duration)
				}
			}
		}
		return []string{p.Name, strings.Join(schedule, "; "), strings.Join(retention, ",")}
	},
}

// policyTarget is the vault a policy command acts in.
type policyTarget struct{ rg, vault string }

func (t *policyTarget) flags(cmd *cobra.Command) {
	groupFlag(cmd, &t.rg, true)
	cmd.Flags().StringVar(&t.vault, "vault", "", "backup vault (required)")
	_ = cmd.MarkFlagRequired("vault")
}

func (c *clientCmd) policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage backup policies",
	}
	cmd.AddCommand(c.policyCreateCmd(), c.policyShowCmd(), c.policyListCmd(), c.policyDeleteCmd())
	return cmd
}

func (c *clientCmd) policyCreateCmd() *cobra.Command {
	var t policyTarget
	var file, timeZone string
	var schedules, retentions []string
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "create NAME -g GROUP --vault VAULT (--file FILE | --schedule S --retention Default=D ...)",
		Short: "Create or replace a backup policy for PostgreSQL flexible servers",
		Long: `Create or replace a backup policy, either from a JSON file (--file; '-' reads
standard input) holding the policy's properties or the whole policy as
'pgvault policy show -o json' prints it, or from flags:

  --schedule       ISO 8601 repeating interval, e.g. R/2024-01-07T23:00:00+00:00/P1W
                   (repeatable: one per backup day of a weekly schedule)
  --time-zone      time zone of the schedule (default UTC)
  --retention      TAG=DURATION; Default is required, Weekly, Monthly and
                   Yearly keep the first backup of each week, month and year:
                   --retention Default=P3M --retention Weekly=P12W
                   --retention Monthly=P12M --retention Yearly=P10Y`,
		Args: cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			var body any
			flagsUsed := len(schedules) > 0 || len(retentions) > 0
			switch {
			case file != "" && (flagsUsed || cmd.Flags().Changed("time-zone")):
				return errors.New("give either --file or --schedule, --time-zone and --retention, not both")
			case file != "":
				b, err := policyBodyFromFile(file, c.e.stdin)
				if err != nil {
					return err
				}
				body = b
			case !flagsUsed:
				return errors.New("give the policy with --file, or with --schedule and --retention Default=DURATION")
			default:
				p, err := buildPolicy(schedules, timeZone, retentions)
				if err != nil {
					return err
				}
				body = map[string]any{"properties": p}
			}
			resp, err := cl.Put(ctx, client.PolicyPath(c.subscription, t.rg, t.vault, args[0]), client.APIVersionDataProtection, body)
			if err != nil {
				return err
			}
			return printOne(c, resp.Body, policyColumns)
		}),
	}
	t.flags(cmd)
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "JSON file of the policy ('-' for standard input)")
	f.StringArrayVar(&schedules, "schedule", nil, "ISO 8601 repeating interval of the backups (repeatable)")
	f.StringVar(&timeZone, "time-zone", "UTC", "time zone of the schedule")
	f.StringArrayVar(&retentions, "retention", nil, "retention TAG=DURATION: Default (required), Weekly, Monthly, Yearly (repeatable)")
	return cmd
}

func (c *clientCmd) policyShowCmd() *cobra.Command {
	var t policyTarget
	cmd := &cobra.Command{
		Use:   "show NAME -g GROUP --vault VAULT",
		Short: "Show a backup policy",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.PolicyPath(c.subscription, t.rg, t.vault, args[0]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printOne(c, resp.Body, policyColumns)
		}),
	}
	t.flags(cmd)
	return cmd
}

func (c *clientCmd) policyListCmd() *cobra.Command {
	var t policyTarget
	cmd := &cobra.Command{
		Use:   "list -g GROUP --vault VAULT",
		Short: "List a vault's backup policies",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			items, err := cl.List(ctx, client.PoliciesPath(c.subscription, t.rg, t.vault), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printList(c, items, policyColumns)
		}),
	}
	t.flags(cmd)
	return cmd
}

func (c *clientCmd) policyDeleteCmd() *cobra.Command {
	var t policyTarget
	cmd := &cobra.Command{
		Use:   "delete NAME -g GROUP --vault VAULT",
		Short: "Delete a backup policy",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Delete(ctx, client.PolicyPath(c.subscription, t.rg, t.vault, args[0]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			if err := c.wait(ctx, cl, resp, "policy "+args[0]); err != nil {
				return err
			}
			c.deleted(resp, fmt.Sprintf("backup policy '%s'", args[0]))
			return nil
		}),
	}
	t.flags(cmd)
	return cmd
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// jobPollInterval is how often `backup start` reads the job it follows;
// tests shorten it.
var jobPollInterval = time.Second

// jobLogEvery is how often, at most, `backup start` writes a progress line
// when stderr is not a terminal (on a terminal one line is redrawn at every
// poll).
var jobLogEvery = 10 * time.Second

// jobView holds the fields of a backup job (AzureBackupJobResource) the
// CLI shows.
type jobView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		BackupInstanceFriendlyName string     `json:"backupInstanceFriendlyName"`
		DataSourceName             string     `json:"dataSourceName"`
		Operation                  string     `json:"operation"`
		Status                     string     `json:"status"`
		StartTime                  time.Time  `json:"startTime"`
		EndTime                    *time.Time `json:"endTime"`
		Duration                   string     `json:"duration"`
		ErrorDetails               []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errorDetails"`
		ExtendedInfo *struct {
			AdditionalDetails      map[string]string `json:"additionalDetails"`
			DataTransferredInBytes float64           `json:"dataTransferredInBytes"`
			RecoveryDestination    string            `json:"recoveryDestination"`
		} `json:"extendedInfo"`
	} `json:"properties"`
}

// running reports whether the job has not ended yet.
func (j *jobView) running() bool {
	switch strings.ToLower(j.Properties.Status) {
	case "", "inprogress", "cancelling", "queued":
		return true
	}
	return false
}

// detail returns one of the job's extendedInfo.additionalDetails.
func (j *jobView) detail(key string) string {
	if x := j.Properties.ExtendedInfo; x != nil {
		return x.AdditionalDetails[key]
	}
	return ""
}

// transferred returns the bytes transferred and the server's estimate of
// the total (0 when unknown).
func (j *jobView) transferred() (done, total int64) {
	if x := j.Properties.ExtendedInfo; x != nil {
		done = int64(x.DataTransferredInBytes)
	}
	total, _ = strconv.ParseInt(j.detail("BytesTotal"), 10, 64)
	return done, total
}

// progress describes a running job's progress, e.g. "Transferring 1.2 GiB
// of 3.4 GiB (35%)".
func (j *jobView) progress() string {
	done, total := j.transferred()
	phase := j.detail("Phase")
	switch {
	case phase == "" && done == 0:
		return "queued"
	case phase == "":
		phase = "running"
	}
	switch {
	case total > 0:
		return fmt.Sprintf("%s %s of %s (%d%%)", phase, formatBytes(done), formatBytes(total), min(done*100/total, 100))
	case done > 0:
		return fmt.Sprintf("%s %s", phase, formatBytes(done))
	}
	return phase
}

// jobError is the first of the job's errors as "CODE: message".
func (j *jobView) jobError() string {
	for _, e := range j.Properties.ErrorDetails {
		if e.Code != "" || e.Message != "" {
			return strings.TrimPrefix(e.Code+": "+e.Message, ": ")
		}
	}
	return ""
}

// jobColumns are the table columns of backup jobs.
var jobColumns = columns[jobView]{
	headers: []string{"NAME", "OPERATION", "INSTANCE", "STATUS", "START", "DURATION", "DATA"},
	row: func(j jobView) []string {
		done, _ := j.transferred()
		data := ""
		if done > 0 || !j.running() {
			data = formatBytes(done)
		}
		return []string{j.Name, j.Properties.Operation, j.Properties.BackupInstanceFriendlyName, j.Properties.Status,
			formatTime(j.Properties.StartTime), j.Properties.Duration, data}
	},
}

// printJob prints a job; in a table, with its progress, recovery point
// and error on the lines after.
func (c *clientCmd) printJob(raw []byte) error {
	if err := printOne(c, raw, jobColumns); err != nil || c.output != outputTable {
		return err
	}
	var j jobView
	if err := json.Unmarshal(raw, &j); err != nil {
		return fmt.Errorf("while decoding the server's answer: %w", err)
	}
	if j.running() {
		c.printf("Progress: %s", j.progress())
	}
	if rp := j.detail("RecoveryPointId"); rp != "" {
		c.printf("Recovery point: %s", rp)
	}
	if x := j.Properties.ExtendedInfo; x != nil && x.RecoveryDestination != "" {
		c.printf("Restored to: %s", x.RecoveryDestination)
	}
	if e := j.jobError(); e != "" {
		c.printf("Error: %s", e)
	}
	return nil
}

// recoveryPointView holds the fields of a recovery point the CLI shows.
type recoveryPointView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		RecoveryPointTime  time.Time `json:"recoveryPointTime"`
		RecoveryPointState string    `json:"recoveryPointState"`
		RetentionTagName   string    `json:"retentionTagName"`
		PolicyName         string    `json:"policyName"`
		Pgvault            *struct {
			SnapshotID       string `json:"snapshotId"`
			StartLSN         string `json:"startLsn"`
			EndLSN           string `json:"endLsn"`
			Timeline         int32  `json:"timeline"`
			SystemIdentifier string `json:"systemIdentifier"`
			ServerVersion    string `json:"serverVersion"`
			DataBytes        int64  `json:"dataBytes"`
			StoredBytes      int64  `json:"storedBytes"`
			JobID            string `json:"jobId"`
		} `json:"pgvault"`
	} `json:"properties"`
}

// recoveryPointColumns are the table columns of recovery points.
var recoveryPointColumns = columns[recoveryPointView]{
	headers: []string{"NAME", "TIME", "RETENTION TAG", "STATE", "SIZE", "STORED"},
	row: func(rp recoveryPointView) []string {
		var size, stored string
		if x := rp.Properties.Pgvault; x != nil {
			size, stored = formatBytes(x.DataBytes), formatBytes(x.StoredBytes)
		}
		return []string{rp.Name, formatTime(rp.Properties.RecoveryPointTime), rp.Properties.RetentionTagName,
			rp.Properties.RecoveryPointState, size, stored}
	},
}

// printRecoveryPoint prints a recovery point; in a table, with the backup
// behind it on the lines after.
func (c *clientCmd) printRecoveryPoint(raw []byte) error {
	if err := printOne(c, raw, recoveryPointColumns); err != nil || c.output != outputTable {
		return err
	}
	var rp recoveryPointView
	if err := json.Unmarshal(raw, &rp); err != nil {
		return fmt.Errorf("while decoding the server's answer: %w", err)
	}
	if x := rp.Properties.Pgvault; x != nil {
		c.printf("Snapshot: %s", x.SnapshotID)
		c.printf("WAL: start LSN %s, end LSN %s, timeline %d", x.StartLSN, x.EndLSN, x.Timeline)
		c.printf("Server: PostgreSQL %s, system identifier %s", serverVersion(x.ServerVersion), x.SystemIdentifier)
		c.printf("Job: %s", x.JobID)
	}
	return nil
}

func (c *clientCmd) backupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up protected servers on demand",
	}
	cmd.AddCommand(c.backupStartCmd())
	return cmd
}

func (c *clientCmd) backupStartCmd() *cobra.Command {
	var t policyTarget
	var rule, tag string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "start INSTANCE --vault VAULT -g GROUP [--rule NAME] [--retention-tag TAG] [--no-wait]",
		Short: "Back up a protected server now (on-demand backup) and follow the backup job",
		Long: `Back up the server a backup instance protects now, as Azure's on-demand
backup does: the server queues a backup job and answers with its ID. Unless
--no-wait, the command then follows the job, showing the bytes transferred
of the server's estimate, until it ends, and prints the outcome and the new
recovery point; a job that fails makes the command fail with its error.
Interrupting the command does not stop the backup: 'pgvault job show' follows
it.

--rule names the policy's backup rule to apply (default: the policy's backup
rule, e.g. BackupWeekly) and --retention-tag the retention rule that keeps
the recovery point (default: Default).

With -o json it prints {"job": JOB, "recoveryPoint": RECOVERY POINT} (the
recovery point only once the job completed), or the queued job with --no-wait.`,
		Args: cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			inst := args[0]
			if rule == "" {
				var err error
				if rule, err = c.defaultBackupRule(ctx, cl, t, inst); err != nil {
					return err
				}
			}
			body := map[string]any{"backupRuleOptions": map[string]any{
				"ruleName":      rule,
				"triggerOption": map[string]any{"retentionTagOverride": tag},
			}}
			resp, err := cl.Post(ctx, client.AdhocBackupPath(c.subscription, t.rg, t.vault, inst), client.APIVersionDataProtection, body)
			if err != nil {
				return err
			}
			j, raw, err := c.queuedJob(ctx, cl, t, resp, "the backup of instance "+inst+" to be queued", "backup", noWait)
			if err != nil || j == nil {
				return err
			}
			return c.jobOutcome(ctx, cl, t, inst, j, raw)
		}),
	}
	t.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&rule, "rule", "", "backup rule of the policy to apply (default: the policy's backup rule)")
	f.StringVar(&tag, "retention-tag", "Default", "retention rule of the policy that keeps the recovery point")
	f.BoolVar(&noWait, "no-wait", false, "return once the backup job is queued, without following it")
	return cmd
}

// queuedJob waits for the operation of resp (what says what it waits for)
// and follows the job it queued (kind "backup" or "restore") until it ends;
// with noWait it prints the queued job instead and returns no job.
func (c *clientCmd) queuedJob(ctx context.Context, cl *client.Client, t policyTarget, resp *client.Response, what, kind string, noWait bool) (*jobView, []byte, error) {
	op, err := c.waitOp(ctx, cl, resp, what)
	if err != nil {
		return nil, nil, err
	}
	name, err := jobNameOf(resp, op)
	if err != nil {
		return nil, nil, err
	}
	show := fmt.Sprintf("pgvault job show %s --vault %s -g %s", name, shellQuote(t.vault), shellQuote(t.rg))
	jobPath := client.BackupJobPath(c.subscription, t.rg, t.vault, name)
	if noWait {
		jr, err := cl.Get(ctx, jobPath, client.APIVersionDataProtection)
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(c.e.stderr, "not following %s job %s; see it with: %s\n", kind, name, show)
		return nil, nil, c.printJob(jr.Body)
	}
	j, raw, err := c.followJob(ctx, cl, jobPath, kind, name)
	if err != nil {
		return nil, nil, hintedError{err: err, hint: "  the " + kind + " continues on the server; follow it with: " + show}
	}
	return j, raw, nil
}

// defaultBackupRule returns the name of the backup rule of the instance's policy.
func (c *clientCmd) defaultBackupRule(ctx context.Context, cl *client.Client, t policyTarget, inst string) (string, error) {
	resp, err := cl.Get(ctx, client.BackupInstancePath(c.subscription, t.rg, t.vault, inst), client.APIVersionDataProtection)
	if err != nil {
		return "", err
	}
	var bi instanceView
	if err := resp.Decode(&bi); err != nil {
		return "", err
	}
	if bi.Properties.PolicyInfo == nil || bi.Properties.PolicyInfo.PolicyID == "" {
		return "", fmt.Errorf("the backup instance '%s' names no policy: give --rule", inst)
	}
	policyID := bi.Properties.PolicyInfo.PolicyID
	resp, err = cl.Get(ctx, client.ScopePath(policyID), client.APIVersionDataProtection)
	if err != nil {
		return "", fmt.Errorf("while reading the policy of backup instance '%s': %w", inst, err)
	}
	var pol policyView
	if err := resp.Decode(&pol); err != nil {
		return "", err
	}
	for _, r := range pol.Properties.PolicyRules {
		if r.ObjectType == "AzureBackupRule" && r.Name != "" {
			return r.Name, nil
		}
	}
	return "", fmt.Errorf("the policy '%s' has no backup rule (AzureBackupRule): give --rule", lastSegment(policyID))
}

// jobNameOf returns the name (GUID) of the job an on-demand backup queued:
// the last segment of the jobId of the operation's result
// (OperationJobExtendedInfo), or of the response's body without an operation.
func jobNameOf(resp *client.Response, op *client.Operation) (string, error) {
	raw := resp.Body
	if op != nil {
		raw = op.Properties
	}
	var res struct {
		JobID string `json:"jobId"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &res); err != nil {
			return "", fmt.Errorf("while decoding the result of the backup request: %w", err)
		}
	}
	if res.JobID == "" {
		return "", errors.New("the server did not name the backup job it queued")
	}
	return lastSegment(strings.TrimRight(res.JobID, "/")), nil
}

// followJob reads the job at path until it ends, with a progress indicator
// on stderr: on a terminal a line redrawn at every poll, else a line when
// the progress changed, at most every jobLogEvery. It returns the ended job
// and its JSON.
func (c *clientCmd) followJob(ctx context.Context, cl *client.Client, path, kind, name string) (*jobView, []byte, error) {
	w := c.e.stderr
	tty := stderrIsTerminal(w)
	const frames = `|/-\`
	start := time.Now()
	if !tty {
		fmt.Fprintf(w, "following %s job %s ...\n", kind, name)
	}
	var logged time.Time
	var last string
	for polls := 0; ; polls++ {
		resp, err := cl.Get(ctx, path, client.APIVersionDataProtection)
		var j jobView
		if err == nil {
			err = resp.Decode(&j)
		}
		if err != nil || !j.running() {
			if tty {
				fmt.Fprint(w, "\r\x1b[K")
			}
			if err != nil {
				return nil, nil, err
			}
			return &j, resp.Body, nil
		}
		p := j.progress()
		switch {
		case tty:
			fmt.Fprintf(w, "\r\x1b[K%c %s job %s: %s, %s", frames[polls%len(frames)], kind, name, p, time.Since(start).Round(time.Second))
		case p != last && time.Since(logged) >= jobLogEvery:
			fmt.Fprintf(w, "%s job %s: %s\n", kind, name, p)
			logged, last = time.Now(), p
		}
		t := time.NewTimer(jobPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			if tty {
				fmt.Fprint(w, "\r\x1b[K")
			}
			return nil, nil, fmt.Errorf("while following %s job %s: %w", kind, name, ctx.Err())
		case <-t.C:
		}
	}
}

// jobOutcome prints how a followed backup job ended: its recovery point
// when it completed; its error, as the command's, when it did not.
func (c *clientCmd) jobOutcome(ctx context.Context, cl *client.Client, t policyTarget, inst string, j *jobView, raw []byte) error {
	if !strings.EqualFold(j.Properties.Status, "Completed") {
		if c.output == outputJSON {
			if err := c.printJSON(mustJSON(map[string]json.RawMessage{"job": raw})); err != nil {
				return err
			}
		} else if err := printOne(c, raw, jobColumns); err != nil {
			return err
		}
		msg := j.jobError()
		if msg == "" {
			msg = "the server gave no reason"
		}
		return fmt.Errorf("backup job %s ended %s: %s", j.Name, j.Properties.Status, msg)
	}
	rpName := j.detail("RecoveryPointId")
	if rpName == "" {
		return fmt.Errorf("backup job %s completed but names no recovery point", j.Name)
	}
	resp, err := cl.Get(ctx, client.RecoveryPointPath(c.subscription, t.rg, t.vault, inst, rpName), client.APIVersionDataProtection)
	if err != nil {
		return fmt.Errorf("while reading recovery point %s of backup job %s: %w", rpName, j.Name, err)
	}
	if c.output == outputJSON {
		return c.printJSON(mustJSON(map[string]json.RawMessage{"job": raw, "recoveryPoint": resp.Body}))
	}
	done, _ := j.transferred()
	stored, _ := strconv.ParseInt(j.detail("StoredBytes"), 10, 64)
	c.printf("Backup job %s completed in %s: %s backed up, %s new in the vault.", j.Name, j.Properties.Duration, formatBytes(done), formatBytes(stored))
	return c.printRecoveryPoint(resp.Body)
}

// mustJSON marshals what cannot fail to marshal (maps of raw JSON).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (c *clientCmd) jobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "job",
		Aliases: []string{"backup-job"},
		Short:   "Show a vault's backup jobs",
	}
	var lt, st policyTarget
	list := &cobra.Command{
		Use:   "list --vault VAULT -g GROUP",
		Short: "List a vault's backup jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			items, err := cl.List(ctx, client.BackupJobsPath(c.subscription, lt.rg, lt.vault), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printList(c, items, jobColumns)
		}),
	}
	lt.flags(list)
	show := &cobra.Command{
		Use:   "show ID --vault VAULT -g GROUP",
		Short: "Show a backup job: its status, progress, recovery point or error",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.BackupJobPath(c.subscription, st.rg, st.vault, lastSegment(strings.TrimRight(args[0], "/"))), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return c.printJob(resp.Body)
		}),
	}
	st.flags(show)
	cmd.AddCommand(list, show)
	return cmd
}

func (c *clientCmd) recoveryPointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "recovery-point",
		Aliases: []string{"rp"},
		Short:   "Show the recovery points of a backup instance",
	}
	var lt, st policyTarget
	list := &cobra.Command{
		Use:   "list INSTANCE --vault VAULT -g GROUP",
		Short: "List the recovery points of a backup instance",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			items, err := cl.List(ctx, client.RecoveryPointsPath(c.subscription, lt.rg, lt.vault, args[0]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printList(c, items, recoveryPointColumns)
		}),
	}
	lt.flags(list)
	show := &cobra.Command{
		Use:   "show INSTANCE ID --vault VAULT -g GROUP",
		Short: "Show a recovery point: its time, size, WAL positions and job",
		Args:  cobra.ExactArgs(2),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.RecoveryPointPath(c.subscription, st.rg, st.vault, args[0], args[1]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return c.printRecoveryPoint(resp.Body)
		}),
	}
	st.flags(show)
	cmd.AddCommand(list, show, c.recoveryPointRestoreCmd())
	return cmd
}

// serverVersion renders a server_version_num ("150018") as PostgreSQL
// does ("15.18"); other strings as they are.
func serverVersion(num string) string {
	n, err := strconv.Atoi(num)
	if err != nil || n < 100000 {
		return num
	}
	return fmt.Sprintf("%d.%d", n/10000, n%10000)
}

// plural is "1 thing" or "N things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// formatBytes renders a byte count in binary units: "512 B", "1.5 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatTime renders a time in UTC to the second; "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

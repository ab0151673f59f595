package vault

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/policy"
)

// MaxRetention is the longest retention Azure allows for PostgreSQL flexible servers.
var MaxRetention = policy.Duration{Years: 10}

// Retention tags pgvault accepts besides Default, with the absolute criterion
// each is judged by.
var namedTags = map[string]string{"Weekly": "FirstOfWeek", "Monthly": "FirstOfMonth", "Yearly": "FirstOfYear"}

var (
	absoluteCriteria = []string{"AllBackup", "FirstOfDay", "FirstOfWeek", "FirstOfMonth", "FirstOfYear"}
	weekDays         = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	weeksOfMonth     = []string{"First", "Second", "Third", "Fourth", "Last"}
	months           = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
)

// policyErrors collects every rule a policy breaks.
type policyErrors []*Error

func (pe *policyErrors) add(code, target, format string, args ...any) {
	*pe = append(*pe, invalid(code, target, format, args...))
}

// ValidatePolicy checks a backup policy against the rules Azure applies to
// PostgreSQL flexible server policies, and canonicalises it (enum spelling,
// tag IDs, fields of other rule types cleared). now anchors the P10Y limit.
// The error names the first broken rule and lists all of them in Details.
func ValidatePolicy(p *BackupPolicy, now time.Time) error {
	var errs policyErrors
	validatePolicy(p, now, &errs)
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	first := *errs[0]
	first.Message = fmt.Sprintf("%s (%d problems in this policy; see details)", first.Message, len(errs))
	first.Details = errs
	return &first
}

func validatePolicy(p *BackupPolicy, now time.Time, errs *policyErrors) {
	const root = "properties"
	if p.ObjectType != "BackupPolicy" {
		errs.add("InvalidObjectType", root+".objectType", "The policy objectType must be 'BackupPolicy', not '%s'.", p.ObjectType)
	}
	switch {
	case len(p.DatasourceTypes) == 0:
		errs.add("MissingProperty", root+".datasourceTypes", "The policy must name its datasource type '%s'.", DatasourceType)
	case len(p.DatasourceTypes) > 1 || !strings.EqualFold(p.DatasourceTypes[0], DatasourceType):
		errs.add("UserErrorDatasourceTypeNotSupported", root+".datasourceTypes",
			"pgvault backs up only '%s'; the policy names %s.", DatasourceType, quoteList(p.DatasourceTypes))
	default:
		p.DatasourceTypes[0] = DatasourceType
	}
	if len(p.PolicyRules) == 0 {
		errs.add("MissingProperty", root+".policyRules", "The policy must have one backup rule and at least the Default retention rule.")
		return
	}
	var backup *PolicyRule
	backupTarget := ""
	retention := map[string]string{} // rule name -> target
	names := map[string]bool{}
	for i := range p.PolicyRules {
		r := &p.PolicyRules[i]
		target := fmt.Sprintf("%s.policyRules[%d]", root, i)
		if r.Name == "" {
			errs.add("MissingProperty", target+".name", "Every policy rule needs a name.")
		} else if names[strings.ToLower(r.Name)] {
			errs.add("DuplicateRuleName", target+".name", "The rule name '%s' is used twice.", r.Name)
		}
		names[strings.ToLower(r.Name)] = true
		switch r.ObjectType {
		case ObjectBackupRule:
			r.IsDefault, r.Lifecycles = nil, nil
			if backup != nil {
				errs.add("UserErrorMultipleBackupRules", target, "A PostgreSQL flexible server policy has exactly one AzureBackupRule; '%s' is a second one.", r.Name)
				continue
			}
			backup, backupTarget = r, target
			validateBackupRule(r, target, errs)
		case ObjectRetentionRule:
			r.BackupParameters, r.DataStore, r.Trigger = nil, nil, nil
			validateRetentionRule(r, target, now, errs)
			retention[r.Name] = target
		default:
			errs.add("InvalidObjectType", target+".objectType", "The policy rule objectType must be 'AzureBackupRule' or 'AzureRetentionRule', not '%s'.", r.ObjectType)
		}
	}
	if backup == nil {
		errs.add("UserErrorMissingBackupRule", root+".policyRules", "The policy has no AzureBackupRule: it must say when backups run.")
	}
	if _, ok := retention["Default"]; !ok {
		errs.add("UserErrorMissingDefaultRetentionRule", root+".policyRules", "The policy has no AzureRetentionRule named 'Default' with isDefault true.")
	}
	if backup == nil || backup.Trigger == nil {
		return
	}
	// Every tag needs a retention rule of the same name, and every named
	// retention rule a tag that selects backups for it.
	tags := map[string]bool{}
	for i, tc := range backup.Trigger.TaggingCriteria {
		if tc.TagInfo == nil {
			continue
		}
		tags[tc.TagInfo.TagName] = true
		if tc.TagInfo.TagName == "Default" {
			continue // a missing Default retention rule is reported once, above
		}
		if _, ok := retention[tc.TagInfo.TagName]; !ok {
			errs.add("UserErrorTagWithoutRetentionRule", fmt.Sprintf("%s.trigger.taggingCriteria[%d].tagInfo.tagName", backupTarget, i),
				"The tag '%s' has no AzureRetentionRule of the same name.", tc.TagInfo.TagName)
		}
	}
	var unnamed []string
	for name := range retention {
		if !tags[name] && name != "Default" {
			unnamed = append(unnamed, name)
		}
	}
	sort.Strings(unnamed)
	for _, name := range unnamed {
		errs.add("UserErrorRetentionRuleWithoutTag", retention[name],
			"The retention rule '%s' has no tagging criterion in the backup rule's trigger, so no backup would ever be kept by it.", name)
	}
}

func validateBackupRule(r *PolicyRule, target string, errs *policyErrors) {
	switch bp := r.BackupParameters; {
	case bp == nil:
		errs.add("MissingProperty", target+".backupParameters", "The backup rule needs backupParameters {objectType: AzureBackupParams, backupType: Full}.")
	case bp.ObjectType != "AzureBackupParams":
		errs.add("InvalidObjectType", target+".backupParameters.objectType", "The backupParameters objectType must be 'AzureBackupParams', not '%s'.", bp.ObjectType)
	case !strings.EqualFold(bp.BackupType, "Full"):
		errs.add("UserErrorUnsupportedBackupType", target+".backupParameters.backupType", "PostgreSQL flexible servers support only the backupType 'Full', not '%s'.", bp.BackupType)
	default:
		bp.BackupType = "Full"
	}
	validateDataStore(r.DataStore, target+".dataStore", errs)
	t := r.Trigger
	switch {
	case t == nil:
		errs.add("MissingProperty", target+".trigger", "The backup rule needs a ScheduleBasedTriggerContext trigger.")
		return
	case t.ObjectType == ObjectAdhocTrigger:
		errs.add("UserErrorUnsupportedTrigger", target+".trigger.objectType", "PostgreSQL flexible server policies need a ScheduleBasedTriggerContext; on-demand backups need no policy trigger.")
		return
	case t.ObjectType != ObjectScheduleTrigger:
		errs.add("InvalidObjectType", target+".trigger.objectType", "The trigger objectType must be 'ScheduleBasedTriggerContext', not '%s'.", t.ObjectType)
		return
	}
	validateSchedule(t.Schedule, target+".trigger.schedule", errs)
	validateTagging(t.TaggingCriteria, target+".trigger.taggingCriteria", errs)
}

func validateDataStore(ds *DataStoreInfo, target string, errs *policyErrors) {
	switch {
	case ds == nil:
		errs.add("MissingProperty", target, "The data store is required: {dataStoreType: VaultStore, objectType: DataStoreInfoBase}.")
	case ds.ObjectType != "DataStoreInfoBase":
		errs.add("InvalidObjectType", target+".objectType", "The data store objectType must be 'DataStoreInfoBase', not '%s'.", ds.ObjectType)
	case !strings.EqualFold(ds.DataStoreType, "VaultStore"):
		errs.add("UserErrorUnsupportedDataStore", target+".dataStoreType", "PostgreSQL flexible server backups are kept only in the VaultStore, not '%s'.", ds.DataStoreType)
	default:
		ds.DataStoreType = "VaultStore"
	}
}

func validateSchedule(sc *BackupSchedule, target string, errs *policyErrors) {
	if sc == nil || len(sc.RepeatingTimeIntervals) == 0 {
		errs.add("MissingProperty", target+".repeatingTimeIntervals", "The schedule needs at least one ISO 8601 repeating interval such as 'R/2024-01-07T23:00:00+00:00/P1W'.")
		return
	}
	loc := time.UTC
	if sc.TimeZone != "" {
		l, err := policy.LoadLocation(sc.TimeZone)
		if err != nil {
			errs.add("UserErrorInvalidTimeZone", target+".timeZone", "The time zone '%s' is not known: %v.", sc.TimeZone, err)
		} else {
			loc = l
		}
	}
	var period string
	weekdays := map[time.Weekday]bool{}
	for i, s := range sc.RepeatingTimeIntervals {
		t := fmt.Sprintf("%s.repeatingTimeIntervals[%d]", target, i)
		ri, err := policy.ParseRepeatingInterval(s)
		if err != nil {
			errs.add("UserErrorInvalidRepeatingTimeInterval", t, "%v.", err)
			continue
		}
		p := ri.Period.String()
		switch p {
		case "P1D", "P1W":
		default:
			errs.add("UserErrorUnsupportedBackupFrequency", t, "PostgreSQL flexible servers are backed up daily (P1D) or weekly (P1W); '%s' is not supported.", p)
			continue
		}
		if period != "" && p != period {
			errs.add("UserErrorUnsupportedBackupFrequency", t, "All repeating intervals of a schedule must have the same period; found %s and %s.", period, p)
			continue
		}
		period = p
		if p == "P1D" && i > 0 {
			errs.add("UserErrorUnsupportedBackupFrequency", t, "A daily schedule has exactly one repeating interval: at most one backup a day.")
			continue
		}
		wd := ri.Occurrence(0, loc).Weekday() // the weekday in the policy's time zone
		if weekdays[wd] {
			errs.add("UserErrorUnsupportedBackupFrequency", t, "Two weekly intervals start on a %s: at most one backup a day.", wd)
		}
		weekdays[wd] = true
	}
}

func validateTagging(tcs []TaggingCriterion, target string, errs *policyErrors) {
	if len(tcs) == 0 {
		errs.add("UserErrorMissingDefaultTaggingCriteria", target, "The trigger needs tagging criteria with exactly one default tag named 'Default'.")
		return
	}
	defaults := 0
	seen := map[string]bool{}
	for i := range tcs {
		tc := &tcs[i]
		t := fmt.Sprintf("%s[%d]", target, i)
		if tc.TagInfo == nil || tc.TagInfo.TagName == "" {
			errs.add("MissingProperty", t+".tagInfo.tagName", "Every tagging criterion needs tagInfo.tagName.")
			continue
		}
		name := tc.TagInfo.TagName
		if tc.IsDefault == nil {
			errs.add("MissingProperty", t+".isDefault", "The tagging criterion '%s' needs isDefault.", name)
		}
		if tc.TaggingPriority == nil {
			errs.add("MissingProperty", t+".taggingPriority", "The tagging criterion '%s' needs taggingPriority.", name)
		} else if *tc.TaggingPriority < 0 {
			errs.add("InvalidPropertyValue", t+".taggingPriority", "The tagging priority must not be negative.")
		}
		if seen[strings.ToLower(name)] {
			errs.add("UserErrorDuplicateTag", t+".tagInfo.tagName", "The tag '%s' appears twice.", name)
		}
		seen[strings.ToLower(name)] = true
		tc.TagInfo.ID = name + "_"
		if tc.IsDefault != nil && *tc.IsDefault {
			defaults++
			if name != "Default" {
				errs.add("UserErrorInvalidDefaultTag", t+".tagInfo.tagName", "The default tagging criterion must use the tag 'Default', not '%s'.", name)
			}
			if len(tc.Criteria) > 0 {
				errs.add("InvalidTaggingCriteria", t+".criteria", "The default tag applies to every backup and takes no criteria.")
			}
			continue
		}
		criterion, ok := namedTags[name]
		if !ok {
			errs.add("UserErrorUnsupportedTag", t+".tagInfo.tagName", "PostgreSQL flexible server policies support the tags Default, Weekly, Monthly and Yearly, not '%s'.", name)
			continue
		}
		if len(tc.Criteria) == 0 {
			errs.add("InvalidTaggingCriteria", t+".criteria", "The tag '%s' needs criteria, e.g. absoluteCriteria [%s].", name, criterion)
			continue
		}
		for j := range tc.Criteria {
			validateCriteria(&tc.Criteria[j], name, criterion, fmt.Sprintf("%s.criteria[%d]", t, j), errs)
		}
	}
	switch {
	case defaults == 0:
		errs.add("UserErrorMissingDefaultTaggingCriteria", target, "The tagging criteria need exactly one default tag (isDefault true, tagName 'Default').")
	case defaults > 1:
		errs.add("UserErrorMultipleDefaultTaggingCriteria", target, "The tagging criteria have %d default tags; exactly one is allowed.", defaults)
	}
}

func validateCriteria(c *BackupCriteria, tag, criterion, t string, errs *policyErrors) {
	if c.ObjectType != "ScheduleBasedBackupCriteria" {
		errs.add("InvalidObjectType", t+".objectType", "The criteria objectType must be 'ScheduleBasedBackupCriteria', not '%s'.", c.ObjectType)
		return
	}
	for k := range c.AbsoluteCriteria {
		if !canonicalize(&c.AbsoluteCriteria[k], absoluteCriteria) {
			errs.add("InvalidPropertyValue", fmt.Sprintf("%s.absoluteCriteria[%d]", t, k), "'%s' is not an absolute criterion; use one of %s.", c.AbsoluteCriteria[k], strings.Join(absoluteCriteria, ", "))
		} else if c.AbsoluteCriteria[k] != criterion {
			errs.add("InvalidTaggingCriteria", fmt.Sprintf("%s.absoluteCriteria[%d]", t, k), "The tag '%s' selects backups with %s, not %s.", tag, criterion, c.AbsoluteCriteria[k])
		}
	}
	for k := range c.DaysOfTheWeek {
		if !canonicalize(&c.DaysOfTheWeek[k], weekDays) {
			errs.add("InvalidPropertyValue", fmt.Sprintf("%s.daysOfTheWeek[%d]", t, k), "'%s' is not a day of the week.", c.DaysOfTheWeek[k])
		}
	}
	for k := range c.WeeksOfTheMonth {
		if !canonicalize(&c.WeeksOfTheMonth[k], weeksOfMonth) {
			errs.add("InvalidPropertyValue", fmt.Sprintf("%s.weeksOfTheMonth[%d]", t, k), "'%s' is not a week of the month; use one of %s.", c.WeeksOfTheMonth[k], strings.Join(weeksOfMonth, ", "))
		}
	}
	for k := range c.MonthsOfYear {
		if !canonicalize(&c.MonthsOfYear[k], months) {
			errs.add("InvalidPropertyValue", fmt.Sprintf("%s.monthsOfYear[%d]", t, k), "'%s' is not a month.", c.MonthsOfYear[k])
		}
	}
	for k, d := range c.DaysOfMonth {
		last := d.IsLast != nil && *d.IsLast
		if !last && (d.Date == nil || *d.Date < 1 || *d.Date > 28) {
			errs.add("InvalidPropertyValue", fmt.Sprintf("%s.daysOfMonth[%d]", t, k), "A day of the month is a date from 1 to 28, or isLast true.")
		}
	}
	if len(c.AbsoluteCriteria)+len(c.DaysOfTheWeek)+len(c.WeeksOfTheMonth)+len(c.MonthsOfYear)+len(c.DaysOfMonth) == 0 {
		errs.add("InvalidTaggingCriteria", t, "The criteria of tag '%s' select nothing; give e.g. absoluteCriteria [%s].", tag, criterion)
	}
}

func canonicalize(p *string, allowed []string) bool {
	c, ok := canonicalEnum(*p, allowed)
	if ok {
		*p = c
	}
	return ok
}

func validateRetentionRule(r *PolicyRule, target string, now time.Time, errs *policyErrors) {
	isDefault := r.IsDefault != nil && *r.IsDefault
	switch {
	case r.Name == "Default" && !isDefault:
		errs.add("UserErrorInvalidDefaultRetentionRule", target+".isDefault", "The retention rule 'Default' must have isDefault true.")
	case r.Name != "Default" && isDefault:
		errs.add("UserErrorInvalidDefaultRetentionRule", target+".isDefault", "Only the retention rule named 'Default' may have isDefault true, not '%s'.", r.Name)
	case r.Name != "Default":
		if _, ok := namedTags[r.Name]; !ok {
			errs.add("UserErrorUnsupportedTag", target+".name", "PostgreSQL flexible server policies support the retention rules Default, Weekly, Monthly and Yearly, not '%s'.", r.Name)
		}
	}
	if len(r.Lifecycles) != 1 {
		errs.add("UserErrorInvalidLifecycles", target+".lifecycles", "A retention rule has exactly one lifecycle in the VaultStore; found %d.", len(r.Lifecycles))
		if len(r.Lifecycles) == 0 {
			return
		}
	}
	for i := range r.Lifecycles {
		lc := &r.Lifecycles[i]
		t := fmt.Sprintf("%s.lifecycles[%d]", target, i)
		validateDataStore(lc.SourceDataStore, t+".sourceDataStore", errs)
		if len(lc.TargetDataStoreCopySettings) > 0 {
			errs.add("UserErrorUnsupportedCopySetting", t+".targetDataStoreCopySettings", "PostgreSQL flexible server backups cannot be copied to another data store.")
		}
		da := lc.DeleteAfter
		switch {
		case da == nil:
			errs.add("MissingProperty", t+".deleteAfter", "The lifecycle needs deleteAfter {objectType: AbsoluteDeleteOption, duration}.")
			continue
		case da.ObjectType != "AbsoluteDeleteOption":
			errs.add("InvalidObjectType", t+".deleteAfter.objectType", "The deleteAfter objectType must be 'AbsoluteDeleteOption', not '%s'.", da.ObjectType)
			continue
		}
		d, err := policy.ParseDuration(da.Duration)
		switch {
		case err != nil:
			errs.add("UserErrorInvalidRetentionDuration", t+".deleteAfter.duration", "%v.", err)
		case d.IsZero():
			errs.add("UserErrorInvalidRetentionDuration", t+".deleteAfter.duration", "The retention duration must be longer than zero.")
		case d.Exceeds(MaxRetention, now):
			errs.add("UserErrorRetentionTooLong", t+".deleteAfter.duration", "The retention duration %s is longer than the maximum of %s.", da.Duration, MaxRetention)
		}
	}
}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = "'" + v + "'"
	}
	return strings.Join(q, ", ")
}

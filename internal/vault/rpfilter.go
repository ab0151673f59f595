package vault

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/store"
)

// recoveryPointFilter is a parsed $filter of a recovery point list (Azure's
// RecoveryPointsFilters): terms "name eq 'value'" (or eq true/false) joined
// by "and".
type recoveryPointFilter struct {
	start, end  *time.Time
	visible     *bool
	state       string
	dataStoreID string
}

// rpFilterTerm matches one term at the start of the rest of a filter.
var rpFilterTerm = regexp.MustCompile(`^\s*([A-Za-z]+)\s+(?i:eq)\s+(?:'([^']*)'|([A-Za-z]+))\s*`)

// rpFilterAnd matches the "and" between terms.
var rpFilterAnd = regexp.MustCompile(`^(?i:and)\s+`)

// filterTimeLayouts are the time forms a filter may use; without a zone, UTC.
var filterTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02"}

// parseRecoveryPointFilter parses a $filter: startDate, endDate (the
// recovery point time is within them, inclusive), isVisible,
// restorePointState, restorePointDataStoreId and extendedInfo (accepted,
// ignored), each at most once.
func parseRecoveryPointFilter(filter string) (*recoveryPointFilter, *Error) {
	f := &recoveryPointFilter{}
	rest := strings.TrimSpace(filter)
	bad := func(why string) *Error {
		return invalid("InvalidFilter", "$filter",
			"The filter '%s' is not supported: %s. Use startDate eq '{time}', endDate eq '{time}', isVisible eq true|false, restorePointState eq '{state}', restorePointDataStoreId eq '{id}' or extendedInfo eq true|false, joined by 'and'.", filter, why)
	}
	seen := map[string]bool{}
	for rest != "" {
		m := rpFilterTerm.FindStringSubmatch(rest)
		if m == nil {
			return nil, bad("'" + rest + "' is not a term name eq 'value'")
		}
		rest = rest[len(m[0]):]
		if rest != "" {
			and := rpFilterAnd.FindString(rest)
			if and == "" {
				return nil, bad("terms must be joined by 'and'")
			}
			rest = rest[len(and):]
			if rest == "" {
				return nil, bad("it ends with 'and'")
			}
		}
		name, quoted, bare := strings.ToLower(m[1]), m[2], strings.ToLower(m[3])
		if seen[name] {
			return nil, bad(m[1] + " appears twice")
		}
		seen[name] = true
		isBool := bare == "true" || bare == "false"
		if m[3] != "" && !isBool {
			return nil, bad("the value of " + m[1] + " must be quoted")
		}
		switch name {
		case "startdate", "enddate":
			if m[3] != "" {
				return nil, bad(m[1] + " takes a quoted time")
			}
			t, ok := parseFilterTime(quoted)
			if !ok {
				return nil, bad("'" + quoted + "' is not a time (e.g. 2024-05-01T00:00:00Z)")
			}
			if name == "startdate" {
				f.start = &t
			} else {
				f.end = &t
			}
		case "isvisible", "extendedinfo":
			v := bare == "true" || strings.EqualFold(quoted, "true")
			if !isBool && !strings.EqualFold(quoted, "true") && !strings.EqualFold(quoted, "false") {
				return nil, bad(m[1] + " takes true or false")
			}
			if name == "isvisible" {
				f.visible = &v
			}
		case "restorepointstate":
			f.state = quoted
		case "restorepointdatastoreid":
			f.dataStoreID = quoted
		default:
			return nil, bad("'" + m[1] + "' is not a filter of recovery points")
		}
		if (name == "restorepointstate" || name == "restorepointdatastoreid") && (m[3] != "" || quoted == "") {
			return nil, bad(m[1] + " takes a quoted, non-empty value")
		}
	}
	if f.start != nil && f.end != nil && f.end.Before(*f.start) {
		return nil, bad("endDate is before startDate")
	}
	return f, nil
}

func parseFilterTime(s string) (time.Time, bool) {
	for _, l := range filterTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// match reports whether a recovery point passes the filter.
func (f *recoveryPointFilter) match(rp *RecoveryPointResource) bool {
	p := &rp.Properties
	if f.start != nil && p.RecoveryPointTime.Before(*f.start) || f.end != nil && p.RecoveryPointTime.After(*f.end) {
		return false
	}
	if f.state != "" && !strings.EqualFold(p.RecoveryPointState, f.state) {
		return false
	}
	if f.visible != nil || f.dataStoreID != "" {
		found := false
		for _, d := range p.RecoveryPointDataStoresDetails {
			if (f.visible == nil || d.Visible == *f.visible) && (f.dataStoreID == "" || strings.EqualFold(d.ID, f.dataStoreID)) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// filteredPage lists the recovery points of an instance that pass f, reading
// store pages until one page of results is full or the list ends.
func (s *Service) filteredPage(ctx context.Context, instanceID string, f *recoveryPointFilter, after string, pageSize int) (Page[*RecoveryPointResource], error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	var out Page[*RecoveryPointResource]
	for {
		page, err := listPage(ctx, s.store, store.ListParams{Type: TypeRecoveryPoint, Parent: instanceID, After: after}, pageSize, decodeRecoveryPoint)
		if err != nil {
			return Page[*RecoveryPointResource]{}, err
		}
		for _, rp := range page.Items {
			if f.match(rp) {
				out.Items = append(out.Items, rp)
			}
		}
		if len(out.Items) >= pageSize {
			out.Items = out.Items[:pageSize]
			out.Next = strings.ToLower(out.Items[pageSize-1].ID)
			return out, nil
		}
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

package auth

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Assignment is a role assignment: the principal PrincipalID has the role
// RoleDefinitionID at Scope and every scope below it.
//
// RoleDefinitionID is a role GUID or a full ARM role definition ID (see
// RoleByID). Scope is an ARM scope: "/" (the root), "/subscriptions/{id}",
// "/subscriptions/{id}/resourceGroups/{name}", a resource
// ".../providers/{namespace}/{type}/{name}" or one of its child resources.
type Assignment struct{ PrincipalID, RoleDefinitionID, Scope string }

// Allowed reports whether the principal may perform the control-plane
// (management) action at scope: whether some assignment of the principal at
// scope or at a scope containing it (see ScopeContains) names a built-in role
// with an Actions pattern that matches the action and no NotActions pattern
// that does. As in Azure, the roles' permissions add up: one role's
// NotActions do not take away what another role grants, and there are no
// deny assignments.
//
// Callers tell data-plane actions apart by calling AllowedData for them: in
// Azure a data action such as Microsoft.Storage/.../blobs/read is granted only
// through DataActions, never through Actions (Owner's "*" covers no data
// action). Allowed cannot tell the two kinds apart from the name: given a data
// action it would match it against Actions, where "*" matches anything.
//
// The check fails closed: it returns false for an empty principal, an empty
// action or one containing '*' (an action to check is a concrete name, not a
// pattern), an invalid scope (see ScopeContains), and for assignments whose
// role is not a known built-in role, whose scope is invalid, or whose
// principal differs. Principal IDs are compared case-insensitively (they are
// GUIDs).

func Allowed(assignments []Assignment, principalID, action, scope string) bool {
	return rbacAllowed(assignments, principalID, action, scope, false)
}

// AllowedData is Allowed for data-plane actions: it consults the roles'
// DataActions and NotDataActions instead of Actions and NotActions.
func AllowedData(assignments []Assignment, principalID, dataAction, scope string) bool {
	return rbacAllowed(assignments, principalID, dataAction, scope, true)
}

// rbacAllowed implements Allowed (data false) and AllowedData (data true).
func rbacAllowed(assignments []Assignment, principalID, action, scope string, data bool) bool {
	if principalID == "" || action == "" || strings.Contains(action, "*") {
		return false
	}
	target, ok := splitScope(scope)
	if !ok {
		return false
	}
	for i := range assignments {
		a := &assignments[i]
		if !strings.EqualFold(a.PrincipalID, principalID) {
			continue
		}
		outer, ok := splitScope(a.Scope)
		if !ok || !scopeSegmentsContain(outer, target) {
			continue
		}
		role := builtinByID(a.RoleDefinitionID)
		if role == nil {
			continue
		}
		grant, deny := role.Actions, role.NotActions
		if data {
			grant, deny = role.DataActions, role.NotDataActions
		}
		if anyActionMatches(grant, action) && !anyActionMatches(deny, action) {
			return true
		}
	}
	return false
}

// anyActionMatches reports whether any of patterns matches action.
func anyActionMatches(patterns []string, action string) bool {
	for _, p := range patterns {
		if ActionMatches(p, action) {
			return true
		}
	}
	return false
}

// ScopeContains reports whether the ARM scope outer contains the scope inner,
// that is, whether an assignment at outer applies at inner: whether outer's
// segments are a prefix of inner's. Segments are compared case-insensitively
// and whole ("/subscriptions/a" does not contain "/subscriptions/ab"); "/" is
// the root and contains every scope; a scope contains itself.
//
// A scope is valid if it is "/" or a "/"-separated list of non-empty
// segments after a leading "/"; a single trailing "/" is ignored
// ("/subscriptions/a/" is "/subscriptions/a"). ScopeContains returns false if
// either scope is invalid (empty, relative, or with an empty segment as in
// "/subscriptions//a").
func ScopeContains(outer, inner string) bool {
	o, ok := splitScope(outer)
	if !ok {
		return false
	}
	in, ok := splitScope(inner)
	return ok && scopeSegmentsContain(o, in)
}

// splitScope splits a valid scope into its segments (none for the root) and
// reports whether it is valid; see ScopeContains.
func splitScope(s string) ([]string, bool) {
	if s == "/" {
		return nil, true
	}
	if len(s) < 2 || s[0] != '/' {
		return nil, false
	}
	s = strings.TrimSuffix(s[1:], "/")
	if s == "" {
		return nil, false // "//"
	}
	segs := strings.Split(s, "/")
	if slices.Contains(segs, "") {
		return nil, false
	}
	return segs, true
}

// scopeSegmentsContain reports whether outer is a case-insensitive prefix of
// inner.
func scopeSegmentsContain(outer, inner []string) bool {
	if len(outer) > len(inner) {
		return false
	}
	for i := range outer {
		if !strings.EqualFold(outer[i], inner[i]) {
			return false
		}
	}
	return true
}

// ActionMatches reports whether the Azure action pattern matches action.
// Matching is case-insensitive, with the simple Unicode case folding of
// strings.EqualFold ("microsoft.authorization/*/write" matches
// "Microsoft.Authorization/roleAssignments/write"). Each '*' in the pattern
// stands for any run of characters, '/' included and possibly empty, wherever
// it appears: "*" matches every action, "*/read" every read at any depth,
// "Microsoft.DataProtection/backupVaults/*" everything below backup vaults,
// "Microsoft.DataProtection/locations/*/read" every read below locations. No
// other character is special, and a pattern without '*' matches exactly the
// actions strings.EqualFold considers equal to it.
//
// Matching takes time linear in len(pattern)+len(action), whatever the
// pattern: no backtracking on patterns like "*a*a*a*a*b".
func ActionMatches(pattern, action string) bool {
	if !strings.Contains(pattern, "*") {
		return strings.EqualFold(pattern, action)
	}
	var pbuf, abuf [128]rune
	return actionGlobMatch(appendFoldedRunes(pbuf[:0], pattern), appendFoldedRunes(abuf[:0], action))
}

// appendFoldedRunes appends to dst the runes of s (U+FFFD for each byte of
// invalid UTF-8, as strings.EqualFold decodes them), each replaced by its
// case-fold representative, so that two strings are equal under
// strings.EqualFold if and only if their folded runes are equal.
func appendFoldedRunes(dst []rune, s string) []rune {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, rune(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		dst = append(dst, foldRepresentative(r))
		i += size
	}
	return dst
}

// foldRepresentative returns the smallest rune of r's orbit under
// unicode.SimpleFold: the same rune for all runes strings.EqualFold considers
// equal to r. For ASCII letters it is the upper-case letter ('K' for 'k' and
// the Kelvin sign U+212A, 'S' for 's' and U+017F), which appendFoldedRunes
// relies on for its ASCII shortcut.
func foldRepresentative(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// actionGlobMatch reports whether the folded pattern p, in which '*' matches
// any run of runes, matches the folded action a.
//
// The pattern is split at its stars into literal pieces. The first piece must
// be a prefix of a and the last a suffix; each piece in between is matched at
// its leftmost occurrence after the previous one, which is correct because a
// star can absorb whatever lies between two pieces (taking the leftmost
// occurrence leaves the most room for the rest). Each occurrence is found
// with Knuth-Morris-Pratt, so every rune of a is examined a bounded number of
// times: the whole match is O(len(p)+len(a)).
func actionGlobMatch(p, a []rune) bool {
	first := slices.Index(p, '*')
	if first < 0 {
		return slices.Equal(p, a)
	}
	last := len(p) - 1
	for p[last] != '*' {
		last--
	}
	prefix, suffix := p[:first], p[last+1:]
	if len(a) < len(prefix)+len(suffix) ||
		!slices.Equal(a[:len(prefix)], prefix) ||
		!slices.Equal(a[len(a)-len(suffix):], suffix) {
		return false
	}
	a = a[len(prefix) : len(a)-len(suffix)]
	if first == last {
		return true
	}
	for mid := p[first+1 : last]; len(mid) > 0; {
		var piece []rune
		if i := slices.Index(mid, '*'); i >= 0 {
			piece, mid = mid[:i], mid[i+1:]
		} else {
			piece, mid = mid, nil
		}
		if len(piece) == 0 {
			continue
		}
		i := kmpIndexRunes(a, piece)
		if i < 0 {
			return false
		}
		a = a[i+len(piece):]
	}
	return true
}

// kmpIndexRunes returns the index of the first occurrence of the non-empty
// needle in text, or -1, in O(len(text)+len(needle)) time (Knuth-Morris-Pratt).
func kmpIndexRunes(text, needle []rune) int {
	var buf [64]int
	fail := buf[:0]
	if len(needle) > len(buf) {
		fail = make([]int, 0, len(needle))
	}
	// fail[i] is the length of the longest proper prefix of needle[:i+1]
	// that is also a suffix of it.
	fail = append(fail, 0)
	for i, k := 1, 0; i < len(needle); i++ {
		for k > 0 && needle[i] != needle[k] {
			k = fail[k-1]
		}
		if needle[i] == needle[k] {
			k++
		}
		fail = append(fail, k)
	}
	for i, k := 0, 0; i < len(text); i++ {
		for k > 0 && text[i] != needle[k] {
			k = fail[k-1]
		}
		if text[i] == needle[k] {
			k++
		}
		if k == len(needle) {
			return i - k + 1
		}
	}
	return -1
}

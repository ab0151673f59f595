package repo

import "strings"

// isRelationFile reports whether path (relative to the data directory) names
// a PostgreSQL relation file, which is cut at page boundaries (R21):
// global/<rel>, base/<dboid>/<rel> or
// pg_tblspc/<spcoid>/<PG_version_dir>/<dboid>/<rel>.
func isRelationFile(path string) bool {
	segs := strings.Split(path, "/")
	switch {
	case len(segs) == 2 && segs[0] == "global":
		return isRelName(segs[1])
	case len(segs) == 3 && segs[0] == "base":
		return isDigits(segs[1]) && isRelName(segs[2])
	case len(segs) == 5 && segs[0] == "pg_tblspc":
		return isDigits(segs[1]) && strings.HasPrefix(segs[2], "PG_") && isDigits(segs[3]) && isRelName(segs[4])
	}
	return false
}

// isRelName matches <digits>[_fsm|_vm|_init][.<digits>].
func isRelName(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return false
	}
	rest := s[i:]
	for _, fork := range []string{"_fsm", "_vm", "_init"} {
		if strings.HasPrefix(rest, fork) {
			rest = rest[len(fork):]
			break
		}
	}
	if rest == "" {
		return true
	}
	return rest[0] == '.' && isDigits(rest[1:])
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// chunkSize returns the chunk size for the file at path.
func (c *config) chunkSize(path string) int {
	if isRelationFile(path) {
		return c.PageSize * c.RelationChunkPages
	}
	return c.FileChunkSize
}

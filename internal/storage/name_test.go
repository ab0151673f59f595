package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	valid := []string{"a", "config", "data/ab/abcdef0123", ".a", "a.", "...", "A-Z_0.9",
		strings.Repeat("s", MaxSegmentLen), strings.Repeat("abc/", 255) + "abc"}
	for _, name := range valid {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%.40q): %v", name, err)
		}
	}
	invalid := map[string]string{
		"":                                   "empty",
		strings.Repeat("abc/", 256) + "a":    "longer than 1024",
		"a b":                                `byte " " at offset 1`,
		"a/ä":                                `byte "\xc3" at offset 2`,
		"/a":                                 "empty segment",
		"a/":                                 "empty segment",
		"a//b":                               "empty segment",
		"a/./b":                              `segment "."`,
		"..":                                 `segment ".."`,
		strings.Repeat("s", MaxSegmentLen+1): "segment is longer than 255",
	}
	for name, reason := range invalid {
		err := CheckName(name)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), reason) {
			t.Errorf("CheckName(%.40q): got %v, want ErrInvalidName saying %s", name, err, reason)
		}
	}
}

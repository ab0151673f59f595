package storage

import (
	"fmt"
	"strings"
)

// Limits of object names.
const (
	// MaxNameLen is the longest object name, in bytes.
	MaxNameLen = 1024
	// MaxSegmentLen is the longest segment of an object name (the bytes
	// between two '/'), in bytes: the NAME_MAX of common filesystems.
	MaxSegmentLen = 255
)

// CheckName returns nil if name follows the naming rules of Storage, or an
// error wrapping ErrInvalidName that says which rule it breaks. The error does
// not repeat the name; callers wrap it with the name and what they were doing.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%w: byte %q at offset %d is not one of [a-zA-Z0-9._/-]", ErrInvalidName, name[i:i+1], i)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: empty segment (leading, trailing or double '/')", ErrInvalidName)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: segment %q", ErrInvalidName, seg)
		case len(seg) > MaxSegmentLen:
			return fmt.Errorf("%w: a segment is longer than %d bytes", ErrInvalidName, MaxSegmentLen)
		}
	}
	return nil
}

// nameByte reports whether b may appear in an object name.
func nameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '.' || b == '_' || b == '/' || b == '-'
}

package arm

import (
	"net/http"
	"strings"
	"unicode"
)

// ValidateSubscriptionID checks that id is a UUID, as the specs require.
func ValidateSubscriptionID(id string) *Error {
	if !IsUUID(id) {
		return Errorf(http.StatusBadRequest, "InvalidSubscriptionId",
			"The provided subscription identifier '%s' is malformed or invalid.", id).WithTarget("subscriptionId")
	}
	return nil
}

// IsUUID reports whether s has the 8-4-4-4-12 hexadecimal form of a UUID.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ValidateResourceGroupName applies the resource group name rules: 1 to 90
// letters, digits, '-', '_', '.', '(' or ')', not ending in a period.
func ValidateResourceGroupName(name string) *Error {
	bad := func(format string, args ...any) *Error {
		return Errorf(http.StatusBadRequest, "InvalidResourceGroup", format, args...).WithTarget("resourceGroupName")
	}
	n := len([]rune(name))
	switch {
	case n < 1 || n > 90:
		return bad("The resource group name '%s' is %d characters long; it must be 1 to 90 characters.", name, n)
	case strings.HasSuffix(name, "."):
		return bad("The resource group name '%s' must not end with a period.", name)
	}
	var invalid []string
	for _, c := range name {
		if !(unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("-_.()", c)) {
			invalid = append(invalid, string(c))
		}
	}
	if len(invalid) > 0 {
		return bad("The provided resource group name '%s' has these invalid characters: '%s'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'.",
			name, strings.Join(invalid, ""))
	}
	return nil
}

package auth

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Principal is an authenticated caller.
type Principal struct {
	// ObjectID is the token's "oid" claim (Entra style), else its "sub".
	ObjectID string
	// TenantID is the token's "tid" claim; may be empty for external issuers.
	TenantID string
	// ClientID is the application the token was issued to ("appid", else
	// "azp"); may be empty.
	ClientID string
	// Issuer is the token's "iss" claim, one of the trusted issuers.
	Issuer string
}

// Codes of an Error. They are Azure Resource Manager's, except
// CodeNotYetValidAuthenticationToken, for which ARM has no code of its own.
const (
	// CodeAuthenticationFailed: the Authorization header is missing or is
	// not "Bearer <token>".
	CodeAuthenticationFailed = "AuthenticationFailed"
	// CodeInvalidAuthenticationToken: the token is malformed, its signature
	// is invalid, its algorithm is not accepted (none, HS*, PS*, ...), its key
	// is unknown, or a required claim is missing.
	CodeInvalidAuthenticationToken = "InvalidAuthenticationToken"
	// CodeExpiredAuthenticationToken: "exp" has passed (beyond the allowed
	// clock skew).
	CodeExpiredAuthenticationToken = "ExpiredAuthenticationToken"
	// CodeNotYetValidAuthenticationToken: "nbf" or "iat" lies in the future
	// (beyond the allowed clock skew). Named after
	// CodeExpiredAuthenticationToken, its mirror image.
	CodeNotYetValidAuthenticationToken = "NotYetValidAuthenticationToken"
	// CodeInvalidAuthenticationTokenAudience: no "aud" value is accepted.
	CodeInvalidAuthenticationTokenAudience = "InvalidAuthenticationTokenAudience"
	// CodeInvalidAuthenticationTokenTenant: "iss" is not a trusted issuer.
	CodeInvalidAuthenticationTokenTenant = "InvalidAuthenticationTokenTenant"
)

// Error is an authentication failure; the API renders it as 401 with a
// WWW-Authenticate header (see Verifier.Challenge). Code is one of the Code*
// constants; Message is worded as Azure Resource Manager words it and may
// quote (shortened) values taken from the presented token.
type Error struct{ Code, Message string }

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func authErrorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func errMalformed(reason string) *Error {
	return authErrorf(CodeInvalidAuthenticationToken, "The access token is invalid: %s.", reason)
}

// azureTime formats t as Azure's error messages do ('11/24/2025 11:31:00 PM',
// UTC, .NET's en-US general date/time pattern).
func azureTime(t time.Time) string { return t.UTC().Format("1/2/2006 3:04:05 PM") }

// quoted shortens a value taken from a token for use inside a message: at
// most 100 runes, and no quotes, backslashes or control characters, so it
// stays readable and can be embedded in a WWW-Authenticate quoted string.
func quoted(s string) string {
	const limit = 100
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == limit {
			b.WriteString("...")
			break
		}
		n++
		switch {
		case r == utf8.RuneError, r < 0x20, r == 0x7f, r == '"', r == '\\':
			b.WriteRune('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

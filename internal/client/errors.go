package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// APIError is an error the server reported: the ARM error body
// {"error":{"code","message","target","details"}} of a non-2xx response, or
// the error of a failed long-running operation.
type APIError struct {
	// StatusCode is the HTTP status of the response; 0 for the error of a
	// long-running operation, which is reported in a 200 status body.
	StatusCode int
	// Code is the ARM error code (from the body, else x-ms-error-code).
	Code string
	// Message is the human-readable message.
	Message string
	// Target is the parameter or JSON path at fault, if any.
	Target string
	// Details are further errors, e.g. every rule a policy breaks.
	Details []*APIError
	// AdditionalInfo is the error's typed extra information, e.g. Azure
	// Backup's UserFacingError (see UserFacingErrors).
	AdditionalInfo []AdditionalInfo
}

// AdditionalInfo is one entry of an ARM error's additionalInfo.
type AdditionalInfo struct {
	// Type names the kind of information, e.g. "UserFacingError".
	Type string `json:"type"`
	// Info is the information as the server sent it.
	Info json.RawMessage `json:"info,omitempty"`
}

// UserFacingError is Azure Backup's detailed error, which the service puts
// in additionalInfo with the type "UserFacingError": what to do about the
// error, and the inner error with its non-localised detail.
type UserFacingError struct {
	Code              string      `json:"code"`
	Message           string      `json:"message"`
	Target            string      `json:"target"`
	RecommendedAction []string    `json:"recommendedAction"`
	InnerError        *InnerError `json:"innerError"`
	IsRetryable       bool        `json:"isRetryable"`
	IsUserError       bool        `json:"isUserError"`
}

// InnerError is the inner error of a UserFacingError.
type InnerError struct {
	Code           string         `json:"code"`
	AdditionalInfo map[string]any `json:"additionalInfo"`
}

// DetailedMessage returns the inner error's DetailedNonLocalisedMessage, or "".
func (ie *InnerError) DetailedMessage() string {
	if ie == nil {
		return ""
	}
	s, _ := ie.AdditionalInfo["DetailedNonLocalisedMessage"].(string)
	return s
}

// UserFacingErrors returns the UserFacingError entries of e's additionalInfo,
// skipping any that do not decode.
func (e *APIError) UserFacingErrors() []*UserFacingError {
	var out []*UserFacingError
	for _, ai := range e.AdditionalInfo {
		if !strings.EqualFold(ai.Type, "UserFacingError") || len(ai.Info) == 0 {
			continue
		}
		var u UserFacingError
		if json.Unmarshal(ai.Info, &u) == nil {
			out = append(out, &u)
		}
	}
	return out
}

// Error returns "CODE: message (target: x)", without the target part when
// there is none.
func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = fmt.Sprintf("HTTP %d", e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" {
			code += " " + t
		}
	}
	s := code + ": " + e.Message
	if e.Target != "" {
		s += " (target: " + e.Target + ")"
	}
	return s
}

// wireError is the JSON shape of an ARM error.
type wireError struct {
	Code           string           `json:"code"`
	Message        string           `json:"message"`
	Target         string           `json:"target"`
	Details        []*wireError     `json:"details"`
	AdditionalInfo []AdditionalInfo `json:"additionalInfo"`
}

func (w *wireError) toAPI(status int) *APIError {
	e := &APIError{StatusCode: status, Code: w.Code, Message: w.Message, Target: w.Target, AdditionalInfo: w.AdditionalInfo}
	for _, d := range w.Details {
		if d != nil {
			e.Details = append(e.Details, d.toAPI(status))
		}
	}
	return e
}

// parseAPIError builds the error of a non-2xx response from its body, which
// is normally the ARM envelope {"error":{...}} but may be a bare error object
// or not JSON at all (a proxy's page).
func parseAPIError(status int, h http.Header, body []byte) *APIError {
	var env struct {
		Error *wireError `json:"error"`
	}
	var e *APIError
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e = env.Error.toAPI(status)
	} else {
		var bare wireError
		if json.Unmarshal(body, &bare) == nil && (bare.Code != "" || bare.Message != "") {
			e = bare.toAPI(status)
		} else {
			e = &APIError{StatusCode: status, Message: shortText(body)}
		}
	}
	if e.Code == "" {
		e.Code = h.Get("x-ms-error-code")
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
		if e.Message == "" {
			e.Message = "The server answered with status " + fmt.Sprint(status) + "."
		}
	}
	return e
}

// shortText is a non-JSON body as a one-line message of bounded length.
func shortText(body []byte) string {
	const max = 200
	s := strings.Join(strings.Fields(string(body)), " ")
	if !utf8.ValidString(s) {
		return ""
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

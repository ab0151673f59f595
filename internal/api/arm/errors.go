package arm

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an ARM error: the body {"error":{...}} of every failed request, and
// the error of a failed long-running operation. Status is the HTTP status it
// is served with; it is not part of the body.
type Error struct {
	Status         int              `json:"-"`
	Code           string           `json:"code"`
	Message        string           `json:"message"`
	Target         string           `json:"target,omitempty"`
	Details        []*Error         `json:"details,omitempty"`
	AdditionalInfo []AdditionalInfo `json:"additionalInfo,omitempty"`
}

// AdditionalInfo is one entry of an error's additionalInfo list.
type AdditionalInfo struct {
	Type string `json:"type"`
	Info any    `json:"info,omitempty"`
}

func (e *Error) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("%s: %s (target %s)", e.Code, e.Message, e.Target)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given status, code and formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithTarget returns e with its target set.
func (e *Error) WithTarget(target string) *Error {
	e.Target = target
	return e
}

// Envelope is the wire shape of an error response.
type Envelope struct {
	Error *Error `json:"error"`
}

// WriteError writes e as an ARM error response, with x-ms-error-code.
func WriteError(w http.ResponseWriter, e *Error) {
	status := e.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	w.Header().Set("x-ms-error-code", e.Code)
	WriteJSON(w, status, Envelope{Error: e})
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error makes our own types unmarshalable.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"InternalServerError","message":"The response could not be encoded."}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

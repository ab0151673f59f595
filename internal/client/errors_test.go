package client

import (
	"net/http"
	"testing"
)

// TestParseUserFacingError parses the error of a failed validateForBackup as
// Azure's documentation shows it (details and target null).
func TestParseUserFacingError(t *testing.T) {
	body := `{"error":{"additionalInfo":[{"type":"UserFacingError","info":{
	  "message":"Appropriate permissions to perform the operation is missing.",
	  "recommendedAction":["Grant appropriate permissions to perform this operation as mentioned at https://aka.ms/UserErrorMissingRequiredPermissions and retry the operation."],
	  "code":"UserErrorMissingRequiredPermissions","target":"",
	  "innerError":{"code":"UserErrorMissingRequiredPermissions","additionalInfo":{"DetailedNonLocalisedMessage":"Validate for Protection failed."}},
	  "isRetryable":false,"isUserError":false,"properties":{"ActivityId":"3e7cacb3"}}},
	  {"type":"PolicyViolation","info":{"policyDefinitionDisplayName":"x"}},
	  {"type":"UserFacingError","info":"not an object"}],
	 "code":"UserErrorMissingRequiredPermissions","message":"Appropriate permissions to perform the operation is missing.","target":null,"details":null}}`
	e := parseAPIError(http.StatusBadRequest, http.Header{}, []byte(body))
	if e.Code != "UserErrorMissingRequiredPermissions" || e.Target != "" || len(e.Details) != 0 || len(e.AdditionalInfo) != 3 {
		t.Fatalf("APIError = %+v", e)
	}
	ufe := e.UserFacingErrors()
	if len(ufe) != 1 {
		t.Fatalf("UserFacingErrors = %+v, want the one that decodes", ufe)
	}
	u := ufe[0]
	if u.Code != e.Code || len(u.RecommendedAction) != 1 || u.InnerError == nil || u.InnerError.Code != e.Code ||
		u.InnerError.DetailedMessage() != "Validate for Protection failed." {
		t.Errorf("UserFacingError = %+v", u)
	}
	var nilInner *InnerError
	if nilInner.DetailedMessage() != "" || (&InnerError{AdditionalInfo: map[string]any{"DetailedNonLocalisedMessage": 3}}).DetailedMessage() != "" {
		t.Error("DetailedMessage of a missing or non-string message is not empty")
	}
	if got := parseAPIError(http.StatusNotFound, http.Header{}, []byte(`{"error":{"code":"NotFound","message":"Gone."}}`)).UserFacingErrors(); got != nil {
		t.Errorf("an error without additionalInfo has UserFacingErrors %+v", got)
	}
}

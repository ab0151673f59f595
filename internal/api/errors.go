package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/vault"
)

// statusByKind is the one table that maps service error kinds to HTTP statuses.
var statusByKind = map[vault.Kind]int{
	vault.KindInvalid:            http.StatusBadRequest,
	vault.KindNotFound:           http.StatusNotFound,
	vault.KindConflict:           http.StatusConflict,
	vault.KindPreconditionFailed: http.StatusPreconditionFailed,
	vault.KindInternal:           http.StatusInternalServerError,
}

// toARM turns any error a handler returns into an ARM error. Internal errors
// are logged with the request ID and shown to the client only by that ID.
func toARM(ctx context.Context, log *slog.Logger, err error) *arm.Error {
	var ae *arm.Error
	if errors.As(err, &ae) {
		return ae
	}
	if ve, ok := vault.AsError(err); ok && ve.Kind != vault.KindInternal {
		return fromVault(ve)
	}
	rid := requestID(ctx)
	if errors.Is(err, context.Canceled) {
		return arm.Errorf(http.StatusServiceUnavailable, "RequestCanceled", "The request was canceled (request %s).", rid)
	}
	log.ErrorContext(ctx, "request failed", "request_id", rid, "err", err)
	return arm.Errorf(http.StatusInternalServerError, "InternalServerError",
		"The server encountered an internal error; quote request ID %s to its operator.", rid)
}

func fromVault(ve *vault.Error) *arm.Error {
	e := &arm.Error{Status: statusByKind[ve.Kind], Code: ve.Code, Message: ve.Message, Target: ve.Target}
	for _, d := range ve.Details {
		e.Details = append(e.Details, fromVault(d))
	}
	for _, i := range ve.Info {
		e.AdditionalInfo = append(e.AdditionalInfo, arm.AdditionalInfo{Type: i.Type, Info: i.Info})
	}
	return e
}

package scim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	scimerrors "github.com/elimity-com/scim/errors"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/logctx"
)

// errorSchema is the URN every SCIM error body carries (RFC 7644 §3.12).
const errorSchema = "urn:ietf:params:scim:api:messages:2.0:Error"

// badRequest builds a 400 SCIM error of the given scimType with a human-readable detail.
func badRequest(scimType scimerrors.ScimType, detail string) scimerrors.ScimError {
	return scimerrors.ScimError{ScimType: scimType, Detail: detail, Status: http.StatusBadRequest}
}

// toSCIMError is the one place where an error of any kind becomes a SCIM error.
// Store and internal failures never reach the client with their text: they are logged
// (with the request ID carried by ctx) and answered with a generic message.
func toSCIMError(ctx context.Context, log *zap.Logger, err error) scimerrors.ScimError {
	var se scimerrors.ScimError
	if errors.As(err, &se) {
		return se
	}
	var sep *scimerrors.ScimError
	if errors.As(err, &sep) && sep != nil {
		return *sep
	}
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return scimerrors.ScimError{Status: http.StatusNotFound, Detail: "Resource not found."}
	case errors.Is(err, directory.ErrConflict):
		return scimerrors.ScimError{Status: http.StatusConflict, ScimType: scimerrors.ScimTypeUniqueness,
			Detail: "A resource with this name already exists (userName for users, displayName for groups; compared ignoring case)."}
	case errors.Is(err, directory.ErrPrecondition), errors.Is(err, errVersionMismatch):
		return scimerrors.ScimError{Status: http.StatusPreconditionFailed,
			Detail: "The resource has changed since the version given in If-Match."}
	case errors.Is(err, directory.ErrInvalid):
		return badRequest(scimerrors.ScimTypeInvalidValue, "A value in the request is not acceptable.")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		logctx.From(ctx, log).Warn("scim request did not finish", zap.Error(err))
		return scimerrors.ScimError{Status: http.StatusServiceUnavailable, Detail: "The service is busy; try again."}
	}
	logctx.From(ctx, log).Error("scim request failed", zap.Error(err))
	return scimerrors.ScimError{Status: http.StatusInternalServerError, Detail: "Internal error."}
}

// writeError writes a SCIM error body with the SCIM content type.
func writeError(w http.ResponseWriter, se scimerrors.ScimError) {
	body := map[string]any{
		"schemas": []string{errorSchema},
		"status":  strconv.Itoa(se.Status),
	}
	if se.ScimType != "" {
		body["scimType"] = string(se.ScimType)
	}
	if se.Detail != "" {
		body["detail"] = se.Detail
	} else {
		body["detail"] = http.StatusText(se.Status)
	}
	raw, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Del("Content-Length")
	h.Del("Etag")
	h.Del("Location")
	if se.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="flexbridge-scim"`)
	}
	w.WriteHeader(se.Status)
	_, _ = w.Write(raw)
}

func unauthorized(detail string) scimerrors.ScimError {
	return scimerrors.ScimError{Status: http.StatusUnauthorized, Detail: detail}
}

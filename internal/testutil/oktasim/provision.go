package oktasim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxSCIMBody bounds how much of a SCIM answer is read and recorded.
const maxSCIMBody = 4 << 20

type scimName struct {
	GivenName  string `json:"givenName"`
	FamilyName string `json:"familyName"`
}

type scimEmail struct {
	Primary bool   `json:"primary"`
	Value   string `json:"value"`
	Type    string `json:"type"`
}

// scimUser is a user as Okta's SCIM client sends it, in Okta's attribute order.
type scimUser struct {
	Schemas     []string    `json:"schemas"`
	ID          string      `json:"id,omitempty"`
	UserName    string      `json:"userName"`
	Name        scimName    `json:"name"`
	Emails      []scimEmail `json:"emails,omitempty"`
	DisplayName string      `json:"displayName,omitempty"`
	Locale      string      `json:"locale"`
	ExternalID  string      `json:"externalId"`
	Groups      []any       `json:"groups"`
	Password    string      `json:"password,omitempty"`
	Active      bool        `json:"active"`
}

// scimUser builds the SCIM view of an app user (without id and password).
func (s *Sim) scimUser(u *user, au *appUser) scimUser {
	str := func(k string) string { v, _ := au.profile[k].(string); return v }
	given, family := str("givenName"), str("familyName")
	out := scimUser{
		Schemas:     []string{SchemaUser},
		UserName:    au.userName,
		Name:        scimName{GivenName: given, FamilyName: family},
		DisplayName: str("displayName"),
		Locale:      str("locale"),
		ExternalID:  u.id,
		Groups:      []any{},
		Active:      true,
	}
	if out.DisplayName == "" {
		out.DisplayName = strings.TrimSpace(given + " " + family)
	}
	if out.Locale == "" {
		out.Locale = "en-US"
	}
	if email := str("email"); email != "" {
		typ := str("emailType")
		if typ == "" {
			typ = "work"
		}
		out.Emails = []scimEmail{{Primary: true, Value: email, Type: typ}}
	}
	return out
}

type patchOp struct {
	Op    string         `json:"op"`
	Value map[string]any `json:"value"`
}

// patchRequest is a SCIM PatchOp message, in Okta's attribute order.
type patchRequest struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

func activePatch(active bool) patchRequest {
	return patchRequest{
		Schemas:    []string{SchemaPatchOp},
		Operations: []patchOp{{Op: "replace", Value: map[string]any{"active": active}}},
	}
}

// provision runs Okta's assignment flow: look the user up by userName, then create it or
// link to (and if need be reactivate) the user found.
func (s *Sim) provision(u *user, au *appUser) {
	if !s.features[FeaturePushNewUsers] {
		au.syncState = SyncDisabled
		return
	}
	found, ok := s.lookup(u, au)
	if !ok {
		au.syncState = SyncError
		return
	}
	if found == nil {
		body := s.scimUser(u, au)
		body.Password = au.password
		doc, ok := s.send(ActionAssign, u.id, http.MethodPost, s.scimBase+"/Users", body, checkCreated)
		if !ok {
			au.syncState = SyncError
			return
		}
		au.externalID, _ = doc["id"].(string)
		s.synced(au)
		return
	}
	au.externalID, _ = found["id"].(string)
	if active, isBool := found["active"].(bool); isBool && !active && s.features[FeatureReactivateUsers] {
		if _, ok := s.send(ActionAssign, u.id, http.MethodPatch, s.userURL(au), activePatch(true), nil); !ok {
			au.syncState = SyncError
			return
		}
	}
	if s.features[FeaturePushProfileUpdates] {
		s.pushProfile(ActionAssign, u, au)
		return
	}
	s.synced(au)
}

// lookup sends Okta's existence check and returns the first resource found (nil for none).
func (s *Sim) lookup(u *user, au *appUser) (map[string]any, bool) {
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(au.userName)
	filter := strings.ReplaceAll(url.QueryEscape(`userName eq "`+quoted+`"`), "+", "%20")
	doc, ok := s.send(ActionAssign, u.id, http.MethodGet, s.scimBase+"/Users?filter="+filter+"&startIndex=1&count=100", nil, checkList)
	if !ok {
		return nil, false
	}
	if total, _ := doc["totalResults"].(float64); total == 0 {
		return nil, true
	}
	first, _ := doc["Resources"].([]any)[0].(map[string]any)
	return first, true
}

// pushProfile sends the whole user with PUT (Okta's profile push).
func (s *Sim) pushProfile(action string, u *user, au *appUser) {
	body := s.scimUser(u, au)
	body.ID = au.externalID
	if _, ok := s.send(action, u.id, http.MethodPut, s.userURL(au), body, nil); !ok {
		au.syncState = SyncError
		return
	}
	s.synced(au)
}

// deprovision sends Okta's deactivation PATCH.
func (s *Sim) deprovision(action string, u *user, au *appUser) {
	if !s.features[FeaturePushUserDeactivation] || au.externalID == "" {
		return
	}
	if _, ok := s.send(action, u.id, http.MethodPatch, s.userURL(au), activePatch(false), nil); !ok {
		au.syncState = SyncError
		return
	}
	s.synced(au)
}

func (s *Sim) synced(au *appUser) {
	au.syncState, au.lastSync = SyncSynchronized, s.now()
}

func (s *Sim) userURL(au *appUser) string {
	return s.scimBase + "/Users/" + url.PathEscape(au.externalID)
}

// checkList checks a lookup answer: a ListResponse with totalResults and, when users were
// found, a first resource with an id.
func checkList(doc map[string]any, jsonErr error) string {
	if jsonErr != nil {
		return "lookup answer is not a JSON object: " + jsonErr.Error()
	}
	total, ok := doc["totalResults"].(float64)
	if !ok {
		return "lookup answer has no numeric totalResults"
	}
	if total == 0 {
		return ""
	}
	list, _ := doc["Resources"].([]any)
	if len(list) == 0 {
		return fmt.Sprintf("lookup answer has totalResults %v but no Resources", total)
	}
	first, _ := list[0].(map[string]any)
	if id, _ := first["id"].(string); id == "" {
		return "lookup answer's Resources[0] has no id"
	}
	return ""
}

// checkCreated checks a create answer: Okta keeps its id as the app user's externalId.
func checkCreated(doc map[string]any, jsonErr error) string {
	if jsonErr != nil {
		return "create answer is not a JSON object: " + jsonErr.Error()
	}
	if id, _ := doc["id"].(string); id == "" {
		return "create answer has no id"
	}
	return ""
}

// send makes one SCIM request, records the exchange and reports whether it succeeded: a 2xx
// answer that passes check (when given). doc is the decoded JSON answer, if any.
func (s *Sim) send(action, userID, method, rawURL string, body any, check func(map[string]any, error) string) (doc map[string]any, ok bool) {
	x := Exchange{Action: action, UserID: userID, Method: method, URL: rawURL}
	defer func() { s.exchanges = append(s.exchanges, x) }()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			x.Err = "encoding the request: " + err.Error()
			return nil, false
		}
		x.RequestBody = data
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		x.Err = err.Error()
		return nil, false
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.SCIMToken)
	req.Header.Set("Accept", "application/scim+json")
	req.Header.Set("User-Agent", UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	x.RequestHeader = req.Header.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		x.Err = "request failed: " + err.Error()
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSCIMBody))
	resp.Body.Close()
	x.Status, x.ResponseHeader, x.ResponseBody = resp.StatusCode, resp.Header.Clone(), data
	if err != nil {
		x.Err = "reading the answer: " + err.Error()
		return nil, false
	}
	var jsonErr error
	if len(bytes.TrimSpace(data)) == 0 {
		jsonErr = errors.New("empty body")
	} else {
		jsonErr = json.Unmarshal(data, &doc)
	}
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		x.Err = fmt.Sprintf("%s answered %d, Okta expects 2xx", method, resp.StatusCode)
	case check != nil:
		x.Err = check(doc, jsonErr)
	}
	return doc, x.Err == ""
}

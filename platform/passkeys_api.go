package platform

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
)

// Passkey endpoints. A ceremony is two calls: begin returns the options
// for navigator.credentials.create or .get ({"publicKey": ...}, binary
// fields in base64url), finish takes the browser's PublicKeyCredential as
// JSON. The ceremony's challenge stays on the server, bound to the
// session (access.PasskeyCeremony). Registration sits one level below the
// list so that no path is both a passkey ID and a ceremony.
const (
	PathPasskeys            = "/api/v1/me/passkeys"
	PathPasskeysBegin       = "/api/v1/me/passkeys/registration/begin"
	PathPasskeysFinish      = "/api/v1/me/passkeys/registration/finish"
	PathMFAPasskeyBegin     = "/api/v1/auth/mfa/passkey/begin"
	PathMFAPasskeyFinish    = "/api/v1/auth/mfa/passkey/finish"
	maxPasskeyResponseBytes = 64 << 10
)

// PasskeyView is a passkey as the API lists it (never its key).
type PasskeyView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// Synced: the credential is backed up (a synced passkey), not bound to
	// one device.
	Synced     bool     `json:"synced"`
	Transports []string `json:"transports,omitempty"`
}

// PasskeyList is the list response.
type PasskeyList struct {
	Passkeys []PasskeyView `json:"passkeys"`
}

// PasskeyRegisterFinish is the body of a registration's finish.
type PasskeyRegisterFinish struct {
	Name       string          `json:"name,omitempty"`
	Credential json.RawMessage `json:"credential"`
}

// PasskeyAdded answers a registration: the recovery codes come only with
// a first second factor, and are shown once.
type PasskeyAdded struct {
	Passkey       PasskeyView `json:"passkey"`
	Stage         string      `json:"stage"`
	RecoveryCodes []string    `json:"recovery_codes,omitempty"`
}

// PasskeyLoginFinish is the body of a sign-in's finish.
type PasskeyLoginFinish struct {
	Credential json.RawMessage `json:"credential"`
}

func passkeyView(pk access.Passkey) PasskeyView {
	v := PasskeyView{ID: pk.ID, Name: pk.Name, CreatedAt: pk.CreatedAt, Synced: pk.BackupState, Transports: pk.Transports}
	if !pk.LastUsedAt.IsZero() {
		v.LastUsedAt = &pk.LastUsedAt
	}
	return v
}

// passkeyAPI serves the passkey endpoints; pk is nil when the public URL
// cannot be a relying party (err says why).
type passkeyAPI struct {
	s   *Server
	pk  *access.Passkeys
	err error
}

// passkeyRoutes registers the passkey endpoints. Registration and the
// sign-in ceremony are partial: a session that must enroll, or waits for
// its second factor, calls them.
func (s *Server) passkeyRoutes(user func(access.Permission, string, handlerFunc, ...routeOpt)) {
	a := &passkeyAPI{s: s}
	if a.pk, a.err = access.NewPasskeys(s.access, access.PasskeyConfig{PublicURL: s.publicURL, DisplayName: "Collector"}); a.err != nil {
		s.log.Warn("passkeys are off", "public_url", s.audience, "err", a.err)
	}
	user(access.PermSignedIn, "GET "+PathPasskeys, a.list)
	user(access.PermSignedIn, "DELETE "+PathPasskeys+"/{id}", a.remove, stepUp)
	user(access.PermSignedIn, "POST "+PathPasskeysBegin, a.beginRegistration, partial)
	user(access.PermSignedIn, "POST "+PathPasskeysFinish, a.finishRegistration, partial)
	user(access.PermSignedIn, "POST "+PathMFAPasskeyBegin, a.beginLogin, partial)
	user(access.PermSignedIn, "POST "+PathMFAPasskeyFinish, a.finishLogin, partial)
}

// available refuses a ceremony on a platform whose public URL is an IP
// address: browsers accept no such relying party.
func (a *passkeyAPI) available() error {
	if a.pk == nil {
		return errorf(http.StatusConflict, api.CodeConflict, "%v", a.err)
	}
	return nil
}

func (a *passkeyAPI) list(w http.ResponseWriter, r *http.Request) error {
	pks, err := a.s.access.PasskeysOf(r.Context(), principal(r).User.ID)
	if err != nil {
		return err
	}
	out := PasskeyList{Passkeys: make([]PasskeyView, 0, len(pks))}
	for _, pk := range pks {
		out.Passkeys = append(out.Passkeys, passkeyView(pk))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *passkeyAPI) remove(w http.ResponseWriter, r *http.Request) error {
	if err := a.s.noBody(w, r); err != nil {
		return err
	}
	if err := a.s.access.RemovePasskey(r.Context(), principal(r), r.PathValue("id")); err != nil {
		return accessError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *passkeyAPI) beginRegistration(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	if p.Session != nil && p.Session.Stage == access.StageMFA {
		return errorf(http.StatusUnauthorized, api.CodeMFARequired, "verify your second factor first")
	}
	if err := a.available(); err != nil {
		return err
	}
	if err := a.s.noBody(w, r); err != nil {
		return err
	}
	creation, err := a.pk.BeginRegistration(r.Context(), p)
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, creation)
	return nil
}

func (a *passkeyAPI) finishRegistration(w http.ResponseWriter, r *http.Request) error {
	if err := a.available(); err != nil {
		return err
	}
	req, err := decodePasskey[PasskeyRegisterFinish](a.s, w, r)
	if err != nil {
		return err
	}
	p := principal(r)
	added, err := a.pk.FinishRegistration(r.Context(), p, req.Name, req.Credential)
	if err != nil {
		return accessError(err)
	}
	a.s.rotated(w, added.Cookie)
	writeJSON(w, http.StatusCreated, PasskeyAdded{Passkey: passkeyView(added.Passkey), Stage: access.StageFull, RecoveryCodes: added.RecoveryCodes})
	return nil
}

func (a *passkeyAPI) beginLogin(w http.ResponseWriter, r *http.Request) error {
	if err := a.available(); err != nil {
		return err
	}
	if err := a.s.noBody(w, r); err != nil {
		return err
	}
	assertion, err := a.pk.BeginLogin(r.Context(), principal(r))
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, assertion)
	return nil
}

func (a *passkeyAPI) finishLogin(w http.ResponseWriter, r *http.Request) error {
	if err := a.available(); err != nil {
		return err
	}
	req, err := decodePasskey[PasskeyLoginFinish](a.s, w, r)
	if err != nil {
		return err
	}
	p := principal(r)
	cookie, err := a.pk.FinishLogin(r.Context(), p, req.Credential)
	if err != nil {
		return accessError(err)
	}
	a.s.rotated(w, cookie)
	writeJSON(w, http.StatusOK, api.SignInResponse{Stage: access.StageFull, User: userView(p.User, nil)})
	return nil
}

// decodePasskey reads a finish body: JSON, at most 64 KiB (a credential
// with its attestation is a few KiB), with a credential.
func decodePasskey[T PasskeyRegisterFinish | PasskeyLoginFinish](s *Server, w http.ResponseWriter, r *http.Request) (T, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPasskeyResponseBytes)
	return decode(s, w, r, func(rd io.Reader) (T, error) {
		var v T
		if err := api.Decode(rd, &v); err != nil {
			return v, err
		}
		var cred json.RawMessage
		switch x := any(v).(type) {
		case PasskeyRegisterFinish:
			cred = x.Credential
		case PasskeyLoginFinish:
			cred = x.Credential
		}
		if len(cred) == 0 || string(cred) == "null" {
			return v, fmt.Errorf("%w: credential is required (the PublicKeyCredential as JSON)", api.ErrInvalid)
		}
		return v, nil
	})
}

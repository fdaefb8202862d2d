package browsertest

import (
	"context"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// AuthenticatorOptions describe a virtual authenticator (CDP
// WebAuthn.VirtualAuthenticatorOptions).
type AuthenticatorOptions = webauthn.VirtualAuthenticatorOptions

// PlatformAuthenticator is a device's built-in authenticator holding
// passkeys: CTAP2.1, internal transport, resident (discoverable) keys, and
// user verification (a fingerprint, a PIN) that succeeds; presence is
// confirmed at once.
func PlatformAuthenticator() AuthenticatorOptions {
	return AuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
		Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
		IsUserVerified: true, AutomaticPresenceSimulation: true}
}

// Authenticator is a virtual authenticator attached to one tab: the page's
// navigator.credentials calls reach it (and no real device).
type Authenticator struct {
	ID  webauthn.AuthenticatorID
	tab *Tab
}

// call runs one DevTools command on the tab's target within the timeout.
func call[P, R any](tb *Tab, cmd cdp.Command[P, R], params P) (R, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, tb.b.timeout)
	defer cancel()
	return chromedp.Call(ctx, cmd, params)
}

// AddAuthenticator turns on the tab's WebAuthn domain (no browser UI) and
// attaches a virtual authenticator; it goes with the tab.
func (tb *Tab) AddAuthenticator(o AuthenticatorOptions) *Authenticator {
	tb.t.Helper()
	if _, err := call(tb, webauthn.Enable, webauthn.EnableParams{EnableUI: new(false)}); err != nil {
		tb.t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := call(tb, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &o})
	if err != nil {
		tb.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return &Authenticator{ID: res.AuthenticatorID, tab: tb}
}

// Credentials returns the credentials the authenticator holds (with their
// private keys and sign counts).
func (a *Authenticator) Credentials() []*webauthn.Credential {
	a.tab.t.Helper()
	res, err := call(a.tab, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: a.ID})
	if err != nil {
		a.tab.t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// credential is webauthn.Credential without the CMTG fields: cdproto
// always sends generateCmtgKeyOnNextOperation, and an authenticator
// without the cmtgKey extension refuses any credential that has it.
type credential struct {
	CredentialID         []byte  `json:"credentialId"`
	IsResidentCredential bool    `json:"isResidentCredential"`
	RpID                 string  `json:"rpId"`
	PrivateKey           []byte  `json:"privateKey"`
	UserHandle           []byte  `json:"userHandle,omitempty"`
	SignCount            float64 `json:"signCount"`
	BackupEligibility    bool    `json:"backupEligibility"`
	BackupState          bool    `json:"backupState"`
	UserName             string  `json:"userName,omitempty"`
	UserDisplayName      string  `json:"userDisplayName,omitempty"`
}

type addCredentialParams struct {
	AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
	Credential      credential               `json:"credential"`
}

var addCredential = cdp.Command[addCredentialParams, cdp.Empty]{Method: webauthn.CommandAddCredential}

// AddCredential puts a credential into the authenticator: a copy of one
// from another authenticator (Credentials) makes a clone.
func (a *Authenticator) AddCredential(c *webauthn.Credential) {
	a.tab.t.Helper()
	p := addCredentialParams{AuthenticatorID: a.ID, Credential: credential{CredentialID: c.CredentialID, IsResidentCredential: c.IsResidentCredential,
		RpID: c.RpID, PrivateKey: c.PrivateKey, UserHandle: c.UserHandle, SignCount: c.SignCount, BackupEligibility: c.BackupEligibility,
		BackupState: c.BackupState, UserName: c.UserName, UserDisplayName: c.UserDisplayName}}
	if _, err := call(a.tab, addCredential, p); err != nil {
		a.tab.t.Fatalf("WebAuthn.addCredential: %v", err)
	}
}

// Remove detaches the authenticator from its tab.
func (a *Authenticator) Remove() {
	a.tab.t.Helper()
	if _, err := call(a.tab, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: a.ID}); err != nil {
		a.tab.t.Fatalf("WebAuthn.removeVirtualAuthenticator: %v", err)
	}
}

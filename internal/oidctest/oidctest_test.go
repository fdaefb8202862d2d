package oidctest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/collectorhq/collector/internal/oidctest"
)

const redirect = "https://127.0.0.1:1/callback" // never reached: the client stops there

// client is a relying party: go-oidc and oauth2, as the platform uses
// them, trusting only the provider's test CA.
type client struct {
	t        *testing.T
	p        *oidctest.Provider
	hc       *http.Client
	ctx      context.Context
	provider *oidc.Provider
	oc       oauth2.Config
}

func newClient(t *testing.T, p *oidctest.Provider) *client {
	hc := p.Client()
	ctx := oidc.ClientContext(context.WithValue(context.Background(), oauth2.HTTPClient, hc), hc)
	prov, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatalf("discovery over TLS with the test CA: %v", err)
	}
	ep := prov.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic; auto-detection would ask twice
	return &client{t: t, p: p, hc: hc, ctx: ctx, provider: prov, oc: oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret,
		Endpoint: ep, RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}}
}

// authorize runs the browser part and returns the callback's query.
func (c *client) authorize(state, nonce, verifier string) url.Values {
	c.t.Helper()
	noFollow := *c.hc
	var got *url.URL
	noFollow.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), redirect) {
			got = r.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := noFollow.Get(c.oc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if got == nil {
		c.t.Fatalf("the flow did not come back to the client: %s at %s", resp.Status, resp.Request.URL)
	}
	return got.Query()
}

// TestProviderCodeFlow: discovery, authorization with PKCE and a nonce,
// the code exchanged once (a second time and with a wrong verifier it is
// refused), an ID token go-oidc verifies, with the user's claims.
func TestProviderCodeFlow(t *testing.T) {
	p := oidctest.Start(t, oidctest.Config{RedirectURI: redirect})
	p.AddUser(oidctest.User{Subject: "u1", PreferredUsername: "ada", Email: "ada@example.com", EmailVerified: true, Name: "Ada L",
		Groups: []string{"g1", "g2"}, Claims: map[string]any{"tenant": "t1"}})
	p.LoginAs("u1")
	c := newClient(t, p)
	verifier := oauth2.GenerateVerifier()
	q := c.authorize("st-1", "n-1", verifier)
	if q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("callback query = %v", q)
	}
	if m, nonce, state := p.LastAuthRequest(); m != "S256" || !nonce || !state {
		t.Errorf("auth request: PKCE %q nonce %v state %v", m, nonce, state)
	}
	if _, err := c.oc.Exchange(c.ctx, q.Get("code"), oauth2.VerifierOption("wrong-"+verifier)); err == nil {
		t.Error("a wrong PKCE verifier was accepted")
	}
	tok, err := c.oc.Exchange(c.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, err := c.provider.Verifier(&oidc.Config{ClientID: p.ClientID}).Verify(c.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var cl struct {
		Email, PreferredUsername, Name, Tenant string
		Groups                                 []string
		Verified                               bool `json:"email_verified"`
	}
	idt.Claims(&cl)
	if idt.Subject != "u1" || idt.Nonce != "n-1" || cl.Email != "ada@example.com" || !cl.Verified || cl.Tenant != "t1" || !slices.Equal(cl.Groups, []string{"g1", "g2"}) {
		t.Errorf("ID token: sub %q nonce %q claims %+v", idt.Subject, idt.Nonce, cl)
	}
	if _, err := c.oc.Exchange(c.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Error("a code was exchanged twice")
	}
	if ok, refused := p.Exchanges(); ok != 1 || refused != 2 {
		t.Errorf("exchanges = %d ok, %d refused; want 1 and 2", ok, refused)
	}
}

// TestProviderKnobs: each attack knob makes a token go-oidc refuses.
func TestProviderKnobs(t *testing.T) {
	p := oidctest.Start(t, oidctest.Config{RedirectURI: redirect})
	p.AddUser(oidctest.User{Subject: "u1", Groups: []string{"g"}})
	p.LoginAs("u1")
	c := newClient(t, p)
	verify := func() error {
		v := oauth2.GenerateVerifier()
		q := c.authorize("s", "n", v)
		tok, err := c.oc.Exchange(c.ctx, q.Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		_, err = c.provider.Verifier(&oidc.Config{ClientID: p.ClientID}).Verify(c.ctx, tok.Extra("id_token").(string))
		return err
	}
	p.Tamper(func(cl map[string]any) { cl["aud"] = "someone-else" })
	if err := verify(); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("tampered audience: %v", err)
	}
	p.Tamper(nil)
	p.AdvanceClock(-time.Hour)
	var te *oidc.TokenExpiredError
	if err := verify(); !errors.As(err, &te) {
		t.Errorf("clock an hour back: %v, want expired", err)
	}
	p.AdvanceClock(time.Hour)
	if err := p.SignWithUnpublishedKey(true); err != nil {
		t.Fatal(err)
	}
	if err := verify(); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("unpublished key: %v", err)
	}
	p.SignWithUnpublishedKey(false)
	if err := verify(); err != nil {
		t.Errorf("knobs off: %v", err)
	}
}

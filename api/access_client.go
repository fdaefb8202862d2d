package api

import (
	"context"
	"net/http"
	"net/url"
)

// Me returns the caller (user, role, how signed in).
func (c *AdminClient) Me(ctx context.Context) (*Me, error) {
	var out Me
	return &out, c.do(ctx, http.MethodGet, PathMe, nil, &out)
}

// CreateToken creates an API token of the caller; its value is in the
// answer only.
func (c *AdminClient) CreateToken(ctx context.Context, req CreateTokenRequest) (*CreatedToken, error) {
	var out CreatedToken
	return &out, c.do(ctx, http.MethodPost, PathMyTokens, req, &out)
}

// MyTokens lists the caller's tokens; AllTokens every user's (admin).
func (c *AdminClient) MyTokens(ctx context.Context) ([]APIToken, error) {
	var out APITokenList
	return out.Tokens, c.do(ctx, http.MethodGet, PathMyTokens, nil, &out)
}

// AllTokens lists every user's tokens (admin).
func (c *AdminClient) AllTokens(ctx context.Context) ([]APIToken, error) {
	var out APITokenList
	return out.Tokens, c.do(ctx, http.MethodGet, PathTokens, nil, &out)
}

// RevokeToken revokes one of the caller's tokens.
func (c *AdminClient) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, PathMyTokens+"/"+url.PathEscape(id), nil, nil)
}

// Users lists users (admin).
func (c *AdminClient) Users(ctx context.Context) ([]User, error) {
	var out UserList
	return out.Users, c.do(ctx, http.MethodGet, PathUsers, nil, &out)
}

// DeviceClient is the unauthenticated side of `platform login`.
type DeviceClient struct{ t transport }

// NewDeviceClient returns a client for the platform at baseURL.
func NewDeviceClient(baseURL string, hc *http.Client) *DeviceClient {
	return &DeviceClient{t: newTransport(baseURL, hc)}
}

// Start begins a device sign-in.
func (c *DeviceClient) Start(ctx context.Context) (*DeviceStart, error) {
	var out DeviceStart
	return &out, c.t.do(ctx, http.MethodPost, PathDeviceStart, "", struct{}{}, &out)
}

// Token polls for the device's token: an *Error with code
// CodeAuthorizationPending until the user approves.
func (c *DeviceClient) Token(ctx context.Context, deviceCode string) (*CreatedToken, error) {
	var out CreatedToken
	return &out, c.t.do(ctx, http.MethodPost, PathDeviceToken, "", DeviceTokenRequest{DeviceCode: deviceCode}, &out)
}

// Throttles lists the sign-in failure counters (admin).
func (c *AdminClient) Throttles(ctx context.Context) (*ThrottleList, error) {
	var out ThrottleList
	return &out, c.do(ctx, http.MethodGet, PathThrottles, nil, &out)
}

// ClearThrottle clears one counter, or all with "" (admin).
func (c *AdminClient) ClearThrottle(ctx context.Context, key string) error {
	return c.do(ctx, http.MethodDelete, PathThrottles+"?key="+url.QueryEscape(key), nil, nil)
}

// CreateUser creates a user (admin).
func (c *AdminClient) CreateUser(ctx context.Context, req CreateUserRequest) (*User, error) {
	var out User
	return &out, c.do(ctx, http.MethodPost, PathUsers, req, &out)
}

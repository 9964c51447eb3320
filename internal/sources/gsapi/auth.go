package gsapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/redact"
)

// sessionAuth logs in with Basic auth on /welcome and sends the VompApiToken it returns; on a 401 (the
// server expires tokens when it decides to) it logs in again. With a JWT it sends the bearer token as is.
type sessionAuth struct {
	client             *httpclient.Client
	welcome            string
	origin             string // the API's: credentials are sent nowhere else
	username, password string
	jwt                string
	mu                 sync.Mutex
	token              string
}

// Origin is the API's origin, the only one its credentials are sent to.
func (a *sessionAuth) Origin() string { return a.origin }

// Authorize sets VompApiToken (logging in first if needed), or the bearer JWT.
func (a *sessionAuth) Authorize(ctx context.Context, req *http.Request) (string, error) {
	if a.jwt != "" {
		req.Header.Set("Authorization", "Bearer "+a.jwt)
		return a.jwt, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" {
		if err := a.login(ctx); err != nil {
			return "", err
		}
	}
	req.Header.Set("VompApiToken", a.token)
	return a.token, nil
}

// Renew logs in again unless another request already did.
func (a *sessionAuth) Renew(ctx context.Context, stale string) error {
	if a.jwt != "" {
		return fmt.Errorf("the API refused the JWT (401); it has expired or is not valid for this environment")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && a.token != stale {
		return nil
	}
	return a.login(ctx)
}

func (a *sessionAuth) login(ctx context.Context) error {
	resp, err := a.client.Do(ctx, httpclient.Request{Method: "GET", URL: a.welcome, Auth: basicAuth{a.username, a.password, a.origin}, Unlimited: true,
		MaxBytes: 1 << 20, What: "login answer"})
	if err != nil {
		return fmt.Errorf("gsapi login: %w", err)
	}
	resp.Body.Close()
	tok := resp.Header.Get("VompApiToken")
	if tok == "" {
		return fmt.Errorf("gsapi login: GET /welcome answered %d without a VompApiToken header", resp.Status)
	}
	redact.Add(tok)
	a.token = tok
	return nil
}

// basicAuth authenticates the login call itself; a 401 there means wrong credentials, not expiry.
type basicAuth struct{ user, pass, origin string }

func (b basicAuth) Origin() string { return b.origin }

func (b basicAuth) Authorize(_ context.Context, req *http.Request) (string, error) {
	req.SetBasicAuth(b.user, b.pass)
	return "", nil
}

func (b basicAuth) Renew(context.Context, string) error {
	return fmt.Errorf("username or password rejected by /welcome (401)")
}

package signicat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/ledgerlake/ledgerlake/internal/redact"
)

// tokenAuth holds the client-credentials token, renews it before expires_in runs out, and renews it at
// once when the API answers 401.
type tokenAuth struct {
	cfg    clientcredentials.Config
	client *http.Client
	origin string // the API's: the token is sent nowhere else
	mu     sync.Mutex
	tok    *oauth2.Token
	ttl    time.Duration
}

func newTokenAuth(tokenURL, clientID, clientSecret, origin string, client *http.Client) *tokenAuth {
	return &tokenAuth{
		cfg: clientcredentials.Config{
			ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL,
			Scopes: []string{"signicat-api"}, AuthStyle: oauth2.AuthStyleInParams,
		},
		client: client,
		origin: origin,
	}
}

// Origin is the API's origin, the only one the token is sent to.
func (a *tokenAuth) Origin() string { return a.origin }

// fresh reports whether the token has more than a tenth of its life (at least 5 s, at most half) left.
func (a *tokenAuth) fresh() bool {
	if a.tok == nil || a.tok.AccessToken == "" {
		return false
	}
	margin := min(max(a.ttl/10, 5*time.Second), a.ttl/2)
	return a.tok.Expiry.IsZero() || time.Until(a.tok.Expiry) > margin
}

// fetch gets a new token; the client's transport retries transient failures of the token endpoint.
func (a *tokenAuth) fetch(ctx context.Context) error {
	tok, err := a.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, a.client))
	if err != nil {
		return fmt.Errorf("signicat token endpoint: %w", redactTokenError(err))
	}
	redact.Add(tok.AccessToken)
	a.tok, a.ttl = tok, time.Until(tok.Expiry)
	return nil
}

// Authorize sets the bearer token, fetching or renewing it first when needed.
func (a *tokenAuth) Authorize(ctx context.Context, req *http.Request) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.fresh() {
		if err := a.fetch(ctx); err != nil {
			return "", err
		}
	}
	req.Header.Set("Authorization", "Bearer "+a.tok.AccessToken)
	return a.tok.AccessToken, nil
}

// Renew fetches a new token unless another request already replaced the stale one.
func (a *tokenAuth) Renew(ctx context.Context, stale string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok != nil && a.tok.AccessToken != stale && a.fresh() {
		return nil
	}
	return a.fetch(ctx)
}

// redactTokenError keeps the server's reason — the OAuth error code and description, else the start of
// the body — with every known credential masked: a token endpoint may echo the request it refused.
func redactTokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return redact.Error(err)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	reason := strings.TrimSpace(re.ErrorCode + " " + re.ErrorDescription)
	if re.ErrorCode == "" {
		reason = strings.Join(strings.Fields(string(re.Body)), " ")
		if len(reason) > 300 {
			reason = reason[:300] + "…"
		}
	}
	msg := fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	if reason != "" {
		msg += ": " + reason
	}
	return errors.New(redact.String(strings.ToValidUTF8(msg, "?")))
}

package gsapi

import (
	"context"
	"fmt"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
)

// SignIn proves the credentials without reading data: with a username it logs in on /welcome for a
// VompApiToken; with a JWT it calls /welcome with it, which the spec names for "testing API
// connectivity and validating credentials".
func (s *Source) SignIn(ctx context.Context) error {
	if s.auth.jwt == "" {
		s.auth.mu.Lock()
		defer s.auth.mu.Unlock()
		return s.auth.login(ctx)
	}
	if _, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.auth.welcome, Auth: s.auth, Unlimited: true}); err != nil {
		return fmt.Errorf("gsapi /welcome with the JWT: %w", err)
	}
	return nil
}

package signicat

import "context"

// SignIn fetches one token from the token endpoint and nothing else: `extract check` proves the
// credentials without reading data.
func (s *Source) SignIn(ctx context.Context) error {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.auth.fetch(ctx)
}

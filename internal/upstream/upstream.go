// Package upstream marks failures of the services the engine calls, Skilljar and Salesforce,
// so an HTTP answer can blame the service rather than the server.
package upstream

// The services an Error can name.
const (
	Skilljar   = "Skilljar"
	Salesforce = "Salesforce"
)

// Error is a call to Service that failed on the service's side or on the way to it: an error
// answer, a malformed body, a refused or cut connection, or a rate limit sat out too often.
// Failures of the caller's own (a cancelled context, an unreachable rate limiter) are never
// wrapped in it.
type Error struct {
	Service string
	Err     error
}

// Error is the cause's message: the clients already name the service and the call in it.
func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

package pgxconn

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestWakeMessageIsServerAway: a provider's wake-up message and a server
// refused as read-only under target_session_attrs=read-write mark the
// dial error as the server being away; other server errors do not, and
// the marked error still unwraps to the server's.
func TestWakeMessageIsServerAway(t *testing.T) {
	away := func(err error) bool {
		var a interface{ ServerAway() bool }
		return errors.As(err, &a) && a.ServerAway()
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Severity: "FATAL", Code: "XX000", Message: "Couldn't connect to compute node"}, true},
		{fmt.Errorf("dial: %w", &pgconn.PgError{Severity: "ERROR", Code: "XX000", Message: "couldn't connect to compute node: timed out"}), true},
		{fmt.Errorf("ValidateConnect failed: %w", pgconn.ErrReadOnlyConnection), true},
		{fmt.Errorf("ValidateConnect failed: %w", pgconn.ErrStandbyConnection), true},
		{fmt.Errorf("ValidateConnect failed: %w", pgconn.ErrReadWriteConnection), false},
		{&pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed for user \"app\""}, false},
		{&pgconn.PgError{Severity: "FATAL", Code: "3D000", Message: "database \"x\" does not exist"}, false},
		{errors.New("some other failure"), false},
	} {
		got := classifyDialError(tc.err)
		if away(got) != tc.want {
			t.Errorf("%v: away %v, want %v", tc.err, away(got), tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%v: the classified error does not unwrap to it", tc.err)
		}
	}
}

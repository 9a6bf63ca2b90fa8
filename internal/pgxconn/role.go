package pgxconn

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// What the server says of a session, for the pool's ServerWitness
// (failover.go and sleep.go in the root package).
//
// A server reports its role to every session (PostgreSQL 14+: the
// in_hot_standby and default_transaction_read_only parameters, sent at
// startup and again whenever they change, before the next ReadyForQuery).
// A writer demoted under open connections, or turned read-only, keeps
// them open and answers their probes; only a write tells, refused with
// 25006. The role a connection saw at connect time, and the errors the
// server sent on it (pgx's OnPgError), tell a demotion apart from a
// session's own read-only transaction.

// Flags in a connection's said word, set by the OnPgError hook.
const (
	saidReadOnly uint32 = 1 << iota // a statement was refused with 25006
	saidIdleEnd                     // the server ended the session for idling (57P05)
)

// role is what a server reported of itself.
type role uint8

const (
	roleUnknown  role = iota // the server reports neither parameter (before 14)
	roleWriter               // neither in hot standby nor read-only by default
	roleReadOnly             // in hot standby, or read-only by default
)

// roleOf is the role pc's server reports now.
func roleOf(pc *pgconn.PgConn) role {
	hs, ro := pc.ParameterStatus("in_hot_standby"), pc.ParameterStatus("default_transaction_read_only")
	switch {
	case hs == "" && ro == "":
		return roleUnknown
	case hs == "on" || ro == "on":
		return roleReadOnly
	}
	return roleWriter
}

// hearErrors makes cfg's OnPgError note in said the errors the pool acts
// on, before pgx's own handling (or the user's hook) runs. A 25006 counts
// only for a statement outside an explicit transaction (the transaction
// status is still the one before the statement): read-only there comes
// from the server's default, not from a BEGIN READ ONLY of the caller's.
func hearErrors(cfg *pgconn.Config, said *atomic.Uint32) {
	prev := cfg.OnPgError
	cfg.OnPgError = func(pc *pgconn.PgConn, e *pgconn.PgError) bool {
		switch e.Code {
		case "25006":
			if pc.TxStatus() == 'I' {
				said.Or(saidReadOnly)
			}
		case "57P05":
			said.Or(saidIdleEnd)
		}
		if prev != nil {
			return prev(pc, e)
		}
		return e.Severity != "FATAL"
	}
}

// demoted reports that c's last refusal with 25006 came from its server
// having turned read-only, where c, or a sibling (sawWriter), was opened
// to a writer: the name's server changed role. A read-only transaction of
// the session's own on a writer is not; a server that does not report its
// role (before 14) is taken at its refusal. The common case reads one
// atomic word.
func (c *Conn) demoted() bool {
	if c.said == nil || c.said.Load()&saidReadOnly == 0 {
		return false
	}
	switch roleOf(c.Pgx.PgConn()) {
	case roleUnknown:
		return true
	case roleReadOnly:
		if c.writer == roleWriter || c.sawWriter.Load() {
			return true
		}
	}
	c.said.And(^saidReadOnly)
	return false
}

// endedIdle reports that the server ended c's session for idling.
func (c *Conn) endedIdle() bool { return c.said != nil && c.said.Load()&saidIdleEnd != 0 }

// errRoleChanged: the checkout probe found a connection opened to a
// writer on a server that now reports itself read-only.
var errRoleChanged = errors.New("runpool: the server turned read-only since the connection was opened (failover)")

// roleChanged reports whether c was opened to a writer whose server now
// reports itself read-only (a probe's answer updates the report).
func (c *Conn) roleChanged() bool {
	return c.writer == roleWriter && roleOf(c.Pgx.PgConn()) == roleReadOnly
}

// Refused reports whether err, which a statement on c just failed with,
// is a refusal without running it: by a server that turned read-only
// under c (demoted), or on a session the server ended for idling before
// it read the statement (57P05, which the server sends only to a session
// outside any transaction). After a 25006, c must be outside any
// transaction, so that nothing before the statement is lost with it.
// Such a statement may run once more on another connection.
func (c *Conn) Refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "57P05":
		return true
	case "25006":
		return c.Pgx.PgConn().TxStatus() == 'I' && c.demoted()
	}
	return false
}

// awayError is a failed dial that means the server is away for a moment:
// the pool's callers wait for it within their deadline (the root
// package's serverAway).
type awayError struct{ err error }

func (e *awayError) Error() string    { return e.err.Error() }
func (e *awayError) Unwrap() error    { return e.err }
func (e *awayError) ServerAway() bool { return true }

// wakeMessages are the texts providers answer a connection with while a
// database that scaled to zero resumes (Neon's proxy: "Couldn't connect
// to compute node"). A refused or reset connection while resuming counts
// as away already.
var wakeMessages = []string{
	"couldn't connect to compute node",
}

// classifyDialError marks err as the server being away when it is a
// provider's wake-up message, or every host refused a required writer
// as read-only or in standby (target_session_attrs=read-write or primary
// during a failover, while no server is promoted yet).
func classifyDialError(err error) error {
	if errors.Is(err, pgconn.ErrReadOnlyConnection) || errors.Is(err, pgconn.ErrStandbyConnection) {
		return &awayError{err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := strings.ToLower(pgErr.Message)
		for _, w := range wakeMessages {
			if strings.Contains(msg, w) {
				return &awayError{err}
			}
		}
	}
	return err
}

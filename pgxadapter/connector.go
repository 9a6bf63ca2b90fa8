package pgxadapter

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/cloudsqldial"
	"github.com/runpool/runpool/internal/pgxconn"
)

// pconn is what the pool holds: the shared connection (pgxconn.Conn) and
// the wrappers of the query methods.
type pconn struct {
	pgxconn.Conn
	// rowBuf and rowsBuf hold the wrappers Pool.QueryRow and Pool.Query
	// hand out on this connection, allocated 64 at a time as pgxpool's
	// are; only the caller holding the connection touches them.
	rowBuf  []poolRow
	rowsBuf []poolRows
	// rowQuery is the query of the poolRow out on this connection, for
	// its Scan to run once more (poolRow.again). One per connection, not
	// per row: a poolRow holds its connection until Scan, and the
	// buffer's rows stay small.
	rowQuery rowQuery
}

// rowQuery is what runs a QueryRow once more.
type rowQuery struct {
	p    *Pool
	ctx  context.Context
	sql  string
	args []any
}

// newRow returns a poolRow from pc's buffer.
func (pc *pconn) newRow(rows pgx.Rows, c *runpool.Conn[*pconn]) *poolRow {
	if len(pc.rowBuf) == 0 {
		pc.rowBuf = make([]poolRow, 64)
	}
	r := &pc.rowBuf[0]
	pc.rowBuf = pc.rowBuf[1:]
	*r = poolRow{rows: rows, c: c}
	return r
}

// newRows returns a poolRows from pc's buffer.
func (pc *pconn) newRows(rows pgx.Rows, c *runpool.Conn[*pconn]) *poolRows {
	if len(pc.rowsBuf) == 0 {
		pc.rowsBuf = make([]poolRows, 64)
	}
	r := &pc.rowsBuf[0]
	pc.rowsBuf = pc.rowsBuf[1:]
	*r = poolRows{Rows: rows, c: c}
	return r
}

// connector opens and closes the pool's connections (internal/pgxconn).
type connector = pgxconn.Connector[*pconn]

// newConnector returns the connector for cfg and its pool settings rc,
// with cfg's BeforeConnect and BeforeClose hooks; ctx bounds the Cloud
// SQL set-up.
func newConnector(ctx context.Context, cfg *Config, rc runpool.Config) (*connector, error) {
	o := pgxconn.Options[*pconn]{
		ConnConfig:  cfg.ConnConfig,
		Pool:        rc,
		CloudSQL:    (*cloudsqldial.Settings)(cfg.CloudSQL),
		Open:        connectWith(cfg.RDSIAM),
		BeforeClose: cfg.BeforeClose,
	}
	if bc := cfg.BeforeConnect; bc != nil {
		o.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			if err := bc(ctx, cc); err != nil {
				return fmt.Errorf("pgxadapter: BeforeConnect: %w", err)
			}
			return nil
		}
	}
	return pgxconn.New(ctx, o)
}

// connect dials one connection with cc.
func connect(ctx context.Context, cc *pgx.ConnConfig) (*pconn, error) {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	return &pconn{Conn: pgxconn.Conn{Pgx: conn}}, nil
}

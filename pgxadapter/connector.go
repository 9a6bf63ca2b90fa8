package pgxadapter

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// connector opens and closes *pgx.Conn for runpool.Pool.
type connector struct {
	cfg *pgx.ConnConfig
}

func (c *connector) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, c.cfg.Copy())
}

func (c *connector) Ping(ctx context.Context, conn *pgx.Conn) error {
	return conn.PgConn().Ping(ctx)
}

func (c *connector) Reusable(conn *pgx.Conn) bool {
	pc := conn.PgConn()
	return !pc.IsClosed() && !pc.IsBusy() && pc.TxStatus() == 'I'
}

func (c *connector) Cancel(ctx context.Context, conn *pgx.Conn) error {
	return conn.PgConn().CancelRequest(ctx)
}

// closeTimeout bounds the goodbye to a live server: writing Terminate to a
// healthy socket takes microseconds, and the pool slot waits for it.
const closeTimeout = time.Second

func (c *connector) Close(conn *pgx.Conn, dead bool) {
	if dead {
		// Nobody will read a Terminate; free the socket now.
		_ = conn.PgConn().Conn().Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

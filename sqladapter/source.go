package sqladapter

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// source opens and closes pooled connections for runpool: each is pgx's
// stdlib driver connection, wrapped once in a DriverConn.
type source struct {
	stdlib driver.Connector // stdlib.GetConnector over our ConnConfig
}

func (s *source) Connect(ctx context.Context) (*DriverConn, error) {
	dc, err := s.stdlib.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		_ = dc.Close()
		return nil, fmt.Errorf("sqladapter: pgx stdlib returned a %T, not a *stdlib.Conn", dc)
	}
	c := &DriverConn{sc: sc, pg: sc.Conn()}
	c.live.init(c.pg.PgConn().Conn())
	return c, nil
}

func (s *source) Ping(ctx context.Context, c *DriverConn) error {
	return c.pg.PgConn().Ping(ctx)
}

func (s *source) Reusable(c *DriverConn) bool { return reusable(c.pg) }

func (s *source) Cancel(ctx context.Context, c *DriverConn) error {
	return c.pg.PgConn().CancelRequest(ctx)
}

// closeTimeout bounds the goodbye to a live server, which takes
// microseconds; the pool slot waits for it.
const closeTimeout = time.Second

func (s *source) Close(c *DriverConn, dead bool) {
	if dead {
		// Nobody will read a Terminate; free the socket now.
		_ = c.pg.PgConn().Conn().Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = c.pg.Close(ctx)
}

package sqladapter

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/cloudsqldial"
	"github.com/runpool/runpool/internal/pgxconn"
	"github.com/runpool/runpool/rdsiam"
)

// source opens and closes the connections runpool pools (the shared
// connector of internal/pgxconn): pgx's stdlib driver connections, each
// with what this package keeps beside it (pooled).
type source struct {
	*pgxconn.Connector[*pooled]
}

// newSource returns the source for cfg and its pool settings rc; ctx,
// when not nil, bounds the Cloud SQL set-up.
func newSource(ctx context.Context, cfg *Config, rc runpool.Config) (*source, error) {
	described := rc.BehindPooler()
	conn, err := pgxconn.New(ctx, pgxconn.Options[*pooled]{
		ConnConfig: cfg.ConnConfig,
		Pool:       rc,
		CloudSQL:   (*cloudsqldial.Settings)(cfg.CloudSQL),
		Open: func(ctx context.Context, cc *pgx.ConnConfig) (*pooled, error) {
			dc, err := rdsiam.Connect(ctx, cfg.RDSIAM, cc, connectStdlib)
			if err != nil {
				return nil, err
			}
			sc, ok := dc.(*stdlib.Conn)
			if !ok {
				_ = dc.Close()
				return nil, fmt.Errorf("sqladapter: pgx stdlib returned a %T, not a *stdlib.Conn", dc)
			}
			return &pooled{Conn: pgxconn.Conn{Pgx: sc.Conn()}, sc: sc, described: described}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return &source{conn}, nil
}

// Parks tells runpool that the shells park connections (DriverConn).
func (s *source) Parks() bool { return true }

var _ interface{ Parks() bool } = (*source)(nil) // runpool's parking method

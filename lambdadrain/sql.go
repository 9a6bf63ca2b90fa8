package lambdadrain

import (
	"context"
	"database/sql"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/sqladapter"
)

// DB returns a *sql.DB opened by sqladapter as a pool for Start: it is
// pinged (db.PingContext, which passes runpool's checkout) before it
// drains (sqladapter.Shutdown), as a *pgxadapter.Pool is.
//
//	db, err := sqladapter.OpenFromEnv(ctx)
//	...
//	lambdadrain.Start(lambdadrain.DB(db))
func DB(db *sql.DB) runpool.Drainer { return sqlPool{db} }

type sqlPool struct{ db *sql.DB }

func (p sqlPool) Ping(ctx context.Context) error { return p.db.PingContext(ctx) }

func (p sqlPool) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	return sqladapter.Shutdown(ctx, p.db)
}

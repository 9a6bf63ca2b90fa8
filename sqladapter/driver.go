package sqladapter

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
)

// DriverName is the name this package registers its [Driver] under, so
// that tools which take only a driver name and a DSN (migration tools such
// as goose or golang-migrate, sqlx.Connect) open a runpool pool:
//
//	db, err := sql.Open("runpool", os.Getenv("DATABASE_URL"))
const DriverName = "runpool"

func init() { sql.Register(DriverName, registered) }

// registered is the Driver sql.Open finds under DriverName.
var registered = &Driver{}

// Driver is the database/sql driver registered as "runpool". Its DSN is
// what [ParseConfig] takes (a URL or key=value string; the RUNPOOL_*
// variables apply), or empty for the environment alone ([ConfigFromEnv]:
// DATABASE_URL, else the PG* variables).
//
// sql.Open calls OpenConnector, which does no I/O: the pool is opened by
// the first call that needs a connection, as [Open] opens it (one
// connection, the server's limits read, the budget checked), within that
// call's context; a failure is that call's, and the next one tries again.
// Every sql.Open of one DSN shares one pool, so the connection budget is
// counted once per process; it closes with the last of their *sql.DBs.
// [Stat] and [Shutdown] work on these *sql.DBs as on those from Open.
//
// database/sql keeps 2 idle shells by default (see DriverConn); call
// db.SetMaxIdleConns with twice the pool's size so that checkouts reuse
// shells rather than build new ones, as [OpenDB] does.
type Driver struct{}

var _ driver.DriverContext = (*Driver)(nil)

// registry holds the Connector of each DSN opened through sql.Open.
var registry struct {
	mu sync.Mutex
	m  map[string]*Connector
}

// OpenConnector returns the Connector shared by every sql.Open of dsn,
// creating it (without I/O) for the first.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if c := registry.m[dsn]; c != nil {
		c.refs++
		return c, nil
	}
	var cfg *Config
	var err error
	if dsn == "" {
		cfg, err = ConfigFromEnv()
	} else {
		cfg, err = ParseConfig(dsn)
	}
	if err != nil {
		return nil, err
	}
	c, err := prepare(nil, cfg)
	if err != nil {
		return nil, err
	}
	c.dsn, c.refs = dsn, 1
	if registry.m == nil {
		registry.m = make(map[string]*Connector)
	}
	registry.m[dsn] = c
	return c, nil
}

// Open checks a connection out of the pool shared by dsn's sql.Open
// calls, for callers of driver.Driver that bypass sql.Open (database/sql
// itself calls OpenConnector). Closing the connection returns it to the
// pool, which stays open while any sql.Open of dsn does, or for the
// process's life if none ever did.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	dc, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	c := dc.(*Connector)
	registry.mu.Lock()
	c.refs-- // no *sql.DB will close it
	registry.mu.Unlock()
	return c.Connect(context.Background())
}

// release drops one *sql.DB's reference to c and reports whether it was
// the last, after which c is no longer shared.
func release(c *Connector) bool {
	if c.dsn == "" {
		return true
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	c.refs--
	if c.refs > 0 {
		return false
	}
	if registry.m[c.dsn] == c {
		delete(registry.m, c.dsn)
	}
	return true
}

// forget makes a later sql.Open of c's DSN open a new pool: c is shut
// down.
func forget(c *Connector) {
	if c.dsn == "" {
		return
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.m[c.dsn] == c {
		delete(registry.m, c.dsn)
	}
}

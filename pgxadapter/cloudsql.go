package pgxadapter

import (
	"os"

	"github.com/runpool/runpool/internal/cloudsqldial"
)

// CloudSQL selects a Cloud SQL instance reached through the Cloud SQL Go
// connector (cloud.google.com/go/cloudsqlconn) instead of the host and
// port of the connection string. The connector does the TLS itself with
// short-lived certificates, so the connection string's sslmode is not
// used. ConfigFromEnv fills it from RUNPOOL_CLOUDSQL_INSTANCE and the
// other RUNPOOL_CLOUDSQL_* variables. It needs the connector linked in:
// import _ "github.com/runpool/runpool/cloudsql".
//
// Every pool of the process shares one connector Dialer; it is closed
// after the last pool using it has drained (closing it force-closes the
// sockets it opened). The pool that creates it decides LazyRefresh for
// all; IAMAuthN and IPType apply per pool.
type CloudSQL struct {
	// Instance is the instance connection name, project:region:instance.
	Instance string
	// IAMAuthN logs in with automatic IAM database authentication: the
	// user is the IAM principal (a service account without
	// ".gserviceaccount.com") and no password is sent.
	IAMAuthN bool
	// IPType is "public" (default), "private" (private IP, from a
	// VPC-connected service) or "psc" (Private Service Connect).
	IPType string
	// LazyRefresh fetches the instance's certificate when a dial needs it
	// rather than in a background goroutine. ConfigFromEnv turns it on
	// where the platform throttles the CPU between requests (Cloud Run,
	// Lambda, ...): there the background refresh may not run in time.
	LazyRefresh bool
}

// cloudSQLFromEnv reads RUNPOOL_CLOUDSQL_*; nil when no instance is set.
func cloudSQLFromEnv() (*CloudSQL, error) {
	s, err := cloudsqldial.FromEnv(os.LookupEnv)
	if s == nil || err != nil {
		return nil, err
	}
	c := CloudSQL(*s)
	return &c, nil
}

// Package cloudsql links Cloud SQL support into runpool's adapters:
// import it for its side effect, and Config.CloudSQL (pgxadapter,
// sqladapter) or RUNPOOL_CLOUDSQL_INSTANCE then dials the instance
// through the Cloud SQL Go connector (cloud.google.com/go/cloudsqlconn).
//
//	import _ "github.com/runpool/runpool/cloudsql"
//
// Without it a pool configured for Cloud SQL fails to open with an error
// that names this package, and a program that never dials Cloud SQL does
// not carry the connector and its Google Cloud clients (about 25 MB of a
// binary). See docs/cloud-run.md.
package cloudsql

import _ "github.com/runpool/runpool/internal/cloudsqlwire" // registers the wiring

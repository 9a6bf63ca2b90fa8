// Package pgxconn is runpool's pgx connector, the same for both adapters:
// the connector that opens, probes and closes connections for the pool
// (Connector, over the connection type Conn that each adapter's own type
// embeds), the settings it dials with (runpool's dialer with keepalives
// and TCP_USER_TIMEOUT, the server-side reclaim settings, the pooler
// mode), the Cloud SQL wiring, the warning about unprotected transport,
// and the witness of interrupted connections.
package pgxconn

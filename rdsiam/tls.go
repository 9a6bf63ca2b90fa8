package rdsiam

import (
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
)

// RDSCABundle is where AWS publishes the certificates of every region's
// RDS certificate authorities; sslrootcert points to a downloaded copy.
const RDSCABundle = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

// CheckTLS returns an error naming RUNPOOL_RDS_IAM_AUTH and sslmode unless
// every connection cc makes uses TLS and checks the server's certificate
// (sslmode=verify-full, or verify-ca): the token lets whoever holds it log
// in for 15 minutes, so it must not reach a server that is not the
// database.
func CheckTLS(cc *pgconn.Config) error {
	mode := ""
	plainFallback := false
	for _, fb := range cc.Fallbacks {
		plainFallback = plainFallback || fb.TLSConfig == nil
	}
	switch {
	case cc.TLSConfig == nil:
		mode = "disable or allow (a connection without TLS)"
	case plainFallback:
		mode = "prefer (TLS when the server offers it, else none)"
	case cc.TLSConfig.InsecureSkipVerify && cc.TLSConfig.VerifyPeerCertificate == nil:
		mode = "require (TLS without checking the server's certificate)"
	}
	if mode == "" {
		return nil
	}
	return &runpool.ConfigError{Setting: EnvIAMAuth, Problem: "IAM tokens are sent only over TLS that checks the server's certificate, " +
		"and the connection's sslmode is " + mode + ": set sslmode=verify-full and sslrootcert to the RDS CA bundle " +
		"(download " + RDSCABundle + "; e.g. ?sslmode=verify-full&sslrootcert=/etc/ssl/rds-global-bundle.pem, or PGSSLMODE and PGSSLROOTCERT)"}
}

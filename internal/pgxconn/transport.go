package pgxconn

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
)

// Transport is how a connection's settings protect the password and the
// data on their way to the server, from best to worst.
type Transport int

const (
	// Local: a unix socket or the loopback interface; nothing crosses a
	// network.
	Local Transport = iota
	// Verified: TLS always, and the server's certificate checked
	// against a CA (sslmode=verify-ca, verify-full).
	Verified
	// Unverified: TLS always, but any certificate is accepted
	// (sslmode=require): whoever is on the path can pose as the server.
	Unverified
	// MaybePlaintext: TLS only if the server offers it, else plaintext,
	// and no certificate checked (sslmode=prefer or allow; prefer is
	// what a connection string without sslmode means).
	MaybePlaintext
	// Plaintext: never TLS (sslmode=disable).
	Plaintext
)

// TransportOf returns the weakest protection among cc's servers (the
// host and each fallback: pgx parses sslmode=prefer into a TLS attempt
// with a plaintext fallback to the same host) and the host:port it
// applies to.
func TransportOf(cc *pgconn.Config) (Transport, string) {
	type target struct{ tls, plain, unverified bool }
	targets := map[string]*target{}
	var order []string
	add := func(host string, port uint16, tc *tls.Config) {
		addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
		if isLocal(host) {
			return
		}
		t := targets[addr]
		if t == nil {
			t = &target{}
			targets[addr] = t
			order = append(order, addr)
		}
		switch {
		case tc == nil:
			t.plain = true
		case tc.InsecureSkipVerify && tc.VerifyPeerCertificate == nil:
			t.tls, t.unverified = true, true
		default:
			t.tls = true
		}
	}
	add(cc.Host, cc.Port, cc.TLSConfig)
	for _, fb := range cc.Fallbacks {
		add(fb.Host, fb.Port, fb.TLSConfig)
	}
	worst, at := Local, ""
	for _, addr := range order {
		t := targets[addr]
		tr := Verified
		switch {
		case t.plain && !t.tls:
			tr = Plaintext
		case t.plain:
			tr = MaybePlaintext
		case t.unverified:
			tr = Unverified
		}
		if tr > worst {
			worst, at = tr, addr
		}
	}
	return worst, at
}

// isLocal reports a host that pgx reaches without a network: a unix
// socket directory, or the loopback interface.
func isLocal(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warnTransport logs one warning through pool's Logger when cc would send
// the password and the data across a network without TLS whose
// certificate is verified, saying how to fix it. viaCloudSQL: the Cloud
// SQL connector dials, with mutual TLS of its own, and cc's TLS settings
// do not apply. The message names the host, never the password.
func warnTransport(cc *pgconn.Config, pool runpool.Config, viaCloudSQL bool) {
	if viaCloudSQL {
		return
	}
	tr, addr := TransportOf(cc)
	var risk string
	switch tr {
	case Local, Verified:
		return
	case Unverified:
		risk = "sslmode=require: TLS, but the server's certificate is not verified, so anyone on the path can pose as the server and read the password and the data"
	case MaybePlaintext:
		risk = "no sslmode, or prefer or allow: TLS only if the server offers it and its certificate is never verified, so the password and the data may cross the network in the clear"
	case Plaintext:
		risk = "sslmode=disable: the password and the data cross the network in the clear"
	}
	logger := pool.Logger
	if logger == nil {
		logger = slog.Default()
	}
	attrs := []any{"server", addr, "risk", risk,
		"fix", "add sslmode=verify-full to DATABASE_URL (or set PGSSLMODE=verify-full), with sslrootcert=<the CA file> unless the system's roots sign the server's certificate"}
	if pool.Name != "" {
		attrs = append([]any{"pool", pool.Name}, attrs...)
	}
	logger.Warn("runpool: the connection to the server is not protected by verified TLS", attrs...)
}

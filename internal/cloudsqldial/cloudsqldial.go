// Package cloudsqldial holds what both adapters know of Cloud SQL without
// linking the Cloud SQL connector: the settings, their environment
// variables, and Wire, which hands them to the wiring that package
// github.com/runpool/runpool/cloudsql links in (internal/cloudsqlwire).
// A program that never dials Cloud SQL does not carry the connector and
// its Google Cloud clients.
package cloudsqldial

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"cloud.google.com/go/cloudsqlconn/instance"
	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// Environment variables read by FromEnv. They are not runpool.Config
// fields, so docs/configuration.md's table of variables lists them by hand.
const (
	EnvInstance    = "RUNPOOL_CLOUDSQL_INSTANCE"
	EnvIAMAuthN    = "RUNPOOL_CLOUDSQL_IAM_AUTHN"
	EnvIPType      = "RUNPOOL_CLOUDSQL_IP_TYPE"
	EnvLazyRefresh = "RUNPOOL_CLOUDSQL_LAZY_REFRESH"
)

// Settings says how to reach one Cloud SQL instance.
type Settings struct {
	Instance    string // project:region:instance
	IAMAuthN    bool   // automatic IAM database authentication
	IPType      string // "public" (default), "private" or "psc"
	LazyRefresh bool   // fetch certificates on dial, not in the background
}

// FromEnv reads the RUNPOOL_CLOUDSQL_* variables; nil when
// RUNPOOL_CLOUDSQL_INSTANCE is unset. Lazy refresh defaults to on where
// the platform throttles or freezes idle instances: there a background
// refresh may not get the CPU before the certificate expires.
func FromEnv(lookup func(string) (string, bool)) (*Settings, error) {
	name, _ := lookup(EnvInstance)
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, nil
	}
	s := &Settings{Instance: name, LazyRefresh: runpool.DetectPlatform(lookup).FreezesWhenIdle}
	if v, ok := lookup(EnvIAMAuthN); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &runpool.ConfigError{Setting: EnvIAMAuthN, Value: v, Problem: "must be true or false"}
		}
		s.IAMAuthN = b
	}
	if v, ok := lookup(EnvLazyRefresh); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &runpool.ConfigError{Setting: EnvLazyRefresh, Value: v, Problem: "must be true or false"}
		}
		s.LazyRefresh = b
	}
	if v, ok := lookup(EnvIPType); ok {
		s.IPType = strings.ToLower(strings.TrimSpace(v))
	}
	if err := s.Validate(EnvInstance, EnvIPType); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks the instance name and the IP type; the errors name
// instSetting or ipSetting.
func (s *Settings) Validate(instSetting, ipSetting string) error {
	if _, err := instance.ParseConnName(s.Instance); err != nil {
		return &runpool.ConfigError{Setting: instSetting, Value: s.Instance, Problem: "must be project:region:instance"}
	}
	switch s.IPType {
	case "", "public", "private", "psc":
	default:
		return &runpool.ConfigError{Setting: ipSetting, Value: s.IPType, Problem: "must be public, private or psc"}
	}
	return nil
}

// Handle is one pool's share of the process-wide Cloud SQL Dialer.
type Handle struct {
	once    sync.Once
	release func()
}

// NewHandle returns a share that release gives back (the wiring's).
func NewHandle(release func()) *Handle { return &Handle{release: release} }

// Release gives the share back; the last release closes the Dialer, which
// force-closes every socket it opened, so call it after the pool drained.
// It is safe to call more than once and on a nil Handle.
func (h *Handle) Release() {
	if h == nil {
		return
	}
	h.once.Do(h.release)
}

// WireFunc sets cc up to dial s's instance (see Wire).
type WireFunc func(ctx context.Context, cc *pgx.ConnConfig, s *Settings, nd *net.Dialer) (*Handle, error)

// wired holds the wiring Register installed.
var wired atomic.Pointer[WireFunc]

// Register installs the wiring; package internal/cloudsqlwire calls it
// from its init.
func Register(f WireFunc) { wired.Store(&f) }

// ImportPath is the package a program imports for Cloud SQL support.
const ImportPath = "github.com/runpool/runpool/cloudsql"

// Wire sets cc up to dial s's instance through the process-wide Dialer
// with runpool's socket options (nd, pgxconn.Dialer), with TLS left to
// cloudsqlconn (sslmode=disable: the connector does mTLS itself). s comes
// from an adapter's Config.CloudSQL, which errors name; nil s means no
// Cloud SQL: nil Handle, cc unchanged. Without the wiring linked in
// (package cloudsql imported) it fails with an error that says so.
// Release the Handle after the pool drained.
func Wire(ctx context.Context, cc *pgx.ConnConfig, s *Settings, nd *net.Dialer) (*Handle, error) {
	if s == nil {
		return nil, nil
	}
	if err := s.Validate("Config.CloudSQL.Instance", "Config.CloudSQL.IPType"); err != nil {
		return nil, err
	}
	f := wired.Load()
	if f == nil || *f == nil {
		return nil, &runpool.ConfigError{Setting: "Config.CloudSQL", Value: s.Instance,
			Problem: "needs Cloud SQL support, which this program does not link: import _ \"" + ImportPath + "\" (" + EnvInstance + " sets Config.CloudSQL)"}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	return (*f)(ctx, cc, s, nd)
}

// Package awschain holds the hook through which package
// rdsiam/awsdefault gives rdsiam.FromEnv the AWS SDK's default
// configuration, so that a program that does not ask for it does not link
// the SDK's configuration loading and its credential providers.
package awschain

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// LoadFunc loads the region (region when not empty, else the SDK's own
// choice) and the default credential chain, whose cached credentials are
// refreshed expiryWindow before they expire.
type LoadFunc func(ctx context.Context, region string, expiryWindow time.Duration) (string, aws.CredentialsProvider, error)

// load holds the installed LoadFunc; a test may swap it while others run.
var load atomic.Pointer[LoadFunc]

// Register installs f (package rdsiam/awsdefault, from its init).
func Register(f LoadFunc) { load.Store(&f) }

// Loader returns the installed LoadFunc; nil when none is.
func Loader() LoadFunc {
	if f := load.Load(); f != nil {
		return *f
	}
	return nil
}

// Package awsdefault links the AWS SDK's default configuration into
// rdsiam.FromEnv, and so into RUNPOOL_RDS_IAM_AUTH=true: the region from
// AWS_REGION or the shared config, and the default credential chain
// (environment, shared files, web identity, container or instance role).
// Import it for its side effect:
//
//	import _ "github.com/runpool/runpool/rdsiam/awsdefault"
//
// Without it FromEnv fails with an error that names this package, and a
// program that never signs IAM tokens does not carry the SDK's
// configuration loading (about 5 MB of a binary). Code that builds its
// own credentials provider needs only rdsiam.New.
package awsdefault

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/runpool/runpool/internal/awschain"
)

func init() { awschain.Register(load) }

func load(ctx context.Context, region string, expiryWindow time.Duration) (string, aws.CredentialsProvider, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	opts = append(opts, config.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = expiryWindow
	}))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return "", nil, err
	}
	return cfg.Region, cfg.Credentials, nil
}

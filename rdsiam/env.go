package rdsiam

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/awschain"
)

// EnvIAMAuth turns IAM database authentication on ("true") in [FromEnv].
const EnvIAMAuth = "RUNPOOL_RDS_IAM_AUTH"

// DefaultConfigImport is the package a program imports for [FromEnv]: it
// links the AWS SDK's default configuration in.
const DefaultConfigImport = "github.com/runpool/runpool/rdsiam/awsdefault"

// credentialVars names, in an error, what the default credential chain
// reads.
const credentialVars = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN for temporary credentials), " +
	"AWS_PROFILE (shared config and credentials files), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, " +
	"AWS_CONTAINER_CREDENTIALS_FULL_URI or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS), or an instance role (EC2); " +
	"Lambda sets the first three for the function's execution role"

// FromEnv returns the Auth that RUNPOOL_RDS_IAM_AUTH=true asks for, for
// connections made with cc; nil when the variable is unset or false. It
// signs for the region of AWS_REGION (else AWS_DEFAULT_REGION, else the
// shared config profile's) with the default credential chain, and checks
// at once, within ctx, what a dial would otherwise find out later: that cc
// uses TLS checking the server's certificate ([CheckTLS]), names a user,
// and that the region and credentials are there (the errors name the
// variables to set). Retrieving credentials may ask a container or
// instance metadata endpoint. It needs package rdsiam/awsdefault
// imported (DefaultConfigImport), and says so when it is not.
func FromEnv(ctx context.Context, cc *pgx.ConnConfig) (*Auth, error) {
	return fromLookup(ctx, cc, os.LookupEnv)
}

func fromLookup(ctx context.Context, cc *pgx.ConnConfig, lookup func(string) (string, bool)) (*Auth, error) {
	v, _ := lookup(EnvIAMAuth)
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return nil, &runpool.ConfigError{Setting: EnvIAMAuth, Value: v, Problem: "must be true or false"}
	}
	if !on {
		return nil, nil
	}
	if err := CheckTLS(&cc.Config); err != nil {
		return nil, err
	}
	if cc.User == "" {
		return nil, &runpool.ConfigError{Setting: EnvIAMAuth, Problem: "no database user: set the user in the connection string or PGUSER (the database user granted rds_iam)"}
	}
	load := awschain.Loader()
	if load == nil {
		return nil, &runpool.ConfigError{Setting: EnvIAMAuth, Value: v,
			Problem: "needs the AWS SDK's default configuration, which this program does not link: import _ \"" + DefaultConfigImport + "\""}
	}
	region := envValue(lookup, "AWS_REGION")
	if region == "" {
		region = envValue(lookup, "AWS_DEFAULT_REGION")
	}
	// Credentials within the margin of expiry are refreshed before a
	// token is signed with them.
	region, creds, err := load(ctx, region, 2*CredentialsMargin)
	if err != nil {
		return nil, &runpool.ConfigError{Setting: EnvIAMAuth, Problem: "loading the AWS configuration: " + err.Error()}
	}
	if region == "" {
		return nil, &runpool.ConfigError{Setting: EnvIAMAuth, Problem: "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) to the database's region"}
	}
	if creds == nil {
		return nil, credentialsError(errors.New("no credential provider"))
	}
	a, err := New(Options{Region: region, Credentials: creds})
	if err != nil {
		return nil, err
	}
	if err := a.CheckCredentials(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// CheckCredentials retrieves a's credentials within ctx and returns an
// error naming the variables that supply them when it cannot.
func (a *Auth) CheckCredentials(ctx context.Context) error {
	creds, err := a.creds.Retrieve(ctx)
	if err == nil && !creds.HasKeys() {
		err = errors.New("the credentials have no keys")
	}
	if err != nil {
		return credentialsError(err)
	}
	return nil
}

// credentialsError says that no credentials could be had and where they
// come from.
func credentialsError(err error) error {
	return &runpool.ConfigError{Setting: EnvIAMAuth, Problem: "no AWS credentials to sign IAM tokens with (" + err.Error() + "): set " + credentialVars}
}

func envValue(lookup func(string) (string, bool), name string) string {
	v, _ := lookup(name)
	return strings.TrimSpace(v)
}

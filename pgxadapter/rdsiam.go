package pgxadapter

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/rdsiam"
)

// rdsIAMStartTimeout bounds ParseConfig's check that AWS credentials can
// be had (a container or instance metadata endpoint may be asked).
const rdsIAMStartTimeout = 10 * time.Second

// rdsIAMFromEnv returns the Auth RUNPOOL_RDS_IAM_AUTH=true asks for
// (rdsiam.FromEnv): nil when it is not set, an error naming what is
// missing (TLS, region, credentials) when it cannot work.
func rdsIAMFromEnv(cc *pgx.ConnConfig, cloudSQL bool) (*rdsiam.Auth, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rdsIAMStartTimeout)
	defer cancel()
	a, err := rdsiam.FromEnv(ctx, cc)
	if a != nil && cloudSQL {
		return nil, &runpool.ConfigError{Setting: rdsiam.EnvIAMAuth, Problem: "is for RDS and Aurora; RUNPOOL_CLOUDSQL_INSTANCE is set too (Cloud SQL's IAM login is RUNPOOL_CLOUDSQL_IAM_AUTHN)"}
	}
	return a, err
}

// connectWith returns connect, dialling with a's tokens when a is set
// (rdsiam.Connect: a refused token is renewed and the dial made again).
func connectWith(a *rdsiam.Auth) func(context.Context, *pgx.ConnConfig) (*pconn, error) {
	return func(ctx context.Context, cc *pgx.ConnConfig) (*pconn, error) {
		return rdsiam.Connect(ctx, a, cc, connect)
	}
}

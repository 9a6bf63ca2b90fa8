package sqladapter_test

import (
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/runpool/runpool/rdsiam/awsdefault" // RUNPOOL_RDS_IAM_AUTH's default AWS configuration

	"github.com/runpool/runpool/sqladapter"
)

// RUNPOOL_RDS_IAM_AUTH=true without AWS_REGION: sqladapter's start-up
// error names it, as pgxadapter's does (one Config for both); with the
// region and keys, Config.RDSIAM is set and the dials use it.
func TestConfigFromEnvRDSIAM(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "RUNPOOL_CLOUDSQL_INSTANCE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("RUNPOOL_RDS_IAM_AUTH", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("DATABASE_URL", "postgres://app@db.example:5432/app?sslmode=verify-full&sslrootcert=system")
	_, err := sqladapter.ConfigFromEnv()
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") || !strings.Contains(err.Error(), "RUNPOOL_RDS_IAM_AUTH") {
		t.Fatalf("got %v, want an error naming RUNPOOL_RDS_IAM_AUTH and AWS_REGION", err)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	cfg, err := sqladapter.ConfigFromEnv()
	if err != nil || cfg.RDSIAM == nil {
		t.Fatalf("got %v; want Config.RDSIAM", err)
	}
}

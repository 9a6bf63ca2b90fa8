package pgxadapter_test

import (
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/runpool/runpool/rdsiam/awsdefault" // RUNPOOL_RDS_IAM_AUTH's default AWS configuration

	"github.com/runpool/runpool/pgxadapter"
)

// iamEnv sets RUNPOOL_RDS_IAM_AUTH=true in an AWS environment holding only
// vars (no shared files, no metadata service).
func iamEnv(t *testing.T, vars map[string]string) {
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
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// RUNPOOL_RDS_IAM_AUTH=true: ConfigFromEnv fails at start-up naming what
// is missing (sslmode, AWS_REGION, the credential variables), and sets
// Config.RDSIAM when nothing is.
func TestConfigFromEnvRDSIAM(t *testing.T) {
	const verified = "postgres://app@db.example:5432/app?sslmode=verify-full&sslrootcert=system"
	keys := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret"}
	with := func(m map[string]string, kv ...string) map[string]string {
		n := map[string]string{}
		for k, v := range m {
			n[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			n[kv[i]] = kv[i+1]
		}
		return n
	}
	cases := []struct {
		name string
		dsn  string
		vars map[string]string
		want []string // in the error; nil: none
	}{
		{"sslmode", "postgres://app@db.example:5432/app?sslmode=require", with(keys, "AWS_REGION", "eu-west-1"), []string{"RUNPOOL_RDS_IAM_AUTH", "sslmode=verify-full", "sslrootcert"}},
		{"region", verified, keys, []string{"RUNPOOL_RDS_IAM_AUTH", "AWS_REGION"}},
		{"credentials", verified, map[string]string{"AWS_REGION": "eu-west-1"}, []string{"RUNPOOL_RDS_IAM_AUTH", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"}},
		{"cloud sql too", verified, with(keys, "AWS_REGION", "eu-west-1", "RUNPOOL_CLOUDSQL_INSTANCE", "p:r:i"), []string{"RUNPOOL_RDS_IAM_AUTH", "RUNPOOL_CLOUDSQL_INSTANCE"}},
		{"all there", verified, with(keys, "AWS_REGION", "eu-west-1"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iamEnv(t, c.vars)
			t.Setenv("DATABASE_URL", c.dsn)
			cfg, err := pgxadapter.ConfigFromEnv()
			if c.want == nil {
				if err != nil || cfg.RDSIAM == nil || cfg.RDSIAM.Region() != "eu-west-1" {
					t.Fatalf("got %v; want Config.RDSIAM for eu-west-1", err)
				}
				if cfg.Copy().RDSIAM != cfg.RDSIAM {
					t.Fatal("Copy dropped RDSIAM")
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not name %s", err, w)
				}
			}
		})
	}
	// Unset, nothing changes.
	t.Setenv("RUNPOOL_RDS_IAM_AUTH", "")
	cfg, err := pgxadapter.ParseConfig("postgres://app@db.example:5432/app?sslmode=disable")
	if err != nil || cfg.RDSIAM != nil {
		t.Fatalf("without the variable: RDSIAM %v, err %v", cfg.RDSIAM, err)
	}
}

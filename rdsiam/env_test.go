package rdsiam_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/awschain"
	"github.com/runpool/runpool/rdsiam"
	_ "github.com/runpool/runpool/rdsiam/awsdefault" // RUNPOOL_RDS_IAM_AUTH's default AWS configuration
)

// rootCertFile writes a CA certificate for sslrootcert.
func rootCertFile(t *testing.T) string {
	t.Helper()
	ca, _, _, err := certificates()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(p, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Only sslmode=verify-full and verify-ca (require with sslrootcert is
// verify-ca) carry a token; the error for the others names the variable,
// sslmode and the fix.
func TestCheckTLS(t *testing.T) {
	root := rootCertFile(t)
	for _, c := range []struct {
		query string
		ok    bool
	}{
		{"sslmode=disable", false},
		{"sslmode=allow", false},
		{"sslmode=prefer", false},
		{"sslmode=require", false},
		{"sslmode=require&sslrootcert=" + root, true},
		{"sslmode=verify-ca&sslrootcert=" + root, true},
		{"sslmode=verify-full&sslrootcert=" + root, true},
	} {
		cc, err := pgx.ParseConfig("postgres://app@db.example:5432/app?" + c.query)
		if err != nil {
			t.Fatal(err)
		}
		err = rdsiam.CheckTLS(&cc.Config)
		if c.ok != (err == nil) {
			t.Errorf("%s: %v", c.query, err)
			continue
		}
		if err != nil {
			for _, want := range []string{"RUNPOOL_RDS_IAM_AUTH", "sslmode", "verify-full", "sslrootcert", rdsiam.RDSCABundle} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %q does not say %s", c.query, err, want)
				}
			}
		}
	}
}

// awsEnv empties the AWS environment (no region, no credentials, no
// metadata service, no shared files) and sets RUNPOOL_RDS_IAM_AUTH=true;
// then sets vars.
func awsEnv(t *testing.T, vars map[string]string) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv(rdsiam.EnvIAMAuth, "true")
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// Without AWS_REGION or credentials, FromEnv fails at once with an error
// naming what to set; with them it returns an Auth for the region.
func TestFromEnvNamesWhatIsMissing(t *testing.T) {
	root := rootCertFile(t)
	cc, err := pgx.ParseConfig("postgres://app@db.example:5432/app?sslmode=verify-full&sslrootcert=" + root)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret"}
	cases := []struct {
		name string
		vars map[string]string
		want []string // in the error; nil: no error
	}{
		{"no region", keys, []string{"RUNPOOL_RDS_IAM_AUTH", "AWS_REGION"}},
		{"no credentials", map[string]string{"AWS_REGION": "eu-west-1"},
			[]string{"RUNPOOL_RDS_IAM_AUTH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"}},
		{"AWS_REGION and keys", map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret"}, nil},
		{"AWS_DEFAULT_REGION", map[string]string{"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret"}, nil},
		{"not a bool", map[string]string{rdsiam.EnvIAMAuth: "yes please"}, []string{"RUNPOOL_RDS_IAM_AUTH", "true or false"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			awsEnv(t, c.vars)
			a, err := rdsiam.FromEnv(context.Background(), cc)
			if c.want == nil {
				if err != nil || a == nil || a.Region() != "eu-west-1" {
					t.Fatalf("got %v, %v; want an Auth for eu-west-1", a, err)
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
}

// Unset or false, RUNPOOL_RDS_IAM_AUTH leaves the password alone; set, it
// refuses a connection without certificate checks before anything else.
func TestFromEnvOffAndTLSFirst(t *testing.T) {
	cc, err := pgx.ParseConfig("postgres://app@db.example:5432/app?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"", "false", "0"} {
		awsEnv(t, map[string]string{rdsiam.EnvIAMAuth: v})
		if a, err := rdsiam.FromEnv(context.Background(), cc); a != nil || err != nil {
			t.Errorf("%q: got %v, %v; want nothing", v, a, err)
		}
	}
	awsEnv(t, nil)
	if _, err := rdsiam.FromEnv(context.Background(), cc); err == nil || !strings.Contains(err.Error(), "sslmode") {
		t.Fatalf("sslmode=require: %v, want an error naming sslmode", err)
	}
}

// Without package awsdefault linked in, RUNPOOL_RDS_IAM_AUTH=true fails
// at once with an error that names the variable and the import to add.
func TestFromEnvWithoutTheDefaultConfiguration(t *testing.T) {
	old := awschain.Loader()
	awschain.Register(nil)
	t.Cleanup(func() { awschain.Register(old) })
	cc, err := pgx.ParseConfig("postgres://app@db.example:5432/app?sslmode=verify-full&sslrootcert=" + rootCertFile(t))
	if err != nil {
		t.Fatal(err)
	}
	awsEnv(t, map[string]string{rdsiam.EnvIAMAuth: "true", "AWS_REGION": "eu-west-1"})
	a, err := rdsiam.FromEnv(context.Background(), cc)
	var ce *runpool.ConfigError
	if a != nil || !errors.As(err, &ce) || ce.Setting != rdsiam.EnvIAMAuth || !strings.Contains(err.Error(), `import _ "`+rdsiam.DefaultConfigImport+`"`) {
		t.Fatalf("got %v, %v; want a ConfigError on %s naming the import", a, err, rdsiam.EnvIAMAuth)
	}
}

package cloudsqltest_test

import (
	"errors"
	"testing"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/sqladapter"
)

// The RUNPOOL_CLOUDSQL_* variables: lazy refresh by default where the
// platform throttles the CPU, an explicit setting wins, and a bad value is
// an error naming its variable. Both adapters read the same Config.
func TestCloudSQLConfigFromEnv(t *testing.T) {
	const name = "proj:europe-west1:db"
	cases := []struct {
		name string
		env  map[string]string
		want *pgxadapter.CloudSQL
		bad  string // the variable the error names
	}{
		{"unset", map[string]string{}, nil, ""},
		{"cloud run", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "K_SERVICE": "svc"},
			&pgxadapter.CloudSQL{Instance: name, LazyRefresh: true}, ""},
		{"lambda", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "AWS_LAMBDA_FUNCTION_NAME": "f"},
			&pgxadapter.CloudSQL{Instance: name, LazyRefresh: true}, ""},
		{"no platform", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name},
			&pgxadapter.CloudSQL{Instance: name}, ""},
		{"cloud run job", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "CLOUD_RUN_JOB": "j"},
			&pgxadapter.CloudSQL{Instance: name}, ""},
		{"explicit wins", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "K_SERVICE": "svc", "RUNPOOL_CLOUDSQL_LAZY_REFRESH": "false"},
			&pgxadapter.CloudSQL{Instance: name}, ""},
		{"iam private", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "RUNPOOL_CLOUDSQL_IAM_AUTHN": "true", "RUNPOOL_CLOUDSQL_IP_TYPE": "PRIVATE"},
			&pgxadapter.CloudSQL{Instance: name, IAMAuthN: true, IPType: "private"}, ""},
		{"psc", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "RUNPOOL_CLOUDSQL_IP_TYPE": "psc"},
			&pgxadapter.CloudSQL{Instance: name, IPType: "psc"}, ""},
		{"bad instance", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": "just-a-name"}, nil, "RUNPOOL_CLOUDSQL_INSTANCE"},
		{"bad ip type", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "RUNPOOL_CLOUDSQL_IP_TYPE": "vpc"}, nil, "RUNPOOL_CLOUDSQL_IP_TYPE"},
		{"bad iam", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "RUNPOOL_CLOUDSQL_IAM_AUTHN": "yes please"}, nil, "RUNPOOL_CLOUDSQL_IAM_AUTHN"},
		{"bad lazy", map[string]string{"RUNPOOL_CLOUDSQL_INSTANCE": name, "RUNPOOL_CLOUDSQL_LAZY_REFRESH": "sometimes"}, nil, "RUNPOOL_CLOUDSQL_LAZY_REFRESH"},
	}
	platformVars := []string{"RUNPOOL_PLATFORM", "K_SERVICE", "AWS_LAMBDA_FUNCTION_NAME", "CLOUD_RUN_JOB", "CLOUD_RUN_WORKER_POOL",
		"CONTAINER_APP_NAME", "FLY_APP_NAME", "RUNPOOL_CLOUDSQL_INSTANCE", "RUNPOOL_CLOUDSQL_IAM_AUTHN",
		"RUNPOOL_CLOUDSQL_IP_TYPE", "RUNPOOL_CLOUDSQL_LAZY_REFRESH"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range platformVars {
				t.Setenv(k, "")
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := pgxadapter.ConfigFromEnv()
			scfg, serr := sqladapter.ConfigFromEnv()
			if c.bad != "" {
				var ce *runpool.ConfigError
				if !errors.As(err, &ce) || ce.Setting != c.bad {
					t.Fatalf("got %v, want an error naming %s", err, c.bad)
				}
				if !errors.As(serr, &ce) || ce.Setting != c.bad {
					t.Fatalf("sqladapter: got %v, want an error naming %s", serr, c.bad)
				}
				return
			}
			if err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			switch {
			case c.want == nil && cfg.CloudSQL != nil:
				t.Fatalf("CloudSQL = %+v, want nil", *cfg.CloudSQL)
			case c.want != nil && (cfg.CloudSQL == nil || *cfg.CloudSQL != *c.want):
				t.Fatalf("CloudSQL = %+v, want %+v", cfg.CloudSQL, *c.want)
			case c.want != nil && *scfg.CloudSQL != *c.want:
				t.Fatalf("sqladapter: CloudSQL = %+v, want %+v", *scfg.CloudSQL, *c.want)
			}
		})
	}
}

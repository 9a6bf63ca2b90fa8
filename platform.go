package runpool

import (
	"strconv"
	"time"
)

// Platform describes the serverless platform the process runs on, as far
// as the pool's defaults care.
type Platform struct {
	// Name is one of the values Config.Platform accepts: cloudrun,
	// cloudrun-job, lambda, knative, fly, azure-container-apps or none.
	Name string
	// Grace is the time from SIGTERM to SIGKILL; zero when the platform
	// sends no SIGTERM worth draining for.
	Grace time.Duration
	// FreezesWhenIdle: the platform throttles or freezes the process
	// between requests.
	FreezesWhenIdle bool
	// Concurrency is how many requests one instance serves at once, when
	// the platform fixes or tells it (0: unknown).
	Concurrency int
}

// platforms holds what each platform's documentation states about its
// shutdown grace, idle freezing and per-instance concurrency.
var platforms = map[string]Platform{
	"cloudrun":             {Name: "cloudrun", Grace: 10 * time.Second, FreezesWhenIdle: true, Concurrency: 80},
	"cloudrun-job":         {Name: "cloudrun-job", Grace: 10 * time.Second},
	"lambda":               {Name: "lambda", Grace: 500 * time.Millisecond, FreezesWhenIdle: true, Concurrency: 1},
	"knative":              {Name: "knative", Grace: 300 * time.Second, FreezesWhenIdle: true},
	"fly":                  {Name: "fly", Grace: 5 * time.Second, FreezesWhenIdle: true},
	"azure-container-apps": {Name: "azure-container-apps", Grace: 30 * time.Second, FreezesWhenIdle: true},
	"none":                 {Name: "none"},
}

// DetectPlatform names the platform from the variables each sets;
// RUNPOOL_PLATFORM overrides. Knative sets the same K_* variables as
// Cloud Run and nothing tells them apart, so K_SERVICE means Cloud Run,
// whose 10 s grace period is the shorter, safer assumption; set
// RUNPOOL_PLATFORM=knative for Knative's longer one.
// AWS_LAMBDA_MAX_CONCURRENCY gives the per-instance concurrency on Lambda
// managed instances; Config.Concurrency (RUNPOOL_CONCURRENCY) anywhere.
func DetectPlatform(lookup func(string) (string, bool)) Platform {
	has := func(k string) bool { v, ok := lookup(k); return ok && v != "" }
	name := "none"
	switch v, _ := lookup("RUNPOOL_PLATFORM"); {
	case v != "":
		if _, ok := platforms[v]; ok {
			name = v
		}
	case has("CLOUD_RUN_JOB") || has("CLOUD_RUN_WORKER_POOL"):
		name = "cloudrun-job"
	case has("AWS_LAMBDA_FUNCTION_NAME"):
		name = "lambda"
	case has("CONTAINER_APP_NAME"):
		name = "azure-container-apps"
	case has("FLY_APP_NAME") && has("FLY_MACHINE_ID"):
		name = "fly"
	case has("K_SERVICE"):
		name = "cloudrun"
	}
	p := platforms[name]
	if v, ok := lookup("AWS_LAMBDA_MAX_CONCURRENCY"); ok && name == "lambda" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			p.Concurrency = n
		}
	}
	return p
}

// DrainTimeout is how long a drain may take on this platform: the grace
// period less a fifth (at least 100ms), the rest left for the process to
// exit before SIGKILL; 8s where the platform gives no grace period.
func (p Platform) DrainTimeout() time.Duration {
	if p.Grace <= 0 {
		return 8 * time.Second
	}
	return p.Grace - max(p.Grace/5, 100*time.Millisecond)
}

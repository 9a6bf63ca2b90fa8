package runpool_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The adapters link neither the Cloud SQL connector and its Google Cloud
// clients nor the AWS SDK's configuration loading and credential
// providers: packages cloudsql and rdsiam/awsdefault link them in on
// request.
func TestAdaptersLinkNoCloudSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "./pgxadapter", "./sqladapter").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "cloud.google.com/go/cloudsqlconn" || strings.HasPrefix(pkg, "google.golang.org/"):
			t.Errorf("the adapters link %s; only package cloudsql may", pkg)
		case strings.HasPrefix(pkg, "github.com/aws/aws-sdk-go-v2/config") || strings.HasPrefix(pkg, "github.com/aws/aws-sdk-go-v2/service/") ||
			strings.HasPrefix(pkg, "github.com/aws/aws-sdk-go-v2/credentials"):
			t.Errorf("the adapters link %s; only package rdsiam/awsdefault may", pkg)
		}
	}
}

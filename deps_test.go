package runpool_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The adapters link no cloud provider's SDK: a program that never dials
// Cloud SQL does not carry the Cloud SQL connector and its Google Cloud
// clients, which package cloudsql links in on request.
func TestAdaptersLinkNoCloudSQLConnector(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "./pgxadapter", "./sqladapter").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "cloud.google.com/go/cloudsqlconn" || strings.HasPrefix(pkg, "google.golang.org/") {
			t.Errorf("the adapters link %s; only package cloudsql may", pkg)
		}
	}
}

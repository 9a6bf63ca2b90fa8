package cloudsqldial

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// Without the wiring linked in (package cloudsql not imported), Cloud SQL
// settings fail the pool's opening with an error that names the setting
// and the import to add, and leave the connection settings alone; no
// settings need no wiring.
func TestWireWithoutTheConnector(t *testing.T) {
	cc, err := pgx.ParseConfig("host=db.example port=5432 user=app")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := Wire(context.Background(), cc, nil, &net.Dialer{}); h != nil || err != nil {
		t.Fatalf("no Cloud SQL settings: %v, %v; want nothing", h, err)
	}
	_, err = Wire(context.Background(), cc, &Settings{Instance: "proj:region:inst"}, &net.Dialer{})
	var ce *runpool.ConfigError
	if !errors.As(err, &ce) || ce.Setting != "Config.CloudSQL" || !strings.Contains(err.Error(), `import _ "`+ImportPath+`"`) {
		t.Fatalf("Wire without the connector linked in: %v; want a ConfigError on Config.CloudSQL naming the import", err)
	}
	if cc.Host != "db.example" {
		t.Fatalf("the connection settings changed: host %q", cc.Host)
	}
}

package pgxadapter_test

import (
	"testing"

	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

package pgxadapter_test

import (
	"testing"

	"github.com/runpool/runpool/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

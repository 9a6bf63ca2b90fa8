// Package benchmarks compares runpool with the pools it replaces, side by
// side in one process against one throwaway PostgreSQL (internal/testbed/pgtest):
// runpool through pgxadapter against pgxpool, and runpool through
// sqladapter against database/sql with pgx's stdlib driver and its
// default pool. It holds only tests; BENCHMARKS.md at the repository root
// has the figures and the commands that reproduce them:
//
//	go test -run NONE -bench . -timeout 60m ./internal/testbed/benchmarks -rounds 12 | tee bench.txt
//	benchstat -ignore /round -col '/pool@(pgxpool runpool)' bench.txt
//	benchstat -ignore /round -col '/pool@(stdlib sqladapter)' bench.txt
//
// Every benchmark names its sub-benchmarks pool=pgxpool, pool=runpool,
// pool=stdlib and pool=sqladapter, so benchstat compares them as columns.
// Each benchmark opens the four pools once and runs them in turn, round
// after round, in the opposite order every other round (-rounds; go test's
// -count would repeat each pool back to back instead), so the drifts of a
// shared machine and the place in a round fall on all of them alike.
package benchmarks

// Package benchmarks compares runpool with the pools it replaces, side by
// side in one process against one throwaway PostgreSQL (internal/pgtest):
// runpool through pgxadapter against pgxpool, and runpool through
// sqladapter against database/sql with pgx's stdlib driver and its
// default pool. It holds only tests; BENCHMARKS.md at the repository root
// has the figures and the commands that reproduce them:
//
//	go test -run NONE -bench . -count 10 ./internal/benchmarks | tee bench.txt
//	benchstat -col '/pool@(pgxpool runpool)' bench.txt
//	benchstat -col '/pool@(stdlib sqladapter)' bench.txt
//
// Every benchmark names its sub-benchmarks pool=pgxpool, pool=runpool,
// pool=stdlib and pool=sqladapter, so benchstat compares them as columns.
// Each round (one call of a Benchmark function; -count sets how many)
// opens the four pools afresh and runs them one after another, so with
// -count 10 the pools take turns ten times and the machine's drifts fall
// on all of them alike.
package benchmarks

// Package upstream runs pgx's own test suites against runpool's adapters:
// pgxpool's tests against pgxadapter and stdlib's sql_test.go against
// sqladapter's "runpool" driver.
//
// Nothing of pgx is kept in this repository. [Build] copies the suites out
// of the module cache, for the pgx version that go.mod requires, into a
// temporary module, rewrites them with the rules in rules.go, and the
// suites run there against a throwaway server (PGX_TEST_DATABASE).
// expected.txt lists, each with its reason, the tests that are expected
// to be skipped or to fail; every other test must pass.
//
// scripts/upstream runs the suites by hand and prints the counts.
package upstream

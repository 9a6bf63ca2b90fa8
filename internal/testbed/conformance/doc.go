// Package conformance holds the tests every adapter must pass: stale
// connections behind a NAT and after a freeze, server faults, no doubled
// writes. Each test runs once per entry of adaptertest.Adapters.
package conformance

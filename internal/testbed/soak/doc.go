// Package soak holds the chaos soak: pool instances in child processes and
// in this process, both adapters, steady and bursty writes, and a seeded
// random schedule of faults (NAT drops, freezes, latency, terminated
// backends, server restarts and crashes, 53300 storms, instance
// replacement), with the pool's promises checked throughout and at the
// end. Run it with
//
//	go test -run Soak ./internal/testbed/soak/
//
// RUNPOOL_SOAK_DURATION sets its length (default 45s), RUNPOOL_SOAK_SEED
// replays a schedule (the seed is printed at the start and in every
// failure).
package soak

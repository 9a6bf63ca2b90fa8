package runpool

import _ "unsafe" // for go:linkname

// nanotime is the runtime's monotonic clock, read without building a
// time.Time on the hot path. Its origin is not puddle's (puddle counts
// from its own start), so puddle's stamps (Resource.LastUsedNanotime,
// IdleDuration) are not used: runpool keeps its own (entry.idleSince).
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

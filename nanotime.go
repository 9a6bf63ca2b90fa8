package runpool

import _ "unsafe" // for go:linkname

// nanotime is the runtime's monotonic clock, the one puddle stamps
// resources with, so idle times compare without a time.Now on the hot path.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

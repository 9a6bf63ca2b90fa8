package sqladapter

import _ "unsafe" // for go:linkname

// nanotime is the runtime's monotonic clock: it stamps releases without a
// time.Now on the checkout path.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

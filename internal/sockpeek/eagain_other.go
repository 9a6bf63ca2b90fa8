//go:build !linux

package sockpeek

import "syscall"

const syscallEAGAIN = syscall.EAGAIN

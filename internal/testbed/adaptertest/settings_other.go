//go:build !linux

package adaptertest

import (
	"errors"
	"net"
	"syscall"
)

// userTimeout is unknown (-1) where TCP_USER_TIMEOUT does not exist.
func userTimeout(net.Conn) (int, error) { return -1, nil }

// SocketOptions reads the options of runpool's dialer on Linux only.
func SocketOptions(syscall.Conn) (map[string]int, error) { return nil, errors.ErrUnsupported }

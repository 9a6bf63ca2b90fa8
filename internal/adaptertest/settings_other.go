//go:build !linux

package adaptertest

import "net"

// userTimeout is unknown (-1) where TCP_USER_TIMEOUT does not exist.
func userTimeout(net.Conn) (int, error) { return -1, nil }

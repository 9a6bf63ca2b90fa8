//go:build !linux

package pgxconn

import "time"

// setUserTimeout: TCP_USER_TIMEOUT is Linux's; elsewhere the checkout
// probe and the keepalives bound a black-holed connection.
func setUserTimeout(uintptr, time.Duration) error { return nil }

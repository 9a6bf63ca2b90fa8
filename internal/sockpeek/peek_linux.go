package sockpeek

import (
	"syscall"
	"unsafe"
)

func (s *Socket) recvPeek(fd uintptr) {
	s.n, _, s.errno = syscall.Syscall6(syscall.SYS_RECVFROM, fd,
		uintptr(unsafe.Pointer(&s.buf[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
}

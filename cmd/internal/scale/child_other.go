//go:build !linux

package scale

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }

//go:build !linux

package ssp

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

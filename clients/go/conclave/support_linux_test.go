package conclave_test

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the server if the test binary dies first (a timeout, a crash).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

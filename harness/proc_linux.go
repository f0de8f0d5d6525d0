package harness

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startTied starts cmd so that it dies with the harness: the kernel sends
// it SIGKILL when the harness is gone (a SIGKILL of the harness leaves no
// k6 replaying load against a removed environment). It returns a channel
// that receives cmd.Wait's result.
func startTied(cmd *exec.Cmd) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		// The parent-death signal follows the thread that started the
		// child, not the process: this goroutine keeps its thread until
		// the child is gone, so no thread exit kills k6 early.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

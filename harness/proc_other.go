//go:build !linux

package harness

import "os/exec"

// startTied starts cmd and returns a channel that receives cmd.Wait's
// result. Only Linux ties the child's life to the harness (proc_linux.go).
func startTied(cmd *exec.Cmd) (<-chan error, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done, nil
}

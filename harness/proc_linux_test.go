package harness

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A child started by startTied dies with its parent: the test runs itself
// as the parent (TestMain-free: the env variable picks the role), the
// parent starts `sleep 60` tied, prints its pid, and is killed with
// SIGKILL; the sleep must be gone a moment later.
func TestStartTiedChildDiesWithTheHarness(t *testing.T) {
	if os.Getenv("FIREDRILL_TEST_TIED_PARENT") == "1" {
		cmd := exec.Command("sleep", "60")
		if _, err := startTied(cmd); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestStartTiedChildDiesWithTheHarness$")
	parent.Env = append(os.Environ(), "FIREDRILL_TEST_TIED_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the parent printed no child pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child pid %q: %v", line, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the child is not running before its parent dies: %v", err)
	}
	_ = parent.Process.Signal(syscall.SIGKILL)
	_ = parent.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// the child is reaped by init once killed; until then it is a
		// zombie, which /proc shows as state Z
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the child (pid %d) outlived its SIGKILLed parent by 5 s", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

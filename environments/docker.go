package environments

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// pingTimeout bounds the reachability check: an engine that does not
// answer a ping in this long will not run a drill either.
const pingTimeout = 5 * time.Second

// CheckDocker pings the Docker engine's API, so that a command that cannot
// reach it fails in a second with the endpoint it tried, before it looks
// for images (a missing engine would make every image look missing and
// start a build) or starts anything. It honours DOCKER_HOST (and
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION). Without
// DOCKER_HOST it tries the default socket, then testcontainers' own
// discovery (a Docker context, a rootless socket, ~/.testcontainers.properties),
// which is what the environment will use.
func CheckDocker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return fmt.Errorf("docker: bad client settings: %w (check DOCKER_HOST, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY)", err)
	}
	defer cli.Close()
	host := cli.DaemonHost()
	_, err = cli.Ping(ctx, client.PingOptions{})
	if err == nil {
		return nil
	}
	if env := os.Getenv("DOCKER_HOST"); env != "" {
		return fmt.Errorf("docker: cannot reach the Docker engine at %s (DOCKER_HOST): %s; start Docker there, or unset DOCKER_HOST to use %s", host, pingCause(err), client.DefaultDockerHost)
	}
	if tc, tcErr := testcontainers.NewDockerClientWithOpts(ctx); tcErr == nil {
		_ = tc.Close()
		return nil
	}
	return fmt.Errorf("docker: cannot reach the Docker engine at %s: %s; start it (systemctl start docker, or dockerd) or set DOCKER_HOST to the engine's endpoint", host, pingCause(err))
}

// pingCause is the network error under a failed ping ("dial unix
// /x.sock: connect: no such file or directory"), without the client's
// advice around it, which names the endpoint a second time.
func pingCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", pingTimeout)
	}
	return err.Error()
}

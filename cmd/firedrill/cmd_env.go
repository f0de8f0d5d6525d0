package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
)

func envCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("env needs a subcommand: `firedrill env up` or `firedrill env down`")
	}
	switch args[0] {
	case "up":
		return envUp(ctx, args[1:], stdout, stderr)
	case "down":
		return envDown(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown env subcommand %q: use `env up` or `env down`", args[0])
	}
}

func envUp(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("env up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("memcached", 3, "number of memcached servers")
	mysqlImage := fs.String("mysql-image", environments.MariaDBImage, "database image; an official mysql:8.x works where a registry is reachable")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: firedrill env up [--memcached N] [--mysql-image IMAGE]\n\nStarts an environment, prints its endpoints as FIREDRILL_* lines on stdout\n(eval-able in a shell) and stays up until Ctrl-C, then removes it.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("env up takes no arguments, got %q", strings.Join(pos, " "))
	}
	if *n < 1 {
		return fmt.Errorf("--memcached must be at least 1, got %d", *n)
	}
	if err := environments.CheckDocker(ctx); err != nil {
		return noDocker(err)
	}
	env, upErr := environments.Up(ctx, environments.WithMemcached(*n), environments.WithMySQLImage(*mysqlImage),
		environments.WithProgress(stderr))
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		fmt.Fprintf(stderr, "env: removing run %s\n", env.RunID)
		if derr := env.Down(dctx); derr != nil && err == nil {
			err = derr
		}
	}()
	if upErr != nil {
		return upErr
	}
	for _, v := range env.Vars() {
		k, val, _ := strings.Cut(v, "=")
		fmt.Fprintf(stdout, "export %s='%s'\n", k, val)
	}
	fmt.Fprintln(stderr, "env: up; press Ctrl-C to remove it")
	<-ctx.Done()
	return nil
}

func envDown(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("env down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: firedrill env down\n\nRemoves every container and network labelled "+environments.LabelRun+", including those of runs still going.")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("env down takes no arguments, got %q", strings.Join(pos, " "))
	}
	n, err := environments.RemoveAll(ctx)
	fmt.Fprintf(stdout, "removed %d containers and networks\n", n)
	return err
}

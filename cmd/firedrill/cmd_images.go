package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/firedrill-dev/firedrill/environments"
)

func imagesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rebuild := fs.Bool("rebuild", false, "rebuild every image even if it exists")
	check := fs.Bool("check", false, "build nothing: print the missing images, one a line, and exit 1 if any is missing (make uses it to know whether the offline build's host tools are needed)")
	base := fs.String("base", "", "build the service images FROM this image (e.g. debian:bookworm-slim where a registry is reachable); default: bootstrap "+environments.BaseImage+" from the host's apt mirror")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: firedrill images [--rebuild] [--base IMAGE] | --check\n\nBuilds the images the environment runs, offline. Existing images are reused.\nThe offline build bootstraps its base with debootstrap, as root. It also builds\nthe example service under test (examples/app) as firedrill/example-app:v1 and\n:v2, FROM scratch, each also tagged with a hash of what it is built from.\n--check lists the missing environment images only (those the offline\nbootstrap builds).")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("images takes no arguments, got %q", strings.Join(pos, " "))
	}
	// A bootstrap takes minutes before it first needs the engine.
	if err := environments.CheckDocker(ctx); err != nil {
		return noDocker(err)
	}
	if *check {
		missing := environments.MissingImages(ctx, environments.MariaDBImage)
		for _, img := range missing {
			fmt.Fprintln(stdout, img)
		}
		if len(missing) > 0 {
			return fmt.Errorf("images: %d missing (build them with `firedrill images`)", len(missing))
		}
		return nil
	}
	if err := environments.BuildImages(ctx, environments.WithRebuild(*rebuild), environments.WithBase(*base),
		environments.WithBuildProgress(stderr)); err != nil {
		return err
	}
	for _, img := range []string{environments.MariaDBImage, environments.MemcachedImage, environments.ToxiproxyImage} {
		fmt.Fprintln(stdout, img)
	}
	return nil
}

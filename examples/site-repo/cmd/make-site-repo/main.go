// Command make-site-repo builds the example site repo (see package siterepo):
//
//	go run ./examples/site-repo/cmd/make-site-repo -image build/testimage /tmp/site-repo
//
// It prints the repo's directory and the artifact root to give the server
// (--artifact-root): the catalog names the artifacts relative to it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
)

func main() {
	fs := flag.NewFlagSet("make-site-repo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: make-site-repo [-image DIR [-artifact-root DIR]] DIR\n\n"+
			"Builds the example site repo in DIR (a new directory): tags v1, v2 on main and\n"+
			"v3-broken on branch broken. Without -image, placeholder artifacts are\n"+
			"written to DIR-artifacts (the repo validates but cannot boot a machine).\n"+
			"Prints DIR and the artifact root: serve and validate it with --artifact-root ROOT.\n\n")
		fs.PrintDefaults()
	}
	var opt siterepo.Options
	image := fs.String("image", "", "the test node image's directory (make image): vmlinuz, initrd.img, rootfs.img, disk.img.gz")
	fs.StringVar(&opt.ArtifactRoot, "artifact-root", "", "directory holding the image's files, the server's --artifact-root (default: -image)")
	if err := fs.Parse(os.Args[1:]); err != nil || fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	if *image != "" {
		opt.Kernel, opt.Initrd = filepath.Join(*image, "vmlinuz"), filepath.Join(*image, "initrd.img")
		opt.Rootfs, opt.Disk = filepath.Join(*image, "rootfs.img"), filepath.Join(*image, "disk.img.gz")
	}
	r, err := siterepo.Build(fs.Arg(0), opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "make-site-repo:", err)
		os.Exit(1)
	}
	fmt.Println(r.Dir)
	fmt.Println("artifact root:", r.ArtifactRoot)
}

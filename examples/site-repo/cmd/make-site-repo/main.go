// Command make-site-repo builds the example site repo (see package siterepo):
//
//	go run ./examples/site-repo/cmd/make-site-repo -kernel build/testimage/vmlinuz -initrd build/testimage/initrd.img /tmp/site-repo
//
// It prints the repo's directory and the artifact root to give the server
// (--artifact-root): the catalog names the artifacts relative to it.
package main

import (
	"flag"
	"fmt"
	"os"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
)

func main() {
	fs := flag.NewFlagSet("make-site-repo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: make-site-repo [-kernel FILE -initrd FILE [-artifact-root DIR]] DIR\n\n"+
			"Builds the example site repo in DIR (a new directory): tags v1, v2 on main and\n"+
			"v3-broken on branch broken. Without -kernel/-initrd, placeholder artifacts are\n"+
			"written to DIR-artifacts (the repo validates but cannot boot a machine).\n"+
			"Prints DIR and the artifact root: serve and validate it with --artifact-root ROOT.\n\n")
		fs.PrintDefaults()
	}
	var opt siterepo.Options
	fs.StringVar(&opt.Kernel, "kernel", "", "kernel of the test node image")
	fs.StringVar(&opt.Initrd, "initrd", "", "initrd of the test node image")
	fs.StringVar(&opt.ArtifactRoot, "artifact-root", "", "directory holding -kernel and -initrd, the server's --artifact-root (default: the kernel's directory)")
	if err := fs.Parse(os.Args[1:]); err != nil || fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	r, err := siterepo.Build(fs.Arg(0), opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "make-site-repo:", err)
		os.Exit(1)
	}
	fmt.Println(r.Dir)
	fmt.Println("artifact root:", r.ArtifactRoot)
}

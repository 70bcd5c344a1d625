package testvm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// ImageEnv names the environment variable holding the test image directory.
const ImageEnv = "UNDERCLOUD_TESTIMAGE"

// modulePath identifies the repository root by its go.mod.
const modulePath = "github.com/undercloud/undercloud"

// Image is a built test node image: a Debian live system PXE-booted the way
// Fedora CoreOS's live images are (testvm/image/build.sh).
type Image struct {
	// Dir holds the files below plus SHA256SUMS and MANIFEST.
	Dir string
	// Kernel and Initrd are the paths of vmlinuz and initrd.img; Rootfs is
	// rootfs.img, the squashfs root the initramfs fetches by
	// coreos.live.rootfs_url; Disk is disk.img.gz, the install image
	// written to the disk by coreos.inst.image_url.
	Kernel, Initrd, Rootfs, Disk string
	// The hex digests of the files above, from SHA256SUMS.
	KernelSHA256, InitrdSHA256, RootfsSHA256, DiskSHA256 string
}

// RepoRoot finds the undercloud checkout: the first directory upwards from
// the working directory whose go.mod declares the module, else the one this
// source file was compiled from.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && strings.Contains(firstLine(b), modulePath) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("testvm: no " + modulePath + " checkout above the working directory")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// DefaultImageDir is $UNDERCLOUD_TESTIMAGE, else <repo>/build/testimage.
func DefaultImageDir() (string, error) {
	if d := os.Getenv(ImageEnv); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "build", "testimage"), nil
}

// BuildImage runs testvm/image/build.sh into dir (quick when up to date) and
// returns the image. The error carries the script's output.
func BuildImage(ctx context.Context, dir string) (Image, error) {
	root, err := RepoRoot()
	if err != nil {
		return Image{}, err
	}
	script := filepath.Join(root, "testvm", "image", "build.sh")
	if _, err := lookTool("bash"); err != nil {
		return Image{}, err
	}
	out, err := exec.CommandContext(ctx, "bash", script, dir).CombinedOutput()
	if err != nil {
		return Image{}, fmt.Errorf("build test image with %s %s: %w\n%s", script, dir, err, out)
	}
	return LoadImage(dir)
}

// LoadImage reads an image directory built earlier and checks its files are
// there; digests come from its SHA256SUMS.
func LoadImage(dir string) (Image, error) {
	img := Image{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img"),
		Rootfs: filepath.Join(dir, "rootfs.img"), Disk: filepath.Join(dir, "disk.img.gz")}
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		return Image{}, fmt.Errorf("test image in %s: %w (build it with testvm/image/build.sh)", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			continue
		}
		switch name {
		case "vmlinuz":
			img.KernelSHA256 = sum
		case "initrd.img":
			img.InitrdSHA256 = sum
		case "rootfs.img":
			img.RootfsSHA256 = sum
		case "disk.img.gz":
			img.DiskSHA256 = sum
		}
	}
	if err := sc.Err(); err != nil {
		return Image{}, fmt.Errorf("read %s/SHA256SUMS: %w", dir, err)
	}
	for _, p := range []string{img.Kernel, img.Initrd, img.Rootfs, img.Disk} {
		if _, err := os.Stat(p); err != nil {
			return Image{}, fmt.Errorf("test image: %w", err)
		}
	}
	if img.KernelSHA256 == "" || img.InitrdSHA256 == "" || img.RootfsSHA256 == "" || img.DiskSHA256 == "" {
		return Image{}, fmt.Errorf("test image in %s: SHA256SUMS lacks vmlinuz, initrd.img, rootfs.img or disk.img.gz (rebuild it with testvm/image/build.sh)", dir)
	}
	return img, nil
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
)

// command is one iPXE command line: its name, its --options, its arguments,
// and the command after "||" that iPXE runs when this one fails.
type command struct {
	Name     string
	Opts     map[string]string // --name initrd -> {"name": "initrd"}; --autofree -> {"autofree": ""}
	Args     []string
	Fallback *command
}

// script is a parsed iPXE script: its commands in order, labels
// (":retry") kept as commands named ":" so that goto could be followed.
type script []command

// parseScript reads the iPXE commands undercloud and the baseline emit:
// kernel, initrd, chain, boot, exit, echo, sleep, goto, sanboot, labels and
// "||" fallbacks. Comments and the #!ipxe line are skipped; anything else
// is kept as a command of that name for the caller to refuse.
func parseScript(text string) (script, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var s script
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			first = false
			if !strings.HasPrefix(line, "#!ipxe") {
				return nil, fmt.Errorf("not an iPXE script: first line %q", trunc(line))
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if label, ok := strings.CutPrefix(line, ":"); ok {
			s = append(s, command{Name: ":", Args: []string{label}})
			continue
		}
		c, err := parseCommand(line)
		if err != nil {
			return nil, err
		}
		s = append(s, c)
	}
	if first {
		return nil, errors.New("empty script")
	}
	return s, sc.Err()
}

// parseCommand splits "cmd --opt v arg … || fallback" on whitespace; iPXE
// has no quoting in the scripts we read.
func parseCommand(line string) (command, error) {
	main, rest, hasFallback := strings.Cut(line, "||")
	words := strings.Fields(main)
	if len(words) == 0 {
		return command{}, fmt.Errorf("empty command before || in %q", trunc(line))
	}
	c := command{Name: words[0], Opts: map[string]string{}}
	for i := 1; i < len(words); i++ {
		w := words[i]
		opt, ok := strings.CutPrefix(w, "--")
		if !ok || len(c.Args) > 0 {
			c.Args = append(c.Args, w)
			continue
		}
		if k, v, eq := strings.Cut(opt, "="); eq {
			c.Opts[k] = v
		} else if optTakesValue(opt) && i+1 < len(words) {
			c.Opts[opt] = words[i+1]
			i++
		} else {
			c.Opts[opt] = ""
		}
	}
	if hasFallback {
		fb, err := parseCommand(strings.TrimSpace(rest))
		if err != nil {
			return command{}, err
		}
		c.Fallback = &fb
	}
	return c, nil
}

// optTakesValue reports whether an option of an image command is followed
// by a value: iPXE's --name and --timeout; --autofree, --replace and the
// like stand alone. sanboot's --drive takes one too.
func optTakesValue(opt string) bool {
	switch opt {
	case "name", "n", "timeout", "t", "drive", "filename":
		return true
	}
	return false
}

// expand replaces iPXE settings (${mac}, ${net0/mac}, ${serial:uristring})
// with vars[name], the name without its network-device scope and type;
// unknown settings expand to "", as in iPXE.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		name := s[i+2 : i+j]
		if k := strings.LastIndexByte(name, '/'); k >= 0 {
			name = name[k+1:]
		}
		name, _, _ = strings.Cut(name, ":")
		b.WriteString(vars[name])
		s = s[i+j+1:]
	}
}

// chainURL is what a chain script asks for next: the first chain command's
// URL, settings expanded.
func (s script) chainURL(vars map[string]string) (string, error) {
	for _, c := range s {
		switch c.Name {
		case "chain":
			if len(c.Args) == 0 {
				return "", errors.New("chain without a URL")
			}
			return expand(c.Args[0], vars), nil
		case "exit", "kernel", "boot", "sanboot":
			return "", fmt.Errorf("script does %s before any chain%s", c.Name, s.said())
		}
	}
	return "", errors.New("no chain command in the script")
}

// bootPlan is what a machine script boots: the kernel and each initrd,
// every one with the alternatives its "||" fallbacks give, in order.
type bootPlan struct {
	Kernel  []kernelAlt
	Initrds [][]string
}

// kernelAlt is one way to load the kernel: its URL and the arguments that
// go with it, which are the ones the kernel runs with when it loads.
type kernelAlt struct {
	URL  string
	Args []string
}

// plan reads the kernel, initrd and boot commands of a machine script. A
// script that exits or boots the local disk first (unknown machine, denied
// address, installed machine) is an error that quotes its echo lines.
func (s script) plan(vars map[string]string) (bootPlan, error) {
	var p bootPlan
	for _, c := range s {
		switch c.Name {
		case "kernel", "imgexec":
			p.Kernel = p.Kernel[:0]
			for alt := &c; alt != nil; alt = alt.Fallback {
				if alt.Name != c.Name || len(alt.Args) == 0 {
					return p, fmt.Errorf("%s: want a URL, and only %s fallbacks", c.Name, c.Name)
				}
				k := kernelAlt{URL: expand(alt.Args[0], vars)}
				for _, a := range alt.Args[1:] {
					k.Args = append(k.Args, expand(a, vars))
				}
				p.Kernel = append(p.Kernel, k)
			}
		case "initrd", "module":
			var alts []string
			for alt := &c; alt != nil; alt = alt.Fallback {
				if alt.Name != c.Name || len(alt.Args) == 0 {
					return p, fmt.Errorf("%s: want a URL, and only %s fallbacks", c.Name, c.Name)
				}
				alts = append(alts, expand(alt.Args[0], vars))
			}
			p.Initrds = append(p.Initrds, alts)
		case "boot":
			if len(p.Kernel) == 0 {
				return p, errors.New("boot before any kernel")
			}
			return p, nil
		case "exit", "sanboot", "goto", "chain":
			return p, fmt.Errorf("script does %s instead of booting a kernel%s", c.Name, s.said())
		}
	}
	if len(p.Kernel) == 0 {
		return p, errors.New("no kernel command in the script")
	}
	return p, nil // iPXE boots the last image when the script ends
}

// said is the script's echo lines, for an error message.
func (s script) said() string {
	var lines []string
	for _, c := range s {
		if c.Name == "echo" {
			lines = append(lines, strings.Join(c.Args, " "))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, "; ")
}

// kernelArg returns the value of the first kernel argument key=value.
func kernelArg(args []string, key string) (string, bool) {
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// ignitionURL is the config URL among the kernel arguments: the usual
// ignition.config.url, or an installer's *ignition_url.
func ignitionURL(args []string) string {
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if ok && isHTTP(v) && (k == "ignition.config.url" || strings.HasSuffix(k, "ignition_url")) {
			return v
		}
	}
	return ""
}

// rootfsURL is a root filesystem the kernel fetches by itself
// (coreos.live.rootfs_url= and the like), "" when there is none.
func rootfsURL(args []string) string {
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if ok && isHTTP(v) && strings.Contains(k, "rootfs") {
			return v
		}
	}
	return ""
}

func isHTTP(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

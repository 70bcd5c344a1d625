package testvm

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// BMC credentials of every lab BMC (IPMI v2 passwords are at most 20 bytes).
const (
	BMCUser     = "admin"
	BMCPassword = "undercloud"
)

// BMC is a lab baseboard management controller: OpenIPMI's ipmi_sim answering
// IPMI over LAN (RMCP/RMCP+ on UDP) inside the lab namespace, on the bridge
// address, so a server under test in the lab reaches it like a real BMC. Its
// chassis_control script drives the VM over QMP: power off is QMP stop, power
// on is system_reset + cont, reset is system_reset, soft off is
// system_powerdown; power status is on while QMP says running. Boot device
// requests (`chassis bootdev pxe`) are recorded in order.
type BMC struct {
	// Addr is where it answers (inside the lab namespace).
	Addr netip.AddrPort
	// User and Password are the administrator credentials.
	User, Password string
	// Dir holds its config, state, chassis script and request logs.
	Dir string
	// Proc is the ipmi_sim process.
	Proc *Proc

	lab *Lab
}

// lanConf is ipmi_sim's configuration: one LAN channel with every
// authentication type allowed (ipmitool -I lan and -I lanplus both work) and
// one administrator.
var lanConf = template.Must(template.New("lan.conf").Option("missingkey=error").Parse(`name "{{.Name}}"
set_working_mc 0x20
  startlan 1
    addr {{.IP}} {{.Port}}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid {{.GUID}}
  endlan
  chassis_control "{{.Script}} 0x20"
  user 2 true  "{{.User}}" "{{.Password}}" admin 10 none md2 md5 straight
`))

// emuCommands create the management controller ipmi_sim emulates.
const emuCommands = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// chassisScript is called by ipmi_sim as `chassis.sh 0x20 get|set|check
// <param> [<value>]...` and answers get with "param:value" lines. QMP closes
// a connection's queued commands when the client leaves, so qmp() keeps the
// socket open until every command has replied.
var chassisScript = template.Must(template.New("chassis.sh").Option("missingkey=error").Parse(`#!/bin/sh
# ipmi_sim chassis_control hook of the lab BMC of VM {{.Name}}.
D='{{.Dir}}'
SOCK='{{.Socket}}'
echo "$(date +%s.%N) $*" >>"$D/chassis.log"

# qmp CMD... runs QMP commands on the VM's BMC socket and prints the replies.
qmp() {
	f="$D/qmp.fifo.$$"
	rm -f "$f"
	mkfifo "$f" || return 1
	socat -t 0.05 - "UNIX-CONNECT:$SOCK" <"$f" | {
		exec 3>"$f"
		echo '{"execute":"qmp_capabilities"}' >&3
		for c in "$@"; do echo "{\"execute\":\"$c\"}" >&3; done
		want=$(($# + 1))
		n=0
		while [ "$n" -lt "$want" ] && read -r line; do
			case $line in *'"return"'* | *'"error"'*)
				n=$((n + 1))
				echo "$line"
				;;
			esac
		done
		exec 3>&-
	}
	rm -f "$f"
}
running() { qmp query-status | grep -q '"running": true'; }

shift # the MC address
op=$1
shift
case $op in
get)
	for p in "$@"; do
		case $p in
		power) if running; then echo power:1; else echo power:0; fi ;;
		boot) echo "boot:$(cat "$D/bootdev" 2>/dev/null || echo default)" ;;
		esac
	done
	;;
set)
	while [ $# -ge 2 ]; do
		case $1 in
		power)
			if [ "$2" = 1 ]; then
				running || qmp system_reset cont >/dev/null
			else
				qmp stop >/dev/null
			fi
			;;
		reset) qmp system_reset >/dev/null ;;
		shutdown) qmp system_powerdown >/dev/null ;;
		boot)
			echo "$2" >"$D/bootdev"
			echo "$2" >>"$D/bootdev.log"
			;;
		esac
		shift 2
	done
	;;
esac
exit 0
`))

// StartBMC starts the BMC of vm on the lab's ServerAddr and port (0: 6230
// plus the VM's number in the lab), and waits until it answers IPMI.
func (l *Lab) StartBMC(ctx context.Context, vm *VM, port int) (*BMC, error) {
	for _, t := range []string{"ipmi_sim", "ipmitool", "socat"} {
		if _, err := lookTool(t); err != nil {
			return nil, err
		}
	}
	if port == 0 {
		var n int
		if _, err := fmt.Sscanf(vm.Tap, "tap%d", &n); err != nil {
			return nil, fmt.Errorf("bmc port for %s: %w", vm.Tap, err)
		}
		port = 6230 + n
	}
	b := &BMC{
		Addr: netip.AddrPortFrom(l.ServerAddr, uint16(port)),
		User: BMCUser, Password: BMCPassword,
		Dir: filepath.Join(vm.Dir, "bmc"), lab: l,
	}
	if err := os.MkdirAll(filepath.Join(b.Dir, "state"), 0o755); err != nil {
		return nil, fmt.Errorf("bmc dir: %w", err)
	}
	script := filepath.Join(b.Dir, "chassis.sh")
	guid := strings.ReplaceAll(vm.MAC.String(), ":", "")
	data := map[string]any{
		"Name": vm.Name, "IP": l.ServerAddr.String(), "Port": port, "Script": script,
		"User": b.User, "Password": b.Password, "Dir": b.Dir, "Socket": vm.BMCSocket,
		"GUID": strings.Repeat("0", 32-len(guid)) + guid,
	}
	if err := writeTemplate(script, 0o755, chassisScript, data); err != nil {
		return nil, err
	}
	conf := filepath.Join(b.Dir, "lan.conf")
	if err := writeTemplate(conf, 0o644, lanConf, data); err != nil {
		return nil, err
	}
	emu := filepath.Join(b.Dir, "cmd.emu")
	if err := os.WriteFile(emu, []byte(emuCommands), 0o644); err != nil {
		return nil, fmt.Errorf("bmc: %w", err)
	}
	p, err := l.Start("bmc-"+vm.Name, "ipmi_sim", "-c", conf, "-f", emu, "-s", filepath.Join(b.Dir, "state"), "-n")
	if err != nil {
		return nil, err
	}
	b.Proc = p
	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}
	l.Log.Info("bmc up", "vm", vm.Name, "addr", b.Addr)
	return b, nil
}

func writeTemplate(path string, mode os.FileMode, t *template.Template, data any) error {
	var sb strings.Builder
	if err := t.Execute(&sb, data); err != nil {
		return fmt.Errorf("render %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, []byte(sb.String()), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// waitReady polls `chassis power status` until ipmi_sim answers.
func (b *BMC) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		if _, err := b.IPMITool(ctx, "-N", "1", "-R", "1", "chassis", "power", "status"); err == nil {
			return nil
		} else if isDone(b.Proc.Done()) {
			return b.Proc.exitError()
		} else if ctx.Err() != nil {
			return fmt.Errorf("bmc at %s not answering: %w", b.Addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// IPMIToolArgs are the ipmitool options that reach this BMC over IPMI v2
// (lanplus, cipher suite 3; without -C 3 each call waits ~10 s).
func (b *BMC) IPMIToolArgs() []string {
	return []string{"-I", "lanplus", "-C", "3", "-H", b.Addr.Addr().String(),
		"-p", fmt.Sprint(b.Addr.Port()), "-U", b.User, "-P", b.Password}
}

// IPMITool runs ipmitool against the BMC from inside the lab and returns its
// output, e.g. IPMITool(ctx, "chassis", "power", "reset").
func (b *BMC) IPMITool(ctx context.Context, args ...string) (string, error) {
	out, err := b.lab.Run(ctx, append(append([]string{"ipmitool"}, b.IPMIToolArgs()...), args...)...)
	return strings.TrimSpace(string(out)), err
}

// BootDevices returns the boot devices requested so far, oldest first, as
// ipmi_sim names them ("pxe", "default" for disk, "none", ...).
func (b *BMC) BootDevices() ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(b.Dir, "bootdev.log"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bmc boot devices: %w", err)
	}
	return strings.Fields(string(raw)), nil
}

// Requests returns the chassis_control calls ipmi_sim made, one per line
// ("<unix time> 0x20 set power 1").
func (b *BMC) Requests() ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(b.Dir, "chassis.log"))
	if err != nil {
		return nil, fmt.Errorf("bmc requests: %w", err)
	}
	return strings.Split(strings.TrimSpace(string(raw)), "\n"), nil
}

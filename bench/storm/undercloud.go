package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Where the server listens, inside the server namespace: the machine-facing
// listener on the provisioning link, the operator API (plain HTTP, for the
// inventory check) on the same address.
const (
	bootBase = "http://" + serverAddr + ":8080"
	opBase   = "http://" + serverAddr + ":8443"
)

// ucServer is `undercloud serve` for one round.
type ucServer struct {
	*proc
	token  string
	client *http.Client // from the machines' namespace
}

// startUndercloud runs the server on a fresh data dir and waits until its
// site is active (/healthz). TFTP is off: the DHCP answer then names
// http://SERVER:8080/boot.ipxe, which the load generator can follow.
func startUndercloud(ctx context.Context, r *runEnv, dataDir, name string) (*ucServer, error) {
	env := []string{"UNDERCLOUD_API_TOKENS=storm:operator:" + r.token}
	p, err := startIn(r.topo.Server, name, r.work, env, r.bin, "serve",
		"--repo", r.repo, "--data-dir", dataDir, "--artifact-root", r.artifacts,
		"--interface", "s0", "--server-ip", serverAddr,
		"--listen", serverAddr+":8080", "--operator-listen", serverAddr+":8443", "--operator-tls=false",
		"--tftp-listen", "", "--log-level", "info")
	if err != nil {
		return nil, err
	}
	s := &ucServer{proc: p, token: r.token, client: nsClient(r.topo.Machines)}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := s.client.Get(bootBase + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if ok, perr := p.exited(); ok {
			return nil, fmt.Errorf("undercloud exited: %v\n%s", perr, p.tail(3000))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop(5 * time.Second)
			return nil, fmt.Errorf("undercloud not healthy after 2m (last: %v)\n%s", err, p.tail(3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// query runs one read-only SQL statement through the operator API
// (POST /api/v1/query) and returns its rows.
func (s *ucServer) query(ctx context.Context, sql string) ([][]any, error) {
	body, _ := json.Marshal(map[string]string{"sql": sql})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, opBase+"/api/v1/query", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query: %s: %s", resp.Status, raw)
	}
	var out struct {
		Rows      [][]any `json:"rows"`
		Truncated bool    `json:"truncated"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if out.Truncated {
		return nil, fmt.Errorf("query: result truncated: %s", sql)
	}
	return out.Rows, nil
}

// inventoryCheck is what the inventory says about a storm's machines.
type inventoryCheck struct {
	N        int
	States   map[string]int // machines of the site by state
	Steps    map[string]int // boot event kind -> machines with at least one
	SameBoot int            // machines whose script, config and booted report share one boot id, hostname reported
	Denied   int            // ipxe-denied, ignition-denied, callback-denied events
	Problems []string
}

// requiredSteps are the boot steps every machine's boot must show; the
// artifact step only when the server served the artifacts (no mirror).
func requiredSteps(mirrored bool) []string {
	steps := []string{"dhcp-discover", "dhcp-offer", "dhcp-request", "dhcp-ack", "ipxe-chain", "ipxe-script"}
	if !mirrored {
		steps = append(steps, "artifact")
	}
	return append(steps, "ignition", "booted")
}

// checkInventory asks the server, through its API with an operator token,
// whether exactly n machines are provisioned, each with every step of its
// boot. Events reach the inventory in batches, so it asks again for up to
// 20 s before it reports what is missing.
func (s *ucServer) checkInventory(ctx context.Context, n int, mirrored bool) (inventoryCheck, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := s.inventoryOnce(ctx, n, mirrored)
		if err != nil || len(c.Problems) == 0 || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(time.Second)
	}
}

func (s *ucServer) inventoryOnce(ctx context.Context, n int, mirrored bool) (inventoryCheck, error) {
	c := inventoryCheck{N: n, States: map[string]int{}, Steps: map[string]int{}}
	rows, err := s.query(ctx, `SELECT state, count(*) FROM machines WHERE site = 'storm' GROUP BY state`)
	if err != nil {
		return c, err
	}
	for _, r := range rows {
		c.States[fmt.Sprint(r[0])] = toInt(r[1])
	}
	rows, err = s.query(ctx, `SELECT e.kind, count(DISTINCT e.mac) FROM boot_events e JOIN machines m ON m.mac = e.mac
		WHERE m.site = 'storm' GROUP BY e.kind`)
	if err != nil {
		return c, err
	}
	for _, r := range rows {
		c.Steps[fmt.Sprint(r[0])] = toInt(r[1])
	}
	// One boot per machine, its script, config and booted report under
	// one boot id, the report naming the machine's own host name.
	rows, err = s.query(ctx, `SELECT count(*) FROM machines m WHERE m.site = 'storm'
		AND (SELECT count(*) FROM boot_events s WHERE s.mac = m.mac AND s.kind = 'ipxe-script') = 1
		AND EXISTS (SELECT 1 FROM boot_events s
			JOIN boot_events i ON i.mac = s.mac AND i.boot_id = s.boot_id AND i.kind = 'ignition'
			JOIN boot_events b ON b.mac = s.mac AND b.boot_id = s.boot_id AND b.kind = 'booted'
			WHERE s.mac = m.mac AND s.kind = 'ipxe-script' AND coalesce(s.boot_id, '') != ''
			AND instr(b.detail, m.name) > 0)`)
	if err != nil {
		return c, err
	}
	if len(rows) == 1 {
		c.SameBoot = toInt(rows[0][0])
	}
	rows, err = s.query(ctx, `SELECT count(*) FROM boot_events WHERE kind IN ('ipxe-denied', 'ignition-denied', 'callback-denied')`)
	if err != nil {
		return c, err
	}
	if len(rows) == 1 {
		c.Denied = toInt(rows[0][0])
	}
	total := 0
	for st, k := range c.States {
		total += k
		if st != "provisioned" {
			c.Problems = append(c.Problems, fmt.Sprintf("%d machines %s", k, st))
		}
	}
	if total != n || c.States["provisioned"] != n {
		c.Problems = append(c.Problems, fmt.Sprintf("%d provisioned of %d declared, want %d", c.States["provisioned"], total, n))
	}
	for _, k := range requiredSteps(mirrored) {
		if c.Steps[k] != n {
			c.Problems = append(c.Problems, fmt.Sprintf("%s seen for %d machines, want %d", k, c.Steps[k], n))
		}
	}
	if c.SameBoot != n {
		c.Problems = append(c.Problems, fmt.Sprintf("%d machines with one boot whose script, config and booted report (with its hostname) share a boot id, want %d", c.SameBoot, n))
	}
	if c.Denied != 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d denied requests", c.Denied))
	}
	return c, nil
}

// String is the check in one line.
func (c inventoryCheck) String() string {
	var steps []string
	keys := make([]string, 0, len(c.Steps))
	for k := range c.Steps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		steps = append(steps, fmt.Sprintf("%s %d", k, c.Steps[k]))
	}
	verdict := "OK"
	if len(c.Problems) > 0 {
		verdict = "FAILED: " + strings.Join(c.Problems, "; ")
	}
	return fmt.Sprintf("inventory: %d provisioned of %d; machines with each step: %s; one boot id per boot %d; denied %d -- %s",
		c.States["provisioned"], c.N, strings.Join(steps, ", "), c.SameBoot, c.Denied, verdict)
}

func toInt(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case json.Number:
		i, _ := x.Int64()
		return int(i)
	case string:
		var i int
		fmt.Sscan(x, &i)
		return i
	}
	return 0
}

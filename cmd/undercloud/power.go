package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/power"
	"github.com/undercloud/undercloud/secrets"
	"github.com/undercloud/undercloud/sites"
)

// powerFactory builds a machine's BMC driver from its site config and the
// credentials its config names in the server's secrets. The password never
// leaves the secrets and the driver (power.Credentials redacts itself).
type powerFactory struct {
	secrets *secrets.Secrets
	db      *inventory.DB
	log     *slog.Logger
}

func (p powerFactory) driver(m sites.Machine) (power.Driver, error) {
	if m.BMC == nil {
		return nil, fmt.Errorf("%s has no bmc in its site config", m.Name)
	}
	c := power.Config{Driver: m.BMC.Driver, Address: m.BMC.Address, Insecure: m.BMC.Insecure,
		Log: p.log.With("mac", string(m.MAC))}
	if name := m.BMC.Credentials; name != "" {
		l, ok := p.secrets.BMC[name]
		if !ok {
			return nil, fmt.Errorf("%s: bmc credentials %q are not in the secrets file (it has: %s)", m.Name, name, p.secrets.BMCNames())
		}
		c.Credentials = power.Credentials{Username: l.Username, Password: l.Password}
	}
	// IPMI cannot tell how a machine boots: ask the inventory what its DHCP
	// requests said (option 93: 7 and 9 are x86-64 UEFI, 11 arm64 UEFI).
	if got, err := p.db.Machine(context.Background(), m.MAC); err == nil {
		c.UEFI = got.Arch == "7" || got.Arch == "9" || got.Arch == "11"
	}
	return power.New(c)
}

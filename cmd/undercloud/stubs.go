package main

import (
	"context"
	"io"
)

// Temporary: these land with the boot-path, rebuild and web issues.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usageError("status: not built yet")
}
func runMachine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usageError("machine: not built yet")
}
func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usageError("rollout: not built yet")
}

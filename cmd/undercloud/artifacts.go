package main

import (
	"context"
	"net/http"
	"time"

	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

// verifyArtifacts checks artifact digests without storing anything: what
// `undercloud validate` needs in a site repo's CI.
type verifyArtifacts struct{ store *pxe.Store }

func newArtifactChecker(root string) sites.ArtifactChecker {
	return verifyArtifacts{&pxe.Store{ArtifactRoot: root, Client: &http.Client{Timeout: 30 * time.Minute}}}
}

func (v verifyArtifacts) CheckArtifact(ctx context.Context, a sites.Artifact) error {
	return v.store.Verify(ctx, a.Source(), a.SHA256)
}

package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
)

// bootedURL is where a machine reports its boot: read from the Ignition
// config it was served, as a real node's units do, and failing that from
// the kernel argument undercloud.booted=.
//
// The config carries it in a storage file (a per-boot env file such as
// /etc/undercloud/report.env, its contents a data: URL) or, in older
// servers, in the ExecStart of a unit; the first http(s) URL whose path ends
// in /booted and that has a query is taken. Kernel arguments are the last
// resort because the server is moving the URL out of them.
func bootedURL(config []byte, kernelArgs []string) (url_, from string, err error) {
	var cfg struct {
		Storage struct {
			Files []struct {
				Path     string `json:"path"`
				Contents struct {
					Source      *string `json:"source"`
					Compression *string `json:"compression"`
				} `json:"contents"`
			} `json:"files"`
		} `json:"storage"`
		Systemd struct {
			Units []struct {
				Name     string  `json:"name"`
				Contents *string `json:"contents"`
			} `json:"units"`
		} `json:"systemd"`
	}
	var errs []error
	if err := json.Unmarshal(config, &cfg); err != nil {
		errs = append(errs, fmt.Errorf("ignition config: %w", err))
	}
	for _, f := range cfg.Storage.Files {
		if f.Contents.Source == nil {
			continue
		}
		data, err := decodeDataURL(*f.Contents.Source, f.Contents.Compression)
		if err != nil {
			errs = append(errs, fmt.Errorf("file %s: %w", f.Path, err))
			continue
		}
		if u := findBootedURL(string(data)); u != "" {
			return u, "file " + f.Path, nil
		}
	}
	for _, u := range cfg.Systemd.Units {
		if u.Contents == nil {
			continue
		}
		// systemd doubles % and $ in ExecStart (specifiers, variables).
		text := strings.NewReplacer("%%", "%", "$$", "$").Replace(*u.Contents)
		if found := findBootedURL(text); found != "" {
			return found, "unit " + u.Name, nil
		}
	}
	if v, ok := kernelArg(kernelArgs, "undercloud.booted"); ok && isHTTP(v) {
		return v, "kernel argument", nil
	}
	return "", "", errors.Join(append(errs, errors.New("no booted URL in the config's files or units, nor undercloud.booted= in the kernel arguments"))...)
}

// decodeDataURL returns the contents of an RFC 2397 data: URL, gunzipped
// when Ignition's compression says gzip. Other sources (http, s3) are not
// the server's per-boot files: they decode to nothing.
func decodeDataURL(src string, compression *string) ([]byte, error) {
	rest, ok := strings.CutPrefix(src, "data:")
	if !ok {
		return nil, nil
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, errors.New("data URL without a comma")
	}
	var data []byte
	if strings.HasSuffix(meta, ";base64") {
		b, err := base64.StdEncoding.DecodeString(payload)
		if err != nil {
			if b, err = base64.RawStdEncoding.DecodeString(payload); err != nil {
				return nil, fmt.Errorf("data URL: %w", err)
			}
		}
		data = b
	} else {
		s, err := url.PathUnescape(payload)
		if err != nil {
			return nil, fmt.Errorf("data URL: %w", err)
		}
		data = []byte(s)
	}
	if compression != nil && *compression == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip data URL: %w", err)
		}
		if data, err = io.ReadAll(io.LimitReader(zr, 1<<20)); err != nil {
			return nil, fmt.Errorf("gzip data URL: %w", err)
		}
	}
	return data, nil
}

// urlRE finds http(s) URLs in env files, scripts and units: up to a quote,
// a space or the end of the line.
var urlRE = regexp.MustCompile(`https?://[^\s"'<>\x60]+`)

func findBootedURL(text string) string {
	for _, raw := range urlRE.FindAllString(text, -1) {
		u, err := url.Parse(raw)
		if err == nil && u.Host != "" && strings.HasSuffix(u.Path, "/booted") && u.RawQuery != "" {
			return raw
		}
	}
	return ""
}

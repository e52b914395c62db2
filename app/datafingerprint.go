package app

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// dataFiles are the files a run reads its examples from: the training
// file, the validation file, the KD traces.
func (c *RunConfig) dataFiles() []string {
	var files []string
	for _, p := range []string{c.Data, c.Val, c.KD.Traces} {
		if p != "" && !slices.Contains(files, p) {
			files = append(files, p)
		}
	}
	return files
}

// fingerprintData records the SHA-256 of each data file in c, so a resume
// can tell that a file changed since the run started.
func (c *RunConfig) fingerprintData() error {
	c.DataSHA256 = map[string]string{}
	for _, p := range c.dataFiles() {
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		c.DataSHA256[p] = sum
	}
	return nil
}

// checkData refuses to resume on data files that changed since the run
// started: the checkpoint's position counts micro-batches of the old
// file's rows in the old order, and the validation split would be another.
// Runs recorded before fingerprints were kept have none and pass.
func (c *RunConfig) checkData() error {
	for _, p := range slices.Sorted(maps.Keys(c.DataSHA256)) {
		sum, err := fileSHA256(p)
		if err != nil {
			if !filepath.IsAbs(p) { // config.yaml of a run from before paths were kept absolute
				return fmt.Errorf("data file %s: %w: the run recorded it relative to the folder it started in; resume from that folder", p, err)
			}
			return fmt.Errorf("data file %s: %w: put it back where the run found it", p, err)
		}
		if sum != c.DataSHA256[p] {
			return fmt.Errorf("data file %s changed since the run started (SHA-256 %.12s…, was %.12s…): resuming would count the checkpoint's position in other rows and split validation anew; put back the run's file, start a new run, or resume with --allow-changed-data", p, sum, c.DataSHA256[p])
		}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

//go:build !unix && !windows

package main

import "os"

// lockFile takes no lock where the platform offers none Socius knows (wasm, Plan 9).
func lockFile(*os.File) error { return nil }

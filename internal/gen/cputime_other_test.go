//go:build !unix

package gen

import "time"

func cpuTime() time.Duration { return 0 }

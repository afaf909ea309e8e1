package main

import (
	"fmt"
	"strconv"

	"github.com/dustin/go-humanize"
)

// sizeValue is a byte-count flag that accepts units (256MiB, 1GiB, 512MB, 64k) as well as plain
// bytes. IEC units (KiB, MiB, GiB) are powers of 1024, SI units (KB, MB, GB) powers of 1000.
type sizeValue struct{ p *int64 }

func (s sizeValue) String() string {
	if s.p == nil {
		return "0"
	}
	switch n := *s.p; { // as a unit when exact, so that --help reads 96MiB, not 100663296
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	default:
		return strconv.FormatInt(n, 10)
	}
}

func (s sizeValue) Set(v string) error {
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return fmt.Errorf("size %q: want bytes or a number with a unit (256MiB, 1GiB, 500MB)", v)
	}
	if n > 1<<62 {
		return fmt.Errorf("size %q is too large", v)
	}
	*s.p = int64(n)
	return nil
}

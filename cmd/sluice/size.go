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
	return strconv.FormatInt(*s.p, 10)
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

package opsmetrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildLabels are the labels of sluice_build_info: the module version ("(devel)" for a build
// from a work tree), the VCS revision ("" when the toolchain recorded none, e.g. -buildvcs=false;
// "+dirty" appended for a modified tree) and the Go version.
func BuildLabels() prometheus.Labels {
	l := prometheus.Labels{"version": "(devel)", "revision": "", "goversion": runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return l
	}
	if bi.Main.Version != "" {
		l["version"] = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			l["revision"] = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && l["revision"] != "" {
		l["revision"] += "+dirty"
	}
	return l
}

// NewBuildInfo returns sluice_build_info{version,revision,goversion}, always 1: join it to other
// series (on instance) to see which build produced them.
func NewBuildInfo() prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_build_info",
		Help: "Always 1; the labels say which build of sluice is running (version, VCS revision, Go version).", ConstLabels: BuildLabels()})
	g.Set(1)
	return g
}

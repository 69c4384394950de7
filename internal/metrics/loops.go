package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Loop is what the metrics report about one background loop.
type Loop struct {
	Name             string
	Running, Failing bool
	Passes, Skipped  int64
	LastPass         time.Time
}

var (
	loopRunning = prometheus.NewDesc("kiln_background_loop_running", "1 while the background loop runs (started and not stopped).", []string{"loop"}, nil)
	loopPasses  = prometheus.NewDesc("kiln_background_loop_passes_total", "Passes of a periodic background loop, including skipped ones.", []string{"loop"}, nil)
	loopSkipped = prometheus.NewDesc("kiln_background_loop_skipped_total", "Passes skipped because another replica held the loop's claim.", []string{"loop"}, nil)
	loopLast    = prometheus.NewDesc("kiln_background_loop_last_pass_timestamp_seconds", "Start of the loop's last pass (unix seconds; 0 before the first).", []string{"loop"}, nil)
	loopFailing = prometheus.NewDesc("kiln_background_loop_failing", "1 when the loop's last pass (or the loop itself) ended with an error.", []string{"loop"}, nil)
)

type loopCollector struct{ status func() []Loop }

func (c loopCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{loopRunning, loopPasses, loopSkipped, loopLast, loopFailing} {
		ch <- d
	}
}

func (c loopCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, l := range c.status() {
		last := 0.0
		if !l.LastPass.IsZero() {
			last = float64(l.LastPass.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(loopRunning, prometheus.GaugeValue, b(l.Running), l.Name)
		ch <- prometheus.MustNewConstMetric(loopPasses, prometheus.CounterValue, float64(l.Passes), l.Name)
		ch <- prometheus.MustNewConstMetric(loopSkipped, prometheus.CounterValue, float64(l.Skipped), l.Name)
		ch <- prometheus.MustNewConstMetric(loopLast, prometheus.GaugeValue, last, l.Name)
		ch <- prometheus.MustNewConstMetric(loopFailing, prometheus.GaugeValue, b(l.Failing), l.Name)
	}
}

// RegisterLoops exposes the server's background loops (read at scrape
// time from status): kiln_background_loop_{running, passes_total,
// skipped_total, last_pass_timestamp_seconds, failing}{loop}.
func (m *Metrics) RegisterLoops(status func() []Loop) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(loopCollector{status})
}

package sensor

import (
	"bytes"
	"io"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// /metrics is served by client_golang, the exposition every Prometheus user expects, with
// its Go runtime and process collectors. The sensor's own counters stay plain atomics where
// they are counted (no registry threaded through every door); adminCollector reads them at
// each scrape. Histograms are client_golang's own.

// series hands one scrape's values to the registry.
type series struct{ ch chan<- prometheus.Metric }

// add sends one sample; labels are name, value pairs.
func (s series) add(kind prometheus.ValueType, name, help string, v float64, labels ...string) {
	names := make([]string, 0, len(labels)/2)
	values := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		names, values = append(names, labels[i]), append(values, labels[i+1])
	}
	s.ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, names, nil), kind, v, values...)
}

func (s series) counter(name, help string, v float64, labels ...string) {
	s.add(prometheus.CounterValue, name, help, v, labels...)
}

func (s series) gauge(name, help string, v float64, labels ...string) {
	s.add(prometheus.GaugeValue, name, help, v, labels...)
}

// adminCollector is the sensor's own series. It describes none ahead (an unchecked
// collector): which series exist depends on the configuration (TLS, an access table, the
// milter, enforcement).
type adminCollector struct{ a *Admin }

func (adminCollector) Describe(chan<- *prometheus.Desc) {}

func (c adminCollector) Collect(ch chan<- prometheus.Metric) { c.a.collect(series{ch}) }

// histograms are the distributions the intake observes. Made on first use, so that a zero
// Metrics works as it always has.
type histograms struct {
	once sync.Once
	size prometheus.Histogram
	eod  prometheus.Histogram
}

func (h *histograms) get() *histograms {
	h.once.Do(func() {
		h.size = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sensor_message_size_bytes",
			Help: "Size of the messages recorded, through either door.",
			// 1 KiB to 256 MiB: journal reports of a line, and the largest SIZE allowed.
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
		})
		h.eod = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sensor_end_of_data_to_reply_seconds",
			Help: "From the end of a message's data to the answer that it is recorded (250, or the milter's accept): the commit's fsync, mostly.",
			// 1 ms to 16 s: a group commit on a quiet disk, up to a disk in trouble.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		})
	})
	return h
}

// registry is the admin's Prometheus registry, made once.
func (a *Admin) registry() *prometheus.Registry {
	a.regOnce.Do(func() {
		r := prometheus.NewRegistry()
		h := a.Metrics.hist.get()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			adminCollector{a}, h.size, h.eod)
		// The uploads' and enforcement's own series (their latency histograms).
		for _, part := range []any{a.Uploads, a.Enforcement} {
			if c, ok := part.(interface{ Collectors() []prometheus.Collector }); ok {
				r.MustRegister(c.Collectors()...)
			}
		}
		a.reg = r
	})
	return a.reg
}

func (a *Admin) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.registry(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// writeMetrics writes the exposition in the text format, as a scrape gets it.
func (a *Admin) writeMetrics(w io.Writer) {
	families, err := a.registry().Gather()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		_ = enc.Encode(f)
	}
	if err != nil {
		buf.WriteString("# gather: " + err.Error() + "\n")
	}
	_, _ = w.Write(buf.Bytes())
}

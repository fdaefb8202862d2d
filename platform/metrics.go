package platform

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the platform's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg          *prometheus.Registry
	enrollments  *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	heartbeats   prometheus.Counter
	latency      *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "platform_enrollments_total", Help: "Enrollment attempts by result (ok, or the refusal code).",
		}, []string{"result"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "platform_auth_failures_total", Help: "Refused credentials by reason.",
		}, []string{"reason"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "platform_heartbeats_total", Help: "Heartbeats recorded.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "platform_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "platform_tls_certificate_expiry_timestamp_seconds",
		Help: "When the server certificate the platform serves expires (Unix time).",
	}, func() float64 { return float64(s.certs.notAfter().Unix()) }))
	m.reg.MustRegister(m.enrollments, m.authFailures, m.heartbeats, m.latency,
		&statusCollector{s: s, desc: prometheus.NewDesc("platform_collectors",
			"Collectors by status (pending, active, degraded, offline).", []string{"status"}, nil)},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) authFailure(reason string) { m.authFailures.WithLabelValues(reason).Inc() }
func (m *metrics) enrollment(result string)  { m.enrollments.WithLabelValues(result).Inc() }

// instrument times every request, labelled by the route pattern the mux
// matched (never the raw path, which would make labels unbounded).
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		m.latency.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusCollector counts collectors by status at scrape time.
type statusCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.s.st.CountCollectors(ctx, c.s.now().Add(-c.s.activeWindow()))
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for status, v := range map[string]int{"pending": n.Pending, "active": n.Active, "degraded": n.Degraded, "offline": n.Offline} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v), status)
	}
}

package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// parseScrape reads a --scrape value: "name=URL" or just the URL (then the
// name is its host:port).
func parseScrape(s string) (name, target string, err error) {
	name, target, found := strings.Cut(s, "=")
	if !found || strings.Contains(name, "/") {
		name, target = "", s
	}
	u, perr := url.Parse(target)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", SettingScrape.Errorf("%q: want [name=]http://host:port/metrics", s)
	}
	if name == "" {
		name = u.Host
	}
	return name, target, nil
}

// processMetrics are the figures read from one scrape.
type processMetrics struct {
	rss, cpu, mallocs          float64
	hasRSS, hasCPU, hasMallocs bool
}

// parseMetrics finds process_resident_memory_bytes,
// process_cpu_seconds_total and go_memstats_mallocs_total in a Prometheus
// text exposition.
func parseMetrics(r io.Reader) (processMetrics, error) {
	var m processMetrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		var dst *float64
		var has *bool
		switch name {
		case "process_resident_memory_bytes":
			dst, has = &m.rss, &m.hasRSS
		case "process_cpu_seconds_total":
			dst, has = &m.cpu, &m.hasCPU
		case "go_memstats_mallocs_total":
			dst, has = &m.mallocs, &m.hasMallocs
		default:
			continue
		}
		value, _, _ = strings.Cut(strings.TrimSpace(value), " ") // drop a timestamp
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", name, err)
		}
		*dst, *has = v, true
	}
	return m, sc.Err()
}

// scraper reads each service's /metrics once a second while the bench runs.
type scraper struct {
	client  *http.Client
	targets []*scrapeTarget
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
}

type scrapeTarget struct {
	name, url string

	mu       sync.Mutex
	first    *processMetrics
	last     processMetrics
	rssMax   float64
	scrapes  int
	lastErr  string
	firstAt  time.Time
	latestAt time.Time
}

func startScraper(specs []string) *scraper {
	s := &scraper{client: &http.Client{Timeout: 2 * time.Second}, stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	for _, spec := range specs {
		name, u, _ := parseScrape(spec) // validated with the config
		s.targets = append(s.targets, &scrapeTarget{name: name, url: u})
	}
	s.scrapeAll()
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.scrapeAll()
			}
		}
	}()
	return s
}

func (s *scraper) scrapeAll() {
	var wg sync.WaitGroup
	for _, t := range s.targets {
		wg.Go(func() { t.scrape(s.client) })
	}
	wg.Wait()
}

func (t *scrapeTarget) scrape(c *http.Client) {
	m, err := fetchMetrics(c, t.url)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil && !m.hasRSS {
		err = fmt.Errorf("no process_resident_memory_bytes in %s", t.url)
	}
	if err != nil {
		t.lastErr = err.Error()
		return
	}
	now := time.Now()
	if t.first == nil {
		t.first, t.firstAt = &m, now
	}
	t.last, t.latestAt = m, now
	t.rssMax = max(t.rssMax, m.rss)
	t.scrapes++
}

// fetchMetrics reads one /metrics page.
func fetchMetrics(c *http.Client, url string) (processMetrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return processMetrics{}, err
	}
	res, err := c.Do(req)
	if err != nil {
		return processMetrics{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return processMetrics{}, fmt.Errorf("HTTP %s", res.Status)
	}
	return parseMetrics(res.Body)
}

// finish stops scraping, scrapes a last time and reports.
func (s *scraper) finish() []ServiceReport {
	close(s.stop)
	<-s.done
	s.scrapeAll()
	out := make([]ServiceReport, 0, len(s.targets))
	for _, t := range s.targets {
		t.mu.Lock()
		r := ServiceReport{Name: t.name, URL: t.url, Scrapes: t.scrapes, Error: t.lastErr}
		if t.first != nil {
			r.RSSEnd, r.RSSMax = int64(t.last.rss), int64(t.rssMax)
			if t.first.hasCPU && t.last.hasCPU {
				r.CPUSeconds = t.last.cpu - t.first.cpu
				if wall := t.latestAt.Sub(t.firstAt).Seconds(); wall > 0 {
					r.Cores = r.CPUSeconds / wall
				}
			}
			if t.lastErr != "" && t.scrapes > 0 {
				r.Error = "some scrapes failed: " + t.lastErr
			}
		}
		t.mu.Unlock()
		out = append(out, r)
	}
	return out
}

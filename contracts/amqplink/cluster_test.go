//go:build cluster

package amqplink_test

// Tests against the real three-node cluster of `task cluster:up`: they
// kill its nodes, so they are behind the cluster build tag and run by
// `task chaos:cluster` (which starts the cluster first), never by the
// normal suite:
//
//	go test -tags cluster -run Cluster -v ./contracts/amqplink/

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
)

func TestClusterQueuesHaveAReplicaOnEveryNode(t *testing.T) {
	c := brokertest.ClusterOf(t)
	top := brokertest.Topology(t)
	for _, q := range top.Queues() {
		members := c.Members(t, q.Name)
		slices.Sort(members)
		if want := []string{"cafe-1@localhost", "cafe-2@localhost", "cafe-3@localhost"}; !slices.Equal(members, want) {
			t.Errorf("queue %s has members %v, want %v", q.Name, members, want)
		}
	}
}

// urlsFrom is the cluster's URL list as cafe-admin, starting with node
// first: the link connects there first.
func urlsFrom(first int) string {
	urls, _ := amqplink.ParseURLs(brokertest.AMQPURL())
	i := first - 1
	return strings.Join(append(urls[i:], urls[:i]...), ",")
}

// The node that leads the commands queue, which both the publisher and
// the consumer are connected to, is killed while messages flow: both move
// to a live node, the queue gets a new leader, and every confirmed message
// is delivered.
func TestClusterLinkFailsOverWhenTheLeaderIsKilled(t *testing.T) {
	c := brokertest.ClusterOf(t)
	top := brokertest.Topology(t)
	leader := c.Leader(t, top.CommandsQueue())
	urls := urlsFrom(leader)
	link, pub := startLink(t, urls, top)
	consumerLink, _ := startLink(t, urls, top)
	waitReady(t, pub)

	var got sync.Map
	consume(t, consumerLink, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 16, Grace: time.Second},
		func(_ context.Context, d *amqp.Delivery) amqplink.Verdict {
			got.Store(d.MessageId, true)
			return amqplink.Done()
		})

	const n = 600
	var confirmed sync.Map
	var retries atomic.Int64
	sent := make(chan int, n)
	go func() {
		defer close(sent)
		for i := range n {
			m := msg("{}")
			m.MessageId = fmt.Sprintf("m%d", i)
			for err := publish(t, pub, top, m); err != nil; err = publish(t, pub, top, m) { // refused or unconfirmed: the app retries
				if retries.Load()%20 == 0 {
					t.Logf("publish %s: %v (retrying)", m.MessageId, err)
				}
				retries.Add(1)
				time.Sleep(50 * time.Millisecond)
			}
			confirmed.Store(m.MessageId, true)
			sent <- i
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i := range sent {
		if i == n/3 {
			before := conn(t, link)
			killed := time.Now()
			c.Kill(t, leader)
			t.Cleanup(func() { c.Start(t, leader) })
			brokertest.Eventually(t, 30*time.Second, "the publisher's link did not move to a live node", func() bool { return conn(t, link) != before })
			t.Logf("node %d (the leader) killed; the link was on another node %v after the kill began", leader, time.Since(killed).Round(time.Millisecond))
		}
	}
	lost := func() (missing []string) {
		confirmed.Range(func(k, _ any) bool {
			if _, ok := got.Load(k); !ok {
				missing = append(missing, k.(string))
			}
			return true
		})
		return missing
	}
	brokertest.Eventually(t, 60*time.Second, "confirmed messages were not delivered", func() bool { return len(lost()) == 0 })
	now := c.Leader(t, top.CommandsQueue())
	if now == leader {
		t.Errorf("node %d still leads %s after it was killed", now, top.CommandsQueue())
	}
	t.Logf("%d confirmed, all delivered; %d publishes retried; new leader node %d", n, retries.Load(), now)
}

// With one URL of the list pointing at a stopped node, the link still
// starts (on the next) and reports the one it could not reach only while
// nothing else answers.
func TestClusterLinkStartsWithTheFirstNodeDown(t *testing.T) {
	c := brokertest.ClusterOf(t)
	top := brokertest.Topology(t)
	c.Stop(t, 3)
	t.Cleanup(func() { c.Start(t, 3) })
	_, pub := startLink(t, urlsFrom(3), top)
	waitReady(t, pub)
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatalf("publish with node 3 down: %v", err)
	}
}

// Without a quorum nothing is confirmed: publishes go on while nodes 2
// and 3 stop, and every one begun after both are down fails with an
// ErrNotConfirmed error (which the cashier answers with 503), whichever way:
// no confirm before the deadline, the connection closed under it as node 1
// pauses (pause_minority), or no connection at all. The test logs how many
// took each way, those in flight while the nodes stopped included.
func TestClusterNoQuorumConfirmsNothing(t *testing.T) {
	// noQuorumAttempts publishes begun after both nodes stopped must finish
	// before the test looks (it used to look after a fixed 8 s): one
	// begins every 20 ms and each ends within publish's 5 s deadline, so
	// this takes about 6 s at most.
	const noQuorumAttempts = 50
	c := brokertest.ClusterOf(t)
	top := brokertest.Topology(t)
	_, pub := startLink(t, urlsFrom(1), top)
	waitReady(t, pub)
	type attempt struct {
		began time.Time
		took  time.Duration
		err   error
	}
	var mu sync.Mutex
	var attempts []attempt
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			wg.Go(func() {
				began := time.Now()
				err := publish(t, pub, top, msg("{}"))
				mu.Lock()
				attempts = append(attempts, attempt{began, time.Since(began), err})
				mu.Unlock()
			})
		}
	}()
	c.All(t, "stop", 2, 3)
	t.Cleanup(func() { c.All(t, "start", 2, 3) })
	down := time.Now()
	// The evidence is a count of publishes begun without quorum that have
	// finished (each refused, or the test fails below), not a time window.
	brokertest.Eventually(t, time.Minute, fmt.Sprintf("fewer than %d publishes begun without quorum finished", noQuorumAttempts), func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range attempts {
			if a.began.After(down) {
				n++
			}
		}
		return n >= noQuorumAttempts
	})
	close(stop)
	<-done
	kinds := map[string]int{}
	var slowest time.Duration
	for _, a := range attempts {
		switch {
		case a.err == nil && a.began.After(down):
			t.Errorf("a publish begun %v after two of three nodes stopped was confirmed", a.began.Sub(down))
		case a.err == nil:
			kinds["confirmed (begun before both were down)"]++
		case !errors.Is(a.err, amqplink.ErrNotConfirmed):
			t.Errorf("publish: %v, want an ErrNotConfirmed error", a.err)
		case errors.Is(a.err, amqplink.ErrConfirmTimeout):
			kinds["no confirm before the deadline"]++
		case errors.Is(a.err, amqplink.ErrConfirmLost):
			kinds["connection closed before the confirm"]++
		case errors.Is(a.err, amqplink.ErrNotConnected):
			kinds["not connected"]++
		default:
			kinds[a.err.Error()]++
		}
		if a.err != nil {
			slowest = max(slowest, a.took)
		}
	}
	t.Logf("publishes while quorum went: %v; the slowest refusal took %v", kinds, slowest.Round(time.Millisecond))
}

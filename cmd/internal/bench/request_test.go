package bench

import (
	"testing"

	"cafe/contracts"
)

func TestRequestsAreValidAndPadded(t *testing.T) {
	for _, size := range []int{minRequestBytes("echo"), 200, 1000, 64 << 10} {
		p := newRequestParts("echo", size)
		id := commandID("3fa9c1", 1, 4242) // a typical id (16 bytes)
		req := p.appendRequest(nil, id)
		if len(req) != size {
			t.Errorf("size %d: request is %d bytes", size, len(req))
		}
		parsed, err := contracts.ParseRequest(req)
		if err != nil {
			t.Fatalf("size %d: %v\n%s", size, err, req)
		}
		if string(parsed.ID) != `"`+id+`"` || string(parsed.Method) != "echo" {
			t.Errorf("size %d: id %s method %s", size, parsed.ID, parsed.Method)
		}
	}
}

func TestBatchBodyIsAValidBatch(t *testing.T) {
	p := newRequestParts("sleep", 120)
	ids := []string{commandID("abc123", 0, 0), commandID("abc123", 0, 1), commandID("abc123", 0, 2)}
	reqs, batch, err := contracts.ParseBody(p.appendBody(nil, ids), contracts.DefaultMaxBatch, nil)
	if err != nil || !batch || len(reqs) != 3 {
		t.Fatalf("ParseBody: %d requests, batch %v, err %v", len(reqs), batch, err)
	}
	reqs, batch, err = contracts.ParseBody(p.appendBody(nil, ids[:1]), contracts.DefaultMaxBatch, nil)
	if err != nil || batch || len(reqs) != 1 {
		t.Fatalf("one id is one object: %d requests, batch %v, err %v", len(reqs), batch, err)
	}
}

func TestCommandIDRoundTrip(t *testing.T) {
	id := commandID("3fa9c1", 7, 123456)
	phase, seq, ok := parseCommandID("3fa9c1", []byte(id))
	if !ok || phase != 7 || seq != 123456 {
		t.Fatalf("parse %q = %d, %d, %v", id, phase, seq, ok)
	}
	if _, err := contracts.ParseRequest(newRequestParts("echo", 0).appendRequest(nil, id)); err != nil {
		t.Errorf("%q is not a valid string id: %v", id, err)
	}
	for _, foreign := range []string{"", "order-1f2e", "3fa9c2.7.1", "3fa9c1.7", "3fa9c1.7.", "3fa9c1.x.1", "3fa9c1.7.1x", "3fa9c1.7.12345678901", "3fa9c1-7-1"} {
		if _, _, ok := parseCommandID("3fa9c1", []byte(foreign)); ok {
			t.Errorf("parse %q: ok, want it taken as someone else's id", foreign)
		}
	}
}

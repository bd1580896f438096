package devicesim

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestReadPacket(t *testing.T) {
	publish := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	publish.Qos, publish.TopicName, publish.MessageID, publish.Payload = 1, "devices/d1/commands/r/k", 7, []byte(`{"jsonrpc":"2.0"}`)
	var encoded bytes.Buffer
	if err := publish.Write(&encoded); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error // nil: decodes
		any   bool  // some error, whichever
	}{
		{"publish", encoded.Bytes(), nil, false},
		{"pingresp", []byte{0xd0, 0x00}, nil, false},
		{"empty", nil, io.EOF, false},
		{"length over the limit", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, errPacketTooLarge, false},
		{"length of five bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, nil, true},
		{"body cut short", []byte{0x30, 0x10, 0x00, 0x03, 'a'}, io.ErrUnexpectedEOF, false},
		{"reserved packet type", []byte{0x00, 0x00}, nil, true},
		{"topic longer than the packet", []byte{0x30, 0x02, 0x00, 0x09}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readPacket(bytes.NewReader(tc.frame))
			switch {
			case tc.any:
				if err == nil {
					t.Fatalf("decoded %v, want an error", got)
				}
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
			case err != nil:
				t.Fatal(err)
			}
		})
	}
	got, _ := readPacket(bytes.NewReader(encoded.Bytes()))
	p, ok := got.(*packets.PublishPacket)
	if !ok || p.TopicName != publish.TopicName || p.MessageID != 7 || p.Qos != 1 || string(p.Payload) != string(publish.Payload) {
		t.Fatalf("decoded %v, want %v", got, publish)
	}
}

// FuzzReadPacket: whatever the broker sends, reading it fails cleanly or
// decodes; it never panics.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'})
	f.Add([]byte{0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, '{'})
	f.Add([]byte{0x40, 0x02, 0x00, 0x01})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, frame []byte) {
		_, _ = readPacket(bytes.NewReader(frame))
	})
}
